//! One incremental suite, run against every directory server that speaks content sync
//! (RFC 4533): OpenLDAP's syncprov and 389 Directory Server's Content Synchronization
//! plugin, each a real server started by the harness. Servers bend the protocol apart
//! (389-ds ends every refresh from a cookie in a present phase that names nobody, sends a
//! changed entry without its operational attributes, names entries by a UUID derived from
//! `nsUniqueId`); the lifecycle must come out the same on each, and an incremental read
//! must never suspend anyone on its own. Active Directory's USN reads have their suite in
//! tests/ad.rs (Samba's DC).

mod common;

use std::path::PathBuf;

use common::proxy::LdapCut;
use common::{people, person_ldif, retarget, trio, wait_exit, DirectoryServer, Testbed};

/// The config each server's suite runs: syncrepl, and the server's own lock convention
/// (389-ds and FreeIPA: `nsAccountLock`, operational; the slapd testbed: `employeeType`).
fn config(tb: &Testbed, extra: &str) -> PathBuf {
    let source = tb.base_source().replace(
        "  disabled: \"(employeeType=disabled)\"\n",
        &format!(
            "  disabled: \"{}\"\n  incremental: syncrepl\n",
            lock_rule(tb)
        ),
    );
    tb.config_with(&source, extra)
}

fn lock_rule(tb: &Testbed) -> &'static str {
    match tb.server {
        DirectoryServer::Slapd => "(employeeType=disabled)",
        DirectoryServer::Ds389 => "(nsAccountLock=TRUE)",
    }
}

/// The LDIF that locks (`true`) or unlocks someone, as each server's admins do it.
fn lock(tb: &Testbed, uid: &str, locked: bool) -> String {
    let dn = format!("dn: uid={uid},ou=people,dc=example,dc=org\nchangetype: modify\n");
    match (tb.server, locked) {
        (DirectoryServer::Slapd, true) => {
            format!("{dn}replace: employeeType\nemployeeType: disabled\n")
        }
        (DirectoryServer::Slapd, false) => {
            format!("{dn}replace: employeeType\nemployeeType: staff\n")
        }
        // FreeIPA writes TRUE; `dsidm account lock` writes true: both match.
        (DirectoryServer::Ds389, true) => {
            format!("{dn}replace: nsAccountLock\nnsAccountLock: TRUE\n")
        }
        (DirectoryServer::Ds389, false) => format!("{dn}delete: nsAccountLock\n"),
    }
}

fn active(tb: &Testbed, user_name: &str) -> bool {
    tb.scim_user(user_name)
        .unwrap_or_else(|| panic!("{user_name} has no account"))["active"]
        .as_bool()
        .unwrap_or(true)
}

fn add(uid: &str, title: &str) -> String {
    let entry = person_ldif(uid, "New", "Hire", title, "ou=people");
    let (dn, rest) = entry.split_once('\n').unwrap();
    format!("{dn}\nchangetype: add\n{rest}")
}

/// Ada, Alan, Grace and `n` more people, user0000...
fn staff(n: usize) -> String {
    trio() + &people(n)
}

macro_rules! on_every_server {
    ($($name:ident),* $(,)?) => {
        mod slapd {
            $(#[test]
            fn $name() {
                super::$name(super::DirectoryServer::Slapd);
            })*
        }
        mod ds389 {
            $(#[test]
            fn $name() {
                super::$name(super::DirectoryServer::Ds389);
            })*
        }
    };
}

on_every_server!(
    a_quiet_cycle_a_change_a_newcomer_and_a_rename_flow_through_without_a_suspension,
    a_deletion_and_a_move_out_of_the_base_are_confirmed_then_suspended,
    a_lock_suspends_and_an_unlock_reactivates,
    an_anchor_other_than_entry_uuid_still_matches_deletions_by_sync_uuid,
    many_removals_at_once_are_confirmed_by_a_full_read_first,
    a_cookie_the_server_no_longer_knows_means_one_full_read,
    a_server_restarted_mid_refresh_fails_the_run_and_the_next_converges,
);

fn a_quiet_cycle_a_change_a_newcomer_and_a_rename_flow_through_without_a_suspension(
    server: DirectoryServer,
) {
    let tb = Testbed::start_on(server, &trio());
    let cfg = config(&tb, "");
    // `check --connect` tries one refresh from a fresh cookie before any cycle does.
    let check = tb.ok(&cfg, &["check", "--connect"]);
    assert!(
        check.contains(
            "syncrepl: an incremental read from a fresh cookie works (0 changed since, 0 removed)"
        ),
        "{check}"
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.last_read(&cfg),
        "full read (first read: no sync cookie yet)"
    );
    assert_eq!(tb.scim_users().len(), 3);

    // Nothing changed: nothing read, nobody suspended (389-ds answers this refresh with a
    // present phase that names nobody).
    let writes = tb.scim_writes();
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("no changes"), "{out}");
    assert_eq!(tb.scim_writes(), writes);
    let plan = tb.ok(&cfg, &["plan", "--detailed-exitcode"]);
    assert!(!plan.contains("suspend"), "{plan}");

    // A change (389-ds sends it without entryUUID: read again by DN).
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Countess\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
    assert_eq!(
        tb.scim_user("ada@example.org").unwrap()["title"],
        "Countess"
    );

    // A newcomer.
    tb.ldapmodify(&add("newbie", "Intern"));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
    assert_eq!(
        tb.scim_user("newbie@example.org").unwrap()["title"],
        "Intern"
    );

    // A rename inside the base: the same person, not a leaver and a newcomer.
    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=aturing\ndeleteoldrdn: 0\n");
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
    assert!(active(&tb, "alan@example.org"), "a rename suspends nobody");
    assert_eq!(
        tb.scim_writes(),
        writes,
        "a rename of an unmapped DN writes nothing"
    );
    assert!(["ada", "grace", "newbie"]
        .iter()
        .all(|u| active(&tb, &format!("{u}@example.org"))));
}

fn a_deletion_and_a_move_out_of_the_base_are_confirmed_then_suspended(server: DirectoryServer) {
    let tb = Testbed::start_on(server, &trio());
    let cfg = config(&tb, "safety: { min_source_ratio: 0.1 }\n");
    tb.ok(&cfg, &["sync"]);

    tb.ldapmodify("dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: delete\n");
    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modrdn\nnewrdn: uid=alan\ndeleteoldrdn: 1\nnewsuperior: ou=alumni,dc=example,dc=org\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 2 removed");
    assert!(!active(&tb, "grace@example.org"), "deleted: suspended");
    assert!(
        !active(&tb, "alan@example.org"),
        "moved out of the base: suspended"
    );
    assert!(active(&tb, "ada@example.org"));

    // The leavers stay gone on the next cycles, and the journal agrees with a full read.
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync", "--full"]);
    assert_eq!(
        tb.scim_writes(),
        writes,
        "a full read finds nothing the increments missed"
    );
}

fn an_anchor_other_than_entry_uuid_still_matches_deletions_by_sync_uuid(server: DirectoryServer) {
    let tb = Testbed::start_on(server, &trio());
    let cfg = config(&tb, "safety: { min_source_ratio: 0.1 }\n");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "  incremental: syncrepl\n",
            "  incremental: syncrepl\n  anchor: mail\n",
        ),
    )
    .unwrap();
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 0 removed");

    tb.ldapmodify("dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: delete\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 1 removed");
    assert!(!active(&tb, "grace@example.org"), "deleted: suspended");
    assert!(active(&tb, "ada@example.org") && active(&tb, "alan@example.org"));
}

fn a_lock_suspends_and_an_unlock_reactivates(server: DirectoryServer) {
    let tb = Testbed::start_on(server, &trio());
    let cfg = config(&tb, "");
    tb.ok(&cfg, &["sync"]);

    tb.ldapmodify(&lock(&tb, "ada", true));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
    assert!(!active(&tb, "ada@example.org"), "locked: suspended");

    // A locked person who changes still looks locked (389-ds sends the change without
    // nsAccountLock).
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Countess\n");
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert!(!active(&tb, "ada@example.org"), "still locked");
    assert!(tb.scim_writes() - writes <= 1, "at most the title");

    tb.ldapmodify(&lock(&tb, "ada", false));
    tb.ok(&cfg, &["sync"]);
    assert!(active(&tb, "ada@example.org"), "unlocked: reactivated");
    assert!(active(&tb, "alan@example.org") && active(&tb, "grace@example.org"));
}

fn many_removals_at_once_are_confirmed_by_a_full_read_first(server: DirectoryServer) {
    let tb = Testbed::start_on(server, &staff(17));
    let cfg = config(
        &tb,
        "safety: { min_source_ratio: 0.1, max_deprovisions: 5 }\n",
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 20);

    // Twelve deletions reported at once: more than idsync confirms one by one.
    let ldif: String = (0..12)
        .map(|i| format!("dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: delete\n\n"))
        .collect();
    tb.ldapmodify(&ldif);
    tb.sync_storm_read_in_full_and_held(&cfg, 12);
    assert!(tb.scim_users().iter().all(|u| u["active"] != false));
}

fn a_cookie_the_server_no_longer_knows_means_one_full_read(server: DirectoryServer) {
    let tb = Testbed::start_on(server, &trio());
    let cfg = config(&tb, "");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Countess\n");

    // The remembered cookie, replaced by one this server never issued.
    let journal = rusqlite::Connection::open(tb.state_dir().join("journal.sqlite3")).unwrap();
    let stale: &[u8] = match server {
        DirectoryServer::Slapd => b"rid=000,csn=20000101000000.000000Z#000000#000#000000",
        DirectoryServer::Ds389 => b"localhost:1#cn=nobody:dc=example,dc=org:(objectClass=*)#999999",
    };
    let hex: String = stale.iter().map(|b| format!("{b:02x}")).collect();
    let (source, cursor): (String, String) = journal
        .query_row("SELECT source, value FROM cursors", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let mut cursor: serde_json::Value = serde_json::from_str(&cursor).unwrap();
    cursor["cookie"] = hex.into();
    journal
        .execute(
            "UPDATE cursors SET value = ?1 WHERE source = ?2",
            rusqlite::params![cursor.to_string(), source],
        )
        .unwrap();
    drop(journal);

    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("ada@example.org").unwrap()["title"],
        "Countess"
    );
    assert!(
        ["ada", "alan", "grace"]
            .iter()
            .all(|u| active(&tb, &format!("{u}@example.org"))),
        "nobody suspended"
    );
    // From the fresh cookie on, cycles are incremental again.
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 0 changed, 0 removed");
}

fn a_server_restarted_mid_refresh_fails_the_run_and_the_next_converges(server: DirectoryServer) {
    let tb = Testbed::start_on(server, &staff(200));
    let cfg = config(&tb, "");
    tb.ok(&cfg, &["sync"]);

    // Everyone changes; the refresh is cut a part of the way through and the server
    // restarted under it.
    let ldif: String = (0..200)
        .map(|i| format!("dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Staff\n\n"))
        .collect();
    tb.ldapmodify(&ldif);
    let cut = LdapCut::pausing(tb.ldap_port, 20_000);
    let through = tb.dir.path().join("through.yaml");
    std::fs::copy(&cfg, &through).unwrap();
    retarget(&through, &tb.ldap_url(), &cut.url());
    let writes = tb.scim_writes();
    let mut child = tb.spawn(&through, &["sync"]);
    cut.wait_paused(60);
    tb.restart_slapd();
    cut.release();
    wait_exit(&mut child, 120);
    let out = child.wait_with_output().unwrap();
    // The cut may fall in the cycle's first question (a refresh stopped after 100
    // changes), which the cycle answers by reading again on a new connection, or in the
    // read itself, which fails the run before any write. Never a partial population.
    match out.status.code() {
        Some(0) => assert_eq!(
            tb.scim_user("user0199@example.org").unwrap()["title"],
            "Staff"
        ),
        Some(1) => assert_eq!(tb.scim_writes(), writes, "a cut refresh writes nothing"),
        other => panic!("exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
    }
    assert!(
        tb.scim_users().iter().all(|u| u["active"] != false),
        "nobody suspended"
    );

    tb.ok(&cfg, &["sync"]);
    let users = tb.scim_users();
    assert_eq!(users.len(), 203);
    assert!(
        users.iter().all(|u| u["active"] != false),
        "nobody suspended"
    );
    assert_eq!(
        tb.scim_user("user0199@example.org").unwrap()["title"],
        "Staff"
    );
}

#[test]
fn check_connect_names_the_content_sync_settings_389_ds_needs_where_the_bind_can_read_them() {
    let tb = Testbed::start_389(&trio());
    let cfg = config(&tb, "");
    let check = tb.ok(&cfg, &["check", "--connect"]);
    assert!(check.contains("this bind cannot read cn=config"), "{check}");

    // As the Directory Manager, who may read cn=config.
    common::write_secret(&tb.dir.path().join("manager.secret"), common::ADMIN_PW);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let manager = tb.dir.path().join("manager.yaml");
    std::fs::write(
        &manager,
        text.replace(common::SYNC_DN, common::DS389_MANAGER)
            .replace("ldap.secret", "manager.secret"),
    )
    .unwrap();
    let check = tb.ok(&manager, &["check", "--connect"]);
    assert!(
        check
            .contains("Retro Changelog (nsuniqueid:targetUniqueId) and Content Synchronization on"),
        "{check}"
    );
    // Without nsuniqueid:targetUniqueId a refresh from a cookie returns nothing.
    tb.ldapmodify(
        "dn: cn=Retro Changelog Plugin,cn=plugins,cn=config\nchangetype: modify\ndelete: nsslapd-attribute\n",
    );
    let check = tb.ok(&manager, &["check", "--connect"]);
    assert!(
        check.contains(
            "warning: 389 Directory Server: add `nsslapd-attribute: nsuniqueid:targetUniqueId`"
        ),
        "{check}"
    );
}
