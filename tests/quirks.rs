//! Real providers' documented quirks, played by a fault proxy in front of the real
//! scim2-server or named by a shipped profile (`config/profiles/`): 50 accounts a page
//! (AWS IAM Identity Center), a 413 on a large group PATCH (Miro), no DELETE (Canva), a
//! suspension that deletes (PagerDuty), no deprovisioning over SCIM at all, a 500 on a
//! create. Each converges with no duplicate and a quiet next run; what cannot be applied
//! is visible and bounded.

mod common;

use common::proxy::{Fault, HttpFaults, Rule};
use common::*;

const GROUPS_OU: &str =
    "dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\n";

/// The standard config, through `proxy`, with lines added under `target:` and at the top.
fn config(tb: &Testbed, proxy: &HttpFaults, target_extra: &str, extra: &str) -> std::path::PathBuf {
    let path = tb.write_config(&tb.base_source(), target_extra, extra);
    retarget(&path, &tb.scim_url(), &proxy.scim_url());
    path
}

const DISABLE_ALAN: &str = "dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n";

#[test]
fn the_aws_profile_reads_50_accounts_a_page_and_converges() {
    let tb = Testbed::start(&people(120));
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    // Every cycle lists the app whole (what the profile's page cap is about).
    let cfg = config(
        &tb,
        &proxy,
        "  profile: aws-identity-center\n  full_every: 0s\n",
        "",
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 120);
    proxy.clear();
    let out = tb.ok(&cfg, &["sync"]);
    assert_eq!(proxy.writes(), 0, "a second sync wrote: {out}");
    assert_eq!(
        proxy.count("GET", "/ServiceProviderConfig"),
        0,
        "discovery is kept a day, not asked every cycle"
    );
    let pages: Vec<String> = proxy
        .seen()
        .iter()
        .filter(|s| s.path.contains("/Users?startIndex="))
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|p| p.contains("count=50")), "{pages:?}");
}

#[test]
fn a_group_patch_the_app_finds_too_large_is_sent_in_halves_and_converges() {
    let members: String = (0..10)
        .map(|i| format!("member: uid=user{i:04},ou=people,dc=example,dc=org\n"))
        .collect();
    let ldif = format!(
        "{}{GROUPS_OU}dn: cn=all,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: all\n{members}\n",
        people(10)
    );
    let tb = Testbed::start(&ldif);
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    // Miro answers 413 above its cap: here, more than 4 members in one request.
    proxy.add(Rule::new("WRITE", "/v2/Groups", Fault::TooLarge(4)).times(usize::MAX));
    let cfg = config(
        &tb,
        &proxy,
        "  profile: miro\n",
        "groups:\n  base_dn: ou=groups,dc=example,dc=org\n",
    );
    tb.ok(&cfg, &["sync"]);
    let group = tb.scim_group("all").expect("group all");
    assert_eq!(tb.member_names(&group).len(), 10);
    assert!(
        proxy
            .seen()
            .iter()
            .any(|s| s.fault.as_deref().is_some_and(|f| f.contains("TooLarge"))),
        "the cap was never hit"
    );
    proxy.clear();
    proxy.add(Rule::new("WRITE", "/v2/Groups", Fault::TooLarge(4)).times(usize::MAX));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(proxy.writes(), 0, "a second sync wrote");
    assert_eq!(tb.scim_groups().len(), 1, "no duplicate group");
}

#[test]
fn an_app_without_delete_keeps_leavers_suspended_with_a_notice() {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = config(
        &tb,
        &proxy,
        "  profile: canva\n",
        "lifecycle: { delete_after: 1s }\n",
    );
    tb.ok(&cfg, &["sync"]);
    // Alan leaves the directory: suspended, and past `delete_after` due for a delete.
    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: delete\n");
    tb.ok(&cfg, &["sync"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(
        plan.contains("not deleted: this app takes no DELETE"),
        "{plan}"
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(proxy.count("DELETE", "/Users/"), 0);
    assert!(tb
        .scim_users()
        .iter()
        .any(|u| u["userName"] == "alan@example.org" && u["active"] == false));
}

#[test]
fn an_app_whose_suspension_deletes_gets_a_delete_and_a_returner_is_created_anew() {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = config(&tb, &proxy, "  profile: pagerduty\n", "");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify(DISABLE_ALAN);
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("target.deprovision: delete"), "{plan}");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(proxy.count("DELETE", "/Users/"), 1);
    assert!(tb.scim_user("alan@example.org").is_none());
    tb.ldapmodify(&DISABLE_ALAN.replace("employeeType: disabled", "employeeType: staff"));
    tb.ok(&cfg, &["sync"]);
    let alan = tb.scim_user("alan@example.org").expect("alan created anew");
    assert_eq!(alan["active"], true);
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(proxy.writes(), 0, "a quiet run wrote");
}

#[test]
fn an_app_that_cannot_deprovision_holds_leavers_for_an_operator() {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = config(&tb, &proxy, "  deprovision: none\n", "");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify(DISABLE_ALAN);
    proxy.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        proxy.writes(),
        0,
        "a leaver was written to an app that takes none"
    );
    let held = tb.ok(&cfg, &["approvals"]);
    assert!(held.contains("alan@example.org"), "{held}");
    assert!(held.contains("target.deprovision: none"), "{held}");
}

#[test]
fn a_create_the_app_answers_500_every_time_is_escrowed_and_the_rest_converge() {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    // An app that 500s on a duplicate (say, a userName held by a hidden account).
    proxy.add(
        Rule::new(
            "POST",
            "/v2/Users",
            Fault::Status {
                code: 500,
                retry_after: None,
            },
        )
        .body("grace@example.org")
        .times(usize::MAX),
    );
    let cfg = config(&tb, &proxy, "  max_retries: 1\n", "");
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed create fails the exit code"
    );
    let names: Vec<String> = tb
        .scim_users()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "the rest of the run proceeds: {names:?}");
    let posts = proxy.count("POST", "/v2/Users");
    let out = tb.ok(&cfg, &["sync"]);
    assert_eq!(
        proxy.count("POST", "/v2/Users"),
        posts,
        "sent again at once: {out}"
    );
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("escrowed create: failed 1 time(s)"), "{plan}");
    assert_eq!(tb.scim_users().len(), 2, "no duplicate");
}

#[test]
fn a_list_that_hides_deactivated_accounts_does_not_lose_them() {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    proxy.add(Rule::new("GET", "/v2/Users?startIndex=", Fault::HideInactive).times(usize::MAX));
    // Every cycle lists the app whole (the list's gap is what this is about).
    let cfg = config(&tb, &proxy, "  profile: atlassian\n  full_every: 0s\n", "");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify(DISABLE_ALAN);
    tb.ok(&cfg, &["sync"]);
    // Alan's suspended account is no longer listed: read by id, it is still his.
    proxy.clear();
    proxy.add(Rule::new("GET", "/v2/Users?startIndex=", Fault::HideInactive).times(usize::MAX));
    let out = tb.ok(&cfg, &["sync"]);
    assert_eq!(
        proxy.writes(),
        0,
        "a hidden account was taken for gone: {out}"
    );
    assert!(
        proxy.count("GET", "/Users/") >= 1,
        "the hidden account was not read by id"
    );
    assert_eq!(tb.scim_users().len(), 3, "no duplicate");
    // Alan comes back: his account is reactivated, not created again.
    tb.ldapmodify(&DISABLE_ALAN.replace("employeeType: disabled", "employeeType: staff"));
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("reactivate"), "{plan}");
}

#[test]
fn an_app_that_cannot_be_listed_is_read_account_by_account_and_converges() {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    // No list at all: a listing GET is refused.
    let refuse_lists = || {
        Rule::new(
            "GET",
            "/v2/Users?startIndex=",
            Fault::Status {
                code: 403,
                retry_after: None,
            },
        )
        .times(usize::MAX)
    };
    proxy.add(refuse_lists());
    // Alan's account exists already: matched by userName, adopted, not duplicated.
    tb.scim_create(serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "alan@example.org",
        "active": true
    }));
    let cfg = config(&tb, &proxy, "  list: filter-only\n", "");
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("adopt"), "{plan}");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 3);
    proxy.clear();
    proxy.add(refuse_lists());
    let out = tb.ok(&cfg, &["sync"]);
    assert_eq!(proxy.writes(), 0, "a second sync wrote: {out}");
    assert!(
        !proxy.seen().iter().any(|s| s.path.contains("startIndex=")),
        "it listed"
    );
}

#[test]
fn an_app_whose_user_name_filter_is_case_exact_gets_no_duplicate_on_a_409() {
    let tb = Testbed::start(&trio());
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    // Alan's account is there as the app's admin typed it. This app compares `userName
    // eq` case-exactly (its schema says caseExact: false): the lookups for his name, as
    // the directory and as lower case spell it, find nothing.
    tb.scim_create(serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "Alan@Example.org",
        "active": true
    }));
    proxy.add(
        Rule::new(
            "GET",
            "userName+eq+%22alan%40example.org%22",
            Fault::Answer(
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[]}"#.into(),
            ),
        )
        .times(usize::MAX),
    );
    // Accounts are looked up one by one (no list for planning), so the plan creates him.
    let cfg = config(&tb, &proxy, "  list: filter-only\n", "");
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(
        plan.contains("create") && plan.contains("alan@example.org"),
        "{plan}"
    );

    // The create meets the app's 409; the account is found and adopted, not duplicated.
    tb.ok(&cfg, &["sync"]);
    let alans: Vec<_> = tb
        .scim_users()
        .into_iter()
        .filter(|u| {
            u["userName"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("alan@example.org")
        })
        .collect();
    assert_eq!(alans.len(), 1, "{alans:?}");
    assert_eq!(tb.scim_users().len(), 3);
    let run = tb.last_run(&cfg);
    assert_eq!(run["run"]["outcome"], "ok", "{run}");
    let again = tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 3, "{again}");
}

#[test]
fn an_app_without_patch_gets_whole_resources_put_and_keeps_what_idsync_does_not_manage() {
    let ldif = format!(
        "{}{GROUPS_OU}dn: cn=eng,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: eng\nmember: uid=ada,ou=people,dc=example,dc=org\nmember: uid=alan,ou=people,dc=example,dc=org\n\n",
        trio()
    );
    let tb = Testbed::start(&ldif);
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    // The app says it has no PATCH, and refuses one.
    proxy.add(
        Rule::new(
            "GET",
            "/v2/ServiceProviderConfig",
            Fault::Answer(r#"{"patch":{"supported":false},"filter":{"supported":true},"etag":{"supported":false},"bulk":{"supported":false}}"#.into()),
        )
        .times(usize::MAX),
    );
    let no_patch = || {
        Rule::new(
            "PATCH",
            "/v2/",
            Fault::Status {
                code: 501,
                retry_after: None,
            },
        )
        .times(usize::MAX)
    };
    proxy.add(no_patch());
    let cfg = config(
        &tb,
        &proxy,
        "",
        "groups:\n  base_dn: ou=groups,dc=example,dc=org\n",
    );
    tb.ok(&cfg, &["sync"]);
    // Someone sets a nickname in the app: not idsync's to touch.
    let alan = tb.scim_user("alan@example.org").unwrap();
    let id = alan["id"].as_str().unwrap().to_string();
    let mut edited = alan.clone();
    edited["nickName"] = "turing".into();
    reqwest::blocking::Client::new()
        .put(format!("{}/Users/{id}", tb.scim_url()))
        .bearer_auth(TOKEN)
        .json(&edited)
        .send()
        .unwrap();
    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Codebreaker\n");
    tb.ldapmodify("dn: cn=eng,ou=groups,dc=example,dc=org\nchangetype: modify\ndelete: member\nmember: uid=ada,ou=people,dc=example,dc=org\n");
    tb.ok(&cfg, &["sync"]);
    let alan = tb.scim_user("alan@example.org").unwrap();
    assert_eq!(alan["title"], "Codebreaker");
    assert_eq!(
        alan["nickName"], "turing",
        "a PUT lost what idsync does not manage"
    );
    let eng = tb.scim_group("eng").unwrap();
    assert_eq!(tb.member_names(&eng), ["alan@example.org"]);
    assert_eq!(proxy.count("PATCH", "/v2/"), 0, "a PATCH was sent");
    assert!(proxy.count("PUT", "/v2/Users/") >= 1 && proxy.count("PUT", "/v2/Groups/") >= 1);
    proxy.clear();
    proxy.add(no_patch());
    tb.ok(&cfg, &["sync"]);
    assert_eq!(proxy.writes(), 0, "a quiet run wrote");
}
