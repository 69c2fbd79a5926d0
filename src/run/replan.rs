//! A write the app refused because the account changed in it since idsync read it (a 412
//! to `If-Match`: an admin's edit, another tool) is not retried blind: the account is read
//! again and its person planned anew against what the app has now, and that plan is
//! applied in the same run, once. A second refusal waits for the next cycle. The `before`
//! hooks that ran for a refused write do not run again for its re-planned write of the
//! same kind.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::apply::{Outcomes, Round};
use crate::model::{AccountId, Anchor};
use crate::plan::{Focus, Plan};

use super::planning::make_plan;
use super::remembered::AppSide;
use super::snapshot::Snapshot;
use super::{apply_actions, RunError, Writing};

/// Reads again the accounts of the actions `outcomes.changed` names, plans their people
/// anew and applies that plan as the run's second round; `outcomes` then counts the
/// second round in place of the refused writes.
pub(super) async fn changed(
    w: &Writing<'_>,
    snap: &mut Snapshot<'_>,
    plan: &Plan,
    outcomes: &mut Outcomes,
    now: DateTime<Utc>,
) -> Result<(), RunError> {
    if outcomes.changed.is_empty() || w.shutdown.is_cancelled() || outcomes.fatal.is_some() {
        return Ok(());
    }
    let refused: Vec<&crate::plan::Action> = outcomes
        .changed
        .iter()
        .filter_map(|i| plan.actions.get(*i))
        .collect();
    let ids: BTreeSet<AccountId> = refused
        .iter()
        .filter_map(|a| a.account_id.clone())
        .collect();
    let anchors: BTreeSet<Anchor> = refused.iter().filter_map(|a| a.anchor.clone()).collect();
    let side = AppSide {
        app: w.app,
        journal: w.journal,
        client: w.client,
    };
    let wanted: Vec<AccountId> = ids.iter().cloned().collect();
    let (fresh, gone) = side.read_again(&wanted).await?;
    w.journal.remember_accounts(&fresh, &gone, None)?;
    snap.accounts.retain(|a| !ids.contains(&a.id));
    snap.accounts.extend(fresh);
    // The first round's links (a person it created, suspended) are the ones to plan from.
    snap.links = w.journal.links()?;
    snap.focus = Some(Focus {
        anchors: anchors.clone(),
        accounts: ids.clone(),
        notices: Vec::new(),
    });
    let mut again = make_plan(w.app, snap, None, now);
    again.actions.retain(|a| {
        !a.kind.is_group()
            && (a.account_id.as_ref().is_some_and(|id| ids.contains(id))
                || a.anchor.as_ref().is_some_and(|x| anchors.contains(x)))
    });
    tracing::info!(app = %w.app.name, refused = refused.len(), planned = again.actions.len(), "accounts changed in the app since read: read again and planned anew");
    let second = Round::after(&refused, plan.actions.len());
    let round = apply_actions(w, snap, &again.actions, &second, now).await?;
    outcomes.failed -= outcomes.changed.len();
    outcomes.applied += round.applied;
    outcomes.failed += round.failed;
    outcomes.held += round.held;
    outcomes.skipped += round.skipped;
    outcomes.fatal = round.fatal;
    outcomes.changed = Vec::new();
    Ok(())
}
