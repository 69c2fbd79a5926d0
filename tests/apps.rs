//! Many apps from one directory read, against one real slapd and three real scim2-server
//! instances: each app scoped by its own directory group (one through a nested group), each
//! with its own mapping, state and outcome.

mod common;

use common::proxy::LdapCut;
use common::*;

const GROUPS_OU: &str =
    "dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\n";

fn dn(uid: &str) -> String {
    format!("uid={uid},ou=people,dc=example,dc=org")
}

fn group(cn: &str, members: &[String]) -> String {
    let members: String = members.iter().map(|m| format!("member: {m}\n")).collect();
    format!(
        "dn: cn={cn},ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: {cn}\n{members}\n"
    )
}

/// Ada, Alan, Grace. miro-users = {ada, cn=design} with design = {grace} (nested);
/// slack-users = {ada, alan}; box-users = {alan, grace}.
fn directory() -> String {
    format!(
        "{}{GROUPS_OU}{}{}{}{}",
        trio(),
        group("design", &[dn("grace")]),
        group(
            "miro-users",
            &[dn("ada"), "cn=design,ou=groups,dc=example,dc=org".into()]
        ),
        group("slack-users", &[dn("ada"), dn("alan")]),
        group("box-users", &[dn("alan"), dn("grace")]),
    )
}

struct Apps {
    tb: Testbed,
    miro: ScimServer,
    slack: ScimServer,
    boxed: ScimServer,
}

impl Apps {
    fn start() -> Apps {
        Apps {
            tb: Testbed::start(&directory()),
            miro: ScimServer::start(),
            slack: ScimServer::start(),
            boxed: ScimServer::start(),
        }
    }

    /// Three apps over the standard mapping; slack drops `title`; `ldap_url` is where the
    /// directory is read (slapd, or a recording proxy in front of it).
    fn config(&self, ldap_url: &str) -> std::path::PathBuf {
        let source = self.tb.base_source().replace(&self.tb.ldap_url(), ldap_url);
        let target = |url: String| {
            format!("    target: {{ kind: scim, url: {url}, token_file: scim.token }}\n")
        };
        let apps = format!(
            "groups:\n  base_dn: ou=groups,dc=example,dc=org\napps:\n  miro:\n{}    groups: ~\n    scope: {{ groups: [miro-users] }}\n  slack:\n{}    groups: ~\n    scope: {{ groups: [slack-users] }}\n    mapping: {{ title: ~ }}\n  box:\n{}    groups: ~\n    scope: {{ groups: [\"cn=box-users,ou=groups,dc=example,dc=org\"], nested: false }}\n",
            target(self.miro.url()),
            target(self.slack.url()),
            target(self.boxed.url()),
        );
        let path = self.tb.write_config(&source, "", &apps);
        // The single `target:` of the standard config is no app of these three.
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find("target:\n").unwrap();
        let end = text.find("match:").unwrap();
        std::fs::write(&path, format!("{}{}", &text[..start], &text[end..])).unwrap();
        path
    }
}

fn active(names: &[&str]) -> Vec<(String, bool)> {
    names
        .iter()
        .map(|n| (format!("{n}@example.org"), true))
        .collect()
}

/// LDAP SearchRequests (BER application tag 3) in what a client sent.
fn searches(sent: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    // Each LDAPMessage: SEQUENCE (0x30) { messageID INTEGER, protocolOp [APPLICATION n] ...}
    while at + 2 <= sent.len() && sent[at] == 0x30 {
        let (len, head) = ber_len(&sent[at + 1..]);
        let body = at + 1 + head;
        let id_len = sent.get(body + 1).copied().unwrap_or(0) as usize;
        if sent.get(body + 2 + id_len) == Some(&0x63) {
            n += 1;
        }
        at = body + len;
    }
    n
}

/// A BER length: (value, bytes it took).
fn ber_len(b: &[u8]) -> (usize, usize) {
    match b.first() {
        Some(&l) if l < 0x80 => (l as usize, 1),
        Some(&l) => {
            let k = (l & 0x7f) as usize;
            let v = b[1..=k]
                .iter()
                .fold(0usize, |acc, x| (acc << 8) | *x as usize);
            (v, 1 + k)
        }
        None => (0, 1),
    }
}

#[test]
fn three_apps_get_their_own_scope_and_mapping_from_one_directory_read() {
    let apps = Apps::start();
    let tb = &apps.tb;
    let cut = LdapCut::recording(tb.ldap_port);
    let cfg = apps.config(&cut.url());
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(
        plan.contains("== app miro ==") && plan.contains("== app box =="),
        "{plan}"
    );
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("app miro: run"), "{out}");
    assert_eq!(
        apps.miro.users(),
        active(&["ada", "grace"]),
        "nested design counts"
    );
    assert_eq!(apps.slack.users(), active(&["ada", "alan"]));
    assert_eq!(apps.boxed.users(), active(&["alan", "grace"]));
    // Different mappings: slack has no title, miro has.
    let title = |server: &ScimServer, who: &str| -> Option<String> {
        let page: serde_json::Value = reqwest::blocking::Client::new()
            .get(format!(
                "{}/Users?filter=userName eq \"{who}\"",
                server.url()
            ))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        page["Resources"][0]["title"].as_str().map(str::to_string)
    };
    assert_eq!(
        title(&apps.miro, "ada@example.org").as_deref(),
        Some("Analyst")
    );
    assert_eq!(title(&apps.slack, "ada@example.org"), None);
    // One cycle searches the directory as often for three apps as a one-app config does.
    let three = searches(&cut.sent_by_client());
    assert!(three >= 2, "people and groups read: {three}");
    let single = tb.write_config(
        &tb.base_source().replace(&tb.ldap_url(), &cut.url()),
        "",
        "groups:\n  base_dn: ou=groups,dc=example,dc=org\nscope: { groups: [slack-users] }\n",
    );
    let before = searches(&cut.sent_by_client());
    tb.ok(&single, &["plan"]);
    let one = searches(&cut.sent_by_client()) - before;
    assert_eq!(
        three,
        2 * one,
        "plan + sync of three apps = plan + sync of one: {three} vs {one}"
    );
    // runs shows which app each run was for.
    let runs = tb.ok(&cfg, &["runs"]);
    assert!(runs.contains("APP") && runs.contains("slack"), "{runs}");
    let only = tb.ok(&cfg, &["runs", "--app", "box", "--format", "json"]);
    let only: serde_json::Value = serde_json::from_str(&only).unwrap();
    assert!(only.as_array().unwrap().iter().all(|r| r["app"] == "box"));
}

#[test]
fn leaving_one_apps_group_suspends_there_only_and_coming_back_reactivates() {
    let apps = Apps::start();
    let tb = &apps.tb;
    let cfg = apps.config(&tb.ldap_url());
    tb.ok(&cfg, &["sync"]);
    let (miro, boxed) = (apps.miro.users(), apps.boxed.users());
    tb.ldapmodify(&format!(
        "dn: cn=slack-users,ou=groups,dc=example,dc=org\nchangetype: modify\ndelete: member\nmember: {}\n",
        dn("alan")
    ));
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("app slack: run"), "{out}");
    assert_eq!(
        apps.slack.users(),
        vec![
            ("ada@example.org".into(), true),
            ("alan@example.org".into(), false)
        ]
    );
    let show = tb.ok(&cfg, &["show", "last", "--app", "slack"]);
    assert!(
        show.contains("out of scope for slack: no longer in group slack-users"),
        "{show}"
    );
    assert_eq!(
        (apps.miro.users(), apps.boxed.users()),
        (miro.clone(), boxed.clone())
    );
    let quiet = |app: &str| {
        let s = tb.ok(&cfg, &["show", "last", "--app", app, "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v["actions"].as_array().unwrap().len()
    };
    assert_eq!(
        (quiet("miro"), quiet("box")),
        (0, 0),
        "the other apps see no action"
    );
    tb.ldapmodify(&format!(
        "dn: cn=slack-users,ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\nmember: {}\n",
        dn("alan")
    ));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(apps.slack.users(), active(&["ada", "alan"]), "reactivated");
    assert_eq!((apps.miro.users(), apps.boxed.users()), (miro, boxed));
}

#[test]
fn one_app_down_fails_alone_and_catches_up_without_duplicates() {
    let mut apps = Apps::start();
    let cfg = apps.config(&apps.tb.ldap_url());
    apps.boxed.stop();
    let out = apps.tb.idsync(&cfg, &["sync"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("app box:") && stderr.contains("cannot reach"),
        "{stderr}"
    );
    assert_eq!(apps.miro.users(), active(&["ada", "grace"]));
    assert_eq!(apps.slack.users(), active(&["ada", "alan"]));
    let runs = apps.tb.ok(&cfg, &["runs", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
    let outcome = |app: &str| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["app"] == app)
            .map(|r| r["outcome"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(outcome("box").as_deref(), Some("failed"));
    assert_eq!(outcome("miro").as_deref(), Some("ok"));
    apps.boxed.restart();
    apps.tb.ok(&cfg, &["sync"]);
    apps.tb.ok(&cfg, &["sync"]);
    assert_eq!(
        apps.boxed.users(),
        active(&["alan", "grace"]),
        "no duplicates"
    );
    assert_eq!(apps.miro.users(), active(&["ada", "grace"]));
}

#[test]
fn an_apps_config_names_what_is_wrong_under_the_app() {
    let apps = Apps::start();
    let cfg = apps.config(&apps.tb.ldap_url());
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("  box:\n", "  box:\n    schedule: \"0 * * * * *\"\n")
            .replace("nested: false", "nested: false, filter: \"(title=\""),
    )
    .unwrap();
    let out = apps.tb.idsync(&cfg, &["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("apps.box.schedule: not a per-app key"),
        "{err}"
    );
}
