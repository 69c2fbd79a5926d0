//! Black-box: incremental reads from the real slapd's syncprov (RFC 4533 refreshOnly) into
//! the real scim2-server, through the real `idsync` binary.

mod common;

use std::path::PathBuf;

use common::{people, person_ldif, trio, Testbed};

/// syncrepl reads are not paged: the sync account gets no size limit, as consumers do.
const UNLIMITED: &str = "size=unlimited";

fn config(tb: &Testbed) -> PathBuf {
    let source = format!("{}  incremental: syncrepl\n", tb.base_source());
    tb.config_with(&source, "")
}

fn active(tb: &Testbed, user_name: &str) -> bool {
    tb.scim_user(user_name).unwrap()["active"]
        .as_bool()
        .unwrap_or(true)
}

#[test]
fn a_one_percent_churn_cycle_reads_and_applies_only_the_changes_and_advances_the_cookie() {
    let tb = Testbed::start_with_limits(&people(1000), UNLIMITED);
    let cfg = config(&tb);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 1000);
    assert_eq!(
        tb.last_read(&cfg),
        "full read (first read: no sync cookie yet)"
    );

    // 1% of 1,000: four modified, two deleted, two moved out of the base, two added.
    let mut ldif = String::new();
    for i in 1..=4 {
        ldif += &format!("dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Staff Engineer\n\n");
    }
    for i in [10, 11] {
        ldif += &format!("dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: delete\n\n");
    }
    for i in [20, 21] {
        ldif += &format!("dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=user{i:04}\ndeleteoldrdn: 1\nnewsuperior: ou=alumni,dc=example,dc=org\n\n");
    }
    for uid in ["newbie1", "newbie2"] {
        ldif += &person_ldif(uid, "New", "Hire", "Intern", "ou=people");
    }
    tb.ldapmodify(&ldif_with_adds(&ldif));
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 6 changed, 4 removed");
    assert_eq!(
        tb.scim_writes() - writes,
        10,
        "exactly one write per change"
    );
    for i in 1..=4 {
        assert_eq!(
            tb.scim_user(&format!("user{i:04}@example.org")).unwrap()["title"],
            "Staff Engineer"
        );
    }
    for i in [10, 11, 20, 21] {
        assert!(
            !active(&tb, &format!("user{i:04}@example.org")),
            "user{i:04} suspended"
        );
    }
    assert_eq!(
        tb.scim_user("newbie1@example.org").unwrap()["title"],
        "Intern"
    );
    assert!(active(&tb, "user0500@example.org"));

    // The cookie moved: nothing to read, nothing to write.
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 0 removed");
    assert_eq!(tb.scim_writes(), writes);

    // --full reads everything and still writes nothing.
    tb.ok(&cfg, &["sync", "--full"]);
    assert_eq!(tb.last_read(&cfg), "full read (asked for (--full))");
    assert_eq!(tb.scim_writes(), writes);
}

/// Turns plain entries in a change LDIF into `changetype: add` records.
fn ldif_with_adds(ldif: &str) -> String {
    ldif.split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            if r.contains("changetype:") {
                format!("{r}\n\n")
            } else {
                let (dn, rest) = r.split_once('\n').unwrap();
                format!("{dn}\nchangetype: add\n{rest}\n\n")
            }
        })
        .collect()
}

#[test]
fn a_run_whose_writes_fail_keeps_the_cookie_and_the_next_run_reads_the_changes_again() {
    let tb = Testbed::start_with_limits(&trio(), UNLIMITED);
    let cfg = config(&tb);
    tb.ok(&cfg, &["sync"]);

    // Ada takes Alan's mail (so his userName): the app refuses the rename, the run fails.
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: alan@example.org\n-\nreplace: title\ntitle: Countess\n");
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");

    // The cookie did not move: the same entry is read again, with the fix on top.
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: countess@example.org\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
    assert_eq!(
        tb.scim_user("countess@example.org").unwrap()["title"],
        "Countess",
        "the first change was not lost"
    );
    assert!(
        tb.scim_user("ada@example.org").is_none(),
        "renamed, not duplicated"
    );

    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 0 removed");
}

#[test]
fn a_deletion_before_a_slapd_restart_is_still_seen_through_the_present_phase() {
    let tb = Testbed::start_with_limits(&trio(), UNLIMITED);
    let cfg = config(&tb);
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify("dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: delete\n");
    tb.restart_slapd();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 1 removed");
    assert!(!active(&tb, "grace@example.org"), "suspended");
    assert!(
        active(&tb, "ada@example.org") && active(&tb, "alan@example.org"),
        "the present stay"
    );
}

#[test]
fn a_size_limited_sync_account_fails_the_read_with_the_fix() {
    let tb = Testbed::start(&people(600));
    let cfg = config(&tb);
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("syncrepl reads are not paged") && err.contains("size=unlimited"),
        "{err}"
    );
    assert!(tb.scim_users().is_empty(), "nothing written");
}

#[test]
fn usn_tracking_against_a_directory_that_is_not_active_directory_fails_clearly() {
    let tb = Testbed::start(&trio());
    let source = format!(
        "{}  incremental: usn\n  anchor: objectGUID\n",
        tb.base_source()
    );
    let cfg = tb.config_with(&source, "");
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no highestCommittedUSN in the rootDSE") && err.contains("Active Directory"),
        "{err}"
    );
    assert!(tb.scim_users().is_empty());
}
