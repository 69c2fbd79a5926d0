//! Opening and closing a run: the run lock (apply runs), the journal row, its tracing span,
//! the connectors, the deadline, and the one rule every entry point shares: a run that was
//! opened is closed, whatever ends it.

use std::future::Future;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::config::Config;
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

/// A run just opened, handed to its body.
pub(super) struct Opened {
    pub(super) run: i64,
    /// The run's clock: every rule of the run judges time by this instant.
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

/// Opens a run of `kind`, hands it to `body`, and closes it: an apply run holds the run lock
/// throughout and is stopped at `run_deadline`; a body that fails leaves its run journaled
/// failed (aborted, for a read the safety checks refused) with the error as the reason,
/// unless it closed the run itself.
pub(super) async fn begin<T, F, Fut>(
    cfg: &Config,
    journal: &Journal,
    kind: RunKind,
    trigger: &str,
    body: F,
) -> Result<T, RunError>
where
    F: FnOnce(Opened) -> Fut,
    Fut: Future<Output = Result<T, RunError>>,
{
    let _lock = match kind {
        RunKind::DryRun => None,
        _ => Some(RunLock::acquire(&cfg.state_dir)?),
    };
    let now = Utc::now();
    let run = journal.begin_run(kind.mode(), trigger, now)?;
    let span = tracing::info_span!("run", run_id = run, mode = kind.span_name());
    let work = async {
        let connectors = Connectors::open(cfg)?;
        body(Opened {
            run,
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
                tracing::error!(run, %reason, "run stopped");
                journal.abandon_run(run, &reason, Utc::now())?;
                Err(RunError::Stopped { run, reason })
            }
        },
    };
    if let Err(e) = &result {
        let outcome = match e {
            RunError::Refused(_) => Outcome::Aborted,
            _ => Outcome::Failed,
        };
        if let Err(je) = journal.close_open_run(run, outcome, &e.to_string(), Utc::now()) {
            tracing::error!(error = %je, "could not journal the failed run");
        }
    }
    result
}
