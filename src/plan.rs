//! The lifecycle rules of SPEC.md section 2, as one pure function.
//!
//! `plan()` takes what was read from both sides, the journal's links, the policy and `now`,
//! and returns every action a run would take, each with its reason. It never reads the
//! clock, the network or the disk: dry run and sync share it, and tests drive it directly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::mapping::{FieldPath, Mapping, Template};
use crate::model::{Account, AccountId, Anchor, DirectoryUser, Link, LinkState, UserName};

mod changes;
mod deprovision;
mod focus;
mod policy;
mod unlinked;
mod words;

use changes::{active_change, create_changes, day, diff, update_reason};
pub use changes::{adoption_changes, duration_text};
pub use deprovision::{deprovision, Deprovision};
pub use focus::Focus;
pub use policy::*;
pub use words::*;

/// What the planner reads.
pub struct Inputs<'a> {
    pub users: &'a [DirectoryUser],
    pub accounts: &'a [Account],
    pub links: &'a BTreeMap<Anchor, Link>,
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
    /// People in the directory read but outside this app's scope, with why: a linked one
    /// is suspended (under the app's window, caps and approvals), an unlinked one gets no
    /// account.
    pub out_of_scope: &'a BTreeMap<Anchor, String>,
    /// Only what changed since the last plan, when nothing else can make this plan differ
    /// from it (`Focus`); everyone when `None`.
    pub focus: Option<&'a Focus>,
}

/// Applies the lifecycle rules: one call, one plan.
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    Planner::new(inputs).run()
}

/// A linked person back upstream whose account is inactive: what `back_upstream` judges.
struct Back<'x> {
    user: &'x DirectoryUser,
    user_name: &'x str,
    link: &'x Link,
    account: &'x Account,
    desired: &'x BTreeMap<String, Option<String>>,
    /// The photo change the update would carry.
    photo: Option<Change>,
}

/// Which set-once fields a diff includes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOnce {
    Skip,
    FillEmpty,
}

struct Planner<'a> {
    inp: &'a Inputs<'a>,
    by_id: BTreeMap<&'a str, &'a Account>,
    /// Accounts by their `match` value, built when an unlinked person first needs it (it
    /// parses every account; a focused plan without a new person never does).
    by_match: std::cell::OnceCell<BTreeMap<String, Vec<&'a Account>>>,
    link_of_account: BTreeMap<&'a str, &'a Link>,
    present: BTreeSet<&'a Anchor>,
    claimed: BTreeSet<&'a str>,
    plan: Plan,
}

impl<'a> Planner<'a> {
    fn new(inp: &'a Inputs<'a>) -> Self {
        Planner {
            inp,
            by_id: inp.accounts.iter().map(|a| (a.id.as_str(), a)).collect(),
            by_match: std::cell::OnceCell::new(),
            link_of_account: inp
                .links
                .values()
                .map(|l| (l.account_id.as_str(), l))
                .collect(),
            present: inp.users.iter().map(|u| &u.anchor).collect(),
            claimed: BTreeSet::new(),
            plan: Plan {
                stats: PlanStats {
                    source_users: inp.users.len(),
                    source_disabled: inp.users.iter().filter(|u| u.disabled).count(),
                    accounts: inp.accounts.len(),
                    links: inp.links.len(),
                    escrowed: 0,
                    looked_at: None,
                    gone_looked_at: None,
                },
                ..Plan::default()
            },
        }
    }

    fn policy(&self) -> &'a Policy {
        self.inp.policy
    }

    /// The accounts by their `match` value (lower-cased).
    fn by_match(&self) -> &BTreeMap<String, Vec<&'a Account>> {
        self.by_match.get_or_init(|| {
            let target = &self.inp.policy.match_rule.target;
            let mut by_match: BTreeMap<String, Vec<&Account>> = BTreeMap::new();
            for a in self.inp.accounts {
                // Every account has its userName at hand: no resource parsed for it.
                let key = match target.is_user_name() {
                    true => Some(a.user_name.as_str().to_string()),
                    false => target.get(&a.resource.value()),
                };
                if let Some(key) = key {
                    by_match.entry(key.to_lowercase()).or_default().push(a);
                }
            }
            by_match
        })
    }

    fn run(mut self) -> Plan {
        let mut looked: BTreeSet<&'a Anchor> = BTreeSet::new();
        for user in self.inp.users {
            if self.looks_at(user) {
                if self.inp.focus.is_some() {
                    looked.insert(&user.anchor);
                }
                self.person(user);
            }
        }
        let mut gone = 0;
        for link in self.inp.links.values() {
            if !self.present.contains(&link.anchor) {
                gone += 1;
                self.gone(link);
            }
        }
        for account in self.inp.accounts {
            let id = account.id.as_str();
            if !self.claimed.contains(id)
                && !self.link_of_account.contains_key(id)
                && self
                    .inp
                    .focus
                    .is_none_or(|f| f.accounts.contains(&account.id))
            {
                self.unmanaged(account);
            }
        }
        if let Some(focus) = self.inp.focus {
            self.plan.stats.looked_at = Some(looked.len());
            self.plan.stats.gone_looked_at = Some(gone);
            let kept = focus
                .notices
                .iter()
                .filter(|n| self.still_stands(focus, n, &looked))
                .cloned()
                .collect::<Vec<_>>();
            self.plan.notices.extend(kept);
        }
        self.plan.actions.sort_by(|a, b| {
            (UserName::new(a.user_name.as_str()), a.kind, &a.account_id).cmp(&(
                UserName::new(b.user_name.as_str()),
                b.kind,
                &b.account_id,
            ))
        });
        self.plan
            .notices
            .sort_by(|a, b| (&a.user_name, &a.message).cmp(&(&b.user_name, &b.message)));
        self.plan
    }

    fn notice(
        &mut self,
        user_name: Option<&str>,
        anchor: Option<&Anchor>,
        account: Option<&AccountId>,
        message: String,
    ) {
        self.plan.notices.push(Notice {
            user_name: user_name.map(str::to_string),
            anchor: anchor.cloned(),
            account_id: account.cloned(),
            message,
        });
    }

    fn protected_by(&self, names: &[&str]) -> Option<&'a str> {
        names
            .iter()
            .find_map(|n| self.policy().protected.matching(n))
    }

    /// A person present in the directory read.
    fn person(&mut self, user: &'a DirectoryUser) {
        let mapping = &self.policy().mapping;
        if !user.problems.is_empty() {
            let msg = format!(
                "not changed: {} ({})",
                user.problems.join("; "),
                user.locator
            );
            self.notice(None, Some(&user.anchor), None, msg);
            if let Some(link) = self.inp.links.get(&user.anchor) {
                self.claimed.insert(link.account_id.as_str());
            }
            return;
        }
        let Some(user_name) = mapping.user_name(user) else {
            let msg = format!("not changed: the userName template renders empty for {}; fill the attribute it reads or change `mapping.userName`", user.locator);
            self.notice(None, Some(&user.anchor), None, msg);
            if let Some(link) = self.inp.links.get(&user.anchor) {
                self.claimed.insert(link.account_id.as_str());
            }
            return;
        };
        let linked = self.inp.links.get(&user.anchor);
        let outside = self.inp.out_of_scope.get(&user.anchor);
        match linked.map(|l| (l, self.by_id.get(l.account_id.as_str()).copied())) {
            Some((_, Some(account))) if outside.is_some() => {
                self.claimed.insert(account.id.as_str());
                if account.active
                    && self
                        .protected_by(&[account.user_name.as_str(), &user_name])
                        .is_none()
                {
                    let reason = outside.cloned().unwrap_or_default();
                    let changes = self.suspension_changes(account);
                    self.plan.actions.push(Action::on_account(
                        ActionKind::Suspend,
                        &user_name,
                        &user.anchor,
                        &account.id,
                        changes,
                        reason,
                    ));
                }
            }
            _ if outside.is_some() => {}
            Some((link, Some(account))) => {
                self.claimed.insert(account.id.as_str());
                self.linked(user, &user_name, link, account);
            }
            Some((link, None)) => {
                let why = format!(
                    "its linked account {} no longer exists in the app",
                    link.account_id
                );
                self.unlinked(user, &user_name, Some(why));
            }
            None => self.unlinked(user, &user_name, None),
        }
    }

    fn linked(&mut self, user: &DirectoryUser, user_name: &str, link: &Link, account: &'a Account) {
        if let Some(p) = self.protected_by(&[account.user_name.as_str(), user_name]) {
            let msg = format!("protected by `{p}`: never touched");
            self.notice(
                Some(account.user_name.as_str()),
                Some(&user.anchor),
                Some(&account.id),
                msg,
            );
            return;
        }
        let base = |kind, changes, reason: String| {
            Action::on_account(kind, user_name, &user.anchor, &account.id, changes, reason)
        };
        if user.disabled {
            if account.active {
                let changes = self.suspension_changes(account);
                self.plan.actions.push(base(
                    ActionKind::Suspend,
                    changes,
                    "disabled upstream".into(),
                ));
            }
            return;
        }
        let desired = self.policy().mapping.desired(user);
        let mut changes = diff(
            &self.policy().mapping,
            &desired,
            &account.resource.value(),
            SetOnce::Skip,
        );
        let photo = self.photo_change(user, user_name, link.photo_hash.as_deref());
        changes.extend(photo.clone());
        if account.active || self.policy().lifecycle.is_pending(account) {
            if !changes.is_empty() {
                let reason = update_reason(&changes);
                self.plan
                    .actions
                    .push(base(ActionKind::Update, changes, reason));
            }
            return;
        }
        let back = Back {
            user,
            user_name,
            link,
            account,
            desired: &desired,
            photo,
        };
        self.back_upstream(back, changes);
    }

    /// An enabled person whose account is inactive: reactivated within the window, then
    /// as `after_window` says (hold for an admin, or a new account).
    fn back_upstream(&mut self, b: Back<'_>, mut changes: Vec<Change>) {
        let Back {
            user,
            user_name,
            link,
            account,
            desired,
            photo,
        } = b;
        let base = |kind, changes, reason: String| {
            Action::on_account(kind, user_name, &user.anchor, &account.id, changes, reason)
        };
        let since = match (link.state, link.suspended_at) {
            (LinkState::Suspended, Some(at)) => at,
            _ => {
                changes.insert(0, active_change(false, true));
                let reason = "inactive in the app but enabled upstream".to_string();
                self.plan
                    .actions
                    .push(base(ActionKind::Reactivate, changes, reason));
                return;
            }
        };
        let lc = &self.policy().lifecycle;
        let away = self.inp.now - since;
        if away <= lc.reactivation_window {
            changes.insert(0, active_change(false, true));
            let reason = format!(
                "back upstream; suspended since {} (within reactivation_window {})",
                day(since),
                duration_text(lc.reactivation_window)
            );
            self.plan
                .actions
                .push(base(ActionKind::Reactivate, changes, reason));
            return;
        }
        match lc.after_window {
            AfterWindow::Hold => {
                let msg = format!(
                    "back upstream after the reactivation_window ({} since {}); after_window: hold, so an admin decides",
                    duration_text(lc.reactivation_window),
                    day(since)
                );
                self.notice(Some(user_name), Some(&user.anchor), Some(&account.id), msg);
            }
            AfterWindow::Reinvite => {
                let mut changes = create_changes(&self.policy().mapping, desired);
                changes.insert(0, active_change(false, true));
                // A new account has no photo yet, whatever the old one had.
                changes.extend(self.new_photo(photo, user));
                let reason = format!(
                    "back upstream after the reactivation_window ({} since {}): old account deleted, a new one created",
                    duration_text(lc.reactivation_window),
                    day(since)
                );
                self.plan
                    .actions
                    .push(base(ActionKind::Reinvite, changes, reason));
            }
        }
    }

    /// A linked person absent from the read: deleted upstream or out of scope.
    fn gone(&mut self, link: &'a Link) {
        let Some(account) = self.by_id.get(link.account_id.as_str()).copied() else {
            return;
        };
        if self.claimed.contains(account.id.as_str()) {
            return; // taken over by a re-hire in this plan
        }
        self.claimed.insert(account.id.as_str());
        if let Some(p) = self.protected_by(&[account.user_name.as_str()]) {
            let msg = format!("protected by `{p}`: never touched (gone upstream)");
            self.notice(
                Some(account.user_name.as_str()),
                Some(&link.anchor),
                Some(&account.id),
                msg,
            );
            return;
        }
        let action = |kind, changes, reason| {
            let name = account.user_name.as_str();
            Action::on_account(kind, name, &link.anchor, &account.id, changes, reason)
        };
        if account.active {
            let seen = link
                .last_seen
                // Links are touched once a day (`run::unseen_today`): a day, not a minute.
                .map(|t| format!("; last seen {}", t.format("%Y-%m-%d")))
                .unwrap_or_default();
            let changes = self.suspension_changes(account);
            let reason = format!("no longer in the directory (deleted or out of scope){seen}");
            self.plan
                .actions
                .push(action(ActionKind::Suspend, changes, reason));
            return;
        }
        let lc = &self.policy().lifecycle;
        if let (Some(keep), LinkState::Suspended, Some(since)) =
            (lc.delete_after, link.state, link.suspended_at)
        {
            if self.inp.now - since > keep {
                let reason = format!(
                    "suspended since {}, longer than delete_after {}",
                    day(since),
                    duration_text(keep)
                );
                self.plan
                    .actions
                    .push(action(ActionKind::Delete, Vec::new(), reason));
            }
        }
    }

    fn unmanaged(&mut self, account: &Account) {
        let name = account.user_name.as_str();
        if let Some(p) = self.protected_by(&[name]) {
            let msg = format!("protected by `{p}`: never touched");
            self.notice(Some(name), None, Some(&account.id), msg);
            return;
        }
        match self.policy().lifecycle.unmanaged {
            Unmanaged::Ignore => {}
            Unmanaged::Report => {
                let msg = "unmanaged: no directory user owns or matches this account".to_string();
                self.notice(Some(name), None, Some(&account.id), msg);
            }
            Unmanaged::Suspend if account.active => {
                let changes = self.suspension_changes(account);
                self.plan.actions.push(Action {
                    kind: ActionKind::Suspend,
                    user_name: name.to_string(),
                    anchor: None,
                    account_id: Some(account.id.clone()),
                    previous_anchor: None,
                    changes,
                    reason: "unmanaged: no directory user owns or matches this account (unmanaged: suspend)".into(),
                    held: None,
                    hooks: Vec::new(),
                    members: Vec::new(),
                });
            }
            Unmanaged::Suspend => {}
        }
    }

    /// The photo change that brings the app from the photo last uploaded (`before`, a
    /// SHA-256) to the person's photo now; a photo that fails its checks is a notice and
    /// leaves the app's photo as it is.
    fn photo_change(
        &mut self,
        user: &DirectoryUser,
        user_name: &str,
        before: Option<&str>,
    ) -> Option<Change> {
        let policy = self.policy().photos.as_ref()?;
        let change = |after: Option<String>| Change {
            field: Field::Photo,
            before: before.map(crate::photo::short),
            after,
        };
        match &user.photo {
            None => before.map(|_| change(None)),
            Some(p) if before == Some(p.sha256.as_str()) => None,
            Some(p) if p.bytes.is_empty() => {
                // Remembered from an earlier incremental read, not read again since: it was
                // refused then and has not changed.
                let msg = format!(
                    "photo not synced: photo {} was refused by an earlier run and has not changed since ({}); `sync --full` checks it again",
                    crate::photo::short(&p.sha256),
                    user.locator
                );
                self.notice(Some(user_name), Some(&user.anchor), None, msg);
                None
            }
            Some(p) => match p.check(policy.max_bytes) {
                Ok(_) => Some(change(Some(crate::photo::short(&p.sha256)))),
                Err(e) => {
                    let msg = format!(
                        "photo not synced: {e} ({}); the app keeps the photo it has",
                        user.locator
                    );
                    self.notice(Some(user_name), Some(&user.anchor), None, msg);
                    None
                }
            },
        }
    }

    /// For a brand-new account: the photo as a change from nothing (already checked).
    fn new_photo(&self, checked: Option<Change>, user: &DirectoryUser) -> Option<Change> {
        let p = user.photo.as_ref()?;
        let ok = checked.is_some_and(|c| c.after.is_some())
            || self
                .inp
                .links
                .get(&user.anchor)
                .and_then(|l| l.photo_hash.as_deref())
                == Some(p.sha256.as_str());
        ok.then(|| Change {
            field: Field::Photo,
            before: None,
            after: Some(crate::photo::short(&p.sha256)),
        })
    }

    fn suspension_changes(&self, account: &Account) -> Vec<Change> {
        let mut changes = vec![active_change(true, false)];
        let resource = account.resource.value();
        for (path, value) in &self.policy().lifecycle.leaver {
            let before = path.get(&resource);
            if before.as_deref() != Some(value.as_str()) {
                changes.push(Change {
                    field: Field::mapped(path),
                    before,
                    after: Some(value.clone()),
                });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests;
