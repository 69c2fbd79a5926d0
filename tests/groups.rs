//! Group sync against a real slapd (groupOfNames, groupOfUniqueNames, posixGroup) and the
//! real scim2-server. scim2-server keeps deleted or suspended users inside groups (no
//! referential integrity), so every removal seen here is idsync's own doing.

mod common;

use common::*;
use serde_json::Value;

const GROUPS_OU: &str =
    "dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\n";

fn people_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,dc=example,dc=org")
}

fn group_of_names(cn: &str, uids: &[&str]) -> String {
    let members: String = uids
        .iter()
        .map(|u| format!("member: {}\n", people_dn(u)))
        .collect();
    format!(
        "dn: cn={cn},ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: {cn}\n{members}\n"
    )
}

/// Ada, Alan, Grace; `eng` = {ada, alan} (groupOfNames), `ops` = {grace}
/// (groupOfUniqueNames), `staff` = {ada, grace} (posixGroup, memberUid).
fn directory() -> String {
    format!(
        "{}{GROUPS_OU}{}dn: cn=ops,ou=groups,dc=example,dc=org\nobjectClass: groupOfUniqueNames\ncn: ops\nuniqueMember: {}\n\ndn: cn=staff,ou=groups,dc=example,dc=org\nobjectClass: posixGroup\ncn: staff\ngidNumber: 5000\nmemberUid: ada\nmemberUid: grace\n\n",
        trio(),
        group_of_names("eng", &["ada", "alan"]),
        people_dn("grace"),
    )
}

const GROUPS: &str = "groups:\n  base_dn: ou=groups,dc=example,dc=org\n";

fn members(tb: &Testbed, name: &str) -> Vec<String> {
    let g = tb
        .scim_group(name)
        .unwrap_or_else(|| panic!("no app group {name}"));
    tb.member_names(&g)
}

fn mails(uids: &[&str]) -> Vec<String> {
    uids.iter().map(|u| format!("{u}@example.org")).collect()
}

fn modify(tb: &Testbed, dn: &str, body: &str) {
    tb.ldapmodify(&format!("dn: {dn}\nchangetype: modify\n{body}"));
}

#[test]
fn groups_are_created_with_their_members_and_a_second_run_is_quiet() {
    let tb = Testbed::start(&directory());
    let cfg = tb.config(GROUPS);
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("group-create"), "{plan}");
    assert!(
        plan.contains("members: +ada@example.org +alan@example.org"),
        "{plan}"
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(members(&tb, "eng"), mails(&["ada", "alan"]));
    assert_eq!(members(&tb, "ops"), mails(&["grace"]));
    assert_eq!(members(&tb, "staff"), mails(&["ada", "grace"]));
    let writes = tb.scim_writes();
    let again = tb.ok(&cfg, &["sync"]);
    assert!(again.contains("no changes"), "{again}");
    assert_eq!(tb.scim_writes(), writes, "a quiet run writes nothing");
    // The journal says what was done to the groups.
    let show = tb.ok(&cfg, &["show", "1", "--format", "json"]);
    assert!(show.contains("group-create"), "{show}");
}

#[test]
fn a_member_added_and_one_removed_upstream_is_exactly_one_patch() {
    let tb = Testbed::start(&directory());
    let cfg = tb.config(GROUPS);
    tb.ok(&cfg, &["sync"]);
    let eng = tb.scim_group("eng").unwrap();
    modify(
        &tb,
        "cn=eng,ou=groups,dc=example,dc=org",
        &format!(
            "add: member\nmember: {}\n-\ndelete: member\nmember: {}\n",
            people_dn("grace"),
            people_dn("alan")
        ),
    );
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(
        plan.contains("members: +grace@example.org -alan@example.org"),
        "{plan}"
    );
    let (writes, patches) = (
        tb.scim_writes(),
        tb.scim_requests(&format!(
            "\"PATCH /v2/Groups/{}",
            eng["id"].as_str().unwrap()
        )),
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(members(&tb, "eng"), mails(&["ada", "grace"]));
    assert_eq!(tb.scim_writes(), writes + 1, "one write in all");
    assert_eq!(
        tb.scim_requests(&format!(
            "\"PATCH /v2/Groups/{}",
            eng["id"].as_str().unwrap()
        )),
        patches + 1
    );
    // Nobody else's account or group was touched: alan keeps his account.
    assert_eq!(tb.scim_user("alan@example.org").unwrap()["active"], true);
}

#[test]
fn a_group_renamed_upstream_is_renamed_in_the_app_not_recreated() {
    let tb = Testbed::start(&directory());
    let cfg = tb.config(GROUPS);
    tb.ok(&cfg, &["sync"]);
    let before = tb.scim_group("eng").unwrap();
    tb.ldapmodify("dn: cn=eng,ou=groups,dc=example,dc=org\nchangetype: modrdn\nnewrdn: cn=engineering\ndeleteoldrdn: 1\n");
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(
        plan.contains("displayName: \"eng\" -> \"engineering\""),
        "{plan}"
    );
    tb.ok(&cfg, &["sync"]);
    assert!(tb.scim_group("eng").is_none());
    let after = tb.scim_group("engineering").unwrap();
    assert_eq!(after["id"], before["id"]);
    assert_eq!(tb.member_names(&after), mails(&["ada", "alan"]));
}

#[test]
fn a_suspended_person_leaves_every_synced_group_and_comes_back_on_reactivation() {
    let tb = Testbed::start(&directory());
    let cfg = tb.config(&format!("{GROUPS}safety: {{ min_source_ratio: 0.1 }}\n"));
    tb.ok(&cfg, &["sync"]);
    // Ada is disabled upstream: still listed in eng and staff there, but suspended here.
    modify(
        &tb,
        &people_dn("ada"),
        "replace: employeeType\nemployeeType: disabled\n",
    );
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("-ada@example.org"), "{plan}");
    assert!(plan.contains("suspended: disabled upstream"), "{plan}");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_user("ada@example.org").unwrap()["active"], false);
    assert_eq!(members(&tb, "eng"), mails(&["alan"]));
    assert_eq!(members(&tb, "staff"), mails(&["grace"]));
    // Re-enabled within the window: reactivated and back in both groups.
    modify(
        &tb,
        &people_dn("ada"),
        "replace: employeeType\nemployeeType: staff\n",
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_user("ada@example.org").unwrap()["active"], true);
    assert_eq!(members(&tb, "eng"), mails(&["ada", "alan"]));
    assert_eq!(members(&tb, "staff"), mails(&["ada", "grace"]));
    // Deleted upstream (the group still names her DN): suspended and out of every group.
    tb.ldapmodify(&format!("dn: {}\nchangetype: delete\n", people_dn("grace")));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_user("grace@example.org").unwrap()["active"], false);
    assert_eq!(members(&tb, "ops"), Vec::<String>::new());
    assert_eq!(members(&tb, "staff"), mails(&["ada"]));
}

#[test]
fn app_groups_idsync_does_not_manage_are_untouched_and_a_same_named_one_is_adopted() {
    let tb = Testbed::start(&directory());
    // Made by hand in the app before idsync ever ran: a group of its own, and one named
    // like a directory group, both with an account idsync does not manage.
    let outsider = tb.scim_create(serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "contractor@partner.example",
    }));
    let oid = outsider["id"].as_str().unwrap().to_string();
    let marketing = tb.scim_create_group("marketing", &[&oid]);
    let eng = tb.scim_create_group("eng", &[&oid]);
    let cfg = tb.config(GROUPS);
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("group-adopt"), "{plan}");
    tb.ok(&cfg, &["sync"]);
    let adopted = tb.scim_group("eng").unwrap();
    assert_eq!(adopted["id"], eng["id"], "adopted, not duplicated");
    let mut want = mails(&["ada", "alan"]);
    want.push("contractor@partner.example".into());
    want.sort();
    assert_eq!(tb.member_names(&adopted), want, "its own member is kept");
    // The next runs leave marketing exactly as it was.
    let writes = tb.scim_writes();
    tb.ldapmodify(&format!("dn: {}\nchangetype: delete\n", people_dn("alan")));
    let cfg = tb.config(&format!("{GROUPS}safety: {{ min_source_ratio: 0.1 }}\n"));
    tb.ok(&cfg, &["sync"]);
    assert!(tb.scim_writes() > writes);
    let after = tb.scim_group("marketing").unwrap();
    assert_eq!(after["members"], marketing["members"]);
    assert_eq!(after["meta"]["version"], marketing["meta"]["version"]);
    assert_eq!(tb.scim_groups().len(), 4, "eng, ops, staff, marketing");
}

/// `big` holds 50 people, `small` one of them.
fn big_directory() -> String {
    let uids: Vec<String> = (0..50).map(|i| format!("user{i:04}")).collect();
    let refs: Vec<&str> = uids.iter().map(String::as_str).collect();
    format!(
        "{}{GROUPS_OU}{}{}",
        people(50),
        group_of_names("big", &refs),
        group_of_names("small", &["user0000"])
    )
}

#[test]
fn a_group_that_vanishes_upstream_with_50_members_is_never_emptied() {
    let tb = Testbed::start(&big_directory());
    let cfg = tb.config(GROUPS);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(members(&tb, "big").len(), 50);
    tb.ldapmodify("dn: cn=big,ou=groups,dc=example,dc=org\nchangetype: delete\n");
    // Default (vanished: leave): reported, left as it is.
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("groups.vanished: leave"), "{plan}");
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_writes(), writes);
    assert_eq!(members(&tb, "big").len(), 50);
    // vanished: delete: the deletion removes 50 members at once, so the safety cap holds it.
    let cfg = tb.config(&format!("{GROUPS}  vanished: delete\n"));
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("group-delete"), "{plan}");
    assert!(plan.contains("HELD: would remove all 50 members"), "{plan}");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(members(&tb, "big").len(), 50, "held, not emptied");
    let approvals = tb.ok(&cfg, &["approvals"]);
    assert!(approvals.contains("group-delete"), "{approvals}");
}

#[test]
fn a_read_that_loses_a_groups_members_is_held_by_the_cap() {
    let tb = Testbed::start(&big_directory());
    let cfg = tb.config(GROUPS);
    tb.ok(&cfg, &["sync"]);
    // Every member replaced by one DN outside the people idsync reads.
    modify(
        &tb,
        "cn=big,ou=groups,dc=example,dc=org",
        "replace: member\nmember: cn=idsync,ou=services,dc=example,dc=org\n",
    );
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("HELD: would remove all 50 members"), "{plan}");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(members(&tb, "big").len(), 50);
    // A smaller shrink is subject to max_member_removals when set.
    modify(
        &tb,
        "cn=big,ou=groups,dc=example,dc=org",
        &format!(
            "replace: member\n{}",
            (0..40)
                .map(|i| format!("member: {}\n", people_dn(&format!("user{i:04}"))))
                .collect::<String>()
        ),
    );
    let capped = tb.config(&format!("{GROUPS}safety: {{ max_member_removals: 5 }}\n"));
    let plan = tb.ok(&capped, &["plan"]);
    assert!(plan.contains("exceed max_member_removals 5"), "{plan}");
    tb.ok(&capped, &["sync"]);
    assert_eq!(members(&tb, "big").len(), 50, "held by the cap");
    let cfg = tb.config(GROUPS);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(members(&tb, "big").len(), 40, "without the cap: applied");
}

#[test]
fn nested_groups_are_flattened_when_asked() {
    let ldif = format!(
        "{}dn: cn=all,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: all\nmember: cn=eng,ou=groups,dc=example,dc=org\nmember: cn=ops,ou=groups,dc=example,dc=org\n\n",
        directory()
    );
    let tb = Testbed::start(&ldif);
    let cfg = tb.config(&format!("{GROUPS}  nested: true\n  only: [all, eng]\n"));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(members(&tb, "all"), mails(&["ada", "alan", "grace"]));
    assert_eq!(members(&tb, "eng"), mails(&["ada", "alan"]));
    assert!(tb.scim_group("ops").is_none(), "not selected by `only`");
    let names: Vec<Value> = tb
        .scim_groups()
        .iter()
        .map(|g| g["displayName"].clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_group_read_that_finds_none_while_some_are_managed_aborts_before_any_write() {
    let tb = Testbed::start(&directory());
    let cfg = tb.config(GROUPS);
    tb.ok(&cfg, &["sync"]);
    // A groups base the bind account cannot see reads as "no groups, success".
    let cfg = tb.config(
        "groups:\n  base_dn: ou=services,dc=example,dc=org\n  filter: (objectClass=groupOfNames)\n",
    );
    let writes = tb.scim_writes();
    let out = tb.idsync(&cfg, &["sync"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("returned no groups"), "{stderr}");
    assert_eq!(tb.scim_writes(), writes);
    assert_eq!(members(&tb, "eng"), mails(&["ada", "alan"]));
}
