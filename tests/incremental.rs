//! A quiet cycle costs what changed, on the app's side too: between full reads
//! (`target.full_every`) a sync plans against the accounts the journal remembers, asks the
//! app only what it changed since (`meta.lastModified`) and the accounts it is about to
//! write, and reads the written accounts again. Against the real slapd and scim2-server
//! (behind a counting proxy), and Canaille, which cannot filter.

mod common;

use common::proxy::{Fault, HttpFaults, Rule};
use common::*;
use serde_json::{json, Value};

/// The standard config through `proxy`, with lines under `target:`.
fn config(tb: &Testbed, proxy: &HttpFaults, target_extra: &str) -> std::path::PathBuf {
    let path = tb.write_config(&tb.base_source(), target_extra, "");
    retarget(&path, &tb.scim_url(), &proxy.scim_url());
    path
}

/// PATCHes a user directly in the app, as an admin in its UI would.
fn edit_in_app(base: &str, id: &str, path: &str, value: Value) {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": path, "value": value }],
    });
    let status = reqwest::blocking::Client::new()
        .patch(format!("{base}/Users/{id}"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
}

fn requests(proxy: &HttpFaults) -> Vec<String> {
    proxy
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

#[test]
fn a_quiet_cycle_asks_the_app_only_what_changed_and_an_edit_in_the_app_is_repaired_next_cycle() {
    let tb = Testbed::start(&people(60));
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    // Pages of 10: a full list is 7 requests here.
    let cfg = config(&tb, &proxy, "  page_size: 10\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 60);
    assert!(tb
        .last_app_read(&cfg)
        .contains("app listed in full (nothing remembered yet)"));

    // Nothing changed on either side: one request, for what the app changed since.
    proxy.clear();
    let out = tb.ok(&cfg, &["sync"]);
    let seen = requests(&proxy);
    assert_eq!(seen.len(), 1, "a quiet cycle asked: {seen:?}\n{out}");
    assert!(seen[0].contains("meta.lastModified"), "{seen:?}");
    assert!(
        tb.last_app_read(&cfg).contains("app remembered"),
        "{}",
        tb.last_app_read(&cfg)
    );

    // An admin renames someone in the app: the next cycle sees it and puts it back.
    let user = tb.scim_user("user0007@example.org").unwrap();
    let id = user["id"].as_str().unwrap();
    edit_in_app(&tb.scim_url(), id, "name.givenName", json!("Mallory"));
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    let user = tb.scim_user("user0007@example.org").unwrap();
    assert_eq!(user["name"]["givenName"], "Test", "{user}");
    let seen = requests(&proxy);
    assert!(
        seen.len() <= 4 && seen.iter().filter(|s| s.starts_with("PATCH")).count() == 1,
        "{seen:?}"
    );

    // A directory change: the account is written as the cycle's changes query left it,
    // under If-Match (scim2-server has ETags: an edit made since is refused, not
    // overwritten), so it is not read again before; nor after (the next cycle's changes
    // query brings it back).
    tb.ldapmodify("dn: uid=user0011,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: givenName\ngivenName: Eleven\n");
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    let user = tb.scim_user("user0011@example.org").unwrap();
    assert_eq!(user["name"]["givenName"], "Eleven");
    let seen = requests(&proxy);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].contains("meta.lastModified"), "{seen:?}");
    assert!(seen[1].starts_with("PATCH"), "{seen:?}");
    assert!(proxy.seen()[1].if_match.is_some(), "{:?}", proxy.seen());
    // And the cycle after writes nothing and reads only the changes, which show the
    // written account as the app has it.
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(requests(&proxy).len(), 1, "{:?}", requests(&proxy));
    assert!(
        tb.last_app_read(&cfg).contains("app remembered: "),
        "{}",
        tb.last_app_read(&cfg)
    );
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(requests(&proxy).len(), 1, "{:?}", requests(&proxy));
    // scim2-server sorts: the one question is a page of its accounts newest first, which
    // it answers for less than the filter it evaluates against every account.
    assert!(
        requests(&proxy)[0].contains("sortBy=meta.lastModified"),
        "{:?}",
        requests(&proxy)
    );

    // --full lists the app whole.
    proxy.clear();
    tb.ok(&cfg, &["sync", "--full"]);
    assert!(
        proxy.count("GET", "startIndex") >= 7,
        "{:?}",
        requests(&proxy)
    );
    assert!(tb
        .last_app_read(&cfg)
        .contains("app listed in full (--full)"));
}

#[test]
fn an_account_made_by_a_write_whose_record_was_lost_is_adopted_not_duplicated() {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = config(&tb, &proxy, "");
    tb.ok(&cfg, &["sync"]);
    // A new hire; idsync is killed (-9) as the app makes their account: the app has it,
    // the journal and the remembered accounts do not.
    let linus = person_ldif("linus", "Linus", "Torvalds", "Kernel", "ou=people");
    tb.ldapmodify(&linus.replacen("\n", "\nchangetype: add\n", 1));
    let child = tb.spawn(&cfg, &["sync"]);
    proxy.add(Rule::new(
        "POST",
        "/v2/Users",
        Fault::Kill {
            pid: child.id(),
            after: true,
        },
    ));
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "the run was not killed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        tb.scim_users()
            .iter()
            .filter(|u| u["userName"] == "linus@example.org")
            .count(),
        1,
        "the app did not make the account before the kill"
    );
    // The next cycle plans a create from what it remembers, looks Linus up before
    // writing, and adopts the account the app already has.
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    let linus: Vec<Value> = tb
        .scim_users()
        .into_iter()
        .filter(|u| u["userName"] == "linus@example.org")
        .collect();
    assert_eq!(linus.len(), 1, "duplicated: {linus:?}");
    assert_eq!(
        proxy.count("POST", "/v2/Users"),
        0,
        "{:?}",
        requests(&proxy)
    );
    // Quiet again.
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(requests(&proxy).len(), 1, "{:?}", requests(&proxy));
}

#[test]
fn a_failed_write_is_remembered_as_not_made_and_the_next_cycle_makes_it() {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = config(&tb, &proxy, "  max_retries: 0\n");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify("dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Rear Admiral\n");
    // The app cannot take the update (a 503, so it is not escrowed).
    proxy.add(
        Rule::new(
            "PATCH",
            "/v2/Users/",
            Fault::Status {
                code: 503,
                retry_after: None,
            },
        )
        .times(1),
    );
    let _ = tb.idsync(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("grace@example.org").unwrap()["title"],
        "Admiral"
    );
    // Nothing in the directory changed since; what is remembered is what the app has, so
    // the next cycle plans the update again and makes it.
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("grace@example.org").unwrap()["title"],
        "Rear Admiral"
    );
    assert_eq!(
        proxy.count("PATCH", "/v2/Users/"),
        1,
        "{:?}",
        requests(&proxy)
    );
}

#[test]
fn a_write_refused_because_the_account_changed_in_the_app_is_read_again_and_planned_anew_in_the_run(
) {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    // A `before` hook on updates, which writes down every call.
    let calls = tb.dir.path().join("calls");
    let hook = tb.dir.path().join("before-update");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"$1\" >>{}\n", calls.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hooks = format!(
        "hooks:\n  - name: notify\n    on: [update]\n    when: before\n    command: [\"{}\", \"{{user_name}}\"]\n",
        hook.display()
    );
    let cfg = tb.write_config(&tb.base_source(), "", &hooks);
    retarget(&cfg, &tb.scim_url(), &proxy.scim_url());
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Codebreaker\n");
    // The account's version moved on between idsync's read and its write: the app answers
    // 412 to the PATCH's If-Match (once).
    proxy.clear();
    proxy.add(
        Rule::new(
            "PATCH",
            "/v2/Users/",
            Fault::Status {
                code: 412,
                retry_after: None,
            },
        )
        .times(1),
    );
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("failed 0"), "{out}");
    // Read again and planned anew in the same run: the write is made.
    assert_eq!(
        tb.scim_user("alan@example.org").unwrap()["title"],
        "Codebreaker"
    );
    let id = tb.scim_user("alan@example.org").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = requests(&proxy);
    let patches: Vec<usize> = (0..seen.len())
        .filter(|i| seen[*i].starts_with("PATCH"))
        .collect();
    assert_eq!(patches.len(), 2, "{seen:?}");
    assert!(
        seen[patches[0]..patches[1]].contains(&format!("GET /v2/Users/{id}")),
        "{seen:?}"
    );
    // Both PATCHes named the version idsync had read.
    for p in &patches {
        let sent = &proxy.seen()[*p];
        assert!(
            sent.if_match.as_deref().is_some_and(|v| v.contains('"')),
            "{sent:?}"
        );
    }
    // The hook was told of the update once, not once per round.
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap_or_default(),
        "alan@example.org\n"
    );
    // The journal keeps the refusal and the second round.
    let shown = tb.ok(&cfg, &["show", "last"]);
    assert!(
        shown.contains("changed in the app since idsync read it"),
        "{shown}"
    );
    // Nothing is left for the next cycle.
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        proxy.count("PATCH", "/v2/Users/"),
        0,
        "{:?}",
        requests(&proxy)
    );

    // An app that refuses its own ETags: `target.etags: false` sends no If-Match, so the
    // account is read again just before it is written.
    let cfg = config(&tb, &proxy, "  etags: false\n");
    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Mathematician\n");
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    let alan = tb.scim_user("alan@example.org").unwrap();
    let get = format!("GET /v2/Users/{}", alan["id"].as_str().unwrap());
    let seen = requests(&proxy);
    let patch = seen.iter().position(|s| s.starts_with("PATCH"));
    assert!(patch.is_some_and(|p| seen[..p].contains(&get)), "{seen:?}");
    let patches: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].if_match, None, "{patches:?}");
    assert_eq!(
        tb.scim_user("alan@example.org").unwrap()["title"],
        "Mathematician"
    );
}

#[test]
fn a_large_provisioning_is_listed_once_after_its_writes_not_read_back_one_by_one() {
    let tb = Testbed::start(&people(520));
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = config(&tb, &proxy, "");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 520);
    let by_id = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.starts_with("/v2/Users/"))
        .count();
    assert_eq!(by_id, 0, "read back one by one");
    // The list after the writes is remembered as a full read: the next cycle is quiet.
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(requests(&proxy).len(), 1, "{:?}", requests(&proxy));
}

/// Ada, Alan, Grace; `eng` = {ada, alan}, `ops` = {grace} (groupOfNames).
fn with_groups() -> String {
    let group = |cn: &str, uids: &[&str]| {
        let members: String = uids
            .iter()
            .map(|u| format!("member: uid={u},ou=people,dc=example,dc=org\n"))
            .collect();
        format!("dn: cn={cn},ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: {cn}\n{members}\n")
    };
    format!(
        "{}dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\n{}{}",
        trio(),
        group("eng", &["ada", "alan"]),
        group("ops", &["grace"]),
    )
}

/// Changes a group directly in the app, as an admin in its UI would.
fn patch_group_in_app(base: &str, id: &str, op: Value) {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [op],
    });
    let status = reqwest::blocking::Client::new()
        .patch(format!("{base}/Groups/{id}"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
}

fn group_members(tb: &Testbed, name: &str) -> Vec<String> {
    let g = tb
        .scim_group(name)
        .unwrap_or_else(|| panic!("no group {name}"));
    tb.member_names(&g)
}

#[test]
fn a_quiet_cycle_reads_no_group_and_a_membership_edited_in_the_app_is_put_back() {
    let tb = Testbed::start(&with_groups());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let path = tb.write_config(
        &tb.base_source(),
        "",
        "groups:\n  base_dn: ou=groups,dc=example,dc=org\n",
    );
    retarget(&path, &tb.scim_url(), &proxy.scim_url());
    let cfg = path;
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        group_members(&tb, "eng"),
        ["ada@example.org", "alan@example.org"]
    );
    assert!(
        tb.last_app_read(&cfg).contains("groups listed in full"),
        "{}",
        tb.last_app_read(&cfg)
    );

    // Nothing changed: what the app changed since, for its users and (ids and stamps
    // only) its groups, each one page newest first (scim2-server sorts); no group is read.
    proxy.clear();
    let out = tb.ok(&cfg, &["sync"]);
    let seen = requests(&proxy);
    assert_eq!(seen.len(), 2, "a quiet cycle asked: {seen:?}\n{out}");
    assert!(
        seen.iter().any(|s| s.starts_with(
            "GET /v2/Groups?attributes=meta&sortBy=meta.lastModified&sortOrder=descending"
        )),
        "{seen:?}"
    );
    assert!(
        tb.last_app_read(&cfg)
            .contains("groups remembered: 0 read again"),
        "{}",
        tb.last_app_read(&cfg)
    );

    // An admin takes Alan out of eng in the app: the next cycle reads that group (its
    // stamp moved) and puts him back with one PATCH.
    let eng = tb.scim_group("eng").unwrap();
    let eng_id = eng["id"].as_str().unwrap().to_string();
    let alan = tb.scim_user("alan@example.org").unwrap();
    let alan_id = alan["id"].as_str().unwrap();
    patch_group_in_app(
        &tb.scim_url(),
        &eng_id,
        json!({ "op": "remove", "path": format!("members[value eq \"{alan_id}\"]") }),
    );
    assert_eq!(group_members(&tb, "eng"), ["ada@example.org"]);
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        group_members(&tb, "eng"),
        ["ada@example.org", "alan@example.org"]
    );
    assert_eq!(
        proxy.count("PATCH", "/v2/Groups/"),
        1,
        "{:?}",
        requests(&proxy)
    );
    // The sorted page told which group changed: no filter was asked.
    assert_eq!(
        proxy.count("GET", "/v2/Groups?attributes=meta&filter"),
        0,
        "{:?}",
        requests(&proxy)
    );

    // A membership change upstream: the group is read again before its PATCH and after.
    tb.ldapmodify("dn: cn=ops,ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\nmember: uid=ada,ou=people,dc=example,dc=org\n");
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        group_members(&tb, "ops"),
        ["ada@example.org", "grace@example.org"]
    );
    let ops_id = tb.scim_group("ops").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        proxy.count("GET", &format!("/v2/Groups/{ops_id}")),
        2,
        "read before and after its PATCH: {:?}",
        requests(&proxy)
    );
    assert!(
        tb.last_app_read(&cfg).contains("1 checked before writing"),
        "{}",
        tb.last_app_read(&cfg)
    );

    // Quiet again, and --full lists the groups whole.
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(requests(&proxy).len(), 2, "{:?}", requests(&proxy));
    proxy.clear();
    tb.ok(&cfg, &["sync", "--full"]);
    assert!(
        tb.last_app_read(&cfg).contains("groups listed in full"),
        "{}",
        tb.last_app_read(&cfg)
    );
}

/// The standard config with a syncrepl source, through `proxy`.
fn syncrepl_config(
    tb: &Testbed,
    proxy: &HttpFaults,
    target_extra: &str,
    extra: &str,
) -> std::path::PathBuf {
    let source = format!("{}  incremental: syncrepl\n", tb.base_source());
    let path = tb.write_config(&source, target_extra, extra);
    retarget(&path, &tb.scim_url(), &proxy.scim_url());
    path
}

const NO_PLAN: &str = "no plan made";

#[test]
fn a_cycle_where_nothing_changed_plans_nothing_and_any_change_plans_as_usual() {
    let tb = Testbed::start(&people(20));
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let extra =
        "lifecycle: { delete_after: 3s }\nsafety: { min_source_ratio: 0.1, max_deprovisions: 5 }\n";
    let cfg = syncrepl_config(&tb, &proxy, "", extra);
    tb.ok(&cfg, &["sync"]);
    // The first incremental cycle plans (and finds nothing to do); the next asks the
    // directory (a refresh from its cookie) and the app (what changed since) and, as
    // nothing did, makes no plan.
    tb.ok(&cfg, &["sync"]);
    assert!(!tb.last_app_read(&cfg).contains(NO_PLAN));
    proxy.clear();
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("no changes"), "{out}");
    assert!(
        tb.last_app_read(&cfg).contains(NO_PLAN),
        "{}",
        tb.last_app_read(&cfg)
    );
    assert_eq!(requests(&proxy).len(), 1, "{:?}", requests(&proxy));
    assert_eq!(
        tb.last_run(&cfg)["run"]["source_users"],
        20,
        "{}",
        tb.last_run(&cfg)
    );
    // A person changed only in what idsync does not read (no mapping uses `description`):
    // the directory reports the entry, it is as remembered, and no plan is made.
    tb.ldapmodify("dn: uid=user0004,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: description\ndescription: on leave\n");
    tb.ok(&cfg, &["sync"]);
    assert!(
        tb.last_app_read(&cfg).contains(NO_PLAN),
        "{}",
        tb.last_app_read(&cfg)
    );

    // A change upstream: planned and applied as usual, the app asked once what changed.
    tb.ldapmodify("dn: uid=user0003,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Captain\n");
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("user0003@example.org").unwrap()["title"],
        "Captain"
    );
    assert!(!tb.last_app_read(&cfg).contains(NO_PLAN));
    assert_eq!(
        proxy.count("GET", "meta.lastModified"),
        1,
        "{:?}",
        requests(&proxy)
    );
    // The cycle after a run that wrote plans again (its plan stands for nobody yet)...
    tb.ok(&cfg, &["sync"]);
    assert!(!tb.last_app_read(&cfg).contains(NO_PLAN));
    // ...and the one after that is quiet.
    tb.ok(&cfg, &["sync"]);
    assert!(tb.last_app_read(&cfg).contains(NO_PLAN));

    // An edit in the app: seen by the question, repaired by a plan, asked once.
    let id = tb.scim_user("user0005@example.org").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    edit_in_app(&tb.scim_url(), &id, "name.givenName", json!("Mallory"));
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("user0005@example.org").unwrap()["name"]["givenName"],
        "Test"
    );
    assert_eq!(
        proxy.count("GET", "meta.lastModified"),
        1,
        "{:?}",
        requests(&proxy)
    );

    // A leaver is suspended; while `delete_after` runs the cycles are quiet, once it has
    // run out the cycle plans (and deletes) though nothing else changed.
    tb.ldapmodify("dn: uid=user0009,ou=people,dc=example,dc=org\nchangetype: delete\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("user0009@example.org").unwrap()["active"],
        false
    );
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    assert!(tb.last_app_read(&cfg).contains(NO_PLAN));
    std::thread::sleep(std::time::Duration::from_secs(4));
    proxy.clear();
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("1 delete"), "{out}");
    assert!(tb.scim_user("user0009@example.org").is_none());
    // The DELETE named the version idsync read just before (scim2-server has ETags).
    let delete = proxy
        .seen()
        .into_iter()
        .find(|s| s.method == "DELETE")
        .unwrap();
    assert!(delete.if_match.is_some(), "{delete:?}");

    // Another configuration, or --full: a plan.
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    assert!(tb.last_app_read(&cfg).contains(NO_PLAN));
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("max_deprovisions: 5", "max_deprovisions: 6"),
    )
    .unwrap();
    tb.ok(&cfg, &["sync"]);
    assert!(!tb.last_app_read(&cfg).contains(NO_PLAN));
    tb.ok(&cfg, &["sync"]);
    assert!(tb.last_app_read(&cfg).contains(NO_PLAN));
    tb.ok(&cfg, &["sync", "--full"]);
    assert!(!tb.last_app_read(&cfg).contains(NO_PLAN));
}

#[test]
fn a_delete_storm_read_incrementally_is_held_by_the_caps_and_an_emptied_directory_writes_nothing() {
    let tb = Testbed::start(&people(20));
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = syncrepl_config(
        &tb,
        &proxy,
        "",
        "safety: { min_source_ratio: 0.5, max_deprovisions: 5 }\n",
    );
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    assert!(tb.last_app_read(&cfg).contains(NO_PLAN));

    // Eight leave at once: the syncrepl refresh reports them, the cycle plans against the
    // remembered accounts, and the cap holds every suspension.
    let delete = |range: std::ops::Range<usize>| {
        let ldif: String = range
            .map(|i| {
                format!("dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: delete\n\n")
            })
            .collect();
        tb.ldapmodify(&ldif);
    };
    delete(0..8);
    proxy.clear();
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains(": held"), "{out}");
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 8 removed");
    // A focused plan: of the twelve people left it looked at none (none changed); the
    // links of the eight gone are always judged, and the cap counted them all.
    assert!(
        tb.last_app_read(&cfg)
            .contains("plan looked at 0 of 12 people and 8 link(s) whose person is gone"),
        "{}",
        tb.last_app_read(&cfg)
    );
    let run = tb.last_run(&cfg);
    assert!(
        run["run"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("exceed max_deprovisions 5"),
        "{run}"
    );
    assert_eq!(proxy.writes(), 0, "{:?}", requests(&proxy));
    for i in 0..8 {
        assert_eq!(
            tb.scim_user(&format!("user{i:04}@example.org")).unwrap()["active"],
            true
        );
    }

    // Nothing changed since, but held actions are no quiet cycle: the next one plans
    // them again and holds them again.
    tb.ok(&cfg, &["sync"]);
    assert!(!tb.last_app_read(&cfg).contains(NO_PLAN));
    assert_eq!(tb.last_run(&cfg)["run"]["outcome"], "held");
    let held: Value =
        serde_json::from_str(&tb.ok(&cfg, &["approvals", "--format", "json"])).unwrap();
    assert_eq!(held.as_array().map(Vec::len), Some(8), "{held}");

    // Nearly everyone leaves: the incremental read leaves 2 of 20, below
    // min_source_ratio, and the run is refused before any write.
    delete(8..18);
    proxy.clear();
    let out = tb.idsync(&cfg, &["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("min_source_ratio"), "{err}");
    assert_eq!(proxy.writes(), 0, "{:?}", requests(&proxy));
    assert_eq!(
        tb.scim_users()
            .iter()
            .filter(|u| u["active"] == false)
            .count(),
        0
    );
}

#[test]
fn an_app_that_cannot_say_what_changed_fails_its_own_run_not_the_cycle() {
    let tb = Testbed::start(&trio());
    let slack = ScimServer::start();
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let source = format!("{}  incremental: syncrepl\n", tb.base_source());
    let target = |url: String| {
        format!(
            "    target: {{ kind: scim, url: {url}, token_file: scim.token, max_retries: 0 }}\n"
        )
    };
    let apps = format!(
        "apps:\n  miro:\n{}  slack:\n{}",
        target(proxy.scim_url()),
        target(slack.url())
    );
    let cfg = tb.write_config(&source, "", &apps);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let (start, end) = (
        text.find("target:\n").unwrap(),
        text.find("match:").unwrap(),
    );
    std::fs::write(&cfg, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let app_reads = || -> Vec<(String, String, String)> {
        let runs: Value =
            serde_json::from_str(&tb.ok(&cfg, &["runs", "--limit", "2", "--format", "json"]))
                .unwrap();
        let mut out: Vec<(String, String, String)> = runs
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["app"].as_str().unwrap_or_default().to_string(),
                    r["outcome"].as_str().unwrap_or_default().to_string(),
                    r["counts"]["app_read"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        out.sort();
        out
    };
    for _ in 0..3 {
        tb.ok(&cfg, &["sync"]);
    }
    let quiet = app_reads();
    assert!(
        quiet.iter().all(|(_, _, read)| read.contains(NO_PLAN)),
        "{quiet:?}"
    );

    // Miro cannot answer what changed (503, no retries): its run fails, Slack's does not.
    // (Asked twice: by the cycle's question, then by its plan.)
    proxy.add(
        Rule::new(
            "GET",
            "meta.lastModified",
            Fault::Status {
                code: 503,
                retry_after: None,
            },
        )
        .times(2),
    );
    let out = tb.idsync(&cfg, &["sync"]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let runs = app_reads();
    assert_eq!(runs[0].0, "miro", "{runs:?}");
    assert_eq!(runs[0].1, "failed", "{runs:?}");
    assert_eq!(runs[1].0, "slack", "{runs:?}");
    assert_eq!(runs[1].1, "ok", "{runs:?}");

    // Answering again, Miro plans; then both are quiet.
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    let quiet = app_reads();
    assert!(
        quiet.iter().all(|(_, _, read)| read.contains(NO_PLAN)),
        "{quiet:?}"
    );
}

/// What the last run's plan looked at, when it was focused.
fn looked_at(tb: &Testbed, cfg: &std::path::Path) -> Option<String> {
    let read = tb.last_app_read(cfg);
    let at = read.find("plan looked at ")?;
    Some(read[at..].split(" people").next()?.to_string())
}

#[test]
fn a_plan_after_a_change_looks_only_at_who_changed_unless_it_may_have_missed_one() {
    let tb = Testbed::start(&people(30));
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = syncrepl_config(&tb, &proxy, "", "");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        looked_at(&tb, &cfg),
        None,
        "the first plan looks at everyone"
    );
    // The next reads back what the first wrote.
    tb.ok(&cfg, &["sync"]);

    // A directory change: the plan looks at that person only, and writes.
    tb.ldapmodify("dn: uid=user0003,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Captain\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("user0003@example.org").unwrap()["title"],
        "Captain"
    );
    assert_eq!(
        looked_at(&tb, &cfg).as_deref(),
        Some("plan looked at 1 of 30"),
        "{}",
        tb.last_app_read(&cfg)
    );

    // An admin's edit in the app is looked at (and repaired) with the account written
    // last cycle, which the changes query brings back.
    let id = tb.scim_user("user0008@example.org").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    edit_in_app(&tb.scim_url(), &id, "title", json!("Intern"));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("user0008@example.org").unwrap()["title"],
        "Engineer"
    );
    assert_eq!(
        looked_at(&tb, &cfg).as_deref(),
        Some("plan looked at 2 of 30"),
        "{}",
        tb.last_app_read(&cfg)
    );

    // A leaver and a disabled person: both looked at, the leaver suspended, and the
    // disabled one looked at every plan after (the rules may still act on them).
    tb.ldapmodify("dn: uid=user0011,ou=people,dc=example,dc=org\nchangetype: delete\n\ndn: uid=user0012,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n");
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("2 suspend"), "{out}");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        looked_at(&tb, &cfg).as_deref(),
        Some("plan looked at 1 of 29"),
        "the disabled user0012 is looked at every plan: {}",
        tb.last_app_read(&cfg)
    );

    // A cycle that does not move the directory's cursor (one app only): the next plan may
    // have missed a change that cycle read, so it looks at everyone.
    tb.ldapmodify("dn: uid=user0014,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Pilot\n");
    tb.ok(&cfg, &["--app", "default", "sync"]);
    assert_eq!(
        tb.scim_user("user0014@example.org").unwrap()["title"],
        "Pilot"
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(looked_at(&tb, &cfg), None, "{}", tb.last_app_read(&cfg));
    // A changed configuration, too.
    tb.ldapmodify("dn: uid=user0015,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Navigator\n");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("concurrency: 4", "concurrency: 3")).unwrap();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(looked_at(&tb, &cfg), None, "{}", tb.last_app_read(&cfg));
    assert_eq!(
        tb.scim_user("user0015@example.org").unwrap()["title"],
        "Navigator"
    );
}
