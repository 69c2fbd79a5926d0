//! Crash consistency: idsync is killed with SIGKILL at seeded points while it applies a run
//! of 500 actions (200 creates, 150 updates, 100 suspensions of disabled people, 50 of
//! deleted ones) against the real slapd and scim2-server. A fault proxy kills it as the
//! chosen write reaches the app, either before the app sees it or after the app acted on it
//! (the reply never arrives). After every kill the journal passes `PRAGMA integrity_check`;
//! the runs that follow converge on one final state with no account doubled (by userName
//! or by link), every write the app saw is in the journal, and a further run writes nothing.
//!
//! `IDSYNC_CRASH_POINTS` sets the number of kill points (default 50), `IDSYNC_CRASH_SEED`
//! the seed (default 8) that places them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use common::proxy::{Fault, HttpFaults, Rule};
use common::*;
use serde_json::Value;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The 500 upstream changes: user0300..0499 added, 0000..0149 retitled, 0150..0249
/// disabled, 0250..0299 deleted.
fn churn() -> String {
    let mut ldif = String::new();
    for i in 300..500 {
        let entry = person_ldif(
            &format!("user{i:04}"),
            "New",
            &format!("Hire{i}"),
            "Engineer",
            "ou=people",
        );
        let (dn, rest) = entry.split_once('\n').unwrap();
        ldif.push_str(&format!("{dn}\nchangetype: add\n{rest}"));
    }
    for i in 0..150 {
        ldif.push_str(&format!("dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Staff Engineer\n\n"));
    }
    for i in 150..250 {
        ldif.push_str(&format!("dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n\n"));
    }
    for i in 250..300 {
        ldif.push_str(&format!(
            "dn: uid=user{i:04},ou=people,dc=example,dc=org\nchangetype: delete\n\n"
        ));
    }
    ldif
}

fn journal(tb: &Testbed) -> rusqlite::Connection {
    rusqlite::Connection::open(tb.state_dir().join("journal.sqlite3")).unwrap()
}

fn integrity(tb: &Testbed) -> String {
    journal(tb)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn kill_9_at_seeded_points_of_a_500_action_run_converges_with_nothing_lost() {
    let points = env_or("IDSYNC_CRASH_POINTS", 50) as usize;
    let mut rng = Rng(env_or("IDSYNC_CRASH_SEED", 8).max(1));
    let tb = Testbed::start(&people(300));
    let p = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    let cfg = tb.config("safety:\n  max_deprovisions: \"100%\"\n");
    retarget(&cfg, &tb.scim_url(), &p.scim_url());
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify(&churn());
    let writes_before = tb.scim_writes();

    // Kill points: `points` distinct write numbers among the run's 500 writes.
    let mut at = BTreeSet::new();
    while at.len() < points.min(490) {
        at.insert(1 + rng.next() % 490);
    }
    let mut killed = 0;
    let mut last = 0;
    for point in at {
        p.clear();
        // Output to nowhere: nobody reads a pipe while the run goes on.
        let mut child = Command::new(env!("CARGO_BIN_EXE_idsync"))
            .args(["--config", cfg.to_str().unwrap(), "sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The writes the app has seen so far count from the last kill.
        let skip = point.saturating_sub(last + 1) as usize;
        last = point;
        let after = rng.next().is_multiple_of(2);
        p.add(
            Rule::new(
                "WRITE",
                "/v2/",
                Fault::Kill {
                    pid: child.id(),
                    after,
                },
            )
            .skip(skip),
        );
        let status = wait_exit(&mut child, 300);
        assert_eq!(integrity(&tb), "ok", "after the kill at write {point}");
        if status.success() {
            break; // this run finished before reaching the point
        }
        assert_eq!(status.code(), None, "killed, not failed: {status:?}");
        killed += 1;
    }
    eprintln!("{killed} of {points} kill points landed (the rest fell past the run's end)");
    assert!(
        killed >= points / 2,
        "only {killed} of {points} kills landed"
    );

    p.clear();
    tb.ok(&cfg, &["sync"]);
    let users = tb.scim_users();
    let mut by_name: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for u in &users {
        by_name
            .entry(u["userName"].as_str().unwrap().to_string())
            .or_default()
            .push(u);
    }
    assert_eq!(users.len(), 500, "no account doubled, none missing");
    assert!(by_name.values().all(|v| v.len() == 1));
    for i in 0..500 {
        let u = by_name[&format!("user{i:04}@example.org")][0];
        let (title, active) = match i {
            0..150 => ("Staff Engineer", true),
            150..300 => ("Engineer", false),
            _ => ("Engineer", true),
        };
        assert_eq!(
            (u["title"].as_str().unwrap(), u["active"].as_bool().unwrap()),
            (title, active),
            "user{i:04}"
        );
    }

    // The journal: one link per account, no run or action left open, every account the
    // app created on idsync's behalf named by a journaled create.
    let j = journal(&tb);
    let links: Vec<(String, String)> = j
        .prepare("SELECT anchor, account FROM links")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ids: BTreeSet<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let linked: BTreeSet<&str> = links.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(links.len(), 500);
    assert_eq!(linked, ids, "every account linked once");
    let open: i64 = j
        .query_row(
            "SELECT (SELECT count(*) FROM runs WHERE outcome = 'running') + (SELECT count(*) FROM actions WHERE status = 'planned')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 0);
    let journaled = |kind: &str| -> BTreeSet<String> {
        j.prepare("SELECT DISTINCT user_name FROM actions WHERE kind = ?1")
            .unwrap()
            .query_map([kind], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (created, suspended) = (journaled("create"), journaled("suspend"));
    for i in 0..500 {
        let name = format!("user{i:04}@example.org");
        assert!(created.contains(&name), "{name} has no journaled create");
        if (150..300).contains(&i) {
            assert!(suspended.contains(&name), "{name} has no journaled suspend");
        }
    }
    assert_eq!(integrity(&tb), "ok");
    assert!(tb.scim_writes() > writes_before);

    // Converged: one more run writes nothing.
    let writes = tb.scim_writes();
    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains("no changes"), "{out}");
    assert_eq!(tb.scim_writes(), writes);
}
