//! StartTLS to the directory: the certificate is verified against the configured CA, and a
//! failed verification is a failed run, never a plaintext fallback.

mod common;

use common::*;

#[test]
fn start_tls_with_the_right_ca_reads_the_directory() {
    let tb = Testbed::start_tls(&one());
    let source = tb.base_source().replace(
        "  bind_dn:",
        "  start_tls: true\n  ca_file: tls/ca.pem\n  bind_dn:",
    );
    let cfg = tb.config_with(&source, "");
    tb.ok(&cfg, &["sync"]);
    assert!(tb.scim_user("ada@example.org").is_some());
}

#[test]
fn start_tls_with_an_unknown_ca_fails_without_falling_back_to_plaintext() {
    let tb = Testbed::start_tls(&one());
    // A CA that did not sign the server's certificate.
    let other = tb.dir.path().join("other");
    let out = std::process::Command::new(repo().join("scripts/testbed.sh"))
        .args(["tls-certs", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let source = tb.base_source().replace(
        "  bind_dn:",
        "  start_tls: true\n  ca_file: other/ca.pem\n  bind_dn:",
    );
    let cfg = tb.config_with(&source, "");
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    assert_eq!(tb.scim_writes(), 0);
    assert_eq!(tb.last_run(&cfg)["run"]["outcome"], "failed");
}
