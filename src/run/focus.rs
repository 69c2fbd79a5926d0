//! When a sync's plan may look only at what changed (`plan::Focus`): the app's last apply
//! run was a whole sync with this configuration, every action it planned was applied and
//! nothing waits in escrow, it covered the directory up to the very cursor this cycle's
//! incremental read started from, and the app's accounts are remembered (this cycle
//! read what changed in them). Then a plan of everyone would differ from that run's only
//! where the directory or the app changed since, or where the rules move a person without
//! a change: `plan::Focus` looks there. Any doubt plans everyone.
//!
//! The cursor check is what makes it safe: a cycle this app sat out (resting, or
//! `--app` for another) or that did not commit its cursor leaves the app's last plan
//! behind the cursor, and the next plan is whole.

use chrono::{DateTime, Utc};

use crate::journal::{Outcome, RunRow};
use crate::plan::Focus;

use super::begin::AppRun;
use super::remembered::AppRead;
use super::snapshot::{DirectoryRead, Snapshot};
use super::RunError;

/// Whether a run's plan stands for everyone with these inputs, and is behind the app: a
/// whole sync with this configuration that ended ok, every action it planned applied,
/// nothing left in escrow. What both the quiet path and a focused plan start from.
pub(super) fn stands(prev: &RunRow, inputs: &str) -> bool {
    let c = &prev.counts;
    prev.outcome == Outcome::Ok
        && c.inputs.as_deref() == Some(inputs)
        && c.escrowed.is_none()
        && c.tally
            .is_some_and(|t| t.failed == 0 && t.held == 0 && t.skipped == 0)
}

/// The focus of this app's plan this cycle, if it may have one.
pub(super) fn focus(
    r: &AppRun<'_>,
    read: &DirectoryRead,
    snap: &Snapshot<'_>,
    inputs: &str,
    now: DateTime<Utc>,
) -> Result<Option<Focus>, RunError> {
    let (Some(delta), AppRead::Incremental { fresh, .. }) = (&read.delta, &snap.app_read) else {
        return Ok(None);
    };
    if !crate::escrow::only_waiting_parts(snap.escrowed.values(), now) {
        return Ok(None);
    }
    let Some(prev) = r.journal.previous_apply_run(r.run)? else {
        return Ok(None);
    };
    if !stands(&prev, inputs) || prev.counts.read_to.as_deref() != Some(delta.from.as_str()) {
        return Ok(None);
    }
    tracing::debug!(app = %r.app.name, people = delta.anchors.len(), accounts = fresh.len(), "the plan looks only at what changed since run {}", prev.id);
    tracing::trace!(anchors = ?delta.anchors, accounts = ?fresh, "focus");
    Ok(Some(Focus {
        anchors: delta.anchors.clone(),
        accounts: fresh.clone(),
        notices: r.journal.notices(prev.id)?,
    }))
}
