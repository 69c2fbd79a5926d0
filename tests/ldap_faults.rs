//! The directory misbehaves (real slapd, sometimes behind a TCP proxy that pauses or rewrites
//! its answers): a server stopped mid-read, time and size limit results, a referral, an entry
//! without its anchor, invalid UTF-8, and hostile values. None of it may suspend anyone: the
//! run fails before any write, or the one odd person is left alone.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::proxy::{Fault, HttpFaults, LdapCut, Rule};
use common::*;
use serde_json::Value;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// How many app accounts are active.
fn active(tb: &Testbed) -> usize {
    tb.scim_users()
        .iter()
        .filter(|u| u["active"] != Value::Bool(false))
        .count()
}

/// The config reading the directory through `url` instead of slapd itself.
fn via(tb: &Testbed, url: &str) -> PathBuf {
    let cfg = tb.config("");
    retarget(&cfg, &tb.ldap_url(), url);
    cfg
}

#[test]
fn slapd_stopped_mid_read_fails_the_run_and_suspends_nobody() {
    let tb = Testbed::start(&people(300));
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(active(&tb), 300);

    // About a third of the entries pass, then slapd is stopped while idsync reads on.
    let cut = LdapCut::pausing(tb.ldap_port, 40_000);
    let through = via(&tb, &cut.url());
    let mut child = tb.spawn(&through, &["sync"]);
    cut.wait_paused(60);
    tb.stop_slapd();
    cut.release();
    wait_exit(&mut child, 120);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("directory"), "{err}");
    assert_eq!(active(&tb), 300, "nobody was suspended");

    tb.restart_slapd();
    let again = tb.ok(&cfg, &["sync"]);
    assert!(again.contains("no changes"), "{again}");
    assert_eq!(active(&tb), 300);
}

#[test]
fn a_time_or_size_limit_result_fails_the_read_instead_of_returning_a_short_list() {
    let tb = Testbed::start(&trio());
    tb.ok(&tb.config(""), &["sync"]);
    for (rc, message) in [(3, "time limit exceeded"), (4, "size limit exceeded")] {
        let cut = LdapCut::result_code(tb.ldap_port, rc);
        tb.fails(&via(&tb, &cut.url()), &["sync"], &[message]);
        assert_eq!(active(&tb), 3);
    }
}

#[test]
fn a_referral_inside_the_search_base_is_skipped_and_named_or_followed_when_asked() {
    let remote = Testbed::start(&format!(
        "dn: ou=remote,ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: remote\n\n{}",
        person_ldif("rita", "Rita", "Levi", "Biologist", "ou=remote,ou=people")
    ));
    let target = format!(
        "ldap://127.0.0.1:{}/ou=remote,ou=people,dc=example,dc=org",
        remote.ldap_port
    );
    let referral = format!("dn: ou=remote,ou=people,dc=example,dc=org\nobjectClass: referral\nobjectClass: extensibleObject\nou: remote\nref: {target}\n\n");
    let tb = Testbed::start(&format!("{}{referral}", trio()));

    // A continuation reference is not an error: what this server holds is read, and the
    // reference is named.
    let cfg = tb.config("");
    let check = tb.ok(&cfg, &["check", "--connect"]);
    assert!(check.contains("3 people in scope"), "{check}");
    assert!(
        check.contains("1 search reference(s)") && check.contains(&target),
        "{check}"
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 3);

    // Followed when asked, with the same bind.
    let follow = format!("{}  follow_referrals: true\n", tb.base_source());
    let cfg = tb.config_with(&follow, "");
    tb.ok(&cfg, &["sync"]);
    assert!(tb.scim_user("rita@example.org").is_some());
    assert_eq!(tb.scim_users().len(), 4);

    // A referral *result* for the base itself: the entries are elsewhere; the read fails.
    let source = tb.base_source().replace(
        "base_dn: ou=people,dc=example,dc=org",
        "base_dn: ou=remote,ou=people,dc=example,dc=org",
    );
    tb.fails(
        &tb.config_with(&source, ""),
        &["sync"],
        &["refers the base itself"],
    );
}

#[test]
fn an_entry_that_loses_its_anchor_fails_the_read_and_nobody_is_suspended() {
    let ldif = trio()
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .enumerate()
        .map(|(i, e)| format!("{e}\nemployeeNumber: E{i}\n\n"))
        .collect::<String>();
    let tb = Testbed::start(&ldif);
    let source = format!("{}  anchor: employeeNumber\n", tb.base_source());
    let cfg = tb.config_with(&source, "");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify(
        "dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\ndelete: employeeNumber\n",
    );
    tb.fails(
        &cfg,
        &["sync"],
        &["entry uid=alan,ou=people,dc=example,dc=org has no employeeNumber"],
    );
    assert_eq!(active(&tb), 3);
}

/// `mapping` with `nickName` from the binary-syntax `audio` attribute (slapd stores any bytes
/// there, as AD does in string attributes).
fn with_nickname(tb: &Testbed, cfg: &Path) {
    let text = std::fs::read_to_string(cfg).unwrap();
    assert!(text.contains("  title: \"{title}\"\n"));
    std::fs::write(
        cfg,
        text.replace(
            "  title: \"{title}\"\n",
            "  title: \"{title}\"\n  nickName: \"{audio}\"\n",
        ),
    )
    .unwrap();
    let _ = tb;
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn invalid_utf8_in_a_mapped_attribute_leaves_that_person_alone_and_syncs_the_rest() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    with_nickname(&tb, &cfg);
    tb.ok(&cfg, &["sync"]);
    // Ada's nickName turns into bytes that are not UTF-8; Alan's title changes.
    tb.ldapmodify(&format!(
        "dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: audio\naudio:: {}\n-\nreplace: title\ntitle: Countess\n",
        base64(b"caf\xe9")
    ));
    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Codebreaker\n");
    let out = tb.idsync(&cfg, &["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        said.contains("attribute audio is not valid UTF-8")
            && said.contains("uid=ada,ou=people,dc=example,dc=org"),
        "{said}"
    );
    let ada = tb.scim_user("ada@example.org").unwrap();
    assert_eq!(ada["title"], "Analyst", "ada is left as she was");
    assert_eq!(ada["active"], true);
    assert_eq!(
        tb.scim_user("alan@example.org").unwrap()["title"],
        "Codebreaker"
    );
}

#[test]
fn hostile_values_and_dn_specials_reach_the_app_verbatim_and_filters_stay_filters() {
    let odd_dn = r#"cn=Smith\, John \"JJ\" \2B\3C\3E\3B\5C,ou=people,dc=example,dc=org"#;
    let odd_cn = r#"Smith, John "JJ" +<>;\"#;
    let odd_mail = r#"o"brien\x@example.org"#;
    let odd_title = r#"a\b"c*)(uid=*)"#;
    let smith = format!(
        "dn: {odd_dn}\nobjectClass: inetOrgPerson\ncn: {odd_cn}\nsn: Smith\ngivenName: John\nuid: x*)(uid=*\nmail: {odd_mail}\ntitle: {odd_title}\naudio:: {}\n\n",
        base64(b"nul\0byte")
    );
    // Eve's description is literally `*)(uid=*`: the disabled rule matches it through an
    // escaped filter, and matches nobody else.
    let eve = "dn: uid=eve,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\ncn: Eve\nsn: Eve\nuid: eve\nmail: eve@example.org\ndescription: *)(uid=*\n\n";
    let group = format!(
        "dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\ndn: cn=odd\\, group,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: odd, group\nmember: {odd_dn}\nmember: uid=ada,ou=people,dc=example,dc=org\n\n"
    );
    let tb = Testbed::start(&format!("{}{smith}{eve}{group}", one()));
    let p = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let source = tb.base_source().replace(
        "disabled: \"(employeeType=disabled)\"",
        r#"disabled: '(|(employeeType=disabled)(description=\2a\29\28uid=\2a))'"#,
    );
    let cfg = tb.write_config(
        &source,
        "  timeout: 2s\n",
        "groups:\n  base_dn: ou=groups,dc=example,dc=org\n",
    );
    with_nickname(&tb, &cfg);
    retarget(&cfg, &tb.scim_url(), &p.scim_url());
    // Smith's create hangs after the app made the account: finding it again goes through a
    // SCIM filter holding his quote and backslash.
    p.add(
        Rule::new(
            "POST",
            "/Users",
            Fault::ForwardThenHang(Duration::from_secs(4)),
        )
        .body("brien"),
    );
    let out = tb.ok(&cfg, &["sync"]);
    assert_eq!(p.pending(), 0, "{out}");

    let names: Vec<String> = tb
        .scim_users()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "eve is disabled, nobody doubled: {names:?}");
    let s = tb.scim_user(odd_mail).expect("smith in the app");
    assert_eq!(s["displayName"], odd_cn);
    assert_eq!(s["title"], odd_title);
    assert_eq!(s["nickName"], "nul\0byte");
    assert!(tb.scim_user("eve@example.org").is_none());
    let g = tb.scim_group("odd, group").expect("the group");
    let mut members = tb.member_names(&g);
    members.sort();
    assert_eq!(members, ["ada@example.org", odd_mail]);
    let again = tb.ok(&cfg, &["sync"]);
    assert!(again.contains("no changes"), "{again}");
}
