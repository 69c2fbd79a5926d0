//! The app side of an incremental cycle. The journal remembers every account as the app
//! last showed it (`journal/accounts.rs`): a full read replaces that memory, every write
//! makes it unknown until read again (by the next changes query, or by id), whatever the
//! write came to. Between full reads
//! (every `target.full_every`, and on `--full`) a cycle plans against the remembered
//! accounts, reading from the app only what it must: accounts written since they were
//! read, accounts the app itself changed since (a `meta.lastModified` filter, where the app
//! has one), and, before anything is written, the accounts the plan would act on and the
//! people it would create (looked up by the match rule), so every write is decided on what
//! the app has now; where the app answered the changes query this cycle, that answer is
//! what it has now, for creates and for writes that carry `If-Match` (`verify`).
//! Unmanaged accounts the app gained meanwhile are seen at the next full read.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::app::scim::ScimClient;
use crate::app::settings::ListMode;
use crate::app::{AccountReader, TargetError};
use crate::config::AppConfig;
use crate::journal::{AppReadMarks, Journal, Watermark};
use crate::model::{Account, AccountId, Anchor, DirectoryUser, Link};
use crate::plan::{ActionKind, Plan};

use super::planning::make_plan;
use super::snapshot::Snapshot;

use super::RunError;

mod groups;
pub use groups::{written_groups, AppGroupsRead};

/// Above this many written accounts, the app is listed whole after the writes instead of
/// read back account by account.
const LIST_AFTER_WRITES: usize = 500;

/// How a cycle read the app's accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppRead {
    /// Listed whole (and remembered), for this reason.
    Full { why: String },
    /// Planned against the remembered accounts; `fresh`: those the app changed since
    /// (they differ from what was remembered), those read again (written since) and those
    /// gone; `verified`: read before writing.
    /// `changes`: the app said this cycle what it changed since the watermark.
    Incremental {
        fresh: BTreeSet<AccountId>,
        verified: usize,
        changes: bool,
    },
}

impl AppRead {
    pub fn is_full(&self) -> bool {
        matches!(self, AppRead::Full { .. })
    }
}

impl std::fmt::Display for AppRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppRead::Full { why } => write!(f, "app listed in full ({why})"),
            AppRead::Incremental {
                fresh, verified, ..
            } => write!(
                f,
                "app remembered: {} account(s) changed or read again, {verified} checked before writing",
                fresh.len()
            ),
        }
    }
}

/// Why this cycle must list the app whole, if it must.
pub fn full_reason(
    marks: Option<&AppReadMarks>,
    force_full: bool,
    full_every: std::time::Duration,
    now: DateTime<Utc>,
) -> Option<String> {
    let Some(marks) = marks else {
        return Some("nothing remembered yet".into());
    };
    if force_full {
        return Some("--full".into());
    }
    // A clock set back is no reason to trust an old memory.
    if now < marks.full_at || crate::source::full_every_due(marks.full_at, full_every, now) {
        return Some(format!(
            "target.full_every: {}",
            humantime::format_duration(full_every)
        ));
    }
    None
}

/// The latest `meta.lastModified` of these accounts and `since` (compared as times; the
/// app's own text is kept).
pub fn latest<'a>(accounts: &'a [Account], since: Option<&'a str>) -> Option<String> {
    let stamps: Vec<String> = accounts
        .iter()
        .filter_map(|a| {
            a.resource.value()["meta"]["lastModified"]
                .as_str()
                .map(String::from)
        })
        .collect();
    latest_stamp(stamps.iter().map(String::as_str), since)
}

/// The latest of these `meta.lastModified` stamps and `since`, compared as times.
pub fn latest_stamp<'a>(
    stamps: impl Iterator<Item = &'a str>,
    since: Option<&'a str>,
) -> Option<String> {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok();
    stamps
        .chain(since)
        .filter_map(|t| Some((parse(t)?, t)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, t)| t.to_string())
}

/// A watermark for an app that has none (its full read found no account to take one
/// from): the latest change among the accounts just read back. Every account the app had
/// then is one of them (read after the writes that made them, with any edit made to them
/// before); an edit made after has a later time. An app that has a watermark keeps it
/// (`Watermark::First`): an account not read here may have changed before these.
fn first_mark(accounts: &[Account]) -> Option<String> {
    latest(accounts, None)
}

/// What the cycle's plan is made against, from the app's side.
pub(super) struct AppSide<'a> {
    pub app: &'a AppConfig,
    pub journal: &'a Journal,
    pub client: &'a ScimClient,
}

impl AppSide<'_> {
    /// The app's accounts for this cycle: listed whole and remembered when `full_reason`
    /// says so, else the remembered ones with what changed since read again.
    pub async fn accounts(
        &self,
        links: &BTreeMap<Anchor, Link>,
        users: &[DirectoryUser],
        out_of_scope: &BTreeMap<Anchor, String>,
        force_full: bool,
        changes_read: Option<&BTreeSet<AccountId>>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Account>, AppRead), RunError> {
        let marks = self.journal.app_read_marks()?;
        let every = self.app.target.full_every;
        if let Some(why) = full_reason(marks.as_ref(), force_full, every, now) {
            let accounts =
                super::accounts::read_accounts(self.app, self.client, links, users, out_of_scope)
                    .await?;
            self.journal
                .remember_full_read(&accounts, latest(&accounts, None).as_deref(), now)?;
            return Ok((accounts, AppRead::Full { why }));
        }
        let watermark = marks.and_then(|m| m.watermark);
        let remembered = self.journal.remembered_accounts()?;
        let mut accounts: BTreeMap<AccountId, Account> = remembered
            .accounts
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        // Asked already this cycle (`quiet`): the answer is in what is remembered.
        let (changed, changes) = match changes_read {
            Some(_) => (Vec::new(), true),
            None => match self.changed_since(watermark.as_deref()).await? {
                Some(changed) => (changed, true),
                None => (Vec::new(), false),
            },
        };
        // What the plan must look at: accounts that differ from what was remembered (the
        // `ge` query shows the latest account again every cycle).
        let mut fresh: BTreeSet<AccountId> = changes_read.cloned().unwrap_or_default();
        fresh.extend(
            changed
                .iter()
                .filter(|a| accounts.get(&a.id) != Some(a))
                .map(|a| a.id.clone()),
        );
        let changed_ids: BTreeSet<&AccountId> = changed.iter().map(|a| &a.id).collect();
        // Written since they were read, or linked since (a create): read now.
        let mut again: BTreeSet<AccountId> = remembered.stale;
        again.extend(
            links
                .values()
                .map(|l| l.account_id.clone())
                .filter(|id| !accounts.contains_key(id)),
        );
        let again: Vec<AccountId> = again
            .into_iter()
            .filter(|id| !changed_ids.contains(id))
            .collect();
        let (again, gone) = self.read_again(&again).await?;
        // Only the changes query moves the watermark: it saw every change up to now.
        let watermark = latest(&changed, watermark.as_deref());
        fresh.extend(again.iter().map(|a| a.id.clone()));
        fresh.extend(gone.iter().cloned());
        let mut seen = changed;
        seen.extend(again);
        let moved = watermark.as_deref().map(Watermark::Moved);
        self.journal.remember_accounts(&seen, &gone, moved)?;
        for id in &gone {
            accounts.remove(id);
        }
        for a in seen {
            accounts.insert(a.id.clone(), a);
        }
        Ok((
            accounts.into_values().collect(),
            AppRead::Incremental {
                fresh,
                verified: 0,
                changes,
            },
        ))
    }

    /// What the app changed since `watermark`, where it can say; `None` where it cannot
    /// (an app that cannot filter on `meta.lastModified` has its own edits repaired at the
    /// next full read).
    pub(in crate::run) async fn changed_since(
        &self,
        watermark: Option<&str>,
    ) -> Result<Option<Vec<Account>>, RunError> {
        let Some(since) = watermark else {
            return Ok(None);
        };
        // An app that cannot be listed is not asked for a (filtered) list either.
        if self.app.target.list == crate::app::settings::ListMode::FilterOnly {
            return Ok(None);
        }
        if !self.client.discovery().await?.filter {
            return Ok(None);
        }
        match self.client.changed_since(since).await {
            Ok(changed) => Ok(Some(changed)),
            Err(TargetError::Http { status, .. }) if (400..500).contains(&status) => {
                tracing::warn!(app = %self.app.name, status, "the app does not filter on meta.lastModified: edits made in the app are repaired at the next full read (target.full_every)");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the next cycle's changes query will show what this cycle wrote: the app has
    /// a watermark, can be listed by filter, and did not refuse the query this cycle.
    async fn changes_show_writes(&self) -> Result<bool, RunError> {
        let marked = self
            .journal
            .app_read_marks()?
            .is_some_and(|m| m.watermark.is_some());
        Ok(marked
            && self.app.target.list != ListMode::FilterOnly
            && self.client.answers_changes()
            && self.client.discovery().await?.filter)
    }

    /// These accounts as the app has them now, and those it no longer has.
    pub(super) async fn read_again(
        &self,
        ids: &[AccountId],
    ) -> Result<(Vec<Account>, Vec<AccountId>), RunError> {
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let fresh = self
            .client
            .get_accounts(ids, self.app.target.concurrency)
            .await?;
        let found: BTreeSet<&AccountId> = fresh.iter().map(|a| &a.id).collect();
        let gone = ids
            .iter()
            .filter(|id| !found.contains(id))
            .cloned()
            .collect();
        Ok((fresh, gone))
    }

    /// Before an incremental plan writes: the accounts it acts on read again, and the
    /// people it would create looked up by the match rule (an account made in the app
    /// meanwhile, or by a write whose record a crash lost, is adopted, not duplicated).
    /// Where the app answered this cycle what it changed since the watermark, that answer
    /// already holds every account made or edited since: no one is looked up, and an
    /// account whose writes carry `If-Match` is not read again either (a change made
    /// since the answer is refused with a 412, not overwritten).
    /// Returns what the plan must be made again with, if anything differed.
    pub async fn verify(
        &self,
        plan: &Plan,
        users: &[DirectoryUser],
        accounts: &mut Vec<Account>,
        read: &mut AppRead,
    ) -> Result<Verified, RunError> {
        let answered = matches!(read, AppRead::Incremental { changes: true, .. });
        let guarded = answered && self.client.guards_writes().await?;
        let by_id: BTreeMap<&AccountId, &Account> = match guarded {
            true => accounts.iter().map(|a| (&a.id, a)).collect(),
            false => BTreeMap::new(),
        };
        let versioned = |id: &AccountId| {
            by_id
                .get(id)
                .is_some_and(|a| a.resource.value()["meta"]["version"].is_string())
        };
        let acting = plan
            .actions
            .iter()
            .filter(|a| a.held.is_none() && !a.kind.is_group());
        let ids: Vec<AccountId> = acting
            .clone()
            .filter_map(|a| a.account_id.clone())
            .filter(|id| !versioned(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let creates: BTreeSet<&Anchor> = acting
            .filter(|a| a.kind == ActionKind::Create && !answered)
            .filter_map(|a| a.anchor.as_ref())
            .collect();
        if ids.is_empty() && creates.is_empty() {
            return Ok(Verified::Same);
        }
        if !creates.is_empty() && !self.client.discovery().await?.filter {
            // No lookup without a filter: only a full list tells who exists.
            return Ok(Verified::NeedsFull);
        }
        let (fresh, gone) = self.read_again(&ids).await?;
        let found = self.look_up(users, &creates).await?;
        if let AppRead::Incremental { verified, .. } = read {
            *verified = ids.len() + creates.len();
        }
        let before: BTreeMap<&AccountId, &Account> = accounts.iter().map(|a| (&a.id, a)).collect();
        let differs = !gone.is_empty()
            || fresh.iter().any(|a| before.get(&a.id) != Some(&a))
            || found.iter().any(|a| !before.contains_key(&a.id));
        let mut seen = fresh;
        seen.extend(found.into_iter().filter(|a| !before.contains_key(&a.id)));
        let first = first_mark(&seen);
        let first = first.as_deref().map(Watermark::First);
        self.journal.remember_accounts(&seen, &gone, first)?;
        if !differs {
            return Ok(Verified::Same);
        }
        let gone: BTreeSet<&AccountId> = gone.iter().collect();
        let mut by_id: BTreeMap<AccountId, Account> = std::mem::take(accounts)
            .into_iter()
            .filter(|a| !gone.contains(&a.id))
            .map(|a| (a.id.clone(), a))
            .collect();
        for a in seen {
            by_id.insert(a.id.clone(), a);
        }
        *accounts = by_id.into_values().collect();
        Ok(Verified::Changed)
    }

    /// The accounts the match rule finds for these people.
    async fn look_up(
        &self,
        users: &[DirectoryUser],
        who: &BTreeSet<&Anchor>,
    ) -> Result<Vec<Account>, RunError> {
        let rule = &self.app.policy.match_rule;
        let values: BTreeSet<String> = users
            .iter()
            .filter(|u| who.contains(&u.anchor))
            .filter_map(|u| rule.source.render(u))
            .collect();
        Ok(super::accounts::find_by_match_rule(self.app, self.client, values).await?)
    }

    /// After the writes: the accounts written (or tried) marked unknown for the next
    /// cycle's changes query, or, where the app has none, read again now; so what is
    /// remembered is what the app has, whatever each write came to. Those that cannot be
    /// read now are read at the next cycle.
    pub async fn after_writes(&self, ids: Vec<AccountId>) -> Result<(), RunError> {
        if ids.is_empty() {
            return Ok(());
        }
        // Where the app answers what changed since (a watermark and a lastModified filter),
        // the next cycle's one changes query brings these accounts back as the app has
        // them then: they are marked unknown until, not read one by one now.
        if self.changes_show_writes().await? {
            self.journal.forget_account_state(&ids)?;
            return Ok(());
        }
        // Many writes (a first provisioning, a big change): one list costs less than a GET
        // each, and it is a full read.
        if ids.len() > LIST_AFTER_WRITES && self.app.target.list == ListMode::Full {
            match self.client.list_accounts().await {
                Ok(accounts) => {
                    let watermark = latest(&accounts, None);
                    self.journal
                        .remember_full_read(&accounts, watermark.as_deref(), Utc::now())?;
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(app = %self.app.name, error = %e, "the app could not be listed after the writes: the next cycle lists it");
                    self.journal.forget_app_reads()?;
                    return Ok(());
                }
            }
        }
        match self.read_again(&ids).await {
            Ok((fresh, gone)) => {
                let first = first_mark(&fresh);
                let first = first.as_deref().map(Watermark::First);
                self.journal.remember_accounts(&fresh, &gone, first)?
            }
            Err(e) => {
                tracing::warn!(app = %self.app.name, error = %e, "the written accounts could not be read again: the next cycle reads them");
                self.journal.forget_account_state(&ids)?;
            }
        }
        Ok(())
    }
}

/// An incremental plan checked against the app before anything is written: made again when
/// an account or group it acts on differs from what was remembered, or after listing the
/// app (or its groups) whole when it creates people (groups) the app cannot be searched for.
pub(super) async fn verified(
    side: &AppSide<'_>,
    plan: Plan,
    snap: &mut Snapshot<'_>,
    only_user: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Plan, RunError> {
    let people = side
        .verify(&plan, snap.users, &mut snap.accounts, &mut snap.app_read)
        .await?;
    if people == Verified::NeedsFull {
        // Listed whole: the plan looks at everyone again.
        snap.focus = None;
        let links = &snap.links;
        let (accounts, read) = side
            .accounts(links, snap.users, &snap.out_of_scope, true, None, now)
            .await?;
        snap.accounts = accounts;
        snap.app_read = match read {
            AppRead::Full { .. } => AppRead::Full {
                why: "the plan creates people and the app cannot be searched".into(),
            },
            other => other,
        };
    }
    let groups = match &snap.groups {
        Some(_) if !snap.app_read.is_full() => {
            side.verify_groups(&plan, &mut snap.groups_read).await?
        }
        _ => Verified::Same,
    };
    if let Some(g) = snap.groups.as_mut() {
        let list = groups == Verified::NeedsFull || people == Verified::NeedsFull;
        if list || groups == Verified::Changed {
            let (app_groups, read) = match list {
                true => side.groups(&g.links, true, now).await?,
                false => (
                    side.journal.remembered_groups()?.groups,
                    AppGroupsRead::Listed,
                ),
            };
            g.app = app_groups;
            super::snapshot::recognise_members(&mut g.app, &snap.accounts);
            if list {
                snap.groups_read = Some(read);
            }
        }
    }
    if people == Verified::Same && groups == Verified::Same {
        return Ok(plan);
    }
    Ok(make_plan(side.app, snap, only_user, now))
}

/// The accounts these actions wrote or tried to: those they name, and those the run's
/// creates linked.
pub(super) fn written_accounts(
    journal: &Journal,
    actions: &[crate::plan::Action],
) -> Result<Vec<AccountId>, RunError> {
    let acted = actions
        .iter()
        .filter(|a| a.held.is_none() && !a.kind.is_group());
    let mut ids: BTreeSet<AccountId> = acted.clone().filter_map(|a| a.account_id.clone()).collect();
    let created: Vec<&Anchor> = acted
        .filter(|a| a.kind == ActionKind::Create)
        .filter_map(|a| a.anchor.as_ref())
        .collect();
    ids.extend(journal.linked_accounts(&created)?);
    Ok(ids.into_iter().collect())
}

/// What checking an incremental plan against the app found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// The app has what was remembered: the plan stands.
    Same,
    /// Something differed: plan again with the accounts as read now.
    Changed,
    /// The plan creates people and the app cannot be searched: list it whole.
    NeedsFull,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resource, UserName};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_app_is_listed_whole_at_first_on_full_and_every_full_every() {
        let day = std::time::Duration::from_secs(86_400);
        let marks = AppReadMarks {
            full_at: at("2026-12-01T00:00:00Z"),
            watermark: None,
        };
        let soon = at("2026-12-01T06:00:00Z");
        assert!(full_reason(None, false, day, soon).is_some());
        assert_eq!(full_reason(Some(&marks), false, day, soon), None);
        assert_eq!(
            full_reason(Some(&marks), true, day, soon).as_deref(),
            Some("--full")
        );
        let later = at("2026-12-02T00:00:00Z");
        assert!(full_reason(Some(&marks), false, day, later)
            .unwrap()
            .contains("full_every"));
        // A clock set back is no reason to trust an old memory.
        assert!(full_reason(Some(&marks), false, day, at("2026-11-30T00:00:00Z")).is_some());
        // full_every: 0 lists the app every cycle.
        assert!(full_reason(Some(&marks), false, std::time::Duration::ZERO, soon).is_some());
    }

    #[test]
    fn the_watermark_is_the_latest_change_the_app_showed_by_its_own_clock() {
        let account = |id: &str, modified: &str| Account {
            id: AccountId::new(id),
            user_name: UserName::new(id),
            active: true,
            resource: Resource::new(&serde_json::json!({"meta": {"lastModified": modified}})),
        };
        let list = [
            account("a", "2026-12-01T10:00:00+01:00"),
            account("b", "2026-12-01T09:30:00Z"),
        ];
        assert_eq!(
            latest(&list, Some("2026-12-01T09:00:00Z")).as_deref(),
            Some("2026-12-01T09:30:00Z")
        );
        assert_eq!(
            latest(&[], Some("2026-12-01T09:00:00Z")).as_deref(),
            Some("2026-12-01T09:00:00Z")
        );
        assert_eq!(latest(&[], None), None);
    }
}
