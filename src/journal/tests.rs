use super::*;
use crate::journal::{ActionResult, LinkChange, Status};
use crate::plan::{Action, ActionKind, Change};

fn action(kind: ActionKind, user: &str) -> Action {
    Action {
        kind,
        user_name: user.into(),
        anchor: Some(Anchor::new(format!("anchor-{user}"))),
        account_id: None,
        previous_anchor: None,
        changes: vec![Change {
            field: "title".into(),
            before: Some("a".into()),
            after: Some("b".into()),
        }],
        reason: "because".into(),
        held: None,
        hooks: Vec::new(),
        members: Vec::new(),
    }
}

#[test]
fn actions_are_journaled_planned_then_applied_with_their_link() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let now = Utc::now();
    let run = j.begin_run(Mode::Apply, "test", now).unwrap();
    let busy = j.busy();
    j.record_plan(run, &[action(ActionKind::Create, "ada")], now)
        .unwrap();
    assert_eq!(j.actions(run).unwrap()[0].status, Status::Planned);
    // Every call is timed: a run reports what journaling cost it.
    assert!(j.busy() > busy);
    let link = Link {
        anchor: Anchor::new("anchor-ada"),
        account_id: "s1".into(),
        user_name: "ada".into(),
        state: LinkState::Active,
        suspended_at: None,
        last_seen: Some(now),
        photo_hash: None,
    };
    j.record_result(
        run,
        0,
        &ActionResult {
            status: Status::Applied,
            account: Some("s1"),
            error: None,
            link: &LinkChange::Upsert(link.clone()),
        },
        now,
    )
    .unwrap();
    let row = &j.actions(run).unwrap()[0];
    assert_eq!(
        (
            row.status.as_str(),
            row.account.as_ref().map(AccountId::as_str)
        ),
        ("applied", Some("s1"))
    );
    assert_eq!(row.before, serde_json::json!({"title": "a"}));
    assert_eq!(
        j.links()
            .unwrap()
            .get(&Anchor::new("anchor-ada"))
            .unwrap()
            .account_id,
        AccountId::new("s1")
    );
    j.finish_run(
        run,
        Outcome::Ok,
        Some(1),
        &RunCounts::planned([(ActionKind::Create, 1)].into()),
        None,
        now,
    )
    .unwrap();
    assert_eq!(j.last_good_source_count().unwrap(), Some(1));
}

#[test]
fn a_run_left_running_by_a_crash_is_closed_as_failed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let now = Utc::now();
    let first = j.begin_run(Mode::Apply, "test", now).unwrap();
    let mut held = action(ActionKind::Suspend, "bob");
    held.held = Some("over the cap".into());
    j.record_plan(
        first,
        &[
            action(ActionKind::Create, "ada"),
            held,
            action(ActionKind::Create, "cy"),
        ],
        now,
    )
    .unwrap();
    let done = ActionResult {
        status: Status::Applied,
        account: Some("s1"),
        error: None,
        link: &LinkChange::None,
    };
    j.record_result(first, 0, &done, now).unwrap();
    drop(j);
    let j = Journal::open(dir.path()).unwrap();
    j.begin_run(Mode::Apply, "test", Utc::now()).unwrap();
    let r = j.run(first).unwrap().unwrap();
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.reason.unwrap().contains("interrupted"));
    // The action that never got its result says it may have reached the app; the applied
    // and the held ones keep what they were.
    let rows = j.actions(first).unwrap();
    let status: Vec<&str> = rows.iter().map(|a| a.status.as_str()).collect();
    assert_eq!(status, ["applied", "held", "failed"]);
    assert!(rows[2].error.as_deref().unwrap().starts_with("interrupted"));
}

#[test]
fn a_takeover_moves_the_account_to_the_new_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let now = Utc::now();
    let run = j.begin_run(Mode::Apply, "test", now).unwrap();
    j.record_plan(
        run,
        &[
            action(ActionKind::Create, "a"),
            action(ActionKind::Adopt, "b"),
        ],
        now,
    )
    .unwrap();
    let mk = |anchor: &str| Link {
        anchor: Anchor::new(anchor),
        account_id: "s1".into(),
        user_name: "ada".into(),
        state: LinkState::Active,
        suspended_at: None,
        last_seen: None,
        photo_hash: None,
    };
    j.record_result(
        run,
        0,
        &ActionResult {
            status: Status::Applied,
            account: None,
            error: None,
            link: &LinkChange::Upsert(mk("old")),
        },
        now,
    )
    .unwrap();
    j.record_result(
        run,
        1,
        &ActionResult {
            status: Status::Applied,
            account: None,
            error: None,
            link: &LinkChange::Upsert(mk("new")),
        },
        now,
    )
    .unwrap();
    let links = j.links().unwrap();
    assert_eq!(
        links.keys().map(Anchor::as_str).collect::<Vec<_>>(),
        vec!["new"]
    );
}

#[test]
fn a_journal_from_a_newer_idsync_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Journal::open(dir.path()).unwrap());
    let c = Connection::open(dir.path().join("journal.sqlite3")).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    assert!(matches!(
        Journal::open(dir.path()),
        Err(JournalError::TooNew { found: 99, .. })
    ));
}

#[test]
fn two_processes_opening_a_new_journal_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || Journal::open(&p).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
}

fn person(anchor: &str, title: &str) -> DirectoryUser {
    DirectoryUser {
        anchor: Anchor::new(anchor),
        locator: format!("user {anchor}"),
        attrs: [("jobtitle".to_string(), vec![title.to_string()])].into(),
        disabled: false,
        problems: vec![],
        photo: None,
        sync_id: None,
    }
}

fn titles(r: &Remembered) -> Vec<(String, String)> {
    let mut out: Vec<_> = r
        .users
        .iter()
        .map(|u| (u.anchor.to_string(), u.values("jobTitle")[0].clone()))
        .collect();
    out.sort();
    out
}

#[test]
fn an_incremental_source_is_remembered_with_the_runs_outcome_full_then_delta() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let now = Utc::now();
    let counts = RunCounts::default();
    let end = RunEnd {
        outcome: Outcome::Ok,
        source_users: Some(3),
        counts: &counts,
        reason: None,
        cursor: Some(("graph groups", "{\"delta_link\":\"x\"}")),
    };
    assert!(j.remembered("graph").unwrap().cursor.is_none());
    assert!(j.cursor("graph groups").unwrap().is_none());

    let run = j.begin_run(Mode::Apply, "test", now).unwrap();
    let full = Remember {
        cursor: "link-1".into(),
        cache: CacheChange::Replace,
    };
    let users = [person("a", "Eng"), person("b", "Eng"), person("c", "Eng")];
    j.finish_run_remembering(run, &end, Some(("graph", &full, &users)), now)
        .unwrap();
    let r = j.remembered("graph").unwrap();
    assert_eq!(r.cursor.as_deref(), Some("link-1"));
    assert_eq!(r.users.len(), 3);
    assert_eq!(j.run(run).unwrap().unwrap().outcome, Outcome::Ok);
    assert_eq!(
        j.cursor("graph groups").unwrap().as_deref(),
        Some("{\"delta_link\":\"x\"}"),
        "the groups' cursor is saved with the same outcome"
    );

    // A delta: b changed, c left; the population passed is the whole merged read.
    let run = j.begin_run(Mode::Apply, "test", now).unwrap();
    let delta = Remember {
        cursor: "link-2".into(),
        cache: CacheChange::Delta {
            upserted: [Anchor::new("b")].into(),
            removed: [Anchor::new("c")].into(),
        },
    };
    let users = [person("a", "Eng"), person("b", "Lead")];
    j.finish_run_remembering(run, &end, Some(("graph", &delta, &users)), now)
        .unwrap();
    let r = j.remembered("graph").unwrap();
    assert_eq!(r.cursor.as_deref(), Some("link-2"));
    assert_eq!(
        titles(&r),
        [("a".into(), "Eng".into()), ("b".into(), "Lead".into())]
    );
    assert!(
        j.remembered("another source").unwrap().users.is_empty(),
        "kept per source"
    );
}

#[test]
fn group_links_keep_the_members_idsync_put_there() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let now = Utc::now();
    let run = j.begin_run(Mode::Apply, "test", now).unwrap();
    j.record_plan(run, &[action(ActionKind::GroupCreate, "eng")], now)
        .unwrap();
    let change = LinkChange::GroupUpsert {
        anchor: Anchor::new("g1"),
        group_id: "G1".into(),
        name: "eng".into(),
        added: vec![Anchor::new("alice"), Anchor::new("bob")],
        removed: vec![],
    };
    let applied = ActionResult {
        status: Status::Applied,
        account: Some("G1"),
        error: None,
        link: &change,
    };
    j.record_result(run, 0, &applied, now).unwrap();
    let change = LinkChange::GroupUpsert {
        anchor: Anchor::new("g1"),
        group_id: "G1".into(),
        name: "engineering".into(),
        added: vec![],
        removed: vec![Anchor::new("bob")],
    };
    let applied = ActionResult {
        link: &change,
        ..applied
    };
    j.record_result(run, 0, &applied, now).unwrap();
    let links = j.group_links().unwrap();
    let g = &links[&Anchor::new("g1")];
    assert_eq!(g.name, "engineering");
    assert_eq!(g.members, [Anchor::new("alice")].into());
    let gone = LinkChange::GroupRemove(Anchor::new("g1"));
    let applied = ActionResult {
        link: &gone,
        ..applied
    };
    j.record_result(run, 0, &applied, now).unwrap();
    assert!(j.group_links().unwrap().is_empty());
}

#[test]
fn a_journal_of_the_single_app_release_migrates_to_the_app_default_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The schema the previous release left: migrations 1 to 4, with its rows.
        let c = rusqlite::Connection::open(dir.path().join("journal.sqlite3")).unwrap();
        for sql in &schema::MIGRATIONS[..4] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 4).unwrap();
        c.execute_batch(
            "INSERT INTO runs (started, finished, mode, trigger, source_users, counts, outcome)
                 VALUES ('2026-11-30T10:00:00.000Z', '2026-11-30T10:01:00.000Z', 'apply', 'schedule', 2, '{\"create\":2}', 'ok');
             INSERT INTO links (anchor, account, user_name, state, suspended_at, last_seen)
                 VALUES ('anchor-ada', 's1', 'ada@x', 'active', NULL, '2026-11-30T10:01:00.000Z'),
                        ('anchor-bob', 's2', 'bob@x', 'suspended', '2026-11-29T10:00:00.000Z', NULL);
             INSERT INTO group_links (anchor, group_id, name, updated)
                 VALUES ('g-eng', 'G1', 'eng', '2026-11-30T10:01:00.000Z');
             INSERT INTO group_members (group_anchor, person) VALUES ('g-eng', 'anchor-ada');",
        )
        .unwrap();
    }
    let j = Journal::open(dir.path()).unwrap();
    let links = j.links().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(
        links[&Anchor::new("anchor-bob")].state,
        LinkState::Suspended
    );
    let default = j.for_app(DEFAULT_APP);
    assert_eq!(default.links().unwrap(), links);
    let groups = default.group_links().unwrap();
    assert_eq!(groups[&Anchor::new("g-eng")].group_id, "G1");
    assert!(groups[&Anchor::new("g-eng")]
        .members
        .contains(&Anchor::new("anchor-ada")));
    let runs = default.runs(10).unwrap();
    assert_eq!((runs.len(), runs[0].app.as_str()), (1, DEFAULT_APP));
    assert_eq!(runs[0].counts.planned[&ActionKind::Create], 2);
    // Another app starts with nothing of the default app's.
    let miro = j.for_app("miro");
    assert!(miro.links().unwrap().is_empty() && miro.runs(10).unwrap().is_empty());
    assert_eq!(j.last_good_source_count().unwrap(), Some(2));
}

#[test]
fn each_app_keeps_its_own_links_and_runs_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let now = Utc::now();
    let (a, b) = (j.for_app("a"), j.for_app("b"));
    let run_a = a.begin_run(Mode::Apply, "test", now).unwrap();
    let run_b = b.begin_run(Mode::Apply, "test", now).unwrap();
    // Opening b's run did not close a's as interrupted.
    assert_eq!(a.run(run_a).unwrap().unwrap().outcome, Outcome::Running);
    let link = |account: &str| Link {
        anchor: Anchor::new("anchor-ada"),
        account_id: AccountId::new(account),
        user_name: "ada@x".into(),
        state: LinkState::Active,
        suspended_at: None,
        last_seen: Some(now),
        photo_hash: None,
    };
    for (j, run, account) in [(&a, run_a, "A1"), (&b, run_b, "B1")] {
        j.record_plan(run, &[action(ActionKind::Create, "ada@x")], now)
            .unwrap();
        let result = ActionResult {
            status: Status::Applied,
            account: Some(account),
            error: None,
            link: &LinkChange::Upsert(link(account)),
        };
        j.record_result(run, 0, &result, now).unwrap();
    }
    assert_eq!(
        a.links().unwrap()[&Anchor::new("anchor-ada")].account_id,
        AccountId::new("A1")
    );
    assert_eq!(
        b.links().unwrap()[&Anchor::new("anchor-ada")].account_id,
        AccountId::new("B1")
    );
    assert_eq!(a.runs(10).unwrap().len(), 1);
    assert_eq!(
        j.runs(10).unwrap().len(),
        2,
        "an unscoped handle lists every app's runs"
    );
}

#[test]
fn escrow_counts_failures_per_app_and_forgets_an_action_that_applied() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let miro = j.for_app("miro");
    let now = Utc::now();
    let e = miro
        .escrow_failure("k1", "ada@x", "update", "PATCH answered 400", now)
        .unwrap();
    assert_eq!(
        (e.failures, e.next_try),
        (1, now_ms(now) + chrono::Duration::hours(1))
    );
    let e = miro
        .escrow_failure("k1", "ada@x", "update", "PATCH answered 400", now)
        .unwrap();
    assert_eq!(e.failures, 2);
    assert!(j.escrowed().unwrap().is_empty(), "escrow is per app");
    assert_eq!(j.escrow_counts().unwrap(), vec![("miro".to_string(), 1, 0)]);
    miro.escrow_clear("k1").unwrap();
    assert!(miro.escrowed().unwrap().is_empty());
}

#[test]
fn discovery_documents_are_kept_per_app() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let now = Utc::now();
    assert!(j.for_app("miro").discovery_documents().unwrap().is_none());
    j.for_app("miro")
        .save_discovery("{\"config\":null}", now)
        .unwrap();
    j.for_app("miro")
        .save_discovery("{\"config\":{}}", now)
        .unwrap();
    let (_, text) = j.for_app("miro").discovery_documents().unwrap().unwrap();
    assert_eq!(text, "{\"config\":{}}");
    assert!(j.discovery_documents().unwrap().is_none());
}

/// A time as the journal keeps it (milliseconds).
fn now_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn an_apps_groups_are_remembered_after_its_accounts_and_forgotten_with_them() {
    use crate::model::{AccountId, AppGroup};
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let miro = j.for_app("miro");
    let group = |id: &str, members: &[&str], modified: &str| AppGroup {
        id: id.into(),
        display_name: format!("group {id}"),
        members: members.iter().map(|m| AccountId::new(*m)).collect(),
        listed_as: Default::default(),
        modified: Some(modified.into()),
    };
    let now = Utc::now();
    // Before any full read of the accounts there is nothing to hang the groups on.
    miro.remember_all_groups(&[group("g1", &["a"], "t1")], Some("t1"), now)
        .unwrap();
    assert!(miro.group_read_marks().unwrap().is_none());
    miro.remember_full_read(&[], None, now).unwrap();
    miro.remember_all_groups(
        &[group("g1", &["a", "b"], "t1"), group("g2", &[], "t2")],
        Some("t2"),
        now,
    )
    .unwrap();
    let marks = miro.group_read_marks().unwrap().unwrap();
    assert_eq!(marks.watermark.as_deref(), Some("t2"));
    // A read again replaces one, a gone one goes, a written one is stale until read.
    miro.remember_groups(
        &[group("g1", &["b"], "t3")],
        &["g2".to_string()],
        Some(Watermark::Moved("t3")),
    )
    .unwrap();
    miro.forget_group_state(&["g1".to_string()]).unwrap();
    let remembered = miro.remembered_groups().unwrap();
    assert_eq!(remembered.groups, vec![group("g1", &["b"], "t3")]);
    assert!(remembered.stale.contains("g1"));
    assert_eq!(
        miro.group_read_marks()
            .unwrap()
            .unwrap()
            .watermark
            .as_deref(),
        Some("t3")
    );
    assert!(j.remembered_groups().unwrap().groups.is_empty(), "per app");
    // An app to be listed whole again lists its groups whole too.
    miro.forget_app_reads().unwrap();
    assert!(miro.group_read_marks().unwrap().is_none());
}

#[test]
fn actions_and_their_approvals_survive_the_migration_that_lets_an_action_be_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The schema before migration 13, with an action an operator approved.
        let c = rusqlite::Connection::open(dir.path().join("journal.sqlite3")).unwrap();
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        for sql in &schema::MIGRATIONS[..12] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 12).unwrap();
        c.execute_batch(
            "INSERT INTO runs (started, finished, mode, trigger, source_users, counts, outcome)
                 VALUES ('2026-11-30T10:00:00.000Z', '2026-11-30T10:01:00.000Z', 'apply', 'schedule', 2, '{}', 'held');
             INSERT INTO actions (run, seq, anchor, account, user_name, kind, reason, before, after, status, error, at)
                 VALUES (1, 0, 'anchor-ada', 's1', 'ada@x', 'suspend', 'gone', '{}', '{}', 'held', 'held: cap', '2026-11-30T10:01:00.000Z');
             INSERT INTO approvals (run, seq, decided, decision, who) VALUES (1, 0, '2026-11-30T11:00:00.000Z', 'approved', 'cli:root');",
        )
        .unwrap();
    }
    let j = Journal::open(dir.path()).unwrap();
    j.with(|c| {
        let kept: (String, String) = c.query_row(
            "SELECT a.status, p.decision FROM actions a JOIN approvals p ON p.run = a.run AND p.seq = a.seq",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        assert_eq!(kept, ("held".to_string(), "approved".to_string()));
        c.execute("UPDATE actions SET status = 'refused' WHERE run = 1 AND seq = 0", [])?;
        let fk: i64 = c.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
        assert_eq!(fk, 0, "approvals still point at their actions");
        Ok(())
    })
    .unwrap();
}
