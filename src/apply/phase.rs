//! How a run's actions are driven: bounded concurrency, held actions left held, the rest
//! skipped after a stop; and what they came to.

use futures::stream::{self, StreamExt};

use super::{Action, Brake, JournalError, Outcomes, Status};

/// What the actions came to.
pub(super) fn tally(results: Vec<Done>, first_seq: usize) -> Result<Outcomes, JournalError> {
    let mut out = Outcomes::default();
    for r in results {
        let Ended {
            seq,
            status,
            fatal,
            changed,
        } = r?;
        if changed {
            out.changed.push(seq - first_seq);
        }
        match status {
            Status::Applied => out.applied += 1,
            Status::Failed => out.failed += 1,
            Status::Held => out.held += 1,
            Status::Refused => out.app_refused += 1,
            Status::Skipped | Status::Planned | Status::Approved | Status::Rejected => {
                out.skipped += 1
            }
        }
        if out.fatal.is_none() {
            out.fatal = fatal;
        }
    }
    Ok(out)
}

/// How one action ended: its journal `seq` and status, the error that stopped the run (if
/// this one did), and whether the app refused it because the account changed since read.
pub(super) struct Ended {
    pub(super) seq: usize,
    pub(super) status: Status,
    pub(super) fatal: Option<String>,
    pub(super) changed: bool,
}

impl Ended {
    pub(super) fn new(seq: usize, status: Status) -> Ended {
        Ended {
            seq,
            status,
            fatal: None,
            changed: false,
        }
    }
}

pub(super) type Done = Result<Ended, JournalError>;

/// Runs `run` on each action with bounded concurrency; held actions stay held, and after a
/// stop (fatal error or shutdown) the rest are skipped.
pub(super) async fn phase<'a, F, Fut>(
    actions: impl Iterator<Item = (usize, &'a Action)>,
    brake: &Brake,
    shutdown: &tokio_util::sync::CancellationToken,
    concurrency: usize,
    run: F,
) -> Vec<Done>
where
    F: Fn(usize, &'a Action) -> Fut,
    Fut: std::future::Future<Output = Done>,
{
    stream::iter(actions)
        .map(|(seq, action)| {
            let go = (action.held.is_none() && !brake.stopped() && !shutdown.is_cancelled())
                .then(|| run(seq, action));
            async move {
                if action.held.is_some() {
                    return Ok(Ended::new(seq, Status::Held));
                }
                match go {
                    // Checked again: a fatal error may have come while this one waited.
                    Some(f) if !brake.stopped() && !shutdown.is_cancelled() => f.await,
                    _ => Ok(Ended::new(seq, Status::Skipped)),
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}
