//! Active Directory, live: Samba's AD DC on loopback (`common::ad`), read from the domain
//! root as AD admins configure it, over LDAPS with the DC's CA. The recorded-reply unit tests
//! of `source::usn` keep the corners a live DC cannot be made to show (another DC, a restore).

mod common;

use base64::Engine;
use common::ad::{self, dc, person, person_dn, DISABLED, DOMAIN, ENABLED};
use common::*;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Microsoft's text form of a GUID: the first three groups little-endian.
fn guid(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        b[10..]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

fn uac(dn: &str, value: u32) {
    dc().modify(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {value}\n"
    ));
}

#[test]
fn a_sync_from_the_domain_root_reads_every_person_with_guid_anchors_and_uac() {
    let dc = dc();
    let (ouname, tag) = ("RootRead", "t-root");
    let mut ldif = ad::ou(ouname);
    for i in 0..120 {
        ldif.push_str(&person(ouname, tag, &format!("root{i}"), "Engineer"));
    }
    dc.add(&ldif);
    let jpeg = idsync::photo::sample_jpeg(48, 48, 900);
    dc.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: thumbnailPhoto\nthumbnailPhoto:: {}\n",
        person_dn(ouname, "root7"),
        base64::engine::general_purpose::STANDARD.encode(&jpeg)
    ));
    let tb = Testbed::start_app_only();
    let cfg = ad::config(
        &tb,
        tag,
        "  photo: thumbnailPhoto\n",
        &format!("  \"{ENTERPRISE}:employeeNumber\": \"{{objectSid}}\"\n"),
    );

    // The domain root answers with continuation references (Configuration, ...): named by
    // check, never a failed read.
    let check = tb.ok(&cfg, &["check", "--connect"]);
    assert!(check.contains("120 people in scope"), "{check}");
    assert!(
        check.contains("search reference(s)")
            && check.contains("CN=Configuration,DC=example,DC=test"),
        "{check}"
    );

    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 120);
    let dn = person_dn(ouname, "root7");
    let want = guid(&dc.binary(&dn, "objectGUID"));
    let root7 = tb.scim_user("root7@example.test").unwrap();
    assert_eq!(root7["externalId"], want.as_str(), "{root7}");
    let sid = root7[ENTERPRISE]["employeeNumber"]
        .as_str()
        .unwrap_or_default();
    assert!(sid.starts_with("S-1-5-21-"), "{root7}");
    assert!(
        root7["photos"]
            .to_string()
            .contains("data:image/jpeg;base64,"),
        "{root7}"
    );

    // Disabled through userAccountControl: suspended; enabled again: reactivated.
    uac(&dn, DISABLED);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_user("root7@example.test").unwrap()["active"], false);
    uac(&dn, ENABLED);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_user("root7@example.test").unwrap()["active"], true);
    let again = tb.ok(&cfg, &["sync"]);
    assert!(again.contains("no changes"), "{again}");
}

#[test]
fn a_group_of_1600_members_is_read_whole_range_by_range() {
    let dc = dc();
    let (ouname, tag) = ("BigGroup", "t-big");
    let mut ldif = ad::ou(ouname);
    for i in 0..1600 {
        ldif.push_str(&person(ouname, tag, &format!("big{i}"), "Staff"));
    }
    ldif.push_str(&format!(
        "dn: CN=everyone,OU={ouname},{DOMAIN}\nobjectClass: group\nsAMAccountName: everyone-big\n"
    ));
    for i in 0..1600 {
        ldif.push_str(&format!(
            "member: {}\n",
            person_dn(ouname, &format!("big{i}"))
        ));
    }
    dc.add(&ldif);
    let tb = Testbed::start_app_only();
    let cfg = ad::config(
        &tb,
        tag,
        "",
        &format!("groups:\n  base_dn: OU={ouname},{DOMAIN}\n"),
    );
    let plan = tb.ok(&cfg, &["plan"]);
    let line = plan
        .lines()
        .find(|l| l.contains("members: +"))
        .unwrap_or_else(|| panic!("no group members in the plan: {plan}"));
    assert_eq!(line.matches(" +").count(), 1600, "{}", &line[..200]);
    assert!(line.contains("+big1599@example.test"));
}

#[test]
fn usn_reads_on_the_live_dc_see_changes_additions_deletions_and_moves() {
    let dc = dc();
    let tag = "t-usn";
    let mut ldif = ad::ou("UsnIn");
    ldif.push_str(&ad::ou("UsnOut"));
    for i in 0..5 {
        ldif.push_str(&person("UsnIn", tag, &format!("usn{i}"), "Analyst"));
    }
    dc.add(&ldif);
    let tb = Testbed::start_app_only();
    let cfg = ad::config(&tb, tag, "  incremental: usn\n", "");
    // The base is the OU, so that a move out of it can be seen; the USN reads still search
    // the whole domain (and meet its references).
    retarget(
        &cfg,
        &format!("base_dn: {DOMAIN}"),
        &format!("base_dn: OU=UsnIn,{DOMAIN}"),
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 5);
    assert!(
        tb.last_read(&cfg).contains("full read"),
        "{}",
        tb.last_read(&cfg)
    );

    dc.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: title\ntitle: Lead Analyst\n",
        person_dn("UsnIn", "usn0")
    ));
    dc.add(&person("UsnIn", tag, "usn5", "Analyst"));
    dc.modify(&format!(
        "dn: {}\nchangetype: delete\n",
        person_dn("UsnIn", "usn1")
    ));
    dc.modify(&format!(
        "dn: {}\nchangetype: modrdn\nnewrdn: CN=usn2\ndeleteoldrdn: 1\nnewsuperior: OU=UsnOut,{DOMAIN}\n",
        person_dn("UsnIn", "usn2")
    ));
    tb.ok(&cfg, &["sync"]);
    let read = tb.last_read(&cfg);
    assert!(read.contains("incremental"), "{read}");
    assert_eq!(
        tb.scim_user("usn0@example.test").unwrap()["title"],
        "Lead Analyst"
    );
    assert_eq!(tb.scim_user("usn5@example.test").unwrap()["active"], true);
    assert_eq!(
        tb.scim_user("usn1@example.test").unwrap()["active"],
        false,
        "deleted: tombstone"
    );
    assert_eq!(
        tb.scim_user("usn2@example.test").unwrap()["active"],
        false,
        "moved out of the base"
    );
    assert_eq!(tb.scim_user("usn3@example.test").unwrap()["active"], true);

    // A quiet cycle reads no person.
    let quiet = tb.ok(&cfg, &["sync"]);
    assert!(quiet.contains("no changes"), "{quiet}");
    let read = tb.last_read(&cfg);
    assert!(
        read.contains("incremental") && read.contains(" 0 changed"),
        "{read}"
    );

    // Nothing changed since a cycle that planned nothing: no plan is made. Nor when what
    // changed on the DC is not what idsync reads: a person's attribute no mapping uses, a
    // person who has left the base (the DC's USN moves on all the same).
    let planned_nothing = || {
        tb.ok(&cfg, &["sync"]);
        let read = tb.last_app_read(&cfg);
        assert!(read.contains("no plan made"), "{read}");
    };
    planned_nothing();
    dc.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: description\ndescription: on the third floor\n",
        person_dn("UsnIn", "usn3")
    ));
    dc.modify(&format!(
        "dn: CN=usn2,OU=UsnOut,{DOMAIN}\nchangetype: modify\nreplace: title\ntitle: Gone\n"
    ));
    planned_nothing();
    // A change to what idsync reads plans as usual.
    dc.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: title\ntitle: Chief Analyst\n",
        person_dn("UsnIn", "usn3")
    ));
    tb.ok(&cfg, &["sync"]);
    assert!(!tb.last_app_read(&cfg).contains("no plan made"));
    assert_eq!(
        tb.scim_user("usn3@example.test").unwrap()["title"],
        "Chief Analyst"
    );
}

#[test]
fn ldaps_with_the_dcs_ca_works_and_an_untrusted_ca_fails_closed() {
    dc();
    let tb = Testbed::start_app_only();
    let stranger = tb.dir.path().join("stranger");
    tls_certs(&stranger, "");
    let cfg = ad::config_trusting(&tb, "t-none", &stranger.join("ca.pem"), "", "");
    tb.fails(
        &cfg,
        &["sync"],
        &["TLS with the directory", "source.ca_file"],
    );
    let cfg = ad::config(&tb, "t-none", "", "");
    // Right CA: the read works (nobody is tagged, so the empty-read guard stops it, exit 3).
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn usn_removals_and_disables_are_confirmed_and_a_storm_is_read_in_full_first() {
    let dc = dc();
    let tag = "t-storm";
    let mut ldif = ad::ou("UsnStorm");
    for i in 0..14 {
        ldif.push_str(&person("UsnStorm", tag, &format!("storm{i}"), "Analyst"));
    }
    dc.add(&ldif);
    let tb = Testbed::start_app_only();
    let extra = "safety: { min_source_ratio: 0.1, max_deprovisions: 5 }\n";
    let cfg = ad::config(&tb, tag, "  incremental: usn\n", extra);
    retarget(
        &cfg,
        &format!("base_dn: {DOMAIN}"),
        &format!("base_dn: OU=UsnStorm,{DOMAIN}"),
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 14);

    // One disabled: the USN read reports it, a base read of the DN confirms it.
    uac(&person_dn("UsnStorm", "storm0"), DISABLED);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.last_read(&cfg), "incremental read: 1 changed, 0 removed");
    assert_eq!(
        tb.scim_user("storm0@example.test").unwrap()["active"],
        false
    );

    // Twelve deleted at once: more than idsync confirms one by one, so a full read first;
    // what it finds is held by the cap.
    for i in 1..=12 {
        dc.modify(&format!(
            "dn: {}\nchangetype: delete\n",
            person_dn("UsnStorm", &format!("storm{i}"))
        ));
    }
    tb.sync_storm_read_in_full_and_held(&cfg, 12);
    assert_eq!(
        tb.scim_user("storm12@example.test").unwrap()["active"],
        true
    );
}
