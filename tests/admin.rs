//! An admin's first week: the commands say what they did and what to do next, end quietly
//! on a closed pipe, and refuse what they cannot do.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_idsync")
}

#[test]
fn a_report_piped_into_head_ends_quietly() {
    let tb = Testbed::start(&people(60));
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "{} --config {} show last | head -1; echo \"idsync=${{PIPESTATUS[0]}}\" >&2",
                bin(),
                cfg.display()
            ),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // 0 when it wrote everything before head left, 141 (SIGPIPE) when it had not: never 101.
    assert!(
        err.contains("idsync=0") || err.contains("idsync=141"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[test]
fn show_last_is_the_last_sync_and_last_plan_the_last_dry_run() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["plan"]);
    let last: serde_json::Value =
        serde_json::from_str(&tb.ok(&cfg, &["show", "last", "--format", "json"])).unwrap();
    assert_eq!(last["run"]["mode"], "apply", "{last}");
    let plan: serde_json::Value =
        serde_json::from_str(&tb.ok(&cfg, &["show", "last-plan", "--format", "json"])).unwrap();
    assert_eq!(plan["run"]["mode"], "dry-run", "{plan}");
}

#[test]
fn sync_for_a_user_nobody_has_fails_and_says_so() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    tb.fails(
        &cfg,
        &["sync", "--user", "nobody@example.org"],
        &["no person or account named nobody@example.org"],
    );
    // A real person still works.
    let out = tb.ok(&cfg, &["sync", "--user", "ada@example.org"]);
    assert!(out.contains("applied 1"), "{out}");
}

#[test]
fn check_prints_the_next_runs_explains_six_fields_and_refuses_seven() {
    let tb = Testbed::start_app_only();
    let cfg = tb.config("schedule: \"*/15 * * * *\"\n");
    let out = tb.ok(&cfg, &["check"]);
    let next = out
        .lines()
        .find(|l| l.starts_with("next runs: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(next.matches(", ").count(), 2, "{next}");
    assert!(
        next.contains(":00:00")
            || next.contains(":15:00")
            || next.contains(":30:00")
            || next.contains(":45:00"),
        "{next}"
    );

    let cfg = tb.config("schedule: \"*/15 * * * * *\"\n");
    let out = tb.ok(&cfg, &["check"]);
    assert!(out.contains("its first is seconds"), "{out}");

    let cfg = tb.config("schedule: \"0 */15 * * * * 2030\"\n");
    let out = tb.idsync(&cfg, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has 7 fields"));
}

#[test]
fn a_bare_number_of_seconds_is_a_timeout() {
    let tb = Testbed::start_app_only();
    let cfg = tb.write_config(&tb.base_source(), "  timeout: 30\n", "run_deadline: 7200\n");
    tb.ok(&cfg, &["check"]);
}

#[test]
fn the_daemon_says_what_each_run_did_at_its_default_level() {
    let tb = Testbed::start(&people(3));
    let cfg = tb.config("schedule: \"*/2 * * * * *\"\n");
    let log = tb.dir.path().join("daemon.log");
    let mut daemon = Command::new(bin())
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("run 1 ok") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    signal(&daemon, "-TERM");
    assert!(wait_exit(&mut daemon, 30).success());
    assert!(
        text.contains("run 1 ok") && text.contains("applied 3"),
        "{text}"
    );
    assert!(text.matches(" applied").count() >= 3, "{text}");
}

#[test]
fn a_template_typo_that_would_blank_a_field_for_everyone_is_held_and_says_why() {
    let tb = Testbed::start(&people(12));
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    retarget(&cfg, "title: \"{title}\"", "title: \"{tilte}\"");
    let check = tb.ok(&cfg, &["check", "--connect"]);
    assert!(
        check.contains("warning: mapping.title reads {tilte}, which no person read has"),
        "{check}"
    );
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(
        plan.contains("the mapping's template is empty for this person: title"),
        "{plan}"
    );
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_writes(), writes, "the held updates wrote nothing");
    let show = tb.ok(&cfg, &["show", "last"]);
    assert!(
        show.contains("12 accounts would lose their title") && show.contains("max_field_clears"),
        "{show}"
    );
    assert_eq!(
        tb.scim_user("user0000@example.org").unwrap()["title"],
        "Engineer"
    );
    // One person losing a value is not a typo: it goes through.
    retarget(&cfg, "title: \"{tilte}\"", "title: \"{title}\"");
    tb.ldapmodify(
        "dn: uid=user0001,ou=people,dc=example,dc=org\nchangetype: modify\ndelete: title\n",
    );
    tb.ok(&cfg, &["sync"]);
    assert!(tb.scim_user("user0001@example.org").unwrap()["title"].is_null());
}

#[test]
fn journal_only_commands_need_no_secret_and_create_no_journal() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    // The README's systemd credential paths, run by hand without CREDENTIALS_DIRECTORY.
    retarget(
        &cfg,
        "bind_password_file: ldap.secret",
        "bind_password_file: ${CREDENTIALS_DIRECTORY}/ldap",
    );
    retarget(
        &cfg,
        "token_file: scim.token",
        "token_file: ${CREDENTIALS_DIRECTORY}/scim",
    );
    for args in [
        &["runs"][..],
        &["runs", "--format", "json"],
        &["approvals"],
        &["show", "last"],
        &["reject", "1"],
    ] {
        let out = Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .unwrap();
        assert!(
            out.status.success() || args[0] == "reject",
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("CREDENTIALS_DIRECTORY"),
            "{args:?}"
        );
    }
    // What talks to the servers still needs its secrets.
    let out = tb.idsync(&cfg, &["plan"]);
    assert_eq!(out.status.code(), Some(2));
    // A state dir with no journal is an error, and nothing is created there.
    let nowhere = tb.dir.path().join("nowhere");
    retarget(
        &cfg,
        &format!("state_dir: {}", tb.state_dir().display()),
        &format!("state_dir: {}", nowhere.display()),
    );
    let out = tb.idsync(&cfg, &["runs"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no journal at"));
    assert!(!nowhere.exists());
}

#[test]
fn runs_are_one_readable_line_each_and_dry_runs_only_when_asked() {
    let tb = Testbed::start(&people(30));
    let cfg = tb.config("");
    tb.ok(&cfg, &["plan"]);
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify("dn: uid=user0003,ou=people,dc=example,dc=org\nchangetype: delete\n");
    tb.ok(&cfg, &["sync"]);
    let table = tb.ok(&cfg, &["runs"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("  RUN  STARTED"), "{table}");
    assert_eq!(lines.len(), 3, "two syncs, no dry run: {table}");
    assert!(lines.iter().all(|l| l.chars().count() <= 160), "{table}");
    assert!(
        table.contains("+30 ~0 -0") && table.contains("+0 ~0 -1"),
        "{table}"
    );
    let all = tb.ok(&cfg, &["runs", "--all"]);
    assert!(all.contains("cli plan"), "{all}");
}

#[test]
fn held_actions_say_what_to_run_next_and_a_second_approval_says_it_was_done() {
    let tb = Testbed::start(&people(10));
    let cfg = tb.config("safety: { max_deprovisions: 1 }\n");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify(
        &(1..=3)
            .map(|i| {
                format!("dn: uid=user000{i},ou=people,dc=example,dc=org\nchangetype: delete\n\n")
            })
            .collect::<String>(),
    );
    let out = tb.ok(&cfg, &["sync"]);
    assert!(
        out.contains(
            "3 action(s) held: review them with `idsync approvals`, then `idsync approve 2`"
        ),
        "{out}"
    );
    let approvals = tb.ok(&cfg, &["approvals"]);
    assert_eq!(
        approvals.matches("held: ").count(),
        1,
        "one reason, once: {approvals}"
    );
    assert!(
        approvals.contains("`idsync approve 2`") && approvals.contains("2:"),
        "{approvals}"
    );
    let show = tb.ok(&cfg, &["show", "last"]);
    assert!(show.contains("held: 3 suspensions"), "{show}");
    assert!(!show.contains("error: 3 suspensions"), "{show}");
    tb.ok(&cfg, &["approve", "2"]);
    let show = tb.ok(&cfg, &["show", "last"]);
    assert!(
        show.contains("active: true -> false"),
        "booleans unquoted: {show}"
    );
    let again = tb.idsync(&cfg, &["approve", "2"]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("2 was already approved at"), "{err}");
}

#[test]
fn check_warns_on_an_empty_read_names_a_wrong_scim_base_and_suggests_keys() {
    let tb = Testbed::start(&trio());
    let source = tb.base_source().replace(
        "filter: (objectClass=inetOrgPerson)",
        "filter: (objectClass=nobodyHasThis)",
    );
    let cfg = tb.config_with(&source, "");
    let out = tb.ok(&cfg, &["check", "--connect"]);
    assert!(
        out.contains("0 people") && out.contains("warning: the read found no one"),
        "{out}"
    );

    let cfg = tb.config("");
    retarget(
        &cfg,
        &tb.scim_url(),
        &format!("http://127.0.0.1:{}/scim", tb.scim_port),
    );
    let out = tb.idsync(&cfg, &["check", "--connect"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("target.url must be the app's SCIM base"),
        "{err}"
    );

    let cfg = tb.config("");
    retarget(&cfg, "  concurrency: 4\n", "  concurency: 4\n");
    let out = tb.idsync(&cfg, &["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `concurrency`?"), "{err}");
}

#[test]
fn an_intended_shrink_or_cap_is_a_one_shot_override_journaled_with_its_run() {
    let tb = Testbed::start(&people(10));
    let cfg = tb.config("safety: { max_deprovisions: 1 }\n");
    tb.ok(&cfg, &["sync"]);
    let leave = |from: usize, to: usize| {
        (from..=to)
            .map(|i| {
                format!("dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: delete\n\n")
            })
            .collect::<String>()
    };
    // Six of ten leave: below min_source_ratio (50%), the run aborts and says what to do.
    tb.ldapmodify(&leave(1, 6));
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-shrink"));
    // Allowed once: the read is planned from, and the cap still holds the six suspensions.
    let out = tb.ok(&cfg, &["sync", "--allow-shrink"]);
    assert!(out.contains("6 action(s) held"), "{out}");
    let runs: serde_json::Value =
        serde_json::from_str(&tb.ok(&cfg, &["runs", "--format", "json", "--limit", "1"])).unwrap();
    assert_eq!(runs[0]["counts"]["override"], "--allow-shrink", "{runs}");
    // The cap raised once: the suspensions go through; the next run has the usual gates.
    let out = tb.ok(
        &cfg,
        &["sync", "--allow-shrink", "--allow-deprovisions", "6"],
    );
    assert!(out.contains("applied 6"), "{out}");
    let suspended = tb
        .scim_users()
        .iter()
        .filter(|u| u["active"] == false)
        .count();
    assert_eq!(suspended, 6);
}

#[test]
fn show_lists_an_actions_fields_in_the_mappings_order_as_plan_does() {
    let tb = Testbed::start(&one());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    let show = tb.ok(&cfg, &["show", "last"]);
    let at = |field: &str| {
        show.find(&format!("{field}: "))
            .unwrap_or_else(|| panic!("{field} missing: {show}"))
    };
    // The standard mapping's order: userName, name.givenName, name.familyName, displayName.
    assert!(at("userName") < at("name.givenName"), "{show}");
    assert!(at("name.givenName") < at("name.familyName"), "{show}");
    assert!(at("name.familyName") < at("displayName"), "{show}");
}
