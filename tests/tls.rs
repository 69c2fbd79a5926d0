//! StartTLS to the directory: the certificate is verified against the configured CA, and a
//! failed verification is a failed run, never a plaintext fallback.

mod common;

use common::proxy::{LdapCut, TlsFront};
use common::*;

#[test]
fn start_tls_with_the_right_ca_reads_the_directory() {
    let tb = Testbed::start_tls(&one());
    let source = tb.start_tls_source("tls");
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
    let source = tb.start_tls_source("other");
    let cfg = tb.config_with(&source, "");
    tb.fails(&cfg, &["sync"], &["TLS with the directory"]);
}

#[test]
fn start_tls_to_a_certificate_for_another_host_fails_closed() {
    let tb = Testbed::start_tls_for(&one(), "DNS:other.example.org");
    let source = tb.start_tls_source("tls");
    let cfg = tb.config_with(&source, "");
    tb.fails(
        &cfg,
        &["sync"],
        &["TLS with the directory", "certificate not valid for name"],
    );
}

#[test]
fn a_server_that_refuses_start_tls_fails_and_the_password_never_crosses_in_plaintext() {
    // slapd without TLS: it answers the StartTLS request with an error.
    let tb = Testbed::start(&one());
    tls_certs(&tb.dir.path().join("tls"), "");
    let wire = LdapCut::recording(tb.ldap_port);
    let source = tb
        .start_tls_source("tls")
        .replace(&tb.ldap_url(), &wire.url());
    let cfg = tb.config_with(&source, "");
    tb.fails(&cfg, &["sync"], &["the server refused StartTLS"]);
    let sent = wire.sent_by_client();
    assert!(!sent.is_empty(), "idsync did ask for StartTLS");
    assert!(
        !sent.windows(SYNC_PW.len()).any(|w| w == SYNC_PW.as_bytes()),
        "the bind password went out in plaintext"
    );
    assert_eq!(tb.scim_writes(), 0);
}

/// The SCIM app behind HTTPS (a TLS front with certificates for `san`), and a config that
/// trusts `ca` (a directory under the testbed holding `ca.pem`).
fn https_app(tb: &Testbed, san: &str, ca: &str) -> (TlsFront, std::path::PathBuf) {
    let certs = tb.dir.path().join(format!("app-tls-{}", san.len()));
    if !certs.exists() {
        tls_certs(&certs, san);
    }
    let front = TlsFront::start(&format!("http://127.0.0.1:{}", tb.scim_port), &certs);
    let cfg = tb.write_config(&tb.base_source(), &format!("  ca_file: {ca}/ca.pem\n"), "");
    retarget(
        &cfg,
        &tb.scim_url(),
        &format!("https://127.0.0.1:{}/v2", front.port),
    );
    (front, cfg)
}

#[test]
fn an_https_app_is_reached_with_its_ca_and_refused_with_an_unknown_ca_or_a_wrong_host() {
    let tb = Testbed::start(&one());
    let (_front, cfg) = https_app(&tb, "", "app-tls-0");
    tb.ok(&cfg, &["sync"]);
    assert!(tb.scim_user("ada@example.org").is_some());

    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Countess\n");
    tls_certs(&tb.dir.path().join("stranger"), "");
    let writes = tb.scim_writes();
    for (san, ca, says) in [
        // A CA of the same name as the real one but another key: a bad signature.
        ("", "stranger", "BadSignature"),
        (
            "DNS:other.example.org",
            "app-tls-21",
            "certificate not valid for name",
        ),
    ] {
        let (_front, cfg) = https_app(&tb, san, ca);
        tb.fails(&cfg, &["sync"], &["TLS with the app", says]);
        assert_eq!(tb.scim_writes(), writes, "nothing reached the app");
    }
}
