//! Action hooks against a real HTTP receiver (an axum server of ours) and real scripts,
//! with the real slapd and scim2-server around them.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use serde_json::Value;

const CANARY: &str = "Canary-Hook-Secret-7f3a";

/// What the receiver saw: each call's idempotency key, authorization and JSON body.
#[derive(Default)]
struct Seen {
    calls: Vec<(String, String, Value)>,
    /// Keys it has acted on: a second call with one of them is answered 409.
    done: Vec<String>,
    /// Answer with this status instead (and echo the authorization header in the body).
    fail_with: Option<u16>,
    /// Act on the first call, then hang (the test kills idsync meanwhile).
    hang_first: bool,
}

fn receiver(seen: Arc<Mutex<Seen>>) -> Served {
    let app = axum::Router::new().route(
        "/hook/{*rest}",
        post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let key = header(&headers, "idempotency-key");
                let auth = header(&headers, "authorization");
                let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                // Decided under the lock, answered after it (a hang waits unlocked).
                let (answer, hang) = {
                    let mut s = seen.lock().unwrap();
                    s.calls.push((key.clone(), auth.clone(), json));
                    if s.hang_first {
                        s.hang_first = false;
                        s.done.push(key);
                        ((StatusCode::OK, "ok".to_string()), true)
                    } else if let Some(code) = s.fail_with {
                        let code = StatusCode::from_u16(code).unwrap();
                        ((code, format!("refused; you sent {auth}")), false)
                    } else if s.done.contains(&key) {
                        ((StatusCode::CONFLICT, "already have it".to_string()), false)
                    } else {
                        s.done.push(key);
                        ((StatusCode::OK, "ok".to_string()), false)
                    }
                };
                if hang {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
                answer
            }
        }),
    );
    serve(app)
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn disable(tb: &Testbed, uid: &str) {
    tb.ldapmodify(&format!(
        "dn: uid={uid},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n"
    ));
}

fn active(tb: &Testbed, user: &str) -> bool {
    tb.scim_user(user).unwrap()["active"]
        .as_bool()
        .unwrap_or(true)
}

fn http_hook(port: u16, when: &str, required: bool) -> String {
    format!(
        "hooks:\n  - name: revoke-sessions\n    on: [suspend]\n    when: {when}\n    required: {required}\n    retries: 0\n    http:\n      url: \"http://127.0.0.1:{port}/hook/users/{{account_id}}/sessions\"\n      header_files: {{ Authorization: hook.secret }}\n"
    )
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// A config with one optional command hook `quick` running a script of `body`, on
/// actions of kind `on`, `when` (before or after) them, and its first sync made.
fn quick_hook(tb: &Testbed, body: &str, on: &str, when: &str) -> std::path::PathBuf {
    let quick = script(tb.dir.path(), "quick.sh", body);
    let cfg = tb.config(&format!(
        "hooks:\n  - name: quick\n    on: [{on}]\n    when: {when}\n    retries: 0\n    command: [\"{quick}\"]\n"
    ));
    tb.ok(&cfg, &["sync"]);
    cfg
}

#[test]
fn an_after_hook_on_suspend_gets_the_person_and_account_once_and_plans_show_it() {
    let tb = Testbed::start(&trio());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let rx = receiver(seen.clone());
    write_secret(
        &tb.dir.path().join("hook.secret"),
        &format!("Bearer {CANARY}"),
    );
    let cfg = tb.config(&http_hook(rx.port, "after", false));
    tb.ok(&cfg, &["sync"]);
    assert!(
        seen.lock().unwrap().calls.is_empty(),
        "no suspension, no call"
    );
    disable(&tb, "grace");
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("hooks: revoke-sessions (after)"), "{plan}");
    assert!(
        seen.lock().unwrap().calls.is_empty(),
        "a dry run calls no hook"
    );
    let out = tb.ok(&cfg, &["sync"]);
    assert!(!active(&tb, "grace@example.org"), "{out}");
    let account = tb.scim_user("grace@example.org").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let calls = seen.lock().unwrap().calls.clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (key, auth, body) = &calls[0];
    assert_eq!(key.len(), 32, "an idempotency key: {key}");
    assert_eq!(
        auth,
        &format!("Bearer {CANARY}"),
        "the secret header reaches the receiver"
    );
    assert_eq!(body["user_name"], "grace@example.org");
    assert_eq!(body["account_id"], account.as_str());
    assert_eq!(
        (body["kind"].as_str(), body["moment"].as_str()),
        (Some("suspend"), Some("after"))
    );
    let show = tb.ok(&cfg, &["show", "last"]);
    assert!(
        show.contains("hook revoke-sessions (after): ok, HTTP 200"),
        "{show}"
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        seen.lock().unwrap().calls.len(),
        1,
        "a quiet run calls nothing"
    );
}

#[test]
fn a_failing_required_before_hook_holds_the_action_and_the_app_sees_no_write() {
    let tb = Testbed::start(&trio());
    let check = script(
        tb.dir.path(),
        "check.sh",
        "cat >/dev/null\necho \"ticket system says no\"\nexit 4",
    );
    let cfg = tb.config(&format!(
        "hooks:\n  - name: ticket\n    on: [suspend]\n    when: before\n    required: true\n    retries: 0\n    command: [\"{check}\", \"{{user_name}}\"]\n"
    ));
    tb.ok(&cfg, &["sync"]);
    disable(&tb, "grace");
    let writes = tb.scim_writes();
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(tb.scim_writes(), writes, "the app sees no write");
    assert!(active(&tb, "grace@example.org"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 action(s) held"), "{stdout}");
    let approvals = tb.ok(&cfg, &["approvals"]);
    assert!(
        approvals.contains("hook ticket failed (exit 4): ticket system says no"),
        "{approvals}"
    );
}

#[test]
fn a_command_hook_that_exits_without_reading_its_stdin_does_not_stop_the_run() {
    let tb = Testbed::start(&trio());
    let cfg = quick_hook(&tb, "exit 0", "update", "before");
    // A change larger than a pipe holds: the hook exits before its document is written.
    let long = "x".repeat(40_000);
    tb.ldapmodify(&format!(
        "dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: T{long}\n-\nreplace: cn\ncn: C{long}\n"
    ));
    tb.ok(&cfg, &["sync"]);
    let alan = tb.scim_user("alan@example.org").unwrap();
    assert_eq!(alan["title"].as_str().map(str::len), Some(40_001));
}

#[test]
fn a_sync_whose_reader_went_away_finishes_its_run_and_says_nothing_more() {
    let tb = Testbed::start(&trio());
    let cfg = quick_hook(&tb, "cat >/dev/null", "suspend", "after");
    disable(&tb, "grace");
    // `idsync sync 2>&1 | head -0`: both of its streams lead to a reader already gone.
    let mut child = tb.spawn(&cfg, &["sync"]);
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "no panic on the summary line");
    assert!(!active(&tb, "grace@example.org"));
    let run = tb.last_run(&cfg);
    assert_eq!(run["run"]["outcome"], "ok", "{run}");
}

#[test]
fn a_failing_optional_hook_is_a_notice_and_the_action_stands() {
    let tb = Testbed::start(&trio());
    let seen = Arc::new(Mutex::new(Seen {
        fail_with: Some(500),
        ..Seen::default()
    }));
    let rx = receiver(seen.clone());
    write_secret(
        &tb.dir.path().join("hook.secret"),
        &format!("Bearer {CANARY}"),
    );
    let cfg = tb.config(&http_hook(rx.port, "before", false));
    tb.ok(&cfg, &["sync"]);
    disable(&tb, "grace");
    let out = tb.idsync(&cfg, &["sync"]);
    assert!(!active(&tb, "grace@example.org"), "the action stands");
    let show = tb.ok(&cfg, &["show", "last"]);
    assert!(
        show.contains("hook revoke-sessions (before): failed, HTTP 500"),
        "{show}"
    );
    // The receiver echoed the secret back: nothing idsync shows, logs or keeps has it.
    let mut journal = std::fs::read(tb.state_dir().join("journal.sqlite3")).unwrap();
    journal.extend(std::fs::read(tb.state_dir().join("journal.sqlite3-wal")).unwrap_or_default());
    let texts = [
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        show,
        tb.ok(&cfg, &["show", "last", "--format", "json"]),
        String::from_utf8_lossy(&journal).to_string(),
    ];
    for t in texts {
        assert!(!t.contains(CANARY), "the hook secret leaked: {t}");
    }
}

#[test]
fn a_kill_between_a_before_hook_and_its_action_converges_with_the_same_key() {
    let tb = Testbed::start(&trio());
    let seen = Arc::new(Mutex::new(Seen {
        hang_first: true,
        ..Seen::default()
    }));
    let rx = receiver(seen.clone());
    write_secret(&tb.dir.path().join("hook.secret"), "Bearer x");
    let cfg = tb.config(&http_hook(rx.port, "before", true));
    tb.ok(&cfg, &["sync"]);
    disable(&tb, "grace");
    let mut child = tb.spawn(&cfg, &["sync"]);
    // The receiver has acted on the hook and not yet answered: idsync dies here.
    let called = std::time::Instant::now();
    while seen.lock().unwrap().calls.is_empty() {
        assert!(called.elapsed().as_secs() < 60, "the hook was never called");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    signal(&child, "-KILL");
    let status = wait_exit(&mut child, 60);
    assert!(!status.success(), "killed mid-run");
    assert!(active(&tb, "grace@example.org"), "killed before the write");
    tb.ok(&cfg, &["sync"]);
    assert!(!active(&tb, "grace@example.org"), "the next run converges");
    let s = seen.lock().unwrap();
    let keys: Vec<&String> = s.calls.iter().map(|(k, _, _)| k).collect();
    assert_eq!(keys.len(), 2, "called again after the kill: {keys:?}");
    assert_eq!(keys[0], keys[1], "with the same idempotency key");
    assert_eq!(s.done.len(), 1, "the receiver acted once");
}
