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

/// Logs in from the keyboard alone: the name field has the focus, Tab moves to the
/// password, Enter sends the form.
async fn login(c: &Client, base: &str, name: &str, password: &str) {
    const TAB: &str = "\u{e004}";
    const ENTER: &str = "\u{e007}";
    c.goto(&format!("{base}/login")).await.unwrap();
    let focused = c.active_element().await.unwrap();
    assert_eq!(focused.attr("name").await.unwrap().as_deref(), Some("name"));
    focused.send_keys(&format!("{name}{TAB}")).await.unwrap();
    let focused = c.active_element().await.unwrap();
    assert_eq!(
        focused.attr("name").await.unwrap().as_deref(),
        Some("password")
    );
    focused.send_keys(password).await.unwrap();
    // Under load chromedriver has been seen to lose a keystroke (the console then says
    // "wrong name or password"): what the fields hold is checked, and typed again where
    // it is not what was typed, before Enter sends the form.
    for (field, value) in [("name", name), ("password", password)] {
        let input = c
            .find(Locator::Css(&format!("input[name={field}]")))
            .await
            .unwrap();
        if input.prop("value").await.unwrap().as_deref() != Some(value) {
            eprintln!("the {field} field lost keystrokes: typing it again");
            input.clear().await.unwrap();
            input.send_keys(value).await.unwrap();
        }
    }
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(ENTER)
        .await
        .unwrap();
    let text = page_with(c, "Log out").await;
    assert!(text.contains("Log out"), "{name} did not get in: {text}");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    let mut server = Some(serve(&cfg, port));
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
        // A restart of the console (an upgrade) logs nobody out: sessions are kept in the
        // state directory.
        drop(server.take());
        server = Some(serve(&cfg, port));
        c.goto(&format!("{base}/runs")).await.unwrap();
        assert!(
            !c.current_url().await.unwrap().path().ends_with("/login"),
            "logged out by a restart"
        );
        // The first sync's creates, with their field diffs.
        c.goto(&format!("{base}/runs/1")).await.unwrap();
        let first = c.source().await.unwrap();
        assert!(
            first.contains("name.givenName: (none) -&gt; \"Alan\""),
            "{first}"
        );
        // Each person links to their timeline.
        assert!(
            first.contains("href=\"/people/alan@example.org\""),
            "{first}"
        );
        screenshot(&c, "run").await;
        c.goto(&format!("{base}/runs/1?q=grace")).await.unwrap();
        let filtered = c.source().await.unwrap();
        assert!(filtered.contains("grace@example.org") && !filtered.contains("alan@example.org"));

        // The current dry-run plan, on demand (a form: a plan is no link to follow):
        // Alan's suspension, still held; a second plan within 30 s is refused.
        c.goto(&format!("{base}/plan")).await.unwrap();
        screenshot(&c, "plan-form").await;
        click(&c, "button.make").await;
        let plan = page_with(&c, "HELD: approvals.suspend: manual").await;
        assert!(
            plan.contains("alan@example.org") && plan.contains("HELD: approvals.suspend: manual"),
            "{plan}"
        );
        screenshot(&c, "plan").await;
        c.goto(&format!("{base}/plan")).await.unwrap();
        click(&c, "button.make").await;
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
    let (waiting, run) = alan_and_grace_held(&tb, &cfg);
    let _server = serve(&cfg, port);
    let base = format!("http://127.0.0.1:{port}");

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (_driver, c) = browser().await;
        login(&c, &base, "abe", "abe-password").await;
        approve_alan_not_grace(&c, &base, "approvals-approver", "Alan left on Friday").await;
        refused_grace(&c, &base, &waiting).await;
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
    only_alan_suspended(&tb, &cfg, run, "console:abe", "Alan left on Friday");
}

#[test]
fn an_approver_decides_all_of_a_run_at_once_and_the_page_says_what_came_of_it() {
    let tb = Testbed::start(&trio());
    let port = free_port();
    let users = format!(
        "    - {{ name: abe, password_hash: \"{}\", role: approver }}\n",
        hash("abe-password")
    );
    let cfg = config(&tb, port, &users);
    let (_, run) = alan_and_grace_held(&tb, &cfg);
    let _server = serve(&cfg, port);
    let base = format!("http://127.0.0.1:{port}");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (_driver, c) = browser().await;
        login(&c, &base, "abe", "abe-password").await;
        c.goto(&format!("{base}/approvals")).await.unwrap();
        // Each held action names its person, linked to their timeline.
        let page = c.source().await.unwrap();
        assert!(
            page.contains("href=\"/people/grace@example.org\""),
            "{page}"
        );
        click(&c, "button.approve-all").await;
        let after = page_with(&c, "Nothing waits for a decision").await;
        assert!(
            after.contains(&format!(
                "Approved all 2 held actions of run {run}: applied by run"
            )),
            "{after}"
        );
        c.close().await.unwrap();
    });
    assert!(held(&tb, &cfg).is_empty());
    assert!(tb
        .scim_users()
        .iter()
        .filter(|u| u["userName"] == "alan@example.org" || u["userName"] == "grace@example.org")
        .all(|u| u["active"] == false));
}

/// A first sync, then Alan and Grace disabled: the second sync holds both suspensions
/// (returned, with that run's id).
fn alan_and_grace_held(tb: &Testbed, cfg: &std::path::Path) -> (Vec<Value>, i64) {
    tb.ok(cfg, &["sync"]);
    disable(tb, "alan");
    disable(tb, "grace");
    tb.ok(cfg, &["sync"]);
    let waiting = held(tb, cfg);
    assert_eq!(waiting.len(), 2, "{waiting:?}");
    let run = waiting[0]["run"].as_i64().unwrap();
    (waiting, run)
}

/// On the held actions page: Alan's suspension and not Grace's; Alan's approved with
/// `comment`.
async fn approve_alan_not_grace(c: &Client, base: &str, shot: &str, comment: &str) {
    c.goto(&format!("{base}/approvals")).await.unwrap();
    let page = c.source().await.unwrap();
    assert!(page.contains("alan@example.org"), "{page}");
    assert!(
        !page.contains("grace@example.org"),
        "a scoped approver saw someone outside their scope: {page}"
    );
    screenshot(c, shot).await;
    c.find(Locator::Css("textarea[name=comment]"))
        .await
        .unwrap()
        .send_keys(comment)
        .await
        .unwrap();
    click(c, "button.approve").await;
    let after = page_with(c, "Nothing waits for a decision").await;
    assert!(after.contains("Nothing waits for a decision"), "{after}");
    // The page says what the decision came to.
    assert!(
        after.contains("Approved suspend alan@example.org: applied by run"),
        "{after}"
    );
}

/// Grace's held action is not this login's: not in her run's page, and refused when
/// forged.
async fn refused_grace(c: &Client, base: &str, waiting: &[Value]) {
    let grace = waiting
        .iter()
        .find(|w| w["user_name"] == "grace@example.org")
        .unwrap();
    let (run, seq) = (
        grace["run"].as_i64().unwrap(),
        grace["seq"].as_i64().unwrap(),
    );
    c.goto(&format!("{base}/runs/{run}")).await.unwrap();
    let actions = c.source().await.unwrap();
    assert!(!actions.contains("grace@example.org"), "{actions}");
    assert_eq!(post_decision(c, run, seq, true).await, 403);
}

/// In the app, Alan is suspended and Grace is not; Grace's action stays held; the audit
/// of `run` names the approver and their comment.
fn only_alan_suspended(tb: &Testbed, cfg: &std::path::Path, run: i64, who: &str, comment: &str) {
    let users = tb.scim_users();
    let active = |name: &str| {
        users
            .iter()
            .find(|u| u["userName"] == name)
            .map(|u| u["active"] == true)
    };
    assert_eq!(active("alan@example.org"), Some(false));
    assert_eq!(active("grace@example.org"), Some(true));
    assert_eq!(held(tb, cfg).len(), 1, "grace's stays held");
    let shown = tb.ok(cfg, &["show", &run.to_string()]);
    assert!(shown.contains(&format!("approved by {who}")), "{shown}");
    assert!(shown.contains(comment), "{shown}");
}

/// The directory's `research` group: Alan alone.
const RESEARCH: &str = "dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\ndn: cn=research,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: research\nmember: uid=alan,ou=people,dc=example,dc=org\n\n";

#[test]
fn an_oidc_approver_scoped_to_a_directory_group_sees_and_approves_only_that_groups_people() {
    let tb = Testbed::start(&(trio() + RESEARCH));
    let port = free_port();
    // Canaille (PyPI) as the OpenID Connect provider: abe is in its research-leads group.
    let idp = ScimServer::canaille_provider(&json!({
        "client_id": "idsync-console",
        "client_secret": "console-secret",
        "redirect_uri": format!("http://127.0.0.1:{port}/oidc/callback"),
        "users": [{ "user_name": "abe", "password": "abe-idp-password", "groups": ["research-leads", "staff"] }],
    }));
    write_secret(&tb.dir.path().join("oidc.secret"), "console-secret");
    let cfg = tb.config(&format!(
        "groups:\n  base_dn: ou=groups,dc=example,dc=org\napprovals: {{ suspend: manual }}\nconsole:\n  listen: 127.0.0.1:{port}\n  oidc:\n    issuer: {}\n    client_id: idsync-console\n    client_secret_file: oidc.secret\n    roles:\n      - {{ claim: research-leads, role: approver, apps: [default], people: {{ groups: [research] }} }}\n",
        idp.origin()
    ));
    let (waiting, run) = alan_and_grace_held(&tb, &cfg);
    let _server = serve(&cfg, port);
    let base = format!("http://127.0.0.1:{port}");

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (_driver, c) = browser().await;
        c.goto(&format!("{base}/login")).await.unwrap();
        screenshot(&c, "login-oidc").await;
        c.find(Locator::LinkText("Log in with 127.0.0.1"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // Canaille's own login pages: name, then password.
        page_with(&c, "name=\"login\"").await;
        c.find(Locator::Css("input[name=login]"))
            .await
            .unwrap()
            .send_keys("abe")
            .await
            .unwrap();
        click(&c, "button[type=submit]").await;
        page_with(&c, "name=\"password\"").await;
        c.find(Locator::Css("input[name=password]"))
            .await
            .unwrap()
            .send_keys("abe-idp-password")
            .await
            .unwrap();
        click(&c, "button[type=submit]").await;
        let home = page_with(&c, "Log out").await;
        assert!(home.contains("oidc:abe (approver)"), "{home}");
        assert!(c.current_url().await.unwrap().as_str().starts_with(&base));

        approve_alan_not_grace(&c, &base, "approvals-oidc", "research offboarding").await;
        refused_grace(&c, &base, &waiting).await;
        // Grace's timeline is not this login's to read.
        c.goto(&format!("{base}/people/grace@example.org"))
            .await
            .unwrap();
        let hidden = c.source().await.unwrap();
        assert!(hidden.contains("no such person for this login"), "{hidden}");
        c.close().await.unwrap();
    });
    only_alan_suspended(&tb, &cfg, run, "console:oidc:abe", "research offboarding");
}

/// A client trusting the CA in `dir` (from `tls_certs`).
fn trusting(dir: &std::path::Path) -> reqwest::blocking::Client {
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[test]
fn the_console_serves_https_itself_with_secure_cookies_and_reloads_its_certificate_on_sighup() {
    let tb = Testbed::start(&one());
    let port = free_port();
    let first = tb.dir.path().join("tls-1");
    let second = tb.dir.path().join("tls-2");
    tls_certs(&first, "IP:127.0.0.1");
    tls_certs(&second, "IP:127.0.0.1");
    let live = tb.dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    for f in ["server.pem", "server.key"] {
        std::fs::copy(first.join(f), live.join(f)).unwrap();
    }
    let users = format!(
        "  tls: {{ cert_file: live/server.pem, key_file: live/server.key }}\n  users:\n    - {{ name: vera, password_hash: \"{}\", role: viewer }}\n",
        hash("vera-password")
    );
    let cfg = tb.config(&format!("console:\n  listen: 127.0.0.1:{port}\n{users}"));
    let server = serve(&cfg, port);
    let url = format!("https://127.0.0.1:{port}/login");
    let page = trusting(&first).get(&url).send().unwrap();
    assert_eq!(page.status(), 200);
    let cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        !cookies.is_empty()
            && cookies
                .iter()
                .all(|c| c.contains("Secure") && c.contains("HttpOnly")),
        "{cookies:?}"
    );
    assert!(page.text().unwrap().contains("Log in"));
    // Plain HTTP gets no page.
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{port}/login"));
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A renewed certificate (another CA here) is served after SIGHUP, without a restart.
    for f in ["server.pem", "server.key"] {
        std::fs::copy(second.join(f), live.join(f)).unwrap();
    }
    assert!(Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if trusting(&second).get(&url).send().is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        trusting(&first).get(&url).send().is_err(),
        "the old certificate is still served"
    );
}
