//! Secrets stay secret on every path: the LDAP password and the SCIM token (real ones, and
//! wrong canaries) never appear in stdout, stderr, trace-level logs (idsync's and its
//! libraries'), saved plans, reports or the journal, whether the run works or fails: a
//! refused bind, a refused token, an app that throttles, fails, resets and hangs, a TLS
//! failure, StartTLS refused, a directory or an app that is down.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::proxy::{Fault, HttpFaults, Rule};
use common::*;

const WRONG_PW: &str = "Canary-Wrong-Password-9d1";
const WRONG_TOKEN: &str = "Canary-Wrong-Token-7e2";

/// Runs idsync at trace level (every crate's logs, both `-vvv` and `RUST_LOG=trace`) and
/// returns stdout and stderr together.
fn traced(cfg: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .arg("--config")
        .arg(cfg)
        .arg("-vvv")
        .args(args)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let mut all = out.stdout;
    all.extend(out.stderr);
    all
}

fn leaked(text: &[u8], secret: &str) -> bool {
    text.windows(secret.len()).any(|w| w == secret.as_bytes())
}

#[test]
fn no_secret_reaches_any_output_file_or_journal_on_any_path() {
    let tb = Testbed::start(&trio());
    let p = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = tb.write_config(&tb.base_source(), "  timeout: 2s\n  max_retries: 3\n", "");
    retarget(&cfg, &tb.scim_url(), &p.scim_url());
    let mut seen: Vec<u8> = Vec::new();
    let dir = tb.dir.path();

    // Paths that work: plan (saved and reported), sync, show, runs, check --connect.
    let saved = dir.join("plan.json");
    let report = dir.join("report.json");
    seen.extend(traced(
        &cfg,
        &[
            "plan",
            "--save",
            saved.to_str().unwrap(),
            "--format",
            "json",
            "--output",
            report.to_str().unwrap(),
        ],
    ));
    seen.extend(traced(&cfg, &["apply", saved.to_str().unwrap()]));
    seen.extend(traced(&cfg, &["check", "--connect"]));
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Countess\n");
    // The app throttles, fails, resets and hangs on the way.
    p.add(Rule::new(
        "GET",
        "/Users?",
        Fault::Status {
            code: 429,
            retry_after: Some("1".into()),
        },
    ));
    p.add(Rule::new(
        "GET",
        "/Users?",
        Fault::Status {
            code: 503,
            retry_after: None,
        },
    ));
    p.add(Rule::new("PATCH", "/Users/", Fault::Reset));
    seen.extend(traced(&cfg, &["sync"]));
    assert_eq!(
        tb.scim_user("ada@example.org").unwrap()["title"],
        "Countess",
        "the traced sync did real work"
    );
    assert_eq!(p.pending(), 0, "every fault was met");
    p.add(Rule::new("", "/", Fault::ForwardThenHang(Duration::from_secs(3))).times(10));
    seen.extend(traced(&cfg, &["sync"]));
    p.clear();
    seen.extend(traced(&cfg, &["show", "last", "--format", "json"]));
    seen.extend(traced(&cfg, &["runs", "--format", "json"]));

    // A refused bind and a refused token, each with a wrong canary secret.
    write_secret(&dir.join("ldap.secret"), WRONG_PW);
    seen.extend(traced(&cfg, &["sync"]));
    write_secret(&dir.join("ldap.secret"), SYNC_PW);
    write_secret(&dir.join("scim.token"), WRONG_TOKEN);
    let refused = traced(&cfg, &["sync"]);
    assert!(
        String::from_utf8_lossy(&refused).contains("refused the token"),
        "{}",
        String::from_utf8_lossy(&refused)
    );
    seen.extend(refused);
    write_secret(&dir.join("scim.token"), TOKEN);

    // TLS: an unknown CA, and StartTLS refused (slapd here has no TLS).
    tls_certs(&dir.join("tls"), "");
    let tls = tb.write_config(&tb.start_tls_source("tls"), "  ca_file: tls/ca.pem\n", "");
    seen.extend(traced(&tls, &["sync"]));
    retarget(
        &tls,
        &tb.scim_url(),
        &format!("https://127.0.0.1:{}/v2", tb.scim_port),
    );
    seen.extend(traced(&tls, &["check", "--connect"]));

    // The directory down, then the app down.
    tb.stop_slapd();
    seen.extend(traced(&cfg, &["sync"]));
    tb.restart_slapd();
    drop(p);
    seen.extend(traced(&cfg, &["sync"]));

    for file in [saved, report] {
        seen.extend(std::fs::read(file).unwrap());
    }
    for name in ["journal.sqlite3", "journal.sqlite3-wal"] {
        seen.extend(std::fs::read(tb.state_dir().join(name)).unwrap_or_default());
    }
    for secret in [SYNC_PW, TOKEN, WRONG_PW, WRONG_TOKEN] {
        assert!(!leaked(&seen, secret), "{secret} leaked");
    }
    assert!(
        leaked(&seen, "ada@example.org"),
        "the check reads real output"
    );
}
