//! Hostile and broken servers: the project's own fake servers (a scripted Graph, and the
//! fault proxy in front of the real scim2-server) redirect to another origin, echo secrets
//! back, send bodies and pages without end. No byte leaves for another origin, no secret is
//! repeated, every read ends within a bound, and the files idsync writes are its own.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::hostile::{Reply, Scripted};
use common::proxy::{Fault, HttpFaults, Rule};
use common::*;
use serde_json::json;

/// Peak RSS allowed while a hostile server streams without end.
const RSS_BOUND_KB: u64 = 150 * 1024;

const GRAPH_SECRET: &str = "graph-client-secret-Canary-41f";
const ACCESS_TOKEN: &str = "graph-access-token-Canary-77d";

fn proxy(tb: &Testbed) -> HttpFaults {
    HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port))
}

/// The standard config (plus `target` lines) with the app reached through `proxy`.
fn through(tb: &Testbed, proxy: &HttpFaults, target: &str, extra: &str) -> PathBuf {
    let cfg = tb.write_config(&tb.base_source(), target, extra);
    retarget(&cfg, &tb.scim_url(), &proxy.scim_url());
    cfg
}

/// A Graph source at `api` (token at `token_url`), the real scim2-server as the app.
fn graph_config(tb: &Testbed, token_url: &str, api: &str, source_extra: &str) -> PathBuf {
    write_secret(&tb.dir.path().join("graph.secret"), GRAPH_SECRET);
    let text = format!(
        r#"state_dir: {state}
source:
  kind: graph
  tenant: contoso.example
  client_id: app-1
  client_secret_file: graph.secret
  token_url: "{token_url}"
  api_url: {api}/v1.0
  incremental: none
  max_retries: 1
{source_extra}target:
  kind: scim
  url: {scim}
  token_file: scim.token
  photo_max_bytes: 100KiB
match: {{ target: userName, source: "{{userPrincipalName}}" }}
mapping:
  userName: "{{userPrincipalName}}"
  displayName: "{{displayName}}"
"#,
        state = tb.state_dir().display(),
        scim = tb.scim_url(),
    );
    let path = tb.dir.path().join("idsync.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A scripted Graph: `/token` grants `ACCESS_TOKEN`; every other request goes to `api`.
fn scripted_graph(
    api: impl Fn(&common::proxy::Request, u16) -> Reply + Send + Sync + 'static,
) -> Scripted {
    Scripted::start(move |req, port| {
        if req.path.starts_with("/token") {
            return Reply::Json(
                200,
                json!({ "access_token": ACCESS_TOKEN, "expires_in": 3600 }),
            );
        }
        api(req, port)
    })
}

/// `graph_config` for a scripted Graph that serves both its token and its API.
fn scripted_config(tb: &Testbed, g: &Scripted, source_extra: &str) -> PathBuf {
    graph_config(tb, &format!("{}/token", g.url()), &g.url(), source_extra)
}

/// A Graph directory of one person; `photo` answers their photo read.
fn graph(photo: impl Fn() -> Reply + Send + Sync + 'static) -> Scripted {
    scripted_graph(move |req, _| {
        let bearer = format!("Bearer {ACCESS_TOKEN}");
        if !req
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && *v == bearer)
        {
            return Reply::Json(
                401,
                json!({ "error": { "code": "InvalidAuthenticationToken" } }),
            );
        }
        if req.path.contains("/photo/") {
            return photo();
        }
        Reply::Json(
            200,
            json!({ "value": [{ "id": "u-1", "userPrincipalName": "ada@example.org", "displayName": "Ada", "accountEnabled": true }] }),
        )
    })
}

fn run(cfg: &Path, args: &[&str]) -> (Output, u64) {
    measured(
        Command::new(env!("CARGO_BIN_EXE_idsync"))
            .arg("--config")
            .arg(cfg)
            .args(args)
            .env_remove("RUST_LOG"),
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every action idsync journaled as applied, across runs.
fn applied(tb: &Testbed, cfg: &Path) -> usize {
    let runs: serde_json::Value =
        serde_json::from_str(&tb.ok(cfg, &["runs", "--format", "json"])).unwrap();
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["counts"]["applied"].as_u64().unwrap_or(0) as usize)
        .sum()
}

#[test]
fn a_redirect_from_the_token_endpoint_sends_the_secret_nowhere() {
    let tb = Testbed::start_app_only();
    let elsewhere = Scripted::sink();
    let to = format!("{}/token", elsewhere.url());
    let token = Scripted::start(move |_, _| {
        Reply::Raw(307, vec![("location".into(), to.clone())], Vec::new())
    });
    let cfg = graph_config(&tb, &format!("{}/token", token.url()), &elsewhere.url(), "");
    let (out, _) = run(&cfg, &["sync"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("307") && all.contains("follows no redirect"),
        "{all}"
    );
    assert!(
        all.contains(&elsewhere.url()),
        "the Location is named: {all}"
    );
    assert_eq!(elsewhere.seen(), Vec::<String>::new());
    assert_eq!(tb.scim_users().len(), 0);
}

#[test]
fn redirects_from_the_app_are_errors_and_no_byte_reaches_the_other_origin() {
    let tb = Testbed::start(&trio());
    let elsewhere = Scripted::sink();
    let p = proxy(&tb);
    let cfg = through(&tb, &p, "", "");

    // A list that redirects: the run fails before any write.
    p.add(Rule::new(
        "GET",
        "/Users?",
        Fault::Redirect(format!("{}/v2/Users", elsewhere.url())),
    ));
    let (out, _) = run(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("follows no redirect"), "{}", text(&out));

    // A create that redirects (https -> http is the same: nothing is followed).
    p.clear();
    p.add(
        Rule::new(
            "POST",
            "/Users",
            Fault::Redirect(format!("{}/v2/Users", elsewhere.url())),
        )
        .times(99),
    );
    let (out, _) = run(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(applied(&tb, &cfg), 0, "nothing is journaled applied");

    // A PATCH that redirects: people exist, one changes.
    p.clear();
    tb.ok(&cfg, &["sync"]);
    let before = applied(&tb, &cfg);
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Chief\n");
    p.add(
        Rule::new(
            "PATCH",
            "/Users/",
            Fault::Redirect(format!("{}/v2/Users/x", elsewhere.url())),
        )
        .times(99),
    );
    let (out, _) = run(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        applied(&tb, &cfg),
        before,
        "the redirected PATCH is not applied"
    );
    assert_eq!(elsewhere.seen(), Vec::<String>::new());
}

#[test]
fn secrets_echoed_by_a_server_are_never_repeated() {
    let tb = Testbed::start(&trio());
    let p = proxy(&tb);
    let cfg = through(&tb, &p, "", "");
    p.add(Rule::new("POST", "/Users", Fault::Echo(400)).times(99));
    let (out, _) = run(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("<redacted>"), "{}", text(&out));
    p.clear();
    p.add(Rule::new("GET", "/Users?", Fault::Echo(500)).times(99));
    let (out2, _) = run(&cfg, &["sync", "--full"]);
    assert_eq!(out2.status.code(), Some(1), "{}", text(&out2));

    // A token endpoint that echoes the form (client secret included) in its refusal.
    let echo = Scripted::start(|req, _| {
        Reply::Json(
            400,
            json!({ "error": "invalid_request", "error_description": format!("bad body: {}", String::from_utf8_lossy(&req.body)) }),
        )
    });
    let gcfg = tb.dir.path().join("graph.yaml");
    std::fs::copy(scripted_config(&tb, &echo, ""), &gcfg).unwrap();
    let (out3, _) = run(&gcfg, &["sync"]);
    assert_eq!(out3.status.code(), Some(1), "{}", text(&out3));

    let mut seen = vec![text(&out), text(&out2), text(&out3)];
    for args in [
        vec!["runs", "--format", "json"],
        vec!["show", "last", "--format", "json"],
        vec!["runs"],
    ] {
        seen.push(tb.ok(&cfg, &args));
    }
    for name in ["journal.sqlite3", "journal.sqlite3-wal"] {
        if let Ok(bytes) = std::fs::read(tb.state_dir().join(name)) {
            seen.push(String::from_utf8_lossy(&bytes).to_string());
        }
    }
    for (i, s) in seen.iter().enumerate() {
        for canary in [TOKEN, GRAPH_SECRET] {
            assert_eq!(s.matches(canary).count(), 0, "{canary} in output {i}: {s}");
        }
    }
}

#[test]
fn bodies_without_end_are_cut_at_the_cap_in_bounded_memory() {
    let tb = Testbed::start(&trio());
    let p = proxy(&tb);
    let cfg = through(&tb, &p, "", "");
    for fault in [
        // 300 MB, announced: refused before a byte is read.
        Fault::Huge {
            bytes: Some(300 << 20),
            chunked: false,
        },
        // 300 MB, not announced: read to the cap, then refused.
        Fault::Huge {
            bytes: Some(300 << 20),
            chunked: true,
        },
        // Without end.
        Fault::Huge {
            bytes: None,
            chunked: true,
        },
    ] {
        p.clear();
        p.add(Rule::new("GET", "/Users?", fault.clone()).times(99));
        let (out, peak) = run(&cfg, &["sync"]);
        assert_eq!(out.status.code(), Some(1), "{fault:?}: {}", text(&out));
        assert!(
            text(&out).contains("target.max_response_bytes"),
            "{fault:?}: {}",
            text(&out)
        );
        assert!(peak < RSS_BOUND_KB, "{fault:?}: peak RSS {peak} KiB");
    }
    assert_eq!(tb.scim_users().len(), 0);
}

#[test]
fn an_app_that_pages_forever_is_cut_off() {
    let tb = Testbed::start(&trio());
    let p = proxy(&tb);
    // Fresh accounts on every page, with a totalResults that says 300: stopped soon after.
    let cfg = through(&tb, &p, "  page_size: 100\n", "");
    p.add(Rule::new("GET", "/Users?", Fault::FreshPage { total: Some(300) }).times(10_000));
    let (out, peak) = run(&cfg, &["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("announced 300"), "{}", text(&out));
    assert!(
        p.count("GET", "/Users?") <= 15,
        "{} pages read",
        p.count("GET", "/Users?")
    );
    assert!(peak < RSS_BOUND_KB, "peak RSS {peak} KiB");

    // No totalResults at all: stopped at target.max_accounts.
    p.clear();
    p.add(Rule::new("GET", "/Users?", Fault::FreshPage { total: None }).times(10_000));
    let cfg = through(&tb, &p, "  page_size: 100\n  max_accounts: 2000\n", "");
    let (out, _) = run(&cfg, &["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("target.max_accounts (2000)"),
        "{}",
        text(&out)
    );
    assert!(
        p.count("GET", "/Users?") <= 22,
        "{} pages read",
        p.count("GET", "/Users?")
    );
}

#[test]
fn a_photo_without_end_is_a_notice_and_the_person_still_syncs() {
    let tb = Testbed::start_app_only();
    let g = graph(|| Reply::Huge {
        bytes: None,
        chunked: true,
    });
    let cfg = scripted_config(&tb, &g, "  photo: true\n");
    let (out, peak) = run(&cfg, &["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(peak < RSS_BOUND_KB, "peak RSS {peak} KiB");
    assert_eq!(tb.scim_users().len(), 1);
    let show = tb.ok(&cfg, &["show", "last"]);
    assert!(
        show.contains("photo not synced") && show.contains("photo_max_bytes"),
        "{show}"
    );
    // A 1 GB photo that says so up front is not downloaded at all.
    let g2 = graph(|| Reply::Huge {
        bytes: Some(1 << 30),
        chunked: false,
    });
    let cfg = scripted_config(&tb, &g2, "  photo: true\n");
    let (out, peak) = run(&cfg, &["sync"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(peak < RSS_BOUND_KB, "peak RSS {peak} KiB");
}

#[test]
fn a_directory_minting_next_links_forever_is_cut_off() {
    let tb = Testbed::start_app_only();
    let g = scripted_graph(|req, port| {
        let n = req.path.len();
        Reply::Json(
            200,
            json!({
                "value": [{ "id": format!("u-{n}-{}", req.path.matches('x').count()), "userPrincipalName": format!("p{}@example.org", req.path.matches('x').count()), "accountEnabled": true }],
                "@odata.nextLink": format!("http://127.0.0.1:{port}/v1.0/users?page=x{}", req.path.split("page=").nth(1).unwrap_or("")),
            }),
        )
    });
    let cfg = scripted_config(&tb, &g, "  max_users: 50\n  page_size: 1\n");
    let (out, _) = run(&cfg, &["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("source.max_users (50"),
        "{}",
        text(&out)
    );
    assert!(g.seen().len() < 60, "{} requests", g.seen().len());
}

#[test]
fn ids_that_climb_out_of_their_path_are_refused() {
    let tb = Testbed::start_app_only();
    let g = scripted_graph(|_, _| {
        Reply::Json(
            200,
            json!({ "value": [{ "id": "..", "userPrincipalName": "x@example.org", "accountEnabled": true }] }),
        )
    });
    let cfg = scripted_config(&tb, &g, "  photo: true\n");
    let (out, _) = run(&cfg, &["plan"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("usable `id`"), "{}", text(&out));
    assert!(
        g.seen().iter().all(|r| !r.contains("photo")),
        "{:?}",
        g.seen()
    );
}

#[test]
fn files_with_personal_data_are_private_whatever_the_umask() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    let dir = tb.dir.path();
    // A planted symlink where the saved plan goes, pointing at a file of someone else's.
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "not yours").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("plan.json")).unwrap();
    let sh = format!(
        "umask 022 && {bin} --config {cfg} plan --save {dir}/plan.json >/dev/null && {bin} --config {cfg} plan --output {dir}/report.md && {bin} --config {cfg} sync >/dev/null",
        bin = env!("CARGO_BIN_EXE_idsync"),
        cfg = cfg.display(),
        dir = dir.display(),
    );
    let out = Command::new("sh").args(["-c", &sh]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "not yours");
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tb.state_dir()), 0o700);
    for entry in std::fs::read_dir(tb.state_dir()).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    for name in ["plan.json", "report.md"] {
        let p = dir.join(name);
        assert!(!std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(mode(&p), 0o600, "{name}");
    }
    assert!(
        std::fs::read_dir(dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "no temporary file is left"
    );
}

#[test]
fn an_oversized_directory_value_leaves_that_person_alone_with_a_notice() {
    let tb = Testbed::start(&trio());
    let cfg = tb.write_config(
        &tb.base_source().replace(
            "  page_size: 100\n",
            "  page_size: 100\n  max_value_bytes: 4KiB\n",
        ),
        "",
        "",
    );
    tb.ok(&cfg, &["sync"]);
    let huge = "x".repeat(64 * 1024);
    tb.ldapmodify(&format!(
        "dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: {huge}\n"
    ));
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(
        plan.contains("title has a value longer than source.max_value_bytes"),
        "{plan}"
    );
    assert!(
        !plan.contains(&huge[..100]),
        "the value never reaches the plan"
    );
    let ada = tb.scim_user("ada@example.org").unwrap();
    assert_ne!(ada["title"].as_str().map(str::len), Some(huge.len()));
    assert_eq!(ada["active"], true);
}

#[test]
fn a_run_past_its_deadline_is_stopped_and_journaled_failed() {
    let tb = Testbed::start(&trio());
    let p = proxy(&tb);
    let cfg = through(&tb, &p, "  timeout: 60s\n", "run_deadline: 3s\n");
    p.add(Rule::new(
        "GET",
        "/Users?",
        Fault::Slow(std::time::Duration::from_secs(30)),
    ));
    let started = std::time::Instant::now();
    let err = tb.fails(&cfg, &["sync"], &["run_deadline (3s)"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{err}"
    );
    let last = tb.last_run(&cfg);
    assert!(
        last["run"]["reason"]
            .as_str()
            .unwrap()
            .contains("run_deadline"),
        "{last}"
    );
}

#[test]
fn an_https_app_redirecting_to_plain_http_gets_no_byte() {
    use common::proxy::TlsFront;
    let tb = Testbed::start(&trio());
    let elsewhere = Scripted::sink();
    let p = proxy(&tb);
    let certs = tb.dir.path().join("app-tls");
    tls_certs(&certs, "");
    let front = TlsFront::start(&format!("http://127.0.0.1:{}", p.port), &certs);
    let cfg = tb.write_config(
        &tb.base_source(),
        &format!("  ca_file: {}/ca.pem\n", certs.display()),
        "",
    );
    retarget(
        &cfg,
        &tb.scim_url(),
        &format!("https://127.0.0.1:{}/v2", front.port),
    );
    // The list is fine; every create is sent to plain http on another port.
    p.add(
        Rule::new(
            "POST",
            "/Users",
            Fault::Redirect(format!("{}/v2/Users", elsewhere.url())),
        )
        .times(99),
    );
    let (out, _) = run(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("follows no redirect"), "{}", text(&out));
    assert_eq!(applied(&tb, &cfg), 0);
    assert_eq!(elsewhere.seen(), Vec::<String>::new());
    assert_eq!(tb.scim_users().len(), 0);
}
