//! The local SQLite journal: runs, actions (before -> after), links, cursors.
//!
//! One file (`journal.sqlite3` in the state dir), WAL mode, schema versioned with
//! `PRAGMA user_version` and migrated forward on open. An action is written as `planned`
//! (or `held`) before its write and as `applied`/`failed` after it, in the same transaction
//! as the link change it causes, so a crash never loses either.

mod accounts;
mod app_groups;
mod approvals;
mod counts;
mod discovery;
mod escrow;
mod hooks;
mod links;
mod queries;
mod quiet;
mod remember;
mod roster;
mod schema;
mod words;

use links::{upsert_group_link, upsert_link, GroupLinkChange};
use remember::{save_cursor, save_source};

pub use accounts::{AppReadMarks, RememberedAccounts, Watermark};
pub use app_groups::{GroupReadMarks, RememberedGroups};
pub use approvals::Decider;
pub use counts::{RunCounts, Tally};
pub use words::{Mode, Outcome, Status};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::model::{AccountId, Anchor, DirectoryUser, GroupLink, Link, LinkState};
use crate::plan::{Action, ActionKind, Change, Notice};
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
    #[error("no journal at {}: idsync has not run with this state_dir yet (check state_dir in the config, or run `idsync sync` first)", path.display())]
    Missing { path: PathBuf },
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
    pub counts: &'a RunCounts,
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
    pub mode: Mode,
    pub trigger: String,
    pub source_users: Option<i64>,
    pub counts: RunCounts,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// The app the run was for.
    pub app: String,
}

/// What `/metrics` reports, read from the journal.
#[derive(Debug, Default)]
pub struct MetricsData {
    /// (app, mode, outcome, runs)
    pub runs: Vec<(String, String, String, i64)>,
    /// (app, kind, status, actions)
    pub actions: Vec<(String, String, String, i64)>,
    pub last_success: Option<DateTime<Utc>>,
}

/// One row of `actions`.
#[derive(Clone, Debug, Serialize)]
pub struct ActionRow {
    pub run: i64,
    pub seq: i64,
    pub kind: ActionKind,
    pub user_name: String,
    pub anchor: Option<String>,
    pub account: Option<AccountId>,
    pub reason: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// The changed fields in the order the plan had them (`after`'s keys as written).
    #[serde(skip)]
    pub fields: Vec<String>,
    pub status: Status,
    pub error: Option<String>,
    pub at: String,
    /// The app whose run planned it.
    pub app: String,
}

pub struct Journal {
    store: std::sync::Arc<Store>,
    /// The app whose runs and links this handle reads and writes; `None` (only from
    /// `open`): the default app's links, and every app's runs.
    app: Option<String>,
}

/// The app of a config with a single `target:`, and of everything an older release wrote.
pub const DEFAULT_APP: &str = "default";

/// One open journal file, shared by the handles of every app.
struct Store {
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

/// `{field: value}` maps of a change list's before and after sides, the fields in the
/// plan's order (the mapping's), which `show` keeps.
fn sides(changes: &[Change]) -> (String, String) {
    let side = |pick: fn(&Change) -> &Option<String>| {
        let fields: Vec<String> = changes
            .iter()
            .map(|c| {
                let key = serde_json::Value::String(c.field.to_string());
                let value = serde_json::to_string(pick(c)).unwrap_or_else(|_| "null".into());
                format!("{key}:{value}")
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    };
    (side(|c| &c.before), side(|c| &c.after))
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
            store: std::sync::Arc::new(Store {
                path,
                conn: Mutex::new(conn),
                busy_ns: AtomicU64::new(0),
            }),
            app: None,
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

    /// Opens the journal in `state_dir` only if it is there: commands that only read it
    /// never create a state dir or an empty journal.
    pub fn open_existing(state_dir: &Path) -> Result<Journal, JournalError> {
        let path = state_dir.join("journal.sqlite3");
        if !path.is_file() {
            return Err(JournalError::Missing { path });
        }
        Journal::open(state_dir)
    }

    /// How long this journal has spent in SQLite since it was opened.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.store.busy_ns.load(Ordering::Relaxed))
    }

    /// A handle on the same file that reads and writes `app`'s runs and links.
    pub fn for_app(&self, app: &str) -> Journal {
        Journal {
            store: self.store.clone(),
            app: Some(app.to_string()),
        }
    }

    /// The app this handle writes for.
    pub fn app(&self) -> &str {
        self.app.as_deref().unwrap_or(DEFAULT_APP)
    }

    /// The app this handle's run queries are limited to (`None`: every app).
    fn only_app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    pub fn path(&self) -> &Path {
        &self.store.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock only means another task panicked mid-call; SQLite's own
        // transactions keep the file consistent, so carry on with the connection.
        self.store.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        let mut conn = self.lock();
        let started = Instant::now();
        let result = f(&mut conn);
        self.store
            .busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result.map_err(|source| JournalError::Sqlite {
            path: self.store.path.clone(),
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

    /// Closes a run with `outcome` and `reason` unless it was closed already: what a run
    /// that stopped on an error leaves, whatever the error.
    pub fn close_open_run(
        &self,
        run: i64,
        outcome: Outcome,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET outcome = ?1, finished = ?2, reason = ?3 WHERE id = ?4 AND outcome = 'running'",
                params![outcome.as_str(), ts(now), reason, run],
            )
            .map(|_| ())
        })
    }

    /// Starts a run. A run left `running` by a process that died is closed as failed first.
    pub fn begin_run(
        &self,
        mode: Mode,
        trigger: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, JournalError> {
        let app = self.app();
        self.with(|c| {
            let tx = c.transaction()?;
            // Its actions still `planned` may or may not have reached the app: say so. The
            // next plan reads the app again, so whatever is still needed is planned anew.
            tx.execute(
                "UPDATE actions SET status = 'failed', at = ?1, error = 'interrupted: idsync stopped before this result was recorded; the app may have it (the next run reads the app and plans what is still needed)' WHERE status = 'planned' AND run IN (SELECT id FROM runs WHERE outcome = 'running' AND app = ?2)",
                params![ts(now), app],
            )?;
            tx.execute(
                "UPDATE runs SET outcome = 'failed', finished = ?1, reason = 'interrupted: the process stopped before the run finished' WHERE outcome = 'running' AND app = ?2",
                params![ts(now), app],
            )?;
            tx.execute(
                "INSERT INTO runs (started, mode, trigger, counts, outcome, app) VALUES (?1, ?2, ?3, '{}', 'running', ?4)",
                params![ts(now), mode.as_str(), trigger, app],
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
        counts: &RunCounts,
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

    /// Remembers what a cycle's directory read leaves for the next incremental one: the
    /// source's cursor and population (`users` is the whole read) and another cursor (the
    /// groups'), in one transaction.
    pub fn remember_read(
        &self,
        remember: Option<(&str, &Remember, &[DirectoryUser])>,
        cursor: Option<(&str, &str)>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            if let Some((source, r, users)) = remember {
                save_source(&tx, source, r, users, now)?;
            }
            if let Some((source, value)) = cursor {
                save_cursor(&tx, source, value, now)?;
            }
            tx.commit()
        })
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
                params![run, ts(now), end.outcome.as_str(), end.source_users.map(|n| n as i64), end.counts.to_json().to_string(), end.reason],
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

    /// Records every action of a plan (as planned or held) in one transaction.
    pub fn record_plan(
        &self,
        run: i64,
        actions: &[Action],
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.record_plan_at(run, 0, actions, now)
    }

    /// `record_plan` for actions numbered from `first_seq` (a run's second round).
    pub fn record_plan_at(
        &self,
        run: i64,
        first_seq: usize,
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
                for (i, a) in actions.iter().enumerate() {
                    let seq = first_seq + i;
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
        let app = self.app();
        self.with(|c| {
            let tx = c.transaction()?;
            tx.prepare_cached(
                "UPDATE actions SET status = ?3, error = ?4, at = ?5, account = COALESCE(?6, account) WHERE run = ?1 AND seq = ?2",
            )?
            .execute(params![run, seq as i64, status.as_str(), error, ts(now), account])?;
            match link {
                LinkChange::None => {}
                LinkChange::Upsert(l) => upsert_link(&tx, app, l)?,
                LinkChange::Remove(anchor) => {
                    tx.prepare_cached("DELETE FROM links WHERE app = ?1 AND anchor = ?2")?
                        .execute(params![app, anchor.as_str()])?;
                }
                LinkChange::GroupUpsert { anchor, group_id, name, added, removed } => {
                    let change = GroupLinkChange { anchor, group_id, name, added, removed };
                    upsert_group_link(&tx, app, &change, now)?;
                }
                LinkChange::GroupRemove(anchor) => {
                    tx.execute("DELETE FROM group_links WHERE app = ?1 AND anchor = ?2", params![app, anchor.as_str()])?;
                }
            }
            tx.commit()
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

#[cfg(test)]
mod tests;
