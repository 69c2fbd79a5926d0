//! One action with its hooks around it: `before` (a required one that fails holds the
//! action, unwritten), the write and its journaled result, then `after`; and the `held`
//! hooks of actions a run holds.

use chrono::Utc;

use super::{finish, Brake, Context, Done, Effect, Ended};
use crate::app::TargetError;
use crate::hooks::{Moment, Occasion};
use crate::journal::{Journal, JournalError, Status};
use crate::plan::Action;

/// One action of a run being applied, and what its step needs.
pub(super) struct Step<'s> {
    pub(super) journal: &'s Journal,
    pub(super) run: i64,
    pub(super) seq: usize,
    pub(super) action: &'s Action,
    pub(super) ctx: &'s Context<'s>,
    pub(super) progress: &'s indicatif::ProgressBar,
    pub(super) brake: &'s Brake,
}

/// One action with its hooks: the `before` hooks (a required one that fails holds the
/// action, unwritten; not again for a re-planned write they already ran for), the write,
/// its result journaled, then the `after` hooks.
pub(super) async fn hooked(
    step: Step<'_>,
    write: impl std::future::Future<Output = Result<Effect, TargetError>>,
) -> Done {
    let Step {
        journal,
        run,
        seq,
        action,
        ctx,
        progress,
        brake,
    } = step;
    let before = if ctx.round.before_ran(action) {
        None
    } else {
        call_hooks(journal, run, seq, action, ctx, Moment::Before).await?
    };
    if let Some(why) = before {
        progress.inc(1);
        return hold(journal, run, seq, action, &why);
    }
    let done = write.await;
    progress.inc(1);
    let applied = done.is_ok();
    let result = finish(journal, run, seq, action, ctx, done, brake);
    if applied {
        call_hooks(journal, run, seq, action, ctx, Moment::After).await?;
    }
    result
}

/// Calls the action's hooks of `moment`, journaling each result. `Some(why)`: a required
/// `before` hook failed, so the action must not be written.
pub(super) async fn call_hooks(
    journal: &Journal,
    run: i64,
    seq: usize,
    action: &Action,
    ctx: &Context<'_>,
    moment: Moment,
) -> Result<Option<String>, JournalError> {
    let at = Occasion {
        app: ctx.app,
        run,
        seq,
        action,
        now: ctx.now,
    };
    let mut refused = None;
    for hook in ctx.hooks.for_action(action.kind, moment) {
        let r = ctx.hooks.call(hook, &at).await;
        journal.record_hook(run, seq, &r, Utc::now())?;
        if r.ok {
            tracing::info!(hook = %r.hook, moment = moment.as_str(), user = %action.user_name, status = %r.status, "hook ran");
            continue;
        }
        let why = format!(
            "hook {} failed ({}): {}",
            r.hook,
            r.status,
            r.output.lines().next().unwrap_or("")
        );
        tracing::warn!(hook = %r.hook, moment = moment.as_str(), user = %action.user_name, "{why}");
        if hook.required && moment == Moment::Before && refused.is_none() {
            refused = Some(why);
        }
    }
    Ok(refused)
}

/// An action a required hook refused: held, with the hook's reason, never written.
fn hold(journal: &Journal, run: i64, seq: usize, action: &Action, why: &str) -> Done {
    journal.hold_action(run, seq, why, Utc::now())?;
    tracing::warn!(kind = %action.kind, user = %action.user_name, reason = %why, "action held");
    Ok(Ended::new(seq, Status::Held))
}
