//! The operator console end to end: the real `idsync serve` over the journal of real syncs
//! (slapd, scim2-server), driven in headless Chromium (Debian's chromium and
//! chromium-driver, through fantoccini). Screenshots of each page are kept in
//! `target/console-screenshots/` as test artifacts.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const DISABLE: &str = "changetype: modify\nreplace: employeeType\nemployeeType: disabled\n";

fn disable(tb: &Testbed, uid: &str) {
    tb.ldapmodify(&format!(
        "dn: uid={uid},ou=people,dc=example,dc=org\n{DISABLE}"
    ));
}

/// `idsync passwd` on this password: its argon2 hash.
fn hash(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(text.starts_with("$argon2id$"), "{text}");
    text
}

/// A process stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {port}");
}

/// `idsync serve` on `port`.
fn serve(config: &std::path::Path, port: u16) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_port(port);
    running
}

/// chromedriver on a free port, and a headless Chromium session through it.
async fn browser() -> (Running, Client) {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (scripts/testbed.sh install puts it there)");
    let driver = Running(driver);
    wait_port(port);
    let profile = tempfile::tempdir().unwrap().keep();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");
    (driver, client)
}

/// Saves the page as `target/console-screenshots/NAME.png`, at 1280 px and at phone width.
async fn screenshot(c: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    c.set_window_size(1280, 900).await.unwrap();
    std::fs::write(
        dir.join(format!("{name}.png")),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    c.set_window_size(390, 844).await.unwrap();
    std::fs::write(
        dir.join(format!("{name}-phone.png")),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    c.set_window_size(1280, 900).await.unwrap();
}

async fn login(c: &Client, base: &str, name: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = page_with(c, "Log out").await;
    assert!(text.contains("Log out"), "{name} did not get in: {text}");
}

/// The page once it says `text` (a click's navigation may still be under way), or as it
/// is after 10 s.
async fn page_with(c: &Client, text: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = c.source().await.unwrap();
        if page.contains(text) || std::time::Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs a decision from the page's own origin (the browser sends the session cookie):
/// with the page's CSRF token when `with_token`, without one otherwise. Returns the status.
async fn post_decision(c: &Client, run: i64, seq: i64, with_token: bool) -> u64 {
    let script = r#"
        const [run, seq, withToken, done] = arguments;
        const body = new URLSearchParams({ decision: 'approve', comment: 'forged' });
        const t = document.querySelector('input[name=authenticity_token]');
        if (withToken && t) body.set('authenticity_token', t.value);
        fetch(`/approvals/${run}/${seq}`, { method: 'POST', body, redirect: 'manual' })
            .then(r => done(r.status), () => done(0));
    "#;
    c.execute_async(script, vec![json!(run), json!(seq), json!(with_token)])
        .await
        .unwrap()
        .as_u64()
        .unwrap()
}

fn held(tb: &Testbed, cfg: &std::path::Path) -> Vec<Value> {
    serde_json::from_str(&tb.ok(cfg, &["approvals", "--format", "json"])).unwrap()
}

fn config(tb: &Testbed, port: u16, users: &str) -> std::path::PathBuf {
    tb.config(&format!(
        "approvals: {{ suspend: manual }}\nconsole:\n  listen: 127.0.0.1:{port}\n  users:\n{users}"
    ))
}

#[test]
fn a_viewer_sees_runs_and_diffs_but_cannot_approve_and_a_post_without_its_token_is_refused() {
    let tb = Testbed::start(&trio());
    let port = free_port();
    let users = format!(
        "    - {{ name: vera, password_hash: \"{}\", role: viewer }}\n    - {{ name: abe, password_hash: \"{}\", role: approver }}\n",
        hash("vera-password"),
        hash("abe-password")
    );
    let cfg = config(&tb, port, &users);
    tb.ok(&cfg, &["sync"]);
    disable(&tb, "alan");
    tb.ok(&cfg, &["sync"]);
    let waiting = held(&tb, &cfg);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let (run, seq) = (
        waiting[0]["run"].as_i64().unwrap(),
        waiting[0]["seq"].as_i64().unwrap(),
    );
    let _server = serve(&cfg, port);
    let base = format!("http://127.0.0.1:{port}");

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (_driver, c) = browser().await;
        // Pages need a login.
        c.goto(&format!("{base}/approvals")).await.unwrap();
        assert!(c.current_url().await.unwrap().path().ends_with("/login"));
        screenshot(&c, "login").await;

        login(&c, &base, "vera", "vera-password").await;
        let apps = c.source().await.unwrap();
        assert!(
            apps.contains("default") && apps.contains("1 held action(s)"),
            "{apps}"
        );
        screenshot(&c, "apps").await;

        c.goto(&format!("{base}/runs")).await.unwrap();
        screenshot(&c, "runs").await;
        // The first sync's creates, with their field diffs.
        c.goto(&format!("{base}/runs/1")).await.unwrap();
        let first = c.source().await.unwrap();
        assert!(
            first.contains("name.givenName: (none) -&gt; \"Alan\""),
            "{first}"
        );
        screenshot(&c, "run").await;
        c.goto(&format!("{base}/runs/1?q=grace")).await.unwrap();
        let filtered = c.source().await.unwrap();
        assert!(filtered.contains("grace@example.org") && !filtered.contains("alan@example.org"));

        // The current dry-run plan, on demand: Alan's suspension, still held; a second
        // plan within 30 s is refused.
        c.goto(&format!("{base}/plan")).await.unwrap();
        let plan = page_with(&c, "Dry-run plan").await;
        assert!(
            plan.contains("alan@example.org") && plan.contains("HELD: approvals.suspend: manual"),
            "{plan}"
        );
        screenshot(&c, "plan").await;
        c.goto(&format!("{base}/plan")).await.unwrap();
        let again = page_with(&c, "less than 30 seconds ago").await;
        assert!(again.contains("less than 30 seconds ago"), "{again}");

        c.goto(&format!("{base}/approvals")).await.unwrap();
        let page = c.source().await.unwrap();
        assert!(page.contains("alan@example.org"), "{page}");
        assert!(
            c.find_all(Locator::Css("button.approve"))
                .await
                .unwrap()
                .is_empty(),
            "a viewer got an approve button"
        );
        screenshot(&c, "approvals-viewer").await;
        // A forged POST, token and all: not a viewer's to make.
        assert_eq!(post_decision(&c, run, seq, true).await, 403);

        // An approver without the form's token is refused too.
        c.find(Locator::Css("form[action='/logout'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        page_with(&c, "<h1>Log in</h1>").await;
        login(&c, &base, "abe", "abe-password").await;
        c.goto(&format!("{base}/approvals")).await.unwrap();
        assert_eq!(
            c.find_all(Locator::Css("button.approve"))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(post_decision(&c, run, seq, false).await, 403);
        c.close().await.unwrap();
    });
    assert_eq!(held(&tb, &cfg).len(), 1, "a refused POST decided something");
    assert!(tb
        .scim_users()
        .iter()
        .any(|u| u["userName"] == "alan@example.org" && u["active"] == true));
}

#[test]
fn a_scoped_approver_sees_only_their_people_and_approving_applies_exactly_that_action() {
    let tb = Testbed::start(&trio());
    let port = free_port();
    let users = format!(
        "    - {{ name: abe, password_hash: \"{}\", role: approver, apps: [default], people: {{ user_names: [\"alan@*\"] }} }}\n",
        hash("abe-password")
    );
    let cfg = config(&tb, port, &users);
    tb.ok(&cfg, &["sync"]);
    disable(&tb, "alan");
    disable(&tb, "grace");
    tb.ok(&cfg, &["sync"]);
    let waiting = held(&tb, &cfg);
    assert_eq!(waiting.len(), 2, "{waiting:?}");
    let run = waiting[0]["run"].as_i64().unwrap();
    let _server = serve(&cfg, port);
    let base = format!("http://127.0.0.1:{port}");

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (_driver, c) = browser().await;
        login(&c, &base, "abe", "abe-password").await;
        c.goto(&format!("{base}/approvals")).await.unwrap();
        let page = c.source().await.unwrap();
        assert!(page.contains("alan@example.org"), "{page}");
        assert!(
            !page.contains("grace@example.org"),
            "a scoped approver saw someone else: {page}"
        );
        screenshot(&c, "approvals-approver").await;
        c.find(Locator::Css("textarea[name=comment]"))
            .await
            .unwrap()
            .send_keys("Alan left on Friday")
            .await
            .unwrap();
        c.find(Locator::Css("button.approve"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let after = page_with(&c, "Nothing waits for a decision").await;
        assert!(after.contains("Nothing waits for a decision"), "{after}");
        // Grace's action is not his to decide, even forged.
        let grace = waiting
            .iter()
            .find(|w| w["user_name"] == "grace@example.org")
            .unwrap();
        c.goto(&format!("{base}/runs/{run}")).await.unwrap();
        assert_eq!(
            post_decision(&c, run, grace["seq"].as_i64().unwrap(), true).await,
            403
        );
        // The accounts page: Alan suspended, his reactivation window counting down; only
        // the people this login sees.
        c.goto(&format!("{base}/links")).await.unwrap();
        let accounts = c.source().await.unwrap();
        assert!(
            accounts.contains("suspended") && accounts.contains("day(s), until"),
            "{accounts}"
        );
        assert!(!accounts.contains("grace@example.org"), "{accounts}");
        screenshot(&c, "accounts").await;
        // Alan's timeline: why he is suspended, and who decided.
        c.find(Locator::LinkText("alan@example.org"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let timeline = page_with(&c, "approved by console:abe").await;
        assert!(timeline.contains("suspend (applied)"), "{timeline}");
        assert!(timeline.contains("approved by console:abe"), "{timeline}");
        screenshot(&c, "person").await;
        c.close().await.unwrap();
    });
    let active: Vec<(String, bool)> = tb
        .scim_users()
        .iter()
        .map(|u| {
            (
                u["userName"].as_str().unwrap().to_string(),
                u["active"] == true,
            )
        })
        .collect();
    assert!(
        active.contains(&("alan@example.org".into(), false)),
        "{active:?}"
    );
    assert!(
        active.contains(&("grace@example.org".into(), true)),
        "{active:?}"
    );
    assert_eq!(held(&tb, &cfg).len(), 1, "grace's stays held");
    // The audit names the approver and their comment.
    let shown = tb.ok(&cfg, &["show", &run.to_string()]);
    assert!(shown.contains("approved by console:abe"), "{shown}");
    assert!(shown.contains("Alan left on Friday"), "{shown}");
}
