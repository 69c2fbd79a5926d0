//! Executes a gated plan: bounded concurrency, one journal record before and after each
//! write, link changes committed with the result. A fatal target error (unreachable,
//! refused token) stops the remaining actions, which stay `planned` for the next run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::app::{AccountWriter, Created, GroupWriter, TargetError};
mod brake;
mod hooked;
mod phase;
mod photo;

use crate::hooks::Moment;
use crate::journal::{ActionResult, Journal, JournalError, LinkChange, Status};
use crate::model::{Account, AccountId, Anchor, Link, LinkState};
use crate::photo::Photo;
use crate::plan::{Action, ActionKind, Change, Field, MemberChange};
use brake::Brake;
use hooked::{call_hooks, hooked, Step};
use phase::{phase, tally, Done, Ended};
use photo::{planned_photo, remember_part, sync_photo, Part};

/// What the app and the journal knew when the plan was made.
pub struct Context<'a> {
    pub accounts: &'a BTreeMap<AccountId, Account>,
    pub links: &'a BTreeMap<Anchor, Link>,
    pub now: DateTime<Utc>,
    pub concurrency: usize,
    /// The mapping and lifecycle rules, for adopting an account a create collided with.
    pub policy: &'a crate::plan::Policy,
    /// The photos the plan uploads, by anchor.
    pub photos: &'a BTreeMap<Anchor, Photo>,
    /// Cancelled on shutdown: writes in flight finish, the rest are left `planned`.
    pub shutdown: &'a tokio_util::sync::CancellationToken,
    /// The app's hooks, and the app's name they are told.
    pub hooks: &'a crate::hooks::Runner,
    pub app: &'a str,
    /// The app's actions in escrow, by key: one that applies leaves it.
    pub escrowed: &'a BTreeMap<String, crate::escrow::Escrowed>,
    /// Which round of the run this is.
    pub round: &'a Round,
}

/// A run applies its plan in one round, and a second when the app refused writes because
/// their accounts changed since they were read (see `run::replan`).
#[derive(Debug)]
pub struct Round {
    /// The journal `seq` of the first action (a run's second round follows its first).
    pub first_seq: usize,
    /// The actions whose `before` hooks already ran in this run, by kind and account: the
    /// refused writes of the first round. Their re-planned action of the same kind on the
    /// same account is not announced to those hooks twice.
    pub before_ran: BTreeSet<(ActionKind, AccountId)>,
}

impl Round {
    /// A run's first round.
    pub const FIRST: Round = Round {
        first_seq: 0,
        before_ran: BTreeSet::new(),
    };

    /// The second round after `refused`, numbered from `first_seq`.
    pub fn after(refused: &[&Action], first_seq: usize) -> Round {
        Round {
            first_seq,
            before_ran: refused
                .iter()
                .filter_map(|a| Some((a.kind, a.account_id.clone()?)))
                .collect(),
        }
    }

    fn before_ran(&self, action: &Action) -> bool {
        // A first round (every action but a re-plan's) looks nothing up.
        !self.before_ran.is_empty()
            && action
                .account_id
                .as_ref()
                .is_some_and(|id| self.before_ran.contains(&(action.kind, id.clone())))
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcomes {
    pub applied: usize,
    pub failed: usize,
    pub held: usize,
    pub skipped: usize,
    /// Actions whose every part the app refused for good (remembered: `escrow`).
    pub app_refused: usize,
    /// The first error that stopped the run, if one did.
    pub fatal: Option<String>,
    /// The actions (by index) the app refused because the account changed in it since it
    /// was read (a 412 to `If-Match`): read again and planned anew by the run.
    pub changed: Vec<usize>,
}

/// Applies every non-held action of `actions` (already journaled as run `run`): first every
/// action on accounts, then the group actions, whose new members are looked up in the links
/// the first phase left (a person created by this run joins its groups in the same run).
pub async fn apply<W: AccountWriter + GroupWriter>(
    writer: &W,
    journal: &Journal,
    run: i64,
    actions: &[Action],
    ctx: &Context<'_>,
    progress: &indicatif::ProgressBar,
) -> Result<Outcomes, JournalError> {
    let brake = &Brake::default();
    let linked: BTreeSet<&str> = ctx.links.values().map(|l| l.account_id.as_str()).collect();
    let numbered = || {
        actions
            .iter()
            .enumerate()
            .map(|(i, a)| (ctx.round.first_seq + i, a))
    };
    for (seq, action) in numbered().filter(|(_, a)| a.held.is_some()) {
        call_hooks(journal, run, seq, action, ctx, Moment::Held).await?;
    }
    let step = |seq, action| Step {
        journal,
        run,
        seq,
        action,
        ctx,
        progress,
        brake,
    };
    let people = numbered().filter(|(_, a)| !a.kind.is_group());
    let mut results = phase(
        people,
        brake,
        ctx.shutdown,
        ctx.concurrency,
        |seq, action| hooked(step(seq, action), execute(writer, action, ctx, &linked)),
    )
    .await;
    if actions.iter().any(|a| a.kind.is_group()) {
        let accounts: BTreeMap<Anchor, AccountId> = journal
            .links()?
            .into_values()
            .map(|l| (l.anchor, l.account_id))
            .collect();
        let groups = numbered().filter(|(_, a)| a.kind.is_group());
        let more = phase(
            groups,
            brake,
            ctx.shutdown,
            ctx.concurrency,
            |seq, action| hooked(step(seq, action), execute_group(writer, action, &accounts)),
        )
        .await;
        results.extend(more);
    }
    tally(results, ctx.round.first_seq)
}

/// Journals one action's result; a fatal error stops the actions not yet started. A
/// lasting failure puts the action in escrow; one that applies leaves it.
fn finish(
    journal: &Journal,
    run: i64,
    seq: usize,
    action: &Action,
    ctx: &Context<'_>,
    done: Result<Effect, TargetError>,
    brake: &Brake,
) -> Done {
    let key = (done.is_ok() && !ctx.escrowed.is_empty()
        || done.as_ref().is_err_and(crate::escrow::lasting))
    .then(|| crate::escrow::key(action));
    match done {
        Ok(effect) => {
            brake.clear();
            if let Some(key) = key.filter(|k| ctx.escrowed.contains_key(k)) {
                journal.escrow_clear(&key)?;
            }
            let status = remember_part(journal, action, ctx, &effect.part)?;
            let result = ActionResult {
                status,
                account: effect.created.as_deref(),
                error: effect.part.notice.as_deref(),
                link: &effect.link,
            };
            journal.record_result(run, seq, &result, Utc::now())?;
            match status {
                Status::Refused => {
                    tracing::info!(kind = %action.kind, user = %action.user_name, "refused by the app (remembered)")
                }
                _ => tracing::info!(kind = %action.kind, user = %action.user_name, "applied"),
            }
            if let Some(n) = &effect.part.notice {
                tracing::warn!(kind = %action.kind, user = %action.user_name, "{n}");
            }
            Ok(Ended::new(seq, status))
        }
        Err(e) => {
            let text = e.to_string();
            let result = ActionResult {
                status: Status::Failed,
                account: None,
                error: Some(&text),
                link: &LinkChange::None,
            };
            journal.record_result(run, seq, &result, Utc::now())?;
            tracing::warn!(kind = %action.kind, user = %action.user_name, error = %text, "action failed");
            if let Some(key) = key {
                let kind = action.kind.to_string();
                let e =
                    journal.escrow_failure(&key, &action.user_name, &kind, &text, Utc::now())?;
                let next = e.next_try.format("%Y-%m-%d %H:%M UTC");
                match e.quarantined() {
                    true => {
                        tracing::warn!(kind = %action.kind, user = %action.user_name, failures = e.failures, "quarantined: held for an operator from the next run on")
                    }
                    false => {
                        tracing::info!(kind = %action.kind, user = %action.user_name, failures = e.failures, "in escrow: not tried again before {next}")
                    }
                }
            }
            let struck =
                matches!(&e, TargetError::Exhausted { .. }) && !e.fatal() && brake.strike();
            let fatal = e.fatal() || struck;
            if fatal {
                brake.stop();
            }
            let text = match struck {
                true => format!("{text} (and {} writes before it in a row: the app is failing; the rest wait for the next run)", Brake::STRIKES - 1),
                false => text,
            };
            Ok(Ended {
                fatal: fatal.then_some(text),
                changed: matches!(e, TargetError::Changed { .. }),
                ..Ended::new(seq, Status::Failed)
            })
        }
    }
}

/// Applies one group action. Members to add are resolved to the accounts their people have
/// now; a person whose account could not be made is left out and the action fails (after
/// applying the rest), so the next run adds them.
async fn execute_group<W: GroupWriter>(
    writer: &W,
    action: &Action,
    accounts: &BTreeMap<Anchor, AccountId>,
) -> Result<Effect, TargetError> {
    let anchor = action.anchor.clone().unwrap_or_else(|| Anchor::new(""));
    let mut add = Vec::new();
    let mut added = Vec::new();
    let mut missing = Vec::new();
    for m in action.members.iter().filter(|m| m.add) {
        match m.anchor.as_ref().and_then(|a| accounts.get(a)) {
            Some(id) => {
                add.push(id.clone());
                added.extend(m.anchor.clone());
            }
            None => missing.push(m.user_name.as_str()),
        }
    }
    let removals: Vec<&MemberChange> = action.members.iter().filter(|m| !m.add).collect();
    let remove: Vec<AccountId> = removals
        .iter()
        .filter_map(|m| {
            m.listed_as
                .clone()
                .map(AccountId::new)
                .or(m.account_id.clone())
        })
        .collect();
    let removed: Vec<Anchor> = removals.iter().filter_map(|m| m.anchor.clone()).collect();
    let rename = action
        .changes
        .iter()
        .find(|c| c.field == Field::DisplayName)
        .and_then(|c| c.after.clone());
    let name = rename.clone().unwrap_or_else(|| action.user_name.clone());
    let id = match action.kind {
        ActionKind::GroupCreate => writer.create_group(&name, &add).await?,
        ActionKind::GroupDelete => {
            writer.delete_group(target_id(action)?.as_str()).await?;
            return Ok((None, LinkChange::GroupRemove(anchor)).into());
        }
        _ => {
            let id = target_id(action)?.to_string();
            writer
                .update_group(&id, rename.as_deref(), &add, &remove)
                .await?;
            id
        }
    };
    if !missing.is_empty() {
        // What was applied is real: journal it with the failure.
        return Err(TargetError::Stale {
            detail: format!(
                "group {name} ({id}) updated, but {} not added: no account (its create did not apply); the next run adds them",
                missing.join(", ")
            ),
        });
    }
    let created = (action.kind == ActionKind::GroupCreate).then(|| id.clone());
    let link = LinkChange::GroupUpsert {
        anchor,
        group_id: id,
        name,
        added,
        removed,
    };
    Ok((created, link).into())
}

/// The account (or, for a group action, the app group) an action acts on. A plan always
/// names it for these kinds; one that does not (a hand-edited saved plan) fails that action
/// rather than writing to the collection's URL.
fn target_id(action: &Action) -> Result<&AccountId, TargetError> {
    action
        .account_id
        .as_ref()
        .ok_or_else(|| TargetError::Stale {
            detail: format!(
                "{} of {}: the plan names no account to act on; the next run plans again",
                action.kind, action.user_name
            ),
        })
}

/// The link an applied action leaves: `photo_hash` is what the app now has.
struct NewLink {
    state: LinkState,
    suspended_at: Option<DateTime<Utc>>,
    photo_hash: Option<String>,
}

fn link(
    action: &Action,
    anchor: &Anchor,
    account_id: &AccountId,
    l: NewLink,
    now: DateTime<Utc>,
) -> LinkChange {
    LinkChange::Upsert(Link {
        anchor: anchor.clone(),
        account_id: account_id.clone(),
        user_name: action.user_name.clone(),
        state: l.state,
        suspended_at: l.suspended_at,
        last_seen: Some(now),
        photo_hash: l.photo_hash,
    })
}

/// What an applied action leaves: the account it created, its link change, and what
/// became of a part the app refused that does not undo the rest (a photo).
pub(crate) struct Effect {
    created: Option<String>,
    link: LinkChange,
    part: Part,
}

impl From<(Option<String>, LinkChange)> for Effect {
    fn from((created, link): (Option<String>, LinkChange)) -> Effect {
        Effect {
            created,
            link,
            part: Part::default(),
        }
    }
}

async fn execute<W: AccountWriter>(
    writer: &W,
    action: &Action,
    ctx: &Context<'_>,
    linked: &BTreeSet<&str>,
) -> Result<Effect, TargetError> {
    let mut part = Part::default();
    let (created, link) = execute_account(writer, action, ctx, linked, &mut part).await?;
    Ok(Effect {
        created,
        link,
        part,
    })
}

async fn execute_account<W: AccountWriter>(
    writer: &W,
    action: &Action,
    ctx: &Context<'_>,
    linked: &BTreeSet<&str>,
    part: &mut Part,
) -> Result<(Option<String>, LinkChange), TargetError> {
    let now = ctx.now;
    let account = action
        .account_id
        .as_ref()
        .and_then(|id| ctx.accounts.get(id));
    let current = account.map(|a| a.resource.value()).unwrap_or_default();
    let photo = planned_photo(action, ctx)?;
    let fields: Vec<Change> = action
        .changes
        .iter()
        .filter(|c| c.field != Field::Photo)
        .cloned()
        .collect();
    let previous = action.anchor.as_ref().and_then(|a| ctx.links.get(a));
    let fresh = |photo_hash| NewLink {
        state: LinkState::Active,
        suspended_at: None,
        photo_hash,
    };
    match (action.kind, &action.anchor) {
        (ActionKind::Create | ActionKind::Reinvite, Some(anchor)) => {
            // A re-invite deletes the old account first; both make a new one.
            if action.kind == ActionKind::Reinvite {
                writer.delete(target_id(action)?, &current).await?;
            }
            let id = create(writer, &fields, linked, ctx.policy).await?;
            let hash = sync_photo(writer, &id, &serde_json::Value::Null, photo, None, part).await?;
            Ok((
                Some(id.to_string()),
                link(action, anchor, &id, fresh(hash), now),
            ))
        }
        (
            ActionKind::Adopt | ActionKind::Update | ActionKind::Reactivate | ActionKind::Suspend,
            anchor,
        ) => {
            let id = target_id(action)?;
            writer.update(id, &current, &fields).await?;
            let Some(anchor) = anchor else {
                return Ok((None, LinkChange::None));
            };
            let before = photo_before(action, ctx);
            let photo_hash = sync_photo(writer, id, &current, photo, before, part).await?;
            let l = NewLink {
                photo_hash,
                ..state_after(action, previous, now)
            };
            Ok((None, link(action, anchor, id, l, now)))
        }
        (ActionKind::Delete, anchor) => {
            writer.delete(target_id(action)?, &current).await?;
            Ok((
                None,
                anchor
                    .clone()
                    .map(LinkChange::Remove)
                    .unwrap_or(LinkChange::None),
            ))
        }
        (ActionKind::Create | ActionKind::Reinvite, None) => Ok((None, LinkChange::None)),
        (
            ActionKind::GroupCreate
            | ActionKind::GroupAdopt
            | ActionKind::GroupUpdate
            | ActionKind::GroupDelete,
            _,
        ) => unreachable!("group actions are applied by execute_group"),
    }
}

/// The photo the account had before an update (an adopted account's is unknown to idsync
/// until it uploads one; a re-hire's is what its previous owner's link recorded).
fn photo_before(action: &Action, ctx: &Context<'_>) -> Option<String> {
    let anchor = match action.kind {
        ActionKind::Adopt => action.previous_anchor.as_ref(),
        _ => action.anchor.as_ref(),
    };
    anchor
        .and_then(|a| ctx.links.get(a))
        .and_then(|l| l.photo_hash.clone())
}

/// The link's state after an update: suspended when it turns the account off, active
/// after a reactivation or adoption, as it was otherwise.
fn state_after(action: &Action, previous: Option<&Link>, now: DateTime<Utc>) -> NewLink {
    let suspending = action
        .changes
        .iter()
        .any(|c| c.field == Field::Active && c.after.as_deref() == Some("false"));
    let (state, suspended_at) = match action.kind {
        _ if suspending => (LinkState::Suspended, Some(now)),
        ActionKind::Reactivate | ActionKind::Adopt => (LinkState::Active, None),
        _ => previous
            .map(|l| (l.state, l.suspended_at))
            .unwrap_or((LinkState::Active, None)),
    };
    NewLink {
        state,
        suspended_at,
        photo_hash: None,
    }
}

/// Creates an account; a 409 on an unlinked account adopts it instead of duplicating it.
async fn create<W: AccountWriter>(
    writer: &W,
    changes: &[Change],
    linked: &BTreeSet<&str>,
    policy: &crate::plan::Policy,
) -> Result<AccountId, TargetError> {
    match writer.create(changes).await? {
        Created::New(a) => Ok(a.id),
        Created::Existing(a) if linked.contains(a.id.as_str()) => Err(TargetError::Taken {
            user_name: a.user_name.to_string(),
            account: a.id.to_string(),
        }),
        Created::Existing(a) => {
            // What the create meant to write; mapped fields it left out are meant absent.
            let desired = changes
                .iter()
                .filter(|c| c.field != Field::Active)
                .map(|c| (c.field.to_string(), c.after.clone()))
                .collect();
            let fix = crate::plan::adoption_changes(policy, &desired, &a, false);
            writer.update(&a.id, &a.resource.value(), &fix).await?;
            Ok(a.id)
        }
    }
}
