//! Failures a user meets first: each is one clear line, a non-zero exit, a journaled run,
//! and zero writes.

mod common;

use common::*;
use serde_json::Value;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn last_run(tb: &Testbed, cfg: &std::path::Path) -> Value {
    tb.last_run(cfg)["run"].clone()
}

#[test]
fn an_invalid_config_names_each_key_and_exits_2() {
    let tb = Testbed::start("");
    let cfg = tb.config("schedule: \"every day\"\nsafety: { max_deprovisions: lots }\n");
    let out = tb.idsync(&cfg, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("schedule:") && err.contains("safety.max_deprovisions:"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let cfg = tb.config("colour: blue\n");
    let out = tb.idsync(&cfg, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown field `colour`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unreachable_directory_fails_the_run_with_no_writes() {
    let tb = Testbed::start(&one());
    tb.stop_slapd();
    let cfg = tb.config("");
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("idsync: error:"))
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("cannot reach the directory"), "{err}");
    assert_eq!(tb.scim_writes(), 0);
    let run = last_run(&tb, &cfg);
    assert_eq!(run["outcome"], "failed");
    assert!(run["reason"]
        .as_str()
        .unwrap()
        .contains("reading the directory failed"));
}

#[test]
fn a_wrong_password_fails_the_run_and_never_prints_the_secret() {
    let tb = Testbed::start(&one());
    write_secret(&tb.dir.path().join("ldap.secret"), "wrong-Canary-7731");
    let cfg = tb.config("");
    let out = tb.idsync(&cfg, &["-vvv", "sync"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refused the bind as cn=idsync"), "{err}");
    assert!(
        !err.contains("wrong-Canary-7731")
            && !String::from_utf8_lossy(&out.stdout).contains("wrong-Canary-7731")
    );
    assert_eq!(last_run(&tb, &cfg)["outcome"], "failed");
    assert_eq!(tb.scim_writes(), 0);
}

#[test]
fn an_unreachable_app_fails_the_run() {
    let mut tb = Testbed::start(&one());
    tb.stop_scim();
    let cfg = tb.config("");
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach the app") || err.contains("gave up after"),
        "{err}"
    );
    assert_eq!(last_run(&tb, &cfg)["outcome"], "failed");
}

#[test]
fn a_read_that_sees_nobody_is_aborted_before_any_write() {
    let tb = Testbed::start(&one());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    let writes = tb.scim_writes();
    // The base DN now matches nothing readable: an empty read must not suspend everyone.
    let cfg = tb.config_with(
        &tb.base_source()
            .replace("ou=people,dc=example", "ou=alumni,dc=example"),
        "",
    );
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("fewer than min_source_users"));
    assert_eq!(tb.scim_writes(), writes);
    assert_eq!(last_run(&tb, &cfg)["outcome"], "aborted");
}

#[test]
fn the_secrets_never_reach_logs_reports_or_the_journal() {
    let tb = Testbed::start(&one());
    let cfg = tb.config("");
    let mut seen = Vec::new();
    for args in [
        &["-vvv", "sync"][..],
        &["-vvv", "--log-format", "json", "plan", "--format", "json"],
        &["show", "last", "--format", "json"],
    ] {
        let out = tb.idsync(&cfg, args);
        assert!(out.status.success());
        seen.extend(out.stdout);
        seen.extend(out.stderr);
    }
    for name in ["journal.sqlite3", "journal.sqlite3-wal"] {
        seen.extend(std::fs::read(tb.state_dir().join(name)).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("ada@example.org"),
        "the check reads real output"
    );
    assert!(!text.contains(SYNC_PW), "LDAP password leaked");
    assert!(!text.contains(TOKEN), "SCIM token leaked");
}
