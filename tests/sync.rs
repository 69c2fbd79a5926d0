//! The spine, end to end: real slapd -> real idsync binary -> real SCIM server.

mod common;

use common::*;
use serde_json::{json, Value};

fn id(u: &Value) -> String {
    u["id"].as_str().unwrap().to_string()
}

#[test]
fn first_sync_creates_every_person_with_mapped_fields_and_a_second_sync_writes_nothing() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("3 create"), "{out}");

    let users = tb.scim_users();
    assert_eq!(users.len(), 3);
    let ada = tb.scim_user("ada@example.org").unwrap();
    assert_eq!(ada["name"]["givenName"], "Ada");
    assert_eq!(ada["name"]["familyName"], "Lovelace");
    assert_eq!(ada["displayName"], "Ada Lovelace");
    assert_eq!(ada["title"], "Analyst");
    assert_eq!(
        ada["emails"][0],
        json!({"type": "work", "value": "ada@example.org"})
    );
    assert_eq!(ada["phoneNumbers"][0]["value"], "+1 555 0100");
    assert_eq!(ada["preferredLanguage"], "en");
    assert_eq!(ada["active"], true);

    let writes = tb.scim_writes();
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("no changes"), "{out}");
    assert_eq!(tb.scim_writes(), writes, "a second sync must not write");
    let last = tb.last_run(&cfg);
    assert_eq!(last["run"]["outcome"], "ok");
    assert_eq!(last["actions"].as_array().unwrap().len(), 0);
}

#[test]
fn a_changed_title_updates_only_that_field_and_a_mail_change_keeps_the_account() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    let before = tb.scim_user("ada@example.org").unwrap();

    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Countess\n");
    let plan: Value = serde_json::from_str(&tb.ok(&cfg, &["plan", "--format", "json"])).unwrap();
    let actions = plan["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{plan}");
    assert_eq!(actions[0]["kind"], "update");
    assert_eq!(
        actions[0]["changes"],
        json!([{"field": "title", "before": "Analyst", "after": "Countess"}])
    );
    assert_eq!(actions[0]["reason"], "changed upstream: title");
    tb.ok(&cfg, &["sync"]);
    let after = tb.scim_user("ada@example.org").unwrap();
    assert_eq!(after["title"], "Countess");
    assert_eq!(id(&after), id(&before));

    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: ada.lovelace@example.org\n");
    tb.ok(&cfg, &["sync"]);
    assert!(tb.scim_user("ada@example.org").is_none());
    let renamed = tb
        .scim_user("ada.lovelace@example.org")
        .expect("renamed account");
    assert_eq!(
        id(&renamed),
        id(&before),
        "the anchor, not the mail, identifies the person"
    );
    assert_eq!(renamed["emails"][0]["value"], "ada.lovelace@example.org");
    assert_eq!(tb.scim_users().len(), 3);
}

#[test]
fn a_person_disabled_upstream_is_suspended_and_reactivated_when_enabled_again() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    let alan = tb.scim_user("alan@example.org").unwrap();

    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n");
    tb.ok(&cfg, &["sync"]);
    let suspended = tb.scim_user("alan@example.org").unwrap();
    assert_eq!(suspended["active"], false);
    let last = tb.last_run(&cfg);
    assert_eq!(last["actions"][0]["kind"], "suspend");
    assert_eq!(last["actions"][0]["reason"], "disabled upstream");
    assert_eq!(last["actions"][0]["status"], "applied");

    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: staff\n");
    tb.ok(&cfg, &["sync"]);
    let back = tb.scim_user("alan@example.org").unwrap();
    assert_eq!(back["active"], true);
    assert_eq!(id(&back), id(&alan), "reactivated, not re-created");
    assert_eq!(tb.last_run(&cfg)["actions"][0]["kind"], "reactivate");
}

#[test]
fn a_person_moved_out_of_the_search_base_is_suspended_and_reactivated_when_moved_back() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    let grace = tb.scim_user("grace@example.org").unwrap();

    tb.ldapmodify("dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=grace\ndeleteoldrdn: 1\nnewsuperior: ou=alumni,dc=example,dc=org\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_user("grace@example.org").unwrap()["active"], false);
    let reason = tb.last_run(&cfg)["actions"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.starts_with("no longer in the directory"), "{reason}");

    tb.ldapmodify("dn: uid=grace,ou=alumni,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=grace\ndeleteoldrdn: 1\nnewsuperior: ou=people,dc=example,dc=org\n");
    tb.ok(&cfg, &["sync"]);
    let back = tb.scim_user("grace@example.org").unwrap();
    assert_eq!(back["active"], true);
    assert_eq!(id(&back), id(&grace));
}

#[test]
fn a_person_deleted_upstream_is_suspended_and_a_rehire_takes_the_account_back() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    let ada = tb.scim_user("ada@example.org").unwrap();

    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: delete\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_user("ada@example.org").unwrap()["active"], false);

    // Re-created entry: same mail, new entryUUID.
    let entry = Person {
        uid: "ada",
        given: "Ada",
        sn: "Lovelace",
        title: "Analyst",
    }
    .ldif();
    let add = entry.replacen('\n', "\nchangetype: add\n", 1);
    tb.ldapmodify(&add);
    tb.ok(&cfg, &["sync"]);
    let back = tb.scim_user("ada@example.org").unwrap();
    assert_eq!(back["active"], true);
    assert_eq!(id(&back), id(&ada), "no second account for a re-hire");
    let last = tb.last_run(&cfg);
    assert_eq!(last["actions"][0]["kind"], "adopt");
    assert!(last["actions"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("re-hire"));
}

#[test]
fn an_account_made_by_hand_is_left_alone_and_a_matching_one_is_adopted_not_duplicated() {
    let tb = Testbed::start(&trio());
    let hand = tb.scim_create(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "contractor@partner.example", "title": "Temp"}));
    let existing = tb.scim_create(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "Grace@Example.org", "title": "Old title", "preferredLanguage": "fr"}));
    let cfg = tb.config("");
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("2 create") && out.contains("1 adopt"), "{out}");

    assert_eq!(tb.scim_users().len(), 4);
    let grace = tb.scim_user("grace@example.org").unwrap();
    assert_eq!(id(&grace), id(&existing));
    assert_eq!(grace["title"], "Admiral");
    assert_eq!(
        grace["preferredLanguage"], "fr",
        "set-once fields do not overwrite a value the account has"
    );
    let contractor = tb.scim_user("contractor@partner.example").unwrap();
    assert_eq!(contractor, hand, "unmanaged accounts are not touched");
}

#[test]
fn plan_writes_nothing_and_its_json_lists_each_action_with_before_after_and_reason() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    let out = tb.idsync(&cfg, &["plan", "--format", "json", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "changes pending");
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tb.scim_writes(), 0);
    assert!(tb.scim_users().is_empty());
    let actions = plan["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 3);
    for a in actions {
        assert_eq!(a["kind"], "create");
        assert_eq!(a["reason"], "new in the directory");
        let changes = a["changes"].as_array().unwrap();
        assert!(changes
            .iter()
            .any(|c| c["field"] == "userName" && c["before"].is_null() && c["after"].is_string()));
    }
    for format in ["table", "markdown"] {
        let text = tb.ok(&cfg, &["plan", "--format", format]);
        assert!(
            text.contains("ada@example.org") && text.contains("new in the directory"),
            "{text}"
        );
    }
    let report = tb.dir.path().join("plan.md");
    tb.ok(
        &cfg,
        &[
            "plan",
            "--format",
            "markdown",
            "--output",
            report.to_str().unwrap(),
        ],
    );
    assert!(std::fs::read_to_string(&report)
        .unwrap()
        .contains("| create | ada@example.org |"));
    assert_eq!(tb.scim_writes(), 0);
    let runs: Value = serde_json::from_str(&tb.ok(&cfg, &["runs", "--format", "json"])).unwrap();
    assert!(runs
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["mode"] == "dry-run"));
}

#[test]
fn paged_reads_are_not_truncated_by_the_server_size_limit() {
    // slapd's default sizelimit is 500 for the (non-root) sync account.
    let tb = Testbed::start(&people(620));
    let cfg = tb.config("");
    let plan: Value = serde_json::from_str(&tb.ok(&cfg, &["plan", "--format", "json"])).unwrap();
    assert_eq!(plan["stats"]["source_users"], 620);
    assert_eq!(plan["counts"]["create"], 620);
}

#[test]
fn a_read_cut_short_by_a_size_limit_fails_instead_of_returning_a_short_list() {
    let tb = Testbed::start_with_limits(&people(30), "size.soft=500 size.hard=500 size.prtotal=20");
    let cfg = tb.config("");
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("size limit exceeded"), "{err}");
    assert_eq!(tb.scim_writes(), 0);
    assert_eq!(tb.last_run(&cfg)["run"]["outcome"], "failed");
}
