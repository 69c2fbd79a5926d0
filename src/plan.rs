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
use crate::model::{Account, Anchor, DirectoryUser, Link, LinkState, UserName};

/// How a person without a link is matched to an existing account.
#[derive(Clone, Debug)]
pub struct MatchRule {
    /// Account field compared (case-insensitively), e.g. `userName`.
    pub target: FieldPath,
    /// Template rendered from the directory user, e.g. `{mail}`.
    pub source: Template,
}

/// What happens to a person who comes back after the reactivation window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterWindow {
    /// Delete the old account, create a new one, relink.
    Reinvite,
    /// Report only: an admin decides.
    Hold,
}

/// What happens to accounts that exist only in the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmanaged {
    Ignore,
    Report,
    Suspend,
}

#[derive(Clone, Debug)]
pub struct Lifecycle {
    pub reactivation_window: Duration,
    pub after_window: AfterWindow,
    /// `None` = never delete.
    pub delete_after: Option<Duration>,
    /// Field rewrites applied on suspension (e.g. title "Former member").
    pub leaver: Vec<(FieldPath, String)>,
    pub unmanaged: Unmanaged,
    /// Account attribute that marks an invitation not yet accepted (value `true`): such an
    /// inactive account is the app's business, never "reactivated" by idsync.
    pub pending: Option<FieldPath>,
}

impl Lifecycle {
    pub(crate) fn is_pending(&self, account: &Account) -> bool {
        !account.active
            && self
                .pending
                .as_ref()
                .and_then(|p| p.get(&account.resource.value()))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            reactivation_window: Duration::days(7),
            after_window: AfterWindow::Reinvite,
            delete_after: None,
            leaver: Vec::new(),
            unmanaged: Unmanaged::Ignore,
            pending: None,
        }
    }
}

/// userName patterns (`admin@*`) of accounts idsync never touches.
#[derive(Clone, Debug, Default)]
pub struct Protected {
    patterns: Vec<glob::Pattern>,
}

impl Protected {
    pub fn new(patterns: Vec<glob::Pattern>) -> Self {
        Protected { patterns }
    }
    /// The pattern protecting this userName, if any.
    pub fn matching(&self, user_name: &str) -> Option<&str> {
        let opts = glob::MatchOptions {
            case_sensitive: false,
            ..Default::default()
        };
        self.patterns
            .iter()
            .find(|p| p.matches_with(user_name, opts))
            .map(|p| p.as_str())
    }
}

/// Photo sync, when the source reads photos and the app takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhotoPolicy {
    /// Larger photos are not uploaded (a warning for that person).
    pub max_bytes: usize,
}

/// Everything the planner needs from the config.
#[derive(Clone, Debug)]
pub struct Policy {
    pub photos: Option<PhotoPolicy>,
    pub mapping: Mapping,
    pub match_rule: MatchRule,
    pub lifecycle: Lifecycle,
    pub protected: Protected,
}

impl Policy {
    /// The accounts' top-level attributes the lifecycle reads or writes (lower-cased): the
    /// mapped ones (whole, so a PATCH of one element keeps the others), the match field, the
    /// pending marker, the leaver fields, and `photos` when photos are synced. An account
    /// needs nothing else; keeping only these is what lets 100k accounts fit in memory.
    pub fn account_attributes(&self) -> BTreeSet<String> {
        let mut keep: BTreeSet<String> = ["id", "username", "active"]
            .into_iter()
            .map(String::from)
            .collect();
        let paths = self
            .mapping
            .fields
            .iter()
            .map(|f| &f.path)
            .chain([&self.match_rule.target])
            .chain(self.lifecycle.pending.as_ref())
            .chain(self.lifecycle.leaver.iter().map(|(p, _)| p));
        keep.extend(paths.map(|p| p.top().to_ascii_lowercase()));
        if self.photos.is_some() {
            keep.insert("photos".into());
        }
        keep
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Create,
    Adopt,
    Update,
    Reactivate,
    Reinvite,
    Suspend,
    Delete,
    /// A directory group new to the app: POST /Groups with its members.
    GroupCreate,
    /// An app group of the same name taken under management (then brought in line).
    GroupAdopt,
    /// A managed group renamed and/or its members added or removed.
    GroupUpdate,
    /// A managed group gone upstream, deleted (`groups.vanished: delete`).
    GroupDelete,
}

impl ActionKind {
    pub const ALL: [ActionKind; 11] = [
        ActionKind::Create,
        ActionKind::Adopt,
        ActionKind::Update,
        ActionKind::Reactivate,
        ActionKind::Reinvite,
        ActionKind::Suspend,
        ActionKind::Delete,
        ActionKind::GroupCreate,
        ActionKind::GroupAdopt,
        ActionKind::GroupUpdate,
        ActionKind::GroupDelete,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Adopt => "adopt",
            ActionKind::Update => "update",
            ActionKind::Reactivate => "reactivate",
            ActionKind::Reinvite => "reinvite",
            ActionKind::Suspend => "suspend",
            ActionKind::Delete => "delete",
            ActionKind::GroupCreate => "group-create",
            ActionKind::GroupAdopt => "group-adopt",
            ActionKind::GroupUpdate => "group-update",
            ActionKind::GroupDelete => "group-delete",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Suspensions and deletions: what `max_deprovisions` counts.
    pub fn is_deprovision(self) -> bool {
        matches!(self, ActionKind::Suspend | ActionKind::Delete)
    }
    /// Actions on app groups (applied after every action on accounts).
    pub fn is_group(self) -> bool {
        matches!(
            self,
            ActionKind::GroupCreate
                | ActionKind::GroupAdopt
                | ActionKind::GroupUpdate
                | ActionKind::GroupDelete
        )
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pseudo-field that carries an account's `active` flag in a change list.
pub const ACTIVE: &str = "active";

/// The pseudo-field of a photo change: before -> after are SHA-256 prefixes, never bytes.
pub const PHOTO: &str = "photo";

/// The pseudo-field of a group's membership change: before -> after name only the members
/// that change (removed ones before, added ones after), as userNames.
pub const MEMBERS: &str = "members";

/// One member added to or removed from an app group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    pub add: bool,
    pub user_name: String,
    /// The person (`None`: an account linked to nobody any more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    /// The account removed, or (adds) the person's account when the plan was made; apply
    /// looks an added person's account up again, as a create in the same run makes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    pub why: String,
}

/// One field's before -> after. `None` = absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One write a run would make, with why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub kind: ActionKind,
    pub user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The anchor that owned the account before (a re-hire taking an account over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_anchor: Option<Anchor>,
    pub changes: Vec<Change>,
    pub reason: String,
    /// Why a safety gate or approval rule holds this action back, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// A group action's member changes (the `members` change says the same for people).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberChange>,
}

/// Something reported, not acted on (protected, conflicts, unreadable data, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStats {
    pub source_users: usize,
    pub source_disabled: usize,
    pub accounts: usize,
    pub links: usize,
}

/// The full list of actions one run would take, computed before any write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub notices: Vec<Notice>,
    pub stats: PlanStats,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
    /// Number of actions per kind.
    pub fn counts(&self) -> BTreeMap<ActionKind, usize> {
        let mut out = BTreeMap::new();
        for a in &self.actions {
            *out.entry(a.kind).or_default() += 1;
        }
        out
    }
}

/// What the planner reads.
pub struct Inputs<'a> {
    pub users: &'a [DirectoryUser],
    pub accounts: &'a [Account],
    pub links: &'a BTreeMap<Anchor, Link>,
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
}

/// Applies the lifecycle rules: one call, one plan.
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    Planner::new(inputs).run()
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
    by_match: BTreeMap<String, Vec<&'a Account>>,
    link_of_account: BTreeMap<&'a str, &'a Link>,
    present: BTreeSet<&'a Anchor>,
    claimed: BTreeSet<&'a str>,
    plan: Plan,
}

impl<'a> Planner<'a> {
    fn new(inp: &'a Inputs<'a>) -> Self {
        let mut by_match: BTreeMap<String, Vec<&Account>> = BTreeMap::new();
        for a in inp.accounts {
            if let Some(key) = inp.policy.match_rule.target.get(&a.resource.value()) {
                by_match.entry(key.to_lowercase()).or_default().push(a);
            }
        }
        Planner {
            inp,
            by_id: inp.accounts.iter().map(|a| (a.id.as_str(), a)).collect(),
            by_match,
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
                },
                ..Plan::default()
            },
        }
    }

    fn policy(&self) -> &'a Policy {
        self.inp.policy
    }

    fn run(mut self) -> Plan {
        for user in self.inp.users {
            self.person(user);
        }
        for link in self.inp.links.values() {
            if !self.present.contains(&link.anchor) {
                self.gone(link);
            }
        }
        for account in self.inp.accounts {
            let id = account.id.as_str();
            if !self.claimed.contains(id) && !self.link_of_account.contains_key(id) {
                self.unmanaged(account);
            }
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
        account: Option<&str>,
        message: String,
    ) {
        self.plan.notices.push(Notice {
            user_name: user_name.map(str::to_string),
            anchor: anchor.cloned(),
            account_id: account.map(str::to_string),
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
        match linked.map(|l| (l, self.by_id.get(l.account_id.as_str()).copied())) {
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
        let desired = self.policy().mapping.desired(user);
        let base = |kind, changes, reason: String| Action {
            kind,
            user_name: user_name.to_string(),
            anchor: Some(user.anchor.clone()),
            account_id: Some(account.id.clone()),
            previous_anchor: None,
            changes,
            reason,
            held: None,
            members: Vec::new(),
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
                let reason = format!("changed upstream: {}", field_list(&changes));
                self.plan
                    .actions
                    .push(base(ActionKind::Update, changes, reason));
            }
            return;
        }
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
                let mut changes = create_changes(&self.policy().mapping, &desired);
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

    /// A present, readable person with no usable link.
    fn unlinked(&mut self, user: &DirectoryUser, user_name: &str, why: Option<String>) {
        let mapping = &self.policy().mapping;
        let desired = mapping.desired(user);
        let prefix = why.map(|w| format!("{w}; ")).unwrap_or_default();
        let key = self
            .policy()
            .match_rule
            .source
            .render(user)
            .map(|k| k.to_lowercase());
        let candidates: Vec<&'a Account> = key
            .and_then(|k| self.by_match.get(&k))
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|a| !self.claimed.contains(a.id.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if candidates.len() > 1 {
            let ids: Vec<&str> = candidates.iter().map(|a| a.id.as_str()).collect();
            let msg = format!(
                "not changed: {} app accounts match ({}); remove the duplicates or tighten `match`",
                ids.len(),
                ids.join(", ")
            );
            self.notice(Some(user_name), Some(&user.anchor), None, msg);
            return;
        }
        if let Some(account) = candidates.first().copied() {
            self.claimed.insert(account.id.as_str());
            if let Some(p) = self.protected_by(&[account.user_name.as_str(), user_name]) {
                let msg =
                    format!("protected by `{p}`: never touched (matches this directory user)");
                self.notice(
                    Some(account.user_name.as_str()),
                    Some(&user.anchor),
                    Some(&account.id),
                    msg,
                );
                return;
            }
            let mut previous_anchor = None;
            if let Some(owner) = self.link_of_account.get(account.id.as_str()) {
                if owner.anchor != user.anchor {
                    if self.present.contains(&owner.anchor) {
                        let msg = format!(
                            "not changed: account {} matches but belongs to another directory user ({})",
                            account.id, owner.anchor
                        );
                        self.notice(Some(user_name), Some(&user.anchor), Some(&account.id), msg);
                        return;
                    }
                    previous_anchor = Some(owner.anchor.clone());
                }
            }
            let mut changes = adoption_changes(self.policy(), &desired, account, user.disabled);
            if !user.disabled {
                let before = previous_anchor
                    .as_ref()
                    .and_then(|a| self.inp.links.get(a))
                    .and_then(|l| l.photo_hash.as_deref());
                changes.extend(self.photo_change(user, user_name, before));
            }
            let mut reason = match &previous_anchor {
                Some(old) => {
                    format!("{prefix}re-hire: takes over the account of {old}, gone upstream")
                }
                None => format!(
                    "{prefix}matches existing account by {}",
                    self.policy().match_rule.target
                ),
            };
            if user.disabled && account.active {
                reason.push_str("; disabled upstream");
            }
            self.plan.actions.push(Action {
                kind: ActionKind::Adopt,
                user_name: user_name.to_string(),
                anchor: Some(user.anchor.clone()),
                account_id: Some(account.id.clone()),
                previous_anchor,
                changes,
                reason,
                held: None,
                members: Vec::new(),
            });
            return;
        }
        if user.disabled {
            return;
        }
        if let Some(p) = self.protected_by(&[user_name]) {
            let msg = format!("protected by `{p}`: not created");
            self.notice(Some(user_name), Some(&user.anchor), None, msg);
            return;
        }
        let mut changes = create_changes(mapping, &desired);
        changes.extend(self.photo_change(user, user_name, None));
        self.plan.actions.push(Action {
            kind: ActionKind::Create,
            user_name: user_name.to_string(),
            anchor: Some(user.anchor.clone()),
            account_id: None,
            previous_anchor: None,
            changes,
            reason: format!("{prefix}new in the directory"),
            held: None,
            members: Vec::new(),
        });
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
        let action = |kind, changes, reason| Action {
            kind,
            user_name: account.user_name.to_string(),
            anchor: Some(link.anchor.clone()),
            account_id: Some(account.id.clone()),
            previous_anchor: None,
            changes,
            reason,
            held: None,
            members: Vec::new(),
        };
        if account.active {
            let seen = link
                .last_seen
                .map(|t| format!("; last seen {}", day(t)))
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
            field: PHOTO.into(),
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
            field: PHOTO.into(),
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
                    field: path.to_string(),
                    before,
                    after: Some(value.clone()),
                });
            }
        }
        changes
    }
}

fn active_change(before: bool, after: bool) -> Change {
    Change {
        field: ACTIVE.into(),
        before: Some(before.to_string()),
        after: Some(after.to_string()),
    }
}

/// What adopting `account` for a person with `desired` values changes: the differing
/// mapped fields (set-once ones only where the account has none), and `active` brought in
/// line with upstream (a pending invitation is left inactive). The planner's adopt and
/// apply's 409-on-create both use it.
pub fn adoption_changes(
    policy: &Policy,
    desired: &crate::mapping::Desired,
    account: &Account,
    disabled: bool,
) -> Vec<Change> {
    let mut changes = diff(
        &policy.mapping,
        desired,
        &account.resource.value(),
        SetOnce::FillEmpty,
    );
    if disabled && account.active {
        changes.insert(0, active_change(true, false));
    } else if !disabled && !account.active && !policy.lifecycle.is_pending(account) {
        changes.insert(0, active_change(false, true));
    }
    changes
}

/// Mapped fields whose value in the account differs from the desired one.
fn diff(
    mapping: &Mapping,
    desired: &BTreeMap<String, Option<String>>,
    resource: &serde_json::Value,
    set_once: SetOnce,
) -> Vec<Change> {
    let mut out = Vec::new();
    for f in &mapping.fields {
        let field = f.path.to_string();
        let want = desired.get(&field).cloned().flatten();
        let have = f.path.get(resource);
        if f.set_once && (set_once == SetOnce::Skip || have.is_some()) {
            continue;
        }
        if want != have {
            out.push(Change {
                field,
                before: have,
                after: want,
            });
        }
    }
    out
}

/// Every mapped field with a value, as written by a create.
fn create_changes(mapping: &Mapping, desired: &BTreeMap<String, Option<String>>) -> Vec<Change> {
    mapping
        .fields
        .iter()
        .filter_map(|f| {
            let field = f.path.to_string();
            let after = desired.get(&field).cloned().flatten()?;
            Some(Change {
                field,
                before: None,
                after: Some(after),
            })
        })
        .collect()
}

fn field_list(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| c.field.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `7d`, `36h`, `15m` style text of a duration.
pub fn duration_text(d: Duration) -> String {
    let s = d.num_seconds();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests;
