//! The local SQLite journal: runs, actions (before -> after), links, cursors.
//!
//! One file (`journal.sqlite3` in the state dir), WAL mode, schema versioned with
//! `PRAGMA user_version` and migrated forward on open. An action is written as `planned`
//! (or `held`) before its write and as `applied`/`failed` after it, in the same transaction
//! as the link change it causes, so a crash never loses either.

mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::model::{Anchor, DirectoryUser, GroupLink, Link, LinkState};
use crate::plan::{Action, Change, Notice};
use crate::source::{CacheChange, Remember, Remembered};

/// The journal cannot be used. Abort the run: nothing can be recorded safely.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create state dir {path}: {source}; create it or set `state_dir` to a writable folder")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("journal {path} has schema version {found}, newer than this idsync understands ({known}); upgrade idsync")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("journal {path}: corrupt row: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Apply,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Apply => "apply",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Aborted,
    Held,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Aborted => "aborted",
            Outcome::Held => "held",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Planned,
    Applied,
    Failed,
    Held,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Applied => "applied",
            Status::Failed => "failed",
            Status::Held => "held",
            Status::Skipped => "skipped",
        }
    }
}

/// What an applied action does to the link table.
#[derive(Clone, Debug)]
pub enum LinkChange {
    None,
    Upsert(Link),
    Remove(Anchor),
    /// A group action: the group's link, and the members idsync added and removed.
    GroupUpsert {
        anchor: Anchor,
        group_id: String,
        name: String,
        added: Vec<Anchor>,
        removed: Vec<Anchor>,
    },
    /// A managed group was deleted.
    GroupRemove(Anchor),
}

/// How one action ended, as `record_result` stores it.
pub struct ActionResult<'a> {
    pub status: Status,
    /// The account the action created (a create's new id).
    pub account: Option<&'a str>,
    pub error: Option<&'a str>,
    pub link: &'a LinkChange,
}

/// How a run ended, as `finish_run_remembering` stores it.
pub struct RunEnd<'a> {
    pub outcome: Outcome,
    pub source_users: Option<usize>,
    pub counts: &'a serde_json::Value,
    pub reason: Option<&'a str>,
    /// Another source cursor (e.g. Graph groups' delta state) to save with the outcome.
    pub cursor: Option<(&'a str, &'a str)>,
}

/// One row of `runs`.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub started: String,
    pub finished: Option<String>,
    pub mode: String,
    pub trigger: String,
    pub source_users: Option<i64>,
    pub counts: serde_json::Value,
    pub outcome: String,
    pub reason: Option<String>,
}

/// What `/metrics` reports, read from the journal.
#[derive(Debug, Default)]
pub struct MetricsData {
    pub runs: Vec<(String, String, i64)>,
    pub actions: Vec<(String, String, i64)>,
    pub last_success: Option<DateTime<Utc>>,
}

/// One row of `actions`.
#[derive(Clone, Debug, Serialize)]
pub struct ActionRow {
    pub run: i64,
    pub seq: i64,
    pub kind: String,
    pub user_name: String,
    pub anchor: Option<String>,
    pub account: Option<String>,
    pub reason: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub status: String,
    pub error: Option<String>,
    pub at: String,
}

pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Time spent in SQLite (nanoseconds), reads and writes: what journaling costs a run.
    busy_ns: AtomicU64,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_ts(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `{field: value}` maps of a change list's before and after sides.
fn sides(changes: &[Change]) -> (String, String) {
    let before: BTreeMap<&str, &Option<String>> = changes
        .iter()
        .map(|c| (c.field.as_str(), &c.before))
        .collect();
    let after: BTreeMap<&str, &Option<String>> = changes
        .iter()
        .map(|c| (c.field.as_str(), &c.after))
        .collect();
    (
        serde_json::to_string(&before).unwrap_or_default(),
        serde_json::to_string(&after).unwrap_or_default(),
    )
}

impl Journal {
    /// Opens (creating and migrating as needed) the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        crate::files::private_dir(state_dir).map_err(|source| JournalError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join("journal.sqlite3");
        // Created 0600 before SQLite opens it: SQLite gives the WAL and SHM the database
        // file's mode. Files left looser by an older release are tightened.
        crate::files::private_file(&path).map_err(|source| JournalError::StateDir {
            path: path.clone(),
            source,
        })?;
        for extra in ["journal.sqlite3-wal", "journal.sqlite3-shm"] {
            crate::files::tighten(&state_dir.join(extra), 0o600);
        }
        let conn = Connection::open(&path).map_err(|source| JournalError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let journal = Journal {
            path,
            conn: Mutex::new(conn),
            busy_ns: AtomicU64::new(0),
        };
        journal.with(|c| {
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            set_wal(c)?;
            c.pragma_update(None, "synchronous", "NORMAL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            Ok(())
        })?;
        schema::migrate(&journal)?;
        Ok(journal)
    }

    /// How long this journal has spent in SQLite since it was opened.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock only means another task panicked mid-call; SQLite's own
        // transactions keep the file consistent, so carry on with the connection.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        let mut conn = self.lock();
        let started = Instant::now();
        let result = f(&mut conn);
        self.busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result.map_err(|source| JournalError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// Closes a run that was stopped from outside (its deadline passed): actions still
    /// `planned` may or may not have reached the app, and the run is failed with `reason`.
    pub fn abandon_run(
        &self,
        run: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE actions SET status = 'failed', at = ?1, error = ?2 WHERE status = 'planned' AND run = ?3",
                params![ts(now), format!("interrupted: {reason}; the app may have it (the next run reads the app and plans what is still needed)"), run],
            )?;
            tx.execute(
                "UPDATE runs SET outcome = 'failed', finished = ?1, reason = ?2 WHERE id = ?3 AND outcome = 'running'",
                params![ts(now), reason, run],
            )?;
            tx.commit()
        })
    }

    /// Starts a run. A run left `running` by a process that died is closed as failed first.
    pub fn begin_run(
        &self,
        mode: Mode,
        trigger: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            // Its actions still `planned` may or may not have reached the app: say so. The
            // next plan reads the app again, so whatever is still needed is planned anew.
            tx.execute(
                "UPDATE actions SET status = 'failed', at = ?1, error = 'interrupted: idsync stopped before this result was recorded; the app may have it (the next run reads the app and plans what is still needed)' WHERE status = 'planned' AND run IN (SELECT id FROM runs WHERE outcome = 'running')",
                params![ts(now)],
            )?;
            tx.execute(
                "UPDATE runs SET outcome = 'failed', finished = ?1, reason = 'interrupted: the process stopped before the run finished' WHERE outcome = 'running'",
                params![ts(now)],
            )?;
            tx.execute(
                "INSERT INTO runs (started, mode, trigger, counts, outcome) VALUES (?1, ?2, ?3, '{}', 'running')",
                params![ts(now), mode.as_str(), trigger],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })
    }

    /// Closes a run with its outcome, counts and reason.
    pub fn finish_run(
        &self,
        run: i64,
        outcome: Outcome,
        source_users: Option<usize>,
        counts: &serde_json::Value,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let end = RunEnd {
            outcome,
            source_users,
            counts,
            reason,
            cursor: None,
        };
        self.finish_run_remembering(run, &end, None, now)
    }

    /// Closes a run and, in the same transaction, remembers an incremental source's new
    /// cursor and population (`users` is the run's whole read): the cursor never moves
    /// without the run's outcome, nor the outcome without the cursor.
    pub fn finish_run_remembering(
        &self,
        run: i64,
        end: &RunEnd<'_>,
        remember: Option<(&str, &Remember, &[DirectoryUser])>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE runs SET finished = ?2, outcome = ?3, source_users = ?4, counts = ?5, reason = ?6 WHERE id = ?1",
                params![run, ts(now), end.outcome.as_str(), end.source_users.map(|n| n as i64), end.counts.to_string(), end.reason],
            )?;
            if let Some((source, r, users)) = remember {
                save_source(&tx, source, r, users, now)?;
            }
            if let Some((source, value)) = end.cursor {
                save_cursor(&tx, source, value, now)?;
            }
            tx.commit()
        })
    }

    /// What an incremental source saved last: its cursor and population (empty if none).
    pub fn remembered(&self, source: &str) -> Result<Remembered, JournalError> {
        let (cursor, rows) = self.with(|c| {
            let cursor: Option<String> = c
                .query_row(
                    "SELECT value FROM cursors WHERE source = ?1",
                    params![source],
                    |r| r.get(0),
                )
                .optional()?;
            let mut stmt = c.prepare("SELECT user FROM source_users WHERE source = ?1")?;
            let rows = stmt
                .query_map(params![source], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((cursor, rows))
        })?;
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            let user = serde_json::from_str(&row).map_err(|e| JournalError::Corrupt {
                path: self.path.clone(),
                detail: format!("a remembered directory user of {source}: {e}"),
            })?;
            users.push(user);
        }
        Ok(Remembered { cursor, users })
    }

    /// A source's saved cursor, if any.
    pub fn cursor(&self, source: &str) -> Result<Option<String>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT value FROM cursors WHERE source = ?1",
                params![source],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Records every action of a plan (as planned or held) in one transaction.
    pub fn record_plan(
        &self,
        run: i64,
        actions: &[Action],
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO actions (run, seq, anchor, account, user_name, kind, reason, before, after, status, error, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )?;
                for (seq, a) in actions.iter().enumerate() {
                    let (before, after) = sides(&a.changes);
                    let status = if a.held.is_some() { Status::Held } else { Status::Planned };
                    stmt.execute(params![
                        run,
                        seq as i64,
                        a.anchor.as_ref().map(Anchor::as_str),
                        a.account_id,
                        a.user_name,
                        a.kind.as_str(),
                        a.reason,
                        before,
                        after,
                        status.as_str(),
                        a.held,
                        ts(now)
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Records what a run reports without acting on it (one transaction).
    pub fn record_notices(&self, run: i64, notices: &[Notice]) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO notices (run, seq, user_name, anchor, account, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (seq, n) in notices.iter().enumerate() {
                    stmt.execute(params![
                        run,
                        seq as i64,
                        n.user_name,
                        n.anchor.as_ref().map(Anchor::as_str),
                        n.account_id,
                        n.message
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// A run's notices, in the order the plan listed them.
    pub fn notices(&self, run: i64) -> Result<Vec<Notice>, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT user_name, anchor, account, message FROM notices WHERE run = ?1 ORDER BY seq",
            )?;
            let rows = stmt
                .query_map(params![run], |r| {
                    Ok(Notice {
                        user_name: r.get(0)?,
                        anchor: r.get::<_, Option<String>>(1)?.map(Anchor::new),
                        account_id: r.get(2)?,
                        message: r.get(3)?,
                    })
                })?
                .collect();
            rows
        })
    }

    /// Closes the held actions of earlier apply runs: each full run re-plans from the current
    /// state, so its own held actions are the only ones left to approve (no duplicates).
    pub fn supersede_held(&self, run: i64, now: DateTime<Utc>) -> Result<usize, JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE actions SET status = 'skipped', error = 'superseded by run ' || ?1, at = ?2
                 WHERE status = 'held' AND run < ?1",
                params![run, ts(now)],
            )
        })
    }

    /// Held actions of apply runs, waiting for `approve` or `reject`.
    pub fn held_actions(&self) -> Result<Vec<ActionRow>, JournalError> {
        self.select_actions(
            "SELECT a.run, a.seq, a.kind, a.user_name, a.anchor, a.account, a.reason, a.before, a.after, a.status, a.error, a.at
             FROM actions a JOIN runs r ON r.id = a.run WHERE a.status = 'held' AND r.mode = 'apply' ORDER BY a.run, a.seq",
            [],
        )
    }

    /// Records an admin's decision on a held action; the action leaves the held list.
    pub fn decide(
        &self,
        run: i64,
        seq: i64,
        approved: bool,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE actions SET status = 'skipped', error = ?3, at = ?4 WHERE run = ?1 AND seq = ?2 AND status = 'held'",
                params![run, seq, note, ts(now)],
            )?;
            tx.execute(
                "INSERT INTO approvals (run, seq, decided, decision) VALUES (?1, ?2, ?3, ?4)",
                params![run, seq, ts(now), if approved { "approved" } else { "rejected" }],
            )?;
            tx.commit()
        })
    }

    /// Records an action's result and its link change atomically.
    pub fn record_result(
        &self,
        run: i64,
        seq: usize,
        result: &ActionResult<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let ActionResult {
            status,
            account,
            error,
            link,
        } = result;
        self.with(|c| {
            let tx = c.transaction()?;
            tx.prepare_cached(
                "UPDATE actions SET status = ?3, error = ?4, at = ?5, account = COALESCE(?6, account) WHERE run = ?1 AND seq = ?2",
            )?
            .execute(params![run, seq as i64, status.as_str(), error, ts(now), account])?;
            match link {
                LinkChange::None => {}
                LinkChange::Upsert(l) => upsert_link(&tx, l)?,
                LinkChange::Remove(anchor) => {
                    tx.prepare_cached("DELETE FROM links WHERE anchor = ?1")?
                        .execute(params![anchor.as_str()])?;
                }
                LinkChange::GroupUpsert { anchor, group_id, name, added, removed } => {
                    upsert_group_link(&tx, anchor, group_id, name, added, removed, now)?;
                }
                LinkChange::GroupRemove(anchor) => {
                    tx.execute("DELETE FROM group_links WHERE anchor = ?1", params![anchor.as_str()])?;
                }
            }
            tx.commit()
        })
    }

    /// Every link, by anchor.
    pub fn links(&self) -> Result<BTreeMap<Anchor, Link>, JournalError> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT anchor, account, user_name, state, suspended_at, last_seen, photo_hash FROM links",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        let mut out = BTreeMap::new();
        for (anchor, account, user_name, state, suspended_at, last_seen, photo_hash) in rows {
            let state = LinkState::parse(&state).ok_or_else(|| JournalError::Corrupt {
                path: self.path.clone(),
                detail: format!("link {anchor} has state `{state}`"),
            })?;
            let anchor = Anchor::new(anchor);
            out.insert(
                anchor.clone(),
                Link {
                    anchor,
                    account_id: account,
                    user_name,
                    state,
                    suspended_at: parse_ts(suspended_at),
                    last_seen: parse_ts(last_seen),
                    photo_hash,
                },
            );
        }
        Ok(out)
    }

    /// Every group link, with the members idsync put in the group.
    pub fn group_links(&self) -> Result<BTreeMap<Anchor, GroupLink>, JournalError> {
        self.with(|c| {
            let mut out: BTreeMap<Anchor, GroupLink> = BTreeMap::new();
            let mut stmt = c.prepare("SELECT anchor, group_id, name FROM group_links")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (anchor, group_id, name) = row?;
                let anchor = Anchor::new(anchor);
                out.insert(
                    anchor.clone(),
                    GroupLink {
                        anchor,
                        group_id,
                        name,
                        members: Default::default(),
                    },
                );
            }
            let mut stmt = c.prepare("SELECT group_anchor, person FROM group_members")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (group, person) = row?;
                if let Some(g) = out.get_mut(&Anchor::new(group)) {
                    g.members.insert(Anchor::new(person));
                }
            }
            Ok(out)
        })
    }

    /// Marks anchors as seen upstream at `now` (one transaction).
    pub fn touch_links(&self, anchors: &[&Anchor], now: DateTime<Utc>) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt =
                    tx.prepare_cached("UPDATE links SET last_seen = ?2 WHERE anchor = ?1")?;
                let now = ts(now);
                for a in anchors {
                    stmt.execute(params![a.as_str(), now])?;
                }
            }
            tx.commit()
        })
    }

    /// How many people the last successful apply run read (for `min_source_ratio`).
    pub fn last_good_source_count(&self) -> Result<Option<usize>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT source_users FROM runs WHERE mode = 'apply' AND outcome IN ('ok', 'held') AND source_users IS NOT NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|n| n.map(|n| n as usize))
        })
    }

    /// Aggregates for `/metrics`: (mode, outcome, runs), (kind, status, actions), and the
    /// finish time of the last apply run that ended ok or held.
    pub fn metrics(&self) -> Result<MetricsData, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT mode, outcome, COUNT(*) FROM runs GROUP BY mode, outcome ORDER BY mode, outcome")?;
            let runs = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
            let mut stmt = c.prepare(
                "SELECT a.kind, a.status, COUNT(*) FROM actions a JOIN runs r ON r.id = a.run WHERE r.mode = 'apply'
                 GROUP BY a.kind, a.status ORDER BY a.kind, a.status",
            )?;
            let actions = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
            let last_success = c
                .query_row(
                    "SELECT finished FROM runs WHERE mode = 'apply' AND outcome IN ('ok', 'held') ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?;
            Ok(MetricsData { runs, actions, last_success: parse_ts(last_success) })
        })
    }

    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, started, finished, mode, trigger, source_users, counts, outcome, reason FROM runs ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64], run_row)?.collect();
            rows
        })
    }

    pub fn run(&self, id: i64) -> Result<Option<RunRow>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, started, finished, mode, trigger, source_users, counts, outcome, reason FROM runs WHERE id = ?1",
                params![id],
                run_row,
            )
            .optional()
        })
    }

    pub fn last_run_id(&self) -> Result<Option<i64>, JournalError> {
        self.with(|c| c.query_row("SELECT MAX(id) FROM runs", [], |r| r.get(0)))
    }

    pub fn actions(&self, run: i64) -> Result<Vec<ActionRow>, JournalError> {
        self.select_actions(
            "SELECT run, seq, kind, user_name, anchor, account, reason, before, after, status, error, at FROM actions WHERE run = ?1 ORDER BY seq",
            params![run],
        )
    }

    fn select_actions(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<ActionRow>, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt
                .query_map(args, |r| {
                    Ok(ActionRow {
                        run: r.get(0)?,
                        seq: r.get(1)?,
                        kind: r.get(2)?,
                        user_name: r.get(3)?,
                        anchor: r.get(4)?,
                        account: r.get(5)?,
                        reason: r.get(6)?,
                        before: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                        after: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
                        status: r.get(9)?,
                        error: r.get(10)?,
                        at: r.get(11)?,
                    })
                })?
                .collect();
            rows
        })
    }
}

/// Switches to WAL. Another process switching the same new file at the same moment makes
/// SQLite answer BUSY without calling the busy handler, so retry for a while.
fn set_wal(c: &Connection) -> rusqlite::Result<()> {
    let mut tries = 0;
    loop {
        let mode: rusqlite::Result<String> =
            c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0));
        match mode {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 100 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        started: r.get(1)?,
        finished: r.get(2)?,
        mode: r.get(3)?,
        trigger: r.get(4)?,
        source_users: r.get(5)?,
        counts: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
        outcome: r.get(7)?,
        reason: r.get(8)?,
    })
}

fn save_source(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    r: &Remember,
    users: &[DirectoryUser],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let row = |u: &DirectoryUser| serde_json::to_string(u).unwrap_or_default();
    let mut put = tx.prepare_cached(
        "INSERT INTO source_users (source, anchor, user) VALUES (?1, ?2, ?3)
         ON CONFLICT(source, anchor) DO UPDATE SET user = excluded.user",
    )?;
    match &r.cache {
        CacheChange::Replace => {
            tx.execute(
                "DELETE FROM source_users WHERE source = ?1",
                params![source],
            )?;
            for u in users {
                put.execute(params![source, u.anchor.as_str(), row(u)])?;
            }
        }
        CacheChange::Delta { upserted, removed } => {
            let mut del =
                tx.prepare_cached("DELETE FROM source_users WHERE source = ?1 AND anchor = ?2")?;
            for a in removed {
                del.execute(params![source, a.as_str()])?;
            }
            for u in users.iter().filter(|u| upserted.contains(&u.anchor)) {
                put.execute(params![source, u.anchor.as_str(), row(u)])?;
            }
        }
    }
    save_cursor(tx, source, &r.cursor, now)
}

fn save_cursor(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    value: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO cursors (source, value, updated) VALUES (?1, ?2, ?3)
         ON CONFLICT(source) DO UPDATE SET value = excluded.value, updated = excluded.updated",
        params![source, value, ts(now)],
    )?;
    Ok(())
}

fn upsert_group_link(
    tx: &rusqlite::Transaction<'_>,
    anchor: &Anchor,
    group_id: &str,
    name: &str,
    added: &[Anchor],
    removed: &[Anchor],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    // One app group belongs to one directory group.
    tx.execute(
        "DELETE FROM group_links WHERE group_id = ?1 AND anchor <> ?2",
        params![group_id, anchor.as_str()],
    )?;
    tx.execute(
        "INSERT INTO group_links (anchor, group_id, name, updated) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(anchor) DO UPDATE SET group_id = excluded.group_id, name = excluded.name, updated = excluded.updated",
        params![anchor.as_str(), group_id, name, ts(now)],
    )?;
    let mut add = tx.prepare_cached(
        "INSERT OR IGNORE INTO group_members (group_anchor, person) VALUES (?1, ?2)",
    )?;
    for p in added {
        add.execute(params![anchor.as_str(), p.as_str()])?;
    }
    let mut del =
        tx.prepare_cached("DELETE FROM group_members WHERE group_anchor = ?1 AND person = ?2")?;
    for p in removed {
        del.execute(params![anchor.as_str(), p.as_str()])?;
    }
    Ok(())
}

fn upsert_link(tx: &rusqlite::Transaction<'_>, l: &Link) -> rusqlite::Result<()> {
    // One account belongs to one anchor: a re-hire takeover drops the old anchor's link.
    tx.prepare_cached("DELETE FROM links WHERE account = ?1 AND anchor <> ?2")?
        .execute(params![l.account_id, l.anchor.as_str()])?;
    tx.prepare_cached(
        "INSERT INTO links (anchor, account, user_name, state, suspended_at, last_seen, photo_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(anchor) DO UPDATE SET account = excluded.account, user_name = excluded.user_name,
           state = excluded.state, suspended_at = excluded.suspended_at, last_seen = COALESCE(excluded.last_seen, links.last_seen),
           photo_hash = excluded.photo_hash",
    )?
    .execute(params![
            l.anchor.as_str(),
            l.account_id,
            l.user_name,
            l.state.as_str(),
            l.suspended_at.map(ts),
            l.last_seen.map(ts),
            l.photo_hash
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
