//! One run, end to end: read both sides (`snapshot`), plan (`planning`), gate, (apply),
//! journal. Every entry point opens its run with `begin`, which also builds the
//! connectors and closes the run whatever ends it; `plan` and `sync` share everything up to
//! the gated plan, and only apply runs write. The run lock (`lock`) keeps apply runs apart;
//! `review` holds what comes after a plan was looked at (approve, reject, saved plans).

mod begin;
mod lock;
mod planning;
mod review;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::app::scim::ScimClient;
use crate::app::{AccountReader, GroupReader, TargetError};
use crate::apply::{self, Outcomes};
use crate::config::Config;
use crate::connectors::Connectors;
use crate::journal::{Journal, JournalError, Outcome, RunCounts, Tally};
use crate::model::{Account, AccountId, Anchor};
use crate::plan::{self, Plan};
use crate::safety::ReadRefused;
use crate::source::SourceError;
use tokio_util::sync::CancellationToken;

use begin::{begin, Opened, RunKind};
pub use lock::RunLock;
use planning::{knows, make_plan};
pub use review::{apply_saved, approve, reject, Applied, Decision, SavedPlan, Selector};
use snapshot::{groups_key, snapshot, source_key, warn_notices, Snapshot};

/// Why a run did not complete. Each is journaled with the run before it is returned.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("reading the directory failed, nothing was changed: {0}")]
    Source(#[from] SourceError),
    #[error("reading the app failed, nothing was changed: {0}")]
    Target(#[from] TargetError),
    #[error("run aborted before any write: {0}")]
    Refused(#[from] ReadRefused),
    #[error("another idsync run holds {path}; wait for it to finish (the daemon and manual runs never overlap)")]
    Busy { path: String },
    #[error("cannot take the run lock {path}: {detail}")]
    Lock { path: String, detail: String },
    #[error("no person or account named {name}: check the userName (as the mapping renders it, e.g. the mail)")]
    NoSuchUser { name: String },
    #[error("run {run} stopped: {reason}")]
    Stopped { run: i64, reason: String },
}

/// What a finished run reports.
#[derive(Debug)]
pub struct RunSummary {
    pub run: i64,
    pub plan: Plan,
    pub outcomes: Option<Outcomes>,
    pub outcome: Outcome,
}

/// The counts of a plan, and of how its actions ended.
fn counts(plan: &Plan, outcomes: Option<&Outcomes>) -> RunCounts {
    RunCounts {
        tally: outcomes.map(tally),
        ..RunCounts::planned(plan.counts())
    }
}

fn tally(o: &Outcomes) -> Tally {
    Tally {
        applied: o.applied,
        failed: o.failed,
        held: o.held,
        skipped: o.skipped,
    }
}

/// Journals `actions` as planned, then applies them against the accounts and links read
/// (the accounts are moved out of `snap`; the people stay).
async fn apply_actions(
    w: &Writing<'_>,
    snap: &mut Snapshot,
    actions: &[crate::plan::Action],
    now: DateTime<Utc>,
) -> Result<Outcomes, RunError> {
    let (cfg, journal, run) = (w.cfg, w.journal, w.run);
    journal.record_plan(run, actions, now)?;
    let accounts: BTreeMap<AccountId, Account> = std::mem::take(&mut snap.accounts)
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    // The photos this plan uploads (a few), not every photo read.
    let uploads: BTreeSet<&Anchor> = actions
        .iter()
        .filter(|a| {
            a.changes
                .iter()
                .any(|c| c.field == plan::Field::Photo && c.after.is_some())
        })
        .filter_map(|a| a.anchor.as_ref())
        .collect();
    let photos: BTreeMap<Anchor, crate::photo::Photo> = snap
        .users
        .iter()
        .filter(|u| uploads.contains(&u.anchor))
        .filter_map(|u| Some((u.anchor.clone(), u.photo.clone()?)))
        .collect();
    let ctx = apply::Context {
        accounts: &accounts,
        links: &snap.links,
        now,
        concurrency: cfg.target.concurrency,
        policy: &cfg.policy,
        photos: &photos,
        shutdown: &w.shutdown,
    };
    let bar = crate::progress::bar(
        cfg.progress,
        actions.iter().filter(|a| a.held.is_none()).count() as u64,
        "applying",
    );
    let outcomes = apply::apply(w.app, journal, run, actions, &ctx, &bar).await;
    bar.finish_and_clear();
    Ok(outcomes?)
}

/// What an apply run writes with.
struct Writing<'a> {
    cfg: &'a Config,
    journal: &'a Journal,
    app: &'a ScimClient,
    run: i64,
    /// Cancelled on shutdown; approvals and saved plans get one nobody cancels.
    shutdown: CancellationToken,
}

impl<'a> Writing<'a> {
    fn new(cfg: &'a Config, journal: &'a Journal, connectors: &'a Connectors, run: i64) -> Self {
        Writing {
            cfg,
            journal,
            app: &connectors.app,
            run,
            shutdown: CancellationToken::new(),
        }
    }
}

/// Actions hand-picked from a fresh plan (approved, or reviewed and still current).
struct Subset {
    actions: Vec<crate::plan::Action>,
    /// Reviewed actions refused as stale (counted in the run when reviewing).
    refused: Option<usize>,
    /// The run's reason when nothing fatal happened.
    note: Option<String>,
}

/// Applies a subset and closes its run: failed if any action failed, ok otherwise.
async fn apply_subset(
    w: &Writing<'_>,
    mut snap: Snapshot,
    subset: Subset,
    now: DateTime<Utc>,
) -> Result<Outcomes, RunError> {
    let (journal, run) = (w.journal, w.run);
    let people = snap.users.len();
    let outcomes = apply_actions(w, &mut snap, &subset.actions, now).await?;
    let outcome = if outcomes.failed > 0 {
        Outcome::Failed
    } else {
        Outcome::Ok
    };
    let planned = Plan {
        actions: subset.actions,
        ..Plan::default()
    };
    let c = RunCounts {
        refused: subset.refused,
        ..counts(&planned, Some(&outcomes))
    };
    let reason = outcomes.fatal.clone().or(subset.note);
    journal.finish_run(
        run,
        outcome,
        Some(people),
        &c,
        reason.as_deref(),
        Utc::now(),
    )?;
    Ok(outcomes)
}

/// A dry run: reads both sides and plans; writes nothing to the app.
pub async fn dry_run(
    cfg: &Config,
    journal: &Journal,
    trigger: &str,
    full: bool,
) -> Result<RunSummary, RunError> {
    begin(cfg, journal, RunKind::DryRun, trigger, |o| async move {
        let (run, now) = (o.run, o.now);
        let snap = snapshot(cfg, journal, &o.connectors, full, now).await?;
        let plan = make_plan(cfg, &snap, None, now);
        journal.record_plan(run, &plan.actions, now)?;
        journal.record_notices(run, &plan.notices)?;
        let c = RunCounts {
            read: Some(snap.read_kind.to_string()),
            source_ms: Some(snap.source_ms),
            ..counts(&plan, None)
        };
        let people = Some(snap.users.len());
        journal.finish_run(run, Outcome::Ok, people, &c, None, Utc::now())?;
        Ok(RunSummary {
            run,
            plan,
            outcomes: None,
            outcome: Outcome::Ok,
        })
    })
    .await
}

/// What a sync is asked to do beyond the default.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions<'a> {
    /// Apply only this person's actions (userName).
    pub only_user: Option<&'a str>,
    /// Read the whole directory even when an incremental read is possible.
    pub full: bool,
    /// Cancelled on shutdown: writes in flight finish, the rest stay `planned`.
    pub shutdown: CancellationToken,
    /// One-shot gate overrides the operator gave (`--allow-shrink`, ...), journaled with
    /// the run.
    pub overrides: Vec<String>,
}

/// One sync: plan, gate, apply, journal.
pub async fn sync(
    cfg: &Config,
    journal: &Journal,
    trigger: &str,
    opts: SyncOptions<'_>,
) -> Result<RunSummary, RunError> {
    begin(cfg, journal, RunKind::Sync, trigger, |o| {
        sync_opened(cfg, journal, o, opts)
    })
    .await
}

async fn sync_opened(
    cfg: &Config,
    journal: &Journal,
    o: Opened,
    opts: SyncOptions<'_>,
) -> Result<RunSummary, RunError> {
    let (run, now, only_user) = (o.run, o.now, opts.only_user);
    if !opts.overrides.is_empty() {
        tracing::warn!(overrides = %opts.overrides.join(" "), "safety gates overridden for this run");
    }
    let journal_before = journal.busy();
    let read_started = std::time::Instant::now();
    let mut snap = snapshot(cfg, journal, &o.connectors, opts.full, now).await?;
    let read_ms = read_started.elapsed().as_millis() as u64;
    if let Some(name) = only_user.filter(|n| !knows(cfg, &snap, n)) {
        let name = name.to_string();
        return Err(RunError::NoSuchUser { name });
    }
    let plan = make_plan(cfg, &snap, only_user, now);
    if only_user.is_none() {
        journal.supersede_held(run, now)?;
    }
    let present: Vec<&Anchor> = snap
        .users
        .iter()
        .map(|u| &u.anchor)
        .filter(|a| snap.links.contains_key(*a))
        .collect();
    journal.touch_links(&present, now)?;
    journal.record_notices(run, &plan.notices)?;
    warn_notices(&plan.notices);
    let apply_started = std::time::Instant::now();
    let writing = Writing {
        shutdown: opts.shutdown.clone(),
        ..Writing::new(cfg, journal, &o.connectors, run)
    };
    let outcomes = apply_actions(&writing, &mut snap, &plan.actions, now).await?;
    let (outcome, reason) = outcome_of(&outcomes, &plan);
    let c = RunCounts {
        read: Some(snap.read_kind.to_string()),
        read_ms: Some(read_ms),
        apply_ms: Some(apply_started.elapsed().as_millis() as u64),
        source_ms: Some(snap.source_ms),
        // Time in the journal so far (the run's closing commit below is not in it).
        journal_ms: Some((journal.busy() - journal_before).as_millis() as u64),
        overrides: (!opts.overrides.is_empty()).then(|| opts.overrides.join(" ")),
        ..counts(&plan, Some(&outcomes))
    };
    // An incremental source's cursor moves only past work that was all applied (or held,
    // which the next plan holds again from the same remembered population): after a
    // failure or an early stop the next run reads the same changes again.
    let complete = only_user.is_none()
        && outcomes.failed == 0
        && outcomes.skipped == 0
        && outcomes.fatal.is_none();
    let key = source_key(cfg);
    let remember = snap
        .remember
        .as_ref()
        .filter(|_| complete)
        .map(|r| (key.as_str(), r, snap.users.as_slice()));
    let groups_key = groups_key(cfg);
    let group_cursor = snap
        .groups
        .as_ref()
        .and_then(|g| g.cursor.as_deref())
        .filter(|_| complete)
        .map(|c| (groups_key.as_str(), c));
    let end = crate::journal::RunEnd {
        outcome,
        source_users: Some(snap.users.len()),
        counts: &c,
        reason: reason.as_deref(),
        cursor: group_cursor,
    };
    journal.finish_run_remembering(run, &end, remember, Utc::now())?;
    if let (Outcome::Failed, Some(reason)) = (outcome, &reason) {
        tracing::warn!(reason = %reason, "run finished with failures");
    }
    Ok(RunSummary {
        run,
        plan,
        outcomes: Some(outcomes),
        outcome,
    })
}

/// How an apply run ends, and why, from what its actions came to. Pure.
fn outcome_of(outcomes: &Outcomes, plan: &Plan) -> (Outcome, Option<String>) {
    if let Some(f) = &outcomes.fatal {
        (Outcome::Failed, Some(format!("stopped applying: {f}")))
    } else if outcomes.failed > 0 {
        let why = format!(
            "{} action(s) failed; the next run retries them",
            outcomes.failed
        );
        (Outcome::Failed, Some(why))
    } else if outcomes.skipped > 0 {
        let why = format!(
            "stopped early (shutdown): {} action(s) left planned for the next run",
            outcomes.skipped
        );
        (Outcome::Ok, Some(why))
    } else if outcomes.held > 0 {
        let why = plan
            .actions
            .iter()
            .find_map(|a| a.held.clone())
            .unwrap_or_default();
        (
            Outcome::Held,
            Some(format!("{} action(s) held: {why}", outcomes.held)),
        )
    } else {
        (Outcome::Ok, None)
    }
}

/// `check --connect`: reaches both ends (see `Directory::probe`), then lists the app's
/// users (and groups).
pub async fn probe(cfg: &Config) -> Result<String, RunError> {
    let connectors = Connectors::open(cfg)?;
    let directory = connectors.directory.probe(cfg.groups.as_ref()).await?;
    let accounts = connectors.app.list_accounts().await?;
    let mut text = format!("{directory}; app: {} accounts", accounts.len());
    if cfg.groups.is_some() {
        let groups = connectors.app.list_groups().await?;
        text.push_str(&format!(", {} groups", groups.len()));
    }
    Ok(text)
}
