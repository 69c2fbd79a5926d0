//! SPEC section 3: a run that would deprovision too many people holds those actions (and
//! only those) until an admin approves or rejects them.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn mass_departures_are_held_new_hires_still_created_and_approve_applies_them() {
    let tb = Testbed::start(&people(10));
    let cfg = tb.config("safety: { max_deprovisions: \"10%\", min_source_ratio: 0.5 }\n");
    tb.ok(&cfg, &["sync"]);

    // 3 of 10 people vanish (30% > 10%), one is hired.
    tb.ldapmodify(
        "dn: uid=user0001,ou=people,dc=example,dc=org\nchangetype: delete\n\n\
         dn: uid=user0002,ou=people,dc=example,dc=org\nchangetype: delete\n\n\
         dn: uid=user0003,ou=people,dc=example,dc=org\nchangetype: delete\n",
    );
    tb.ldapmodify(
        &person_ldif("newhire", "New", "Hire", "Engineer", "ou=people").replacen(
            '\n',
            "\nchangetype: add\n",
            1,
        ),
    );
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains(": held"), "{out}");
    assert!(
        tb.scim_user("newhire@example.org").is_some(),
        "onboarding goes on while the limit is tripped"
    );
    for u in ["user0001", "user0002", "user0003"] {
        assert_eq!(
            tb.scim_user(&format!("{u}@example.org")).unwrap()["active"],
            true,
            "{u} must not be suspended yet"
        );
    }
    let last = tb.last_run(&cfg);
    assert_eq!(last["run"]["outcome"], "held");
    assert!(last["run"]["reason"]
        .as_str()
        .unwrap()
        .contains("exceed max_deprovisions 10%"));

    // The next run holds them again, replacing (not duplicating) the earlier held actions.
    tb.ok(&cfg, &["sync"]);
    let held: Value =
        serde_json::from_str(&tb.ok(&cfg, &["approvals", "--format", "json"])).unwrap();
    let held = held.as_array().unwrap();
    assert_eq!(held.len(), 3);
    assert_eq!(
        held[0]["run"].as_i64(),
        tb.last_run(&cfg)["run"]["id"].as_i64()
    );
    assert!(held.iter().all(|h| h["kind"] == "suspend"));
    let run = held[0]["run"].as_i64().unwrap();
    let rejected = held
        .iter()
        .find(|h| h["user_name"] == "user0003@example.org")
        .unwrap();
    let id = format!("{run}:{}", rejected["seq"]);

    tb.ok(&cfg, &["reject", &id]);
    let out = tb.ok(&cfg, &["approve", &run.to_string()]);
    assert!(out.contains("2 applied"), "{out}");
    assert_eq!(
        tb.scim_user("user0001@example.org").unwrap()["active"],
        false
    );
    assert_eq!(
        tb.scim_user("user0002@example.org").unwrap()["active"],
        false
    );
    assert_eq!(
        tb.scim_user("user0003@example.org").unwrap()["active"],
        true,
        "rejected: untouched"
    );
    assert!(tb.ok(&cfg, &["approvals"]).contains("no held actions"));
    // The held run's actions read as the decisions they were, not as skipped ones.
    let decided: Value =
        serde_json::from_str(&tb.ok(&cfg, &["show", &run.to_string(), "--format", "json"]))
            .unwrap();
    let (yes, no) = (
        action_of(&decided, "user0001@example.org"),
        action_of(&decided, "user0003@example.org"),
    );
    assert_eq!(yes["status"], "approved", "{yes}");
    assert!(
        yes["error"]
            .as_str()
            .unwrap()
            .starts_with("approved by cli:"),
        "{yes}"
    );
    assert!(
        yes["error"].as_str().unwrap().contains("applied by run"),
        "{yes}"
    );
    assert_eq!(no["status"], "rejected", "{no}");
    assert!(
        no["error"]
            .as_str()
            .unwrap()
            .starts_with("rejected by cli:"),
        "{no}"
    );
    let out = tb.idsync(&cfg, &["approve", &run.to_string()]);
    assert_eq!(out.status.code(), Some(1), "nothing left to approve");
}

#[test]
fn an_approved_action_whose_person_came_back_is_not_applied() {
    let tb = Testbed::start(&people(4));
    let cfg = tb.config("approvals: { suspend: manual }\n");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify("dn: uid=user0001,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n");
    tb.ok(&cfg, &["sync"]);
    let held: Value =
        serde_json::from_str(&tb.ok(&cfg, &["approvals", "--format", "json"])).unwrap();
    assert_eq!(held.as_array().unwrap().len(), 1);
    assert_eq!(held[0]["error"], "approvals.suspend: manual");
    let id = format!("{}:{}", held[0]["run"], held[0]["seq"]);

    tb.ldapmodify("dn: uid=user0001,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: staff\n");
    let writes = tb.scim_writes();
    let out = tb.ok(&cfg, &["approve", &id]);
    assert!(out.contains("1 no longer planned"), "{out}");
    assert_eq!(tb.scim_writes(), writes);
    assert_eq!(
        tb.scim_user("user0001@example.org").unwrap()["active"],
        true
    );
}
