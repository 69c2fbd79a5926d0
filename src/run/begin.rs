//! Opening and closing a run: the run lock (apply runs), the journal row, its tracing span,
//! the connectors, the deadline, and the one rule every entry point shares: a run that was
//! opened is closed, whatever ends it.

use std::future::Future;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::config::{AppConfig, Config};
use crate::connectors::{ConnectError, Connectors};
use crate::journal::{Journal, Mode, Outcome};

use super::{RunError, RunLock};

/// What kind of run an entry point opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RunKind {
    /// `plan`: reads and plans, writes nothing to the app.
    DryRun,
    /// `sync` and the daemon's scheduled runs.
    Sync,
    /// `approve`: applies held actions still planned.
    Approve,
    /// `apply FILE`: applies a reviewed plan's actions still planned.
    ApplyPlan,
}

impl RunKind {
    fn mode(self) -> Mode {
        match self {
            RunKind::DryRun => Mode::DryRun,
            _ => Mode::Apply,
        }
    }

    /// The name the run's tracing span carries.
    fn span_name(self) -> &'static str {
        match self {
            RunKind::DryRun => "dry-run",
            RunKind::Sync => "apply",
            RunKind::Approve => "approve",
            RunKind::ApplyPlan => "apply-plan",
        }
    }
}

/// One app's run in a cycle.
pub(super) struct AppRun<'c> {
    pub(super) app: &'c AppConfig,
    /// The journal, as this app's handle.
    pub(super) journal: Journal,
    pub(super) run: i64,
}

/// A cycle just opened (one run per app), handed to its body.
pub(super) struct Opened<'c> {
    pub(super) runs: Vec<AppRun<'c>>,
    /// The cycle's clock: every rule of every app judges time by this instant.
    pub(super) now: DateTime<Utc>,
    pub(super) connectors: Connectors,
}

impl From<ConnectError> for RunError {
    fn from(e: ConnectError) -> RunError {
        match e {
            ConnectError::Source(e) => RunError::Source(e),
            ConnectError::Target(e) => RunError::Target(e),
        }
    }
}

/// Closes an app's run that ended on `e`, unless the run closed itself: failed, or aborted
/// for a read the safety checks or the app's scope refused.
pub(super) fn close(journal: &Journal, run: i64, e: &RunError) {
    let outcome = match e {
        RunError::Refused(_) | RunError::Scope(_) => Outcome::Aborted,
        _ => Outcome::Failed,
    };
    if let Err(je) = journal.close_open_run(run, outcome, &e.to_string(), Utc::now()) {
        tracing::error!(error = %je, "could not journal the failed run");
    }
}

/// Opens one run of `kind` for each of `apps`, hands them to `body`, and closes them: an
/// apply cycle holds the run lock throughout and is stopped at `run_deadline`; when the
/// body fails as a whole (the directory read, the connectors), every run it left open is
/// closed with that error. A body closes the runs of apps that fail on their own.
pub(super) async fn begin<'c, T, F, Fut>(
    cfg: &'c Config,
    journal: &Journal,
    kind: RunKind,
    trigger: &str,
    apps: Vec<&'c AppConfig>,
    body: F,
) -> Result<T, RunError>
where
    F: FnOnce(Opened<'c>) -> Fut,
    Fut: Future<Output = Result<T, RunError>>,
{
    let _lock = match kind {
        RunKind::DryRun => None,
        _ => Some(RunLock::acquire(&cfg.state_dir)?),
    };
    let now = Utc::now();
    let mut runs = Vec::new();
    for app in &apps {
        let journal = journal.for_app(&app.name);
        let run = journal.begin_run(kind.mode(), trigger, now)?;
        runs.push(AppRun { app, journal, run });
    }
    let opened: Vec<(Journal, i64)> = runs
        .iter()
        .map(|r| (r.journal.for_app(&r.app.name), r.run))
        .collect();
    let first = opened.first().map(|(_, r)| *r).unwrap_or_default();
    let span = tracing::info_span!("run", run_id = first, mode = kind.span_name());
    let work = async {
        let connectors = Connectors::open(cfg, &apps)?;
        body(Opened {
            runs,
            now,
            connectors,
        })
        .await
    }
    .instrument(span);
    let result = match kind {
        RunKind::DryRun => work.await,
        _ => match tokio::time::timeout(cfg.run_deadline, work).await {
            Ok(result) => result,
            Err(_) => {
                let reason = format!(
                    "stopped after run_deadline ({}): a server stopped answering or the run cannot finish; raise run_deadline if runs are this long",
                    humantime::format_duration(cfg.run_deadline)
                );
                tracing::error!(run = first, %reason, "run stopped");
                for (j, run) in &opened {
                    j.abandon_run(*run, &reason, Utc::now())?;
                }
                Err(RunError::Stopped { run: first, reason })
            }
        },
    };
    if let Err(e) = &result {
        for (j, run) in &opened {
            close(j, *run, e);
        }
    }
    result
}
