//! What journaling costs per action, without any server: a run of N creates (default
//! 100,000; `JOURNAL_BENCH_N`) is planned into a fresh journal in one transaction, then each
//! result and its link is recorded in its own transaction, as `sync` does. Prints a table.
//!
//!     cargo bench --bench journal
//!
//! The end-to-end share of journaling in a real run is in `bench/run.sh` (its journal row).

use std::time::Instant;

use chrono::Utc;
use idsync::journal::{ActionResult, Journal, LinkChange, Mode, Status};
use idsync::model::{Anchor, Link, LinkState};
use idsync::plan::{Action, ActionKind, Change};

fn main() {
    let n: usize = std::env::var("JOURNAL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let journal = Journal::open(dir.path()).expect("a journal");
    let now = Utc::now();
    let actions: Vec<Action> = (0..n).map(create).collect();

    let run = journal.begin_run(Mode::Apply, "bench", now).unwrap();
    let t = Instant::now();
    journal.record_plan(run, &actions, now).unwrap();
    let plan_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    for (seq, a) in actions.iter().enumerate() {
        let link = LinkChange::Upsert(Link {
            anchor: a.anchor.clone().unwrap(),
            account_id: idsync::model::AccountId::new(format!("{seq:032x}")),
            user_name: a.user_name.clone(),
            state: LinkState::Active,
            suspended_at: None,
            last_seen: Some(now),
            photo_hash: None,
        });
        let result = ActionResult {
            status: Status::Applied,
            account: None,
            error: None,
            link: &link,
        };
        journal.record_result(run, seq, &result, now).unwrap();
    }
    let results_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let links = journal.links().unwrap();
    let links_s = t.elapsed().as_secs_f64();
    assert_eq!(links.len(), n);

    println!(
        "journal cost, {n} create actions (fresh journal, {})",
        dir.path().display()
    );
    println!();
    println!("| step | total | per action |");
    println!("|---|---|---|");
    let row = |step: &str, s: f64| {
        println!("| {step} | {s:.2}s | {:.1} us |", s * 1e6 / n as f64);
    };
    row("record the plan (one transaction)", plan_s);
    row(
        "record each result + link (one transaction each)",
        results_s,
    );
    row("read every link back (next run's start)", links_s);
}

fn create(i: usize) -> Action {
    let user = format!("p{i:06}@example.org");
    let change = |field: &str, after: String| Change {
        field: field.into(),
        before: None,
        after: Some(after),
    };
    Action {
        kind: ActionKind::Create,
        anchor: Some(Anchor::new(format!("{i:08x}-0000-4000-8000-000000000000"))),
        account_id: None,
        previous_anchor: None,
        changes: vec![
            change("userName", user.clone()),
            change("name.givenName", "Ada".into()),
            change("name.familyName", format!("Person{i}")),
            change("displayName", format!("Ada Person{i}")),
            change("title", "Engineer".into()),
            change("emails[type eq \"work\"].value", user.clone()),
        ],
        user_name: user,
        hooks: Vec::new(),
        reason: "new upstream".into(),
        held: None,
        members: Vec::new(),
    }
}
