//! Black-box: a Graph-shaped directory (our fixture, behaving as Graph documents itself) ->
//! the real scim2-server, through the real `idsync` binary.

mod common;

use std::path::PathBuf;

use common::graph::{self, GraphServer, Stale};
use common::{write_secret, Testbed};
use serde_json::Value;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A Graph -> SCIM config; `source_extra` lines go under `source:`.
fn config(tb: &Testbed, g: &GraphServer, source_extra: &str) -> PathBuf {
    config_with(
        tb,
        g,
        graph::TENANT,
        graph::CLIENT_SECRET,
        &g.api_url(),
        source_extra,
    )
}

fn config_with(
    tb: &Testbed,
    g: &GraphServer,
    tenant: &str,
    secret: &str,
    api_url: &str,
    source_extra: &str,
) -> PathBuf {
    write_secret(&tb.dir.path().join("graph.secret"), secret);
    let text = format!(
        r#"state_dir: {state}
source:
  kind: graph
  tenant: {tenant}
  client_id: {client}
  client_secret_file: graph.secret
  token_url: "{token_url}"
  api_url: {api_url}
  max_retries: 2
{source_extra}target:
  kind: scim
  url: {scim}
  token_file: scim.token
  concurrency: 4
match: {{ target: userName, source: "{{userPrincipalName}}" }}
mapping:
  userName: "{{userPrincipalName}}"
  name.givenName: "{{givenName}}"
  name.familyName: "{{surname}}"
  displayName: "{{displayName}}"
  title: "{{jobTitle}}"
  emails[type eq "work"].value: "{{mail}}"
  phoneNumbers[type eq "work"].value: "{{businessPhones[0]}}"
  "{ENTERPRISE}:department": "{{department}}"
"#,
        state = tb.state_dir().display(),
        client = graph::CLIENT_ID,
        token_url = g.token_url(),
        scim = tb.scim_url(),
    );
    let path = tb.dir.path().join("idsync.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn id(i: usize) -> String {
    graph::user(i)["id"].as_str().unwrap().to_string()
}

fn upn(i: usize) -> String {
    format!("user{i:04}@contoso.example")
}

fn active(u: &Value) -> bool {
    u["active"].as_bool().unwrap_or(true)
}

#[test]
fn a_first_full_read_pages_through_2500_users_and_a_delta_cycle_applies_only_ten_changes() {
    let mut people: Vec<Value> = (0..2500).map(graph::user).collect();
    people[7]["accountEnabled"] = Value::Bool(false);
    let g = GraphServer::start(people);
    g.with(|f| {
        f.page_size = 200; // server-driven: smaller than the $top=999 idsync asks for
        f.empty_page_every = Some(5);
    });
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "");

    tb.ok(&cfg, &["sync"]);
    let users = tb.scim_users();
    assert_eq!(users.len(), 2499, "everyone but the disabled person");
    assert!(
        tb.scim_user(&upn(7)).is_none(),
        "disabled people are never created"
    );
    let u = tb.scim_user(&upn(1234)).unwrap();
    assert_eq!(u["title"], "Engineer");
    assert_eq!(u[ENTERPRISE]["department"], "R&D");
    assert_eq!(u["phoneNumbers"][0]["value"], "+1 555 1234");
    assert!(
        tb.last_read(&cfg).starts_with("full read (first read"),
        "{}",
        tb.last_read(&cfg)
    );
    let log = g.with(|f| f.log.clone());
    let first = log
        .iter()
        .find(|l| l.starts_with("GET /v1.0/users?"))
        .unwrap();
    assert!(
        first.contains("$select=accountEnabled,businessPhones,department,displayName,givenName,id,jobTitle,mail,surname,userPrincipalName")
            && first.contains("$top=999"),
        "only the mapped attributes are selected: {first}"
    );
    let pages = log
        .iter()
        .filter(|l| l.starts_with("GET /v1.0/users?"))
        .count();
    assert!(
        pages > 13,
        "13 pages of 200 plus empty pages that still had a nextLink: {pages}"
    );

    // Ten changes upstream.
    for i in [10, 11, 12, 13, 14] {
        g.update(&id(i), serde_json::json!({"jobTitle": "Staff Engineer"}));
    }
    g.update(&id(20), serde_json::json!({"department": null}));
    g.update(&id(30), serde_json::json!({"accountEnabled": false}));
    g.remove(&id(40), "changed");
    g.remove(&id(50), "deleted");
    let mut newcomer = graph::user(5000);
    newcomer["jobTitle"] = "Intern".into();
    g.add(newcomer);
    g.reset_counters();
    let writes = tb.scim_writes();

    tb.ok(&cfg, &["sync"]);
    let (served, log) = g.with(|f| (f.users_served, f.log.clone()));
    assert!(
        !log.iter().any(|l| l.starts_with("GET /v1.0/users?")),
        "a delta cycle never lists all users: {log:?}"
    );
    assert_eq!(served, 8, "eight changed users read (plus two removals)");
    assert_eq!(tb.last_read(&cfg), "incremental read: 8 changed, 2 removed");
    assert_eq!(
        tb.scim_writes() - writes,
        10,
        "exactly one write per change"
    );
    for i in [10, 11, 12, 13, 14] {
        assert_eq!(tb.scim_user(&upn(i)).unwrap()["title"], "Staff Engineer");
    }
    assert!(tb
        .scim_user(&upn(20))
        .unwrap()
        .get(ENTERPRISE)
        .and_then(|e| e.get("department"))
        .is_none());
    for i in [30, 40, 50] {
        assert!(
            !active(&tb.scim_user(&upn(i)).unwrap()),
            "user{i} suspended"
        );
    }
    assert_eq!(tb.scim_user(&upn(5000)).unwrap()["title"], "Intern");
    assert!(
        active(&tb.scim_user(&upn(60)).unwrap()),
        "the others untouched"
    );

    // The cursor moved: the next cycle has nothing to read and writes nothing.
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_writes(), writes);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 0 removed");

    // After a cycle that planned nothing, a delta that reports nobody makes no plan; one
    // that reports a change plans (from the same delta link) and writes it.
    tb.ok(&cfg, &["sync"]);
    let read = tb.last_app_read(&cfg);
    assert!(read.contains("no plan made"), "{read}");
    // A value written again as it was, and a property no mapping reads (this fixture
    // reports that user by id alone; Graph leaves such a change out under $select): the
    // delta reports them, each is as remembered once patched, and no plan is made.
    g.update(&id(60), serde_json::json!({"jobTitle": "Engineer"}));
    g.update(&id(61), serde_json::json!({"officeLocation": "Building 2"}));
    g.reset_counters();
    tb.ok(&cfg, &["sync"]);
    let read = tb.last_app_read(&cfg);
    assert!(read.contains("no plan made"), "{read}");
    let log = g.with(|f| f.log.clone());
    assert_eq!(
        log.iter().filter(|l| l.contains("/users/delta")).count(),
        1,
        "one question, no read: {log:?}"
    );
    g.update(&id(60), serde_json::json!({"jobTitle": "Principal"}));
    tb.ok(&cfg, &["sync"]);
    assert!(!tb.last_app_read(&cfg).contains("no plan made"));
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
    assert_eq!(tb.scim_user(&upn(60)).unwrap()["title"], "Principal");

    // Many changes (pages of 200): the question reads the first page only (the next
    // request is the read's, from the same delta link), not all of them twice.
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    for i in 100..500 {
        g.update(&id(i), serde_json::json!({"jobTitle": "Fellow"}));
    }
    g.reset_counters();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.last_read(&cfg),
        "incremental read: 400 changed, 0 removed"
    );
    let log = g.with(|f| f.log.clone());
    let delta: Vec<&String> = log.iter().filter(|l| l.contains("/users/delta")).collect();
    assert!(delta.len() > 2, "{delta:?}");
    assert!(
        delta[0].contains("$deltatoken") && delta[1].contains("$deltatoken"),
        "{delta:?}"
    );
}

#[test]
fn a_dead_delta_link_falls_back_to_a_full_read_that_suspends_no_one_wrongly() {
    let g = GraphServer::start((0..40).map(graph::user).collect());
    g.with(|f| f.page_size = 15);
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "");
    tb.ok(&cfg, &["sync"]);

    for (how, code) in [(Stale::Gone, "410"), (Stale::NotFound, "syncStateNotFound")] {
        g.update(
            &id(3),
            serde_json::json!({"jobTitle": format!("Title after {code}")}),
        );
        g.expire_delta_tokens(how);
        let writes = tb.scim_writes();
        tb.ok(&cfg, &["sync"]);
        let read = tb.last_read(&cfg);
        assert!(
            read.starts_with("full read (the delta link expired") && read.contains(code),
            "{read}"
        );
        assert_eq!(tb.scim_writes() - writes, 1, "only the change is written");
        assert_eq!(
            tb.scim_user(&upn(3)).unwrap()["title"],
            format!("Title after {code}")
        );
        assert_eq!(
            tb.scim_users().iter().filter(|u| active(u)).count(),
            40,
            "no one suspended"
        );

        // A fresh delta link was kept: the next cycle is incremental again.
        g.update(&id(4), serde_json::json!({"jobTitle": "Changed again"}));
        tb.ok(&cfg, &["sync"]);
        assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
        assert_eq!(tb.scim_user(&upn(4)).unwrap()["title"], "Changed again");
    }
}

#[test]
fn throttled_reads_honour_retry_after_and_still_finish() {
    let g = GraphServer::start((0..300).map(graph::user).collect());
    g.with(|f| {
        f.page_size = 50;
        f.throttle_every = Some(3);
    });
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "  incremental: none\n");
    tb.ok(&cfg, &["sync"]);
    assert!(
        g.with(|f| f.throttled) >= 2,
        "the server throttled the read"
    );
    assert_eq!(tb.scim_users().len(), 300);
    assert_eq!(tb.last_read(&cfg), "full read (source.incremental: none)");
}

#[test]
fn a_read_that_dies_midway_suspends_nobody() {
    let g = GraphServer::start((0..300).map(graph::user).collect());
    g.with(|f| f.page_size = 50);
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "");
    tb.ok(&cfg, &["sync"]);
    let writes = tb.scim_writes();

    // A full read that fails after two pages.
    g.reset_counters();
    g.with(|f| f.fail_after_pages = Some(2));
    let out = tb.idsync(&cfg, &["sync", "--full"]);
    assert_eq!(out.status.code(), Some(1), "a failed read fails the run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("503") && err.contains("nothing was changed"),
        "{err}"
    );

    // A delta read that fails part-way through 200 removals.
    g.with(|f| f.fail_after_pages = None);
    for i in 0..200 {
        g.remove(&id(i), "deleted");
    }
    g.reset_counters();
    g.with(|f| {
        f.page_size = 20;
        f.fail_after_pages = Some(3);
    });
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(tb.scim_writes(), writes, "no write after a broken read");
    assert_eq!(tb.scim_users().iter().filter(|u| active(u)).count(), 300);
    let run = tb.last_run(&cfg);
    assert_eq!(run["run"]["outcome"], "failed", "{run}");
}

#[test]
fn a_token_that_stops_working_is_fetched_again_and_the_read_finishes() {
    let g = GraphServer::start((0..500).map(graph::user).collect());
    g.with(|f| {
        f.page_size = 50;
        f.token_calls = Some(3);
    });
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 500);
    assert!(
        g.with(|f| f.token_requests) >= 3,
        "a new token after each 401"
    );
}

#[test]
fn check_connect_reports_the_token_and_users_and_names_what_is_wrong() {
    let g = GraphServer::start((0..5).map(graph::user).collect());
    let tb = Testbed::start_app_only();

    let cfg = config(&tb, &g, "");
    let out = tb.ok(&cfg, &["check", "--connect"]);
    assert!(
        out.contains("token from") && out.contains("/v1.0/users reachable"),
        "{out}"
    );

    let closed = format!("http://127.0.0.1:{}/v1.0", common::free_port());
    let cases = [
        (
            "99999999-2222-3333-4444-555555555555",
            graph::CLIENT_SECRET,
            g.api_url(),
            "source.tenant",
        ),
        (
            graph::TENANT,
            "wrong-secret-Canary",
            g.api_url(),
            "source.client_secret_file",
        ),
        (
            graph::TENANT,
            graph::CLIENT_SECRET,
            closed,
            "source.api_url",
        ),
    ];
    for (tenant, secret, api_url, key) in cases {
        let cfg = config_with(&tb, &g, tenant, secret, &api_url, "");
        let out = tb.idsync(&cfg, &["check", "--connect"]);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        assert!(stderr.contains(key), "names {key}: {stderr}");
        for secret in [graph::CLIENT_SECRET, "wrong-secret-Canary"] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "secret leaked: {stderr}"
            );
        }
    }
}

#[test]
fn a_run_whose_writes_fail_keeps_the_delta_link_and_the_next_run_reads_the_changes_again() {
    let g = GraphServer::start((0..10).map(graph::user).collect());
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "");
    tb.ok(&cfg, &["sync"]);

    // user0003 takes user0004's name: the app refuses the rename (409), the run fails.
    g.update(
        &id(3),
        serde_json::json!({"userPrincipalName": upn(4), "jobTitle": "Lead"}),
    );
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");

    // The delta link did not move: the same change is read again, with the fix on top.
    g.update(
        &id(3),
        serde_json::json!({"userPrincipalName": "ada@contoso.example"}),
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
    let ada = tb.scim_user("ada@contoso.example").unwrap();
    assert_eq!(ada["title"], "Lead", "the first change was not lost");
    assert!(tb.scim_user(&upn(3)).is_none(), "renamed, not duplicated");

    // Now it moved.
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 0 removed");
    assert_eq!(tb.scim_writes(), writes);
}

/// The photo of the account with this userName, as the SCIM `photos` data URI's bytes.
fn app_photo(tb: &Testbed, user_name: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let u = tb.scim_user(user_name)?;
    let value = u["photos"]
        .as_array()?
        .iter()
        .find(|p| p["type"] == "photo")?["value"]
        .as_str()?
        .to_string();
    let data = value.split_once(";base64,")?.1;
    base64::engine::general_purpose::STANDARD.decode(data).ok()
}

#[test]
fn graph_photos_reach_the_app_and_a_quiet_cycle_downloads_none() {
    use idsync::photo::{sample_jpeg, sample_png};
    let g = GraphServer::start((0..30).map(graph::user).collect());
    for i in 0..10 {
        g.set_photo(&id(i), Some(sample_jpeg(48, 48, 400 + i)));
    }
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "  photo: true\n");

    tb.ok(&cfg, &["sync"]);
    assert_eq!(app_photo(&tb, &upn(3)), Some(sample_jpeg(48, 48, 403)));
    assert_eq!(app_photo(&tb, &upn(15)), None, "404: no photo");
    assert_eq!(g.with(|f| f.photo_downloads), 10);

    // Nothing changed: every photo answers 304, nothing is downloaded or written.
    g.reset_counters();
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        g.with(|f| (f.photo_downloads, f.photo_not_modified)),
        (0, 10)
    );
    assert_eq!(tb.scim_writes(), writes);

    // One photo changes, one is removed, one person gets a first photo: three writes.
    g.set_photo(&id(3), Some(sample_png(64, 64)));
    g.set_photo(&id(4), None);
    g.set_photo(&id(20), Some(sample_jpeg(32, 32, 500)));
    g.reset_counters();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(g.with(|f| f.photo_downloads), 2);
    assert_eq!(tb.scim_writes(), writes + 3);
    assert_eq!(app_photo(&tb, &upn(3)), Some(sample_png(64, 64)));
    assert_eq!(app_photo(&tb, &upn(4)), None);
    assert_eq!(app_photo(&tb, &upn(20)), Some(sample_jpeg(32, 32, 500)));

    // A forced full read still asks only "changed since?".
    g.reset_counters();
    tb.ok(&cfg, &["sync", "--full"]);
    assert_eq!(g.with(|f| f.photo_downloads), 0);
    assert_eq!(tb.scim_writes(), writes + 3);
}

#[test]
fn a_full_read_runs_every_full_every_as_a_backstop() {
    let g = GraphServer::start((0..5).map(graph::user).collect());
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "  full_every: 3s\n");
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 0 removed");
    std::thread::sleep(std::time::Duration::from_millis(3100));
    tb.ok(&cfg, &["sync"]);
    let read = tb.last_read(&cfg);
    assert!(
        read.starts_with("full read (full_every 3s since the last full read"),
        "{read}"
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 0 removed");
}

#[test]
fn a_delete_storm_in_a_delta_read_is_held_by_the_cap() {
    let g = GraphServer::start((0..50).map(graph::user).collect());
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}safety: {{ max_deprovisions: 5 }}\n")).unwrap();
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    assert!(tb.last_app_read(&cfg).contains("no plan made"));

    // Ten leave at once: the delta link reports them removed; the cycle plans against
    // the remembered accounts and the cap holds every suspension.
    for i in 0..10 {
        g.remove(&id(i), "deleted");
    }
    let writes = tb.scim_writes();
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains(": held"), "{out}");
    assert_eq!(
        tb.last_read(&cfg),
        "incremental read: 0 changed, 10 removed"
    );
    assert!(
        !tb.last_app_read(&cfg).contains("listed in full"),
        "{}",
        tb.last_app_read(&cfg)
    );
    assert_eq!(tb.scim_writes(), writes, "no write");
    assert!((0..10).all(|i| active(&tb.scim_user(&upn(i)).unwrap())));
    let held: Value =
        serde_json::from_str(&tb.ok(&cfg, &["approvals", "--format", "json"])).unwrap();
    assert_eq!(held.as_array().map(Vec::len), Some(10), "{held}");
}

#[test]
fn a_removal_the_delta_reports_is_confirmed_by_reading_the_user_before_anyone_is_suspended() {
    let g = GraphServer::start((0..5).map(graph::user).collect());
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "");
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);

    // The delta says user 1 was removed, but Graph still has them: kept, not suspended.
    g.report_removed(&id(1));
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(g.with(|f| f.requests_by_id), 1, "one GET /users/{{id}}");
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
    assert!(active(&tb.scim_user(&upn(1)).unwrap()), "not suspended");
    assert_eq!(tb.scim_writes(), writes, "nothing to write");

    // Really removed: the GET answers 404 and the suspension stands.
    g.remove(&id(2), "deleted");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(g.with(|f| f.requests_by_id), 2);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 1 removed");
    assert!(!active(&tb.scim_user(&upn(2)).unwrap()), "suspended");
}

#[test]
fn graph_groups_with_paged_members_and_a_nested_group_reach_the_app() {
    let g = GraphServer::start((0..6).map(graph::user).collect());
    g.with(|f| f.page_size = 2); // members come two to a page
    g.set_group(
        "aaaa0001-0000-4000-8000-000000000001",
        "Sales",
        &[
            (&id(0), false),
            (&id(1), false),
            (&id(2), false),
            ("aaaa0002-0000-4000-8000-000000000002", true),
            ("ffffffff-0000-4000-8000-00000000dead", false), // not a person idsync reads
        ],
    );
    g.set_group(
        "aaaa0002-0000-4000-8000-000000000002",
        "Sales EMEA",
        &[(&id(3), false)],
    );
    let tb = Testbed::start_app_only();
    let cfg = config(&tb, &g, "");
    let text = std::fs::read_to_string(&cfg).unwrap() + "groups:\n  nested: true\n";
    std::fs::write(&cfg, text).unwrap();
    tb.ok(&cfg, &["sync"]);
    let sales = tb.scim_group("Sales").unwrap();
    assert_eq!(
        tb.member_names(&sales),
        vec![upn(0), upn(1), upn(2), upn(3)],
        "nested EMEA flattened in; the stranger left out"
    );
    assert_eq!(
        tb.member_names(&tb.scim_group("Sales EMEA").unwrap()),
        vec![upn(3)]
    );
    let log = g.with(|f| f.log.clone());
    assert!(
        log.iter()
            .filter(|l| l.contains("/members?$skiptoken"))
            .count()
            >= 2,
        "member lists are paged: {log:?}"
    );
    // Someone leaves Sales upstream; someone else is disabled.
    g.set_group(
        "aaaa0001-0000-4000-8000-000000000001",
        "Sales",
        &[
            (&id(0), false),
            (&id(2), false),
            ("aaaa0002-0000-4000-8000-000000000002", true),
        ],
    );
    g.update(&id(2), serde_json::json!({"accountEnabled": false}));
    g.reset_counters();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.member_names(&tb.scim_group("Sales").unwrap()),
        vec![upn(0), upn(3)]
    );
    // /groups/delta said only Sales changed: EMEA's members were not read again.
    let log = g.with(|f| f.log.clone());
    let member_reads: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("/members?") && !l.contains("$skiptoken"))
        .collect();
    assert_eq!(member_reads.len(), 1, "{log:#?}");
    assert!(member_reads[0].contains("aaaa0001"), "{member_reads:?}");
    // A quiet cycle reads no member list at all, and changes nothing.
    g.reset_counters();
    assert!(tb.ok(&cfg, &["sync"]).contains("no changes"));
    let log = g.with(|f| f.log.clone());
    assert!(!log.iter().any(|l| l.contains("/members")), "{log:#?}");
    // EMEA changes: Sales (which nests it) follows without being read again.
    g.set_group(
        "aaaa0002-0000-4000-8000-000000000002",
        "Sales EMEA",
        &[(&id(4), false)],
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.member_names(&tb.scim_group("Sales").unwrap()),
        vec![upn(0), upn(4)]
    );
    // --full reads every group's members again.
    g.reset_counters();
    tb.ok(&cfg, &["sync", "--full"]);
    let log = g.with(|f| f.log.clone());
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("/members?") && !l.contains("$skiptoken"))
            .count(),
        2,
        "{log:#?}"
    );
}
