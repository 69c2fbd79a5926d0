//! One run, end to end: read both sides (`snapshot`), plan (`planning`), gate, (apply),
//! journal. Every entry point opens its run with `begin`, which also builds the
//! connectors and closes the run whatever ends it; `plan` and `sync` share everything up to
//! the gated plan, and only apply runs write. The run lock (`lock`) keeps apply runs apart;
//! `review` holds what comes after a plan was looked at (approve, reject, saved plans).

mod accounts;
mod begin;
mod focus;
mod lock;
mod planning;
mod probe;
mod quiet;
mod remembered;
mod replan;
mod review;
pub use probe::{probe, Probe};
mod snapshot;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::app::scim::ScimClient;
use crate::app::{AccountReader, GroupReader, TargetError};
use crate::apply::{self, Outcomes, Round};
use crate::config::{AppConfig, Config};
use crate::connectors::Connectors;
use crate::journal::{Journal, JournalError, Outcome, RunCounts, Tally};
use crate::model::{Account, AccountId, Anchor};
use crate::plan::{self, Plan};
use crate::safety::ReadRefused;
use crate::scope::ScopeError;
use crate::source::SourceError;
use tokio_util::sync::CancellationToken;

use begin::{begin, close, AppRun, Opened, RunKind};
pub use lock::RunLock;
use planning::{knows, make_plan};
pub use review::{apply_saved, approve, reject, Applied, Decision, SavedPlan, Selector};
use snapshot::{
    app_read_text, groups_key, read_app, read_directory, source_key, unseen_today, warn_notices,
    AppSource, DirectoryRead, Snapshot,
};

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
    #[error("run aborted before any write: {0}")]
    Scope(#[from] ScopeError),
    #[error("another idsync run holds {path}; wait for it to finish (the daemon and manual runs never overlap)")]
    Busy { path: String },
    #[error("cannot take the run lock {path}: {detail}")]
    Lock { path: String, detail: String },
    #[error("no person or account named {name}: check the userName (as the mapping renders it, e.g. the mail)")]
    NoSuchUser { name: String },
    #[error("run {run} stopped: {reason}")]
    Stopped { run: i64, reason: String },
    #[error("{detail}")]
    NoSuchApp { detail: String },
}

/// One app's part of a cycle: its run, or why it failed (journaled with the run).
#[derive(Debug)]
pub struct AppSummary {
    pub app: String,
    pub result: Result<RunSummary, RunError>,
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
        escrowed: (plan.stats.escrowed > 0).then_some(plan.stats.escrowed),
        ..RunCounts::planned(plan.counts())
    }
}

fn tally(o: &Outcomes) -> Tally {
    Tally {
        applied: o.applied,
        failed: o.failed,
        held: o.held,
        skipped: o.skipped,
        app_refused: o.app_refused,
    }
}

/// Journals `actions` as planned (numbered from the round's `first_seq`), then applies
/// them against the accounts and links read.
async fn apply_actions(
    w: &Writing<'_>,
    snap: &mut Snapshot<'_>,
    actions: &[crate::plan::Action],
    round: &apply::Round,
    now: DateTime<Utc>,
) -> Result<Outcomes, RunError> {
    let (app, journal, run) = (w.app, w.journal, w.run);
    journal.record_plan_at(run, round.first_seq, actions, now)?;
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
        concurrency: app.target.concurrency,
        policy: &app.policy,
        photos: &photos,
        shutdown: &w.shutdown,
        hooks: &w.hooks,
        app: &app.name,
        escrowed: &snap.escrowed,
        round,
    };
    let bar = crate::progress::bar(
        w.progress,
        actions.iter().filter(|a| a.held.is_none()).count() as u64,
        "applying",
    );
    let outcomes = apply::apply(w.client, journal, run, actions, &ctx, &bar).await;
    bar.finish_and_clear();
    snap.accounts = accounts.into_values().collect();
    let outcomes = outcomes?;
    if outcomes.applied + outcomes.failed > 0 {
        let side = remembered::AppSide {
            app,
            journal,
            client: w.client,
        };
        side.after_writes(remembered::written_accounts(journal, actions)?)
            .await?;
        side.after_group_writes(remembered::written_groups(journal, actions)?)
            .await?;
    }
    Ok(outcomes)
}

/// What an apply run writes with.
struct Writing<'a> {
    app: &'a AppConfig,
    journal: &'a Journal,
    client: &'a ScimClient,
    run: i64,
    progress: bool,
    /// Cancelled on shutdown; approvals and saved plans get one nobody cancels.
    shutdown: CancellationToken,
    hooks: crate::hooks::Runner,
}

impl<'a> Writing<'a> {
    fn new(cfg: &Config, r: &'a AppRun<'_>, connectors: &'a Connectors) -> Self {
        Writing {
            app: r.app,
            journal: &r.journal,
            client: connectors.app(&r.app.name),
            run: r.run,
            progress: cfg.progress,
            shutdown: CancellationToken::new(),
            hooks: crate::hooks::Runner::new(r.app.hooks.clone(), &cfg.redactor()),
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
    mut snap: Snapshot<'_>,
    subset: Subset,
    now: DateTime<Utc>,
) -> Result<Outcomes, RunError> {
    let (journal, run) = (w.journal, w.run);
    let people = snap.users.len();
    let outcomes = apply_actions(w, &mut snap, &subset.actions, &Round::FIRST, now).await?;
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

/// The links whose photo hashes tell a Graph read which photos an app already has: the
/// first app's (an LDAP read has each photo in the entry, and needs none).
fn photo_links(
    cfg: &Config,
    runs: &[AppRun<'_>],
) -> Result<BTreeMap<Anchor, crate::model::Link>, RunError> {
    Ok(match (&cfg.source, runs.first()) {
        (crate::config::SourceConfig::Graph(_), Some(r)) => r.journal.links()?,
        _ => BTreeMap::new(),
    })
}

/// A dry run of `apps` (every app when `None`): one directory read, each app planned;
/// writes nothing to any app.
pub async fn dry_run(
    cfg: &Config,
    journal: &Journal,
    trigger: &str,
    full: bool,
    app: Option<&str>,
) -> Result<Vec<AppSummary>, RunError> {
    let apps = cfg
        .selected(app)
        .map_err(|detail| RunError::NoSuchApp { detail })?;
    begin(
        cfg,
        journal,
        RunKind::DryRun,
        trigger,
        apps,
        |o| async move {
            let now = o.now;
            let links = photo_links(cfg, &o.runs)?;
            let read =
                read_directory(cfg, journal, &o.connectors.directory, &links, full, now).await?;
            // Every app's side is read at once, as a sync does: a plan of N apps costs the
            // slowest app's listing, not the sum.
            let each = o.runs.iter().map(|r| {
                let (read, connectors) = (&read, &o.connectors);
                async move {
                    let result = dry_run_app(cfg, r, connectors, read, now).await;
                    if let Err(e) = &result {
                        close(&r.journal, r.run, e);
                    }
                    AppSummary {
                        app: r.app.name.clone(),
                        result,
                    }
                }
            });
            Ok(futures::future::join_all(each).await)
        },
    )
    .await
}

async fn dry_run_app(
    cfg: &Config,
    r: &AppRun<'_>,
    connectors: &Connectors,
    read: &DirectoryRead,
    now: DateTime<Utc>,
) -> Result<RunSummary, RunError> {
    let (journal, run) = (&r.journal, r.run);
    let client = connectors.app(&r.app.name);
    let snap = read_app(r.app, journal, client, read, cfg.progress, AppSource::List).await?;
    let plan = make_plan(r.app, &snap, None, now);
    journal.record_plan(run, &plan.actions, now)?;
    journal.record_notices(run, &plan.notices)?;
    let c = RunCounts {
        read: Some(read.read_kind.to_string()),
        source_ms: Some(read.source_ms),
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
}

/// What a sync is asked to do beyond the default.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions<'a> {
    /// Apply only this person's actions (userName).
    pub only_user: Option<&'a str>,
    /// Sync only this app (every app when `None`).
    pub app: Option<&'a str>,
    /// Read the whole directory even when an incremental read is possible.
    pub full: bool,
    /// Cancelled on shutdown: writes in flight finish, the rest stay `planned`.
    pub shutdown: CancellationToken,
    /// One-shot gate overrides the operator gave (`--allow-shrink`, ...), journaled with
    /// the run.
    pub overrides: Vec<String>,
    /// Apps left out of this cycle: resting after failed runs (`escrow::app_rest`).
    pub resting: std::collections::BTreeSet<String>,
}

/// One sync cycle: the directory read once, then every selected app planned, gated and
/// applied concurrently, each under its own limits; one app that fails does not stop the
/// others. The incremental source's cursor moves only when every app applied everything.
pub async fn sync(
    cfg: &Config,
    journal: &Journal,
    trigger: &str,
    opts: SyncOptions<'_>,
) -> Result<Vec<AppSummary>, RunError> {
    let mut apps = cfg
        .selected(opts.app)
        .map_err(|detail| RunError::NoSuchApp { detail })?;
    apps.retain(|a| !opts.resting.contains(&a.name));
    if apps.is_empty() {
        return Ok(Vec::new());
    }
    if !opts.overrides.is_empty() {
        tracing::warn!(overrides = %opts.overrides.join(" "), "safety gates overridden for this run");
    }
    begin(cfg, journal, RunKind::Sync, trigger, apps, |o| {
        sync_opened(cfg, journal, o, opts)
    })
    .await
}

async fn sync_opened(
    cfg: &Config,
    journal: &Journal,
    o: Opened<'_>,
    opts: SyncOptions<'_>,
) -> Result<Vec<AppSummary>, RunError> {
    let now = o.now;
    let read_started = std::time::Instant::now();
    let inputs = quiet::inputs(cfg);
    let (mut probed, asked) = match quiet::probe(cfg, journal, &o, &opts, &inputs).await? {
        quiet::Probe::Quiet { cursor, previous } => {
            let read_ms = read_started.elapsed().as_millis() as u64;
            let found = (cursor, previous);
            return quiet::finish(cfg, journal, &o, &opts, found, &inputs, read_ms);
        }
        quiet::Probe::Changed { probed, asked } => (probed, asked),
    };
    let links = photo_links(cfg, &o.runs)?;
    let directory = &o.connectors.directory;
    // The apps are asked what they changed while the directory is read: on a cycle that
    // plans, the slowest app's answer, not the sum.
    let (read, answered) = futures::join!(
        read_directory(cfg, journal, directory, &links, opts.full, now),
        quiet::ask_changes(&o, &asked, opts.full)
    );
    probed.extend(answered);
    let read = read?;
    let read_ms = read_started.elapsed().as_millis() as u64;
    snapshot::record_roster(cfg, journal, &read)?;
    let each = o.runs.iter().map(|r| {
        let (read, connectors, opts) = (&read, &o.connectors, &opts);
        let cycle = Cycle {
            read_ms,
            now,
            changes_read: probed.get(&r.app.name),
            inputs: &inputs,
        };
        async move {
            let result = sync_app(cfg, r, connectors, read, opts, cycle).await;
            if let Err(e) = &result {
                close(&r.journal, r.run, e);
                tracing::error!(app = %r.app.name, run = r.run, error = %e, "app run failed");
            }
            AppSummary {
                app: r.app.name.clone(),
                result,
            }
        }
    });
    let out = futures::future::join_all(each).await;
    // An incremental source's cursor moves only past work every app applied (or held,
    // which the next plan holds again from the same remembered population): after a
    // failure or an early stop the next cycle reads the same changes again.
    let complete = opts.only_user.is_none()
        && opts.app.is_none()
        && out.iter().all(|a| {
            a.result.as_ref().is_ok_and(|s| {
                s.outcomes
                    .as_ref()
                    .is_some_and(|o| o.failed == 0 && o.skipped == 0 && o.fatal.is_none())
            })
        });
    if complete {
        let key = source_key(cfg);
        let remember = read
            .remember
            .as_ref()
            .map(|r| (key.as_str(), r, read.users.as_slice()));
        let groups_key = groups_key(cfg);
        let cursor = read
            .groups
            .as_ref()
            .and_then(|g| g.cursor.as_deref())
            .map(|c| (groups_key.as_str(), c));
        journal.remember_read(remember, cursor, Utc::now())?;
    }
    Ok(out)
}

/// What one app's sync shares with the rest of its cycle.
#[derive(Clone, Copy)]
struct Cycle<'a> {
    /// How long the directory read took.
    read_ms: u64,
    now: DateTime<Utc>,
    /// The app's changes were read (and remembered) by `quiet::probe`: the ids of those that
    /// differed from what was remembered.
    changes_read: Option<&'a BTreeSet<AccountId>>,
    /// `quiet::inputs`.
    inputs: &'a str,
}

async fn sync_app(
    cfg: &Config,
    r: &AppRun<'_>,
    connectors: &Connectors,
    read: &DirectoryRead,
    opts: &SyncOptions<'_>,
    cycle: Cycle<'_>,
) -> Result<RunSummary, RunError> {
    let (journal, run, only_user) = (&r.journal, r.run, opts.only_user);
    let (read_ms, now) = (cycle.read_ms, cycle.now);
    let journal_before = journal.busy();
    let started = std::time::Instant::now();
    let client = connectors.app(&r.app.name);
    let source = AppSource::Remembered {
        force_full: opts.full,
        changes_read: cycle.changes_read,
        now,
    };
    let mut snap = read_app(r.app, journal, client, read, cfg.progress, source).await?;
    if only_user.is_none() {
        snap.focus = focus::focus(r, read, &snap, cycle.inputs, now)?;
    }
    let read_ms = read_ms + started.elapsed().as_millis() as u64;
    if let Some(name) = only_user.filter(|n| !knows(r.app, &snap, n)) {
        let name = name.to_string();
        return Err(RunError::NoSuchUser { name });
    }
    let mut plan = make_plan(r.app, &snap, only_user, now);
    if !snap.app_read.is_full() {
        let side = remembered::AppSide {
            app: r.app,
            journal,
            client,
        };
        plan = remembered::verified(&side, plan, &mut snap, only_user, now).await?;
    }
    if only_user.is_none() {
        journal.supersede_held(run, now)?;
    }
    journal.touch_links(&unseen_today(&snap, now), now)?;
    journal.record_notices(run, &plan.notices)?;
    warn_notices(&plan.notices);
    let apply_started = std::time::Instant::now();
    let writing = Writing {
        shutdown: opts.shutdown.clone(),
        ..Writing::new(cfg, r, connectors)
    };
    let mut outcomes =
        apply_actions(&writing, &mut snap, &plan.actions, &Round::FIRST, now).await?;
    replan::changed(&writing, &mut snap, &plan, &mut outcomes, now).await?;
    let (outcome, reason) = outcome_of(&outcomes, &plan);
    let c = RunCounts {
        read: Some(read.read_kind.to_string()),
        app_read: Some(app_read_text(&snap, &plan)),
        read_ms: Some(read_ms),
        apply_ms: Some(apply_started.elapsed().as_millis() as u64),
        source_ms: Some(read.source_ms),
        // Time in the journal so far (the run's closing commit below is not in it).
        journal_ms: Some((journal.busy() - journal_before).as_millis() as u64),
        overrides: (!opts.overrides.is_empty()).then(|| opts.overrides.join(" ")),
        // Only a whole sync's plan stands for every person (`quiet`, `focus`).
        inputs: only_user.is_none().then(|| cycle.inputs.to_string()),
        read_to: read.read_to().filter(|_| only_user.is_none()),
        ..counts(&plan, Some(&outcomes))
    };
    let people = Some(snap.users.len());
    journal.finish_run(run, outcome, people, &c, reason.as_deref(), Utc::now())?;
    if let (Outcome::Failed, Some(reason)) = (outcome, &reason) {
        tracing::warn!(app = %r.app.name, reason = %reason, "run finished with failures");
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
