//! SPEC section 2 rows that depend on time, against the real servers: short windows make
//! the clock move without faking it.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const DISABLE_ALAN: &str = "dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n";
const ENABLE_ALAN: &str = "dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: staff\n";

fn id(u: &Value) -> String {
    u["id"].as_str().unwrap().to_string()
}

#[test]
fn back_after_the_window_with_reinvite_gets_a_fresh_account() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("lifecycle: { reactivation_window: 1s, after_window: reinvite }\nsafety: { min_source_ratio: 0.1 }\n");
    tb.ok(&cfg, &["sync"]);
    let old = tb.scim_user("alan@example.org").unwrap();
    tb.ldapmodify(DISABLE_ALAN);
    tb.ok(&cfg, &["sync"]);
    std::thread::sleep(Duration::from_secs(2));
    tb.ldapmodify(ENABLE_ALAN);
    tb.ok(&cfg, &["sync"]);
    let new = tb.scim_user("alan@example.org").unwrap();
    assert_ne!(id(&new), id(&old), "a fresh account");
    assert_eq!(new["active"], true);
    assert_eq!(new["title"], "Researcher");
    assert_eq!(tb.scim_users().len(), 3, "the old account is gone");
    assert_eq!(tb.last_run(&cfg)["actions"][0]["kind"], "reinvite");
    // And it is linked: the next run is quiet.
    assert!(tb.ok(&cfg, &["sync"]).contains("no changes"));
}

#[test]
fn back_after_the_window_with_hold_changes_nothing_and_says_so() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("lifecycle: { reactivation_window: 1s, after_window: hold }\n");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify(DISABLE_ALAN);
    tb.ok(&cfg, &["sync"]);
    std::thread::sleep(Duration::from_secs(2));
    tb.ldapmodify(ENABLE_ALAN);
    let writes = tb.scim_writes();
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("an admin decides"), "{plan}");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_writes(), writes);
    assert_eq!(tb.scim_user("alan@example.org").unwrap()["active"], false);
}

#[test]
fn a_leaver_gets_the_leaver_profile_is_deleted_once_after_retention_and_never_again() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("lifecycle: { delete_after: 2s, leaver: { title: \"Former member\" } }\nsafety: { min_source_ratio: 0.1 }\n");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify("dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: delete\n");
    tb.ok(&cfg, &["sync"]);
    let grace = tb.scim_user("grace@example.org").unwrap();
    assert_eq!(
        (grace["active"].clone(), grace["title"].clone()),
        (Value::Bool(false), Value::from("Former member"))
    );

    // Within retention: nothing.
    assert!(tb.ok(&cfg, &["sync"]).contains("no changes"));
    std::thread::sleep(Duration::from_secs(3));
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("1 delete"), "{out}");
    assert!(tb.scim_user("grace@example.org").is_none());
    let writes = tb.scim_writes();
    assert!(tb.ok(&cfg, &["sync"]).contains("no changes"));
    assert_eq!(tb.scim_writes(), writes, "deleted exactly once");
}

#[test]
fn a_bind_that_cannot_read_anything_aborts_the_run_with_zero_writes() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    let writes = tb.scim_writes();
    write_secret(&tb.dir.path().join("noread.secret"), "noread-secret");
    let source = tb
        .base_source()
        .replace("cn=idsync,ou=services", "cn=noread,ou=services")
        .replace("ldap.secret", "noread.secret");
    let cfg = tb.config_with(&source, "");
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("check the bind account's read rights"));
    assert_eq!(tb.scim_writes(), writes);
    let last = tb.last_run(&cfg);
    assert_eq!(last["run"]["outcome"], "aborted");
    assert!(tb.scim_users().iter().all(|u| u["active"] == true));
}
