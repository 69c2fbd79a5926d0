//! Group sync rules, as one pure function next to the people planner.
//!
//! `plan()` takes the directory's groups (members already resolved to people), the app's
//! groups, the journal's group links and the people plan of the same run (after its safety
//! gate), and returns the group actions: create, adopt (an app group of the same name),
//! rename, member adds and removals, and deletion of a group gone upstream when configured.
//! Only groups idsync created or adopted are touched, and inside them only members that are
//! accounts idsync manages. A person whose account is (or is being) suspended leaves every
//! synced group; a person whose own action is held keeps their memberships as they are.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    Account, AccountId, Anchor, AppGroup, DirectoryGroup, DirectoryUser, GroupLink, Link,
};
use crate::plan::{Action, ActionKind, Change, Field, MemberChange, Notice, Plan, Policy};

/// What happens to a managed app group whose directory group is gone (deleted upstream or
/// no longer selected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vanished {
    /// Leave the group (and its members) as it is and report it; suspended people still
    /// leave it.
    Leave,
    /// Delete the app group (held by the member-removal safety caps like any removal).
    Delete,
}

/// The group rules from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPolicy {
    pub vanished: Vanished,
}

/// What the group planner reads.
pub struct Inputs<'a> {
    pub groups: &'a [DirectoryGroup],
    pub app_groups: &'a [AppGroup],
    pub group_links: &'a BTreeMap<Anchor, GroupLink>,
    pub users: &'a [DirectoryUser],
    pub accounts: &'a [Account],
    pub links: &'a BTreeMap<Anchor, Link>,
    /// The run's people plan, after its safety gate.
    pub people: &'a Plan,
    pub policy: &'a Policy,
    pub groups_policy: &'a GroupPolicy,
}

/// The group actions of a run, with what the safety gate needs to judge them.
#[derive(Debug, Default)]
pub struct GroupPlan {
    pub actions: Vec<Action>,
    pub notices: Vec<Notice>,
    /// Per managed group (by anchor): how many of its members are accounts idsync manages,
    /// before this run.
    pub managed: BTreeMap<Anchor, usize>,
}

/// Where a person's account stands once the run's people actions are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Standing {
    /// Active (or a pending invitation): belongs in the groups the directory says.
    /// `None`: the account is created by this run.
    Active(Option<AccountId>),
    /// Suspended (or being suspended): belongs in no synced group.
    Leaving(String),
    /// Its own action waits (held), it is protected, or unreadable: leave its memberships.
    Frozen,
    /// No account, and none is being made.
    NoAccount,
}

struct Planner<'a> {
    inp: &'a Inputs<'a>,
    users: BTreeMap<&'a Anchor, &'a DirectoryUser>,
    accounts: BTreeMap<&'a str, &'a Account>,
    /// Which person each account belongs to after this run's adoptions.
    owner: BTreeMap<&'a str, &'a Anchor>,
    people: BTreeMap<&'a Anchor, &'a Action>,
    out: GroupPlan,
}

/// Plans the group actions of a run.
pub fn plan(inp: &Inputs<'_>) -> GroupPlan {
    let mut owner: BTreeMap<&str, &Anchor> = inp
        .links
        .values()
        .map(|l| (l.account_id.as_str(), &l.anchor))
        .collect();
    let mut people = BTreeMap::new();
    for a in &inp.people.actions {
        let Some(anchor) = &a.anchor else { continue };
        people.insert(anchor, a);
        if let (ActionKind::Adopt, Some(id), None) = (a.kind, &a.account_id, &a.held) {
            owner.insert(id.as_str(), anchor);
        }
    }
    let p = Planner {
        inp,
        users: inp.users.iter().map(|u| (&u.anchor, u)).collect(),
        accounts: inp.accounts.iter().map(|a| (a.id.as_str(), a)).collect(),
        owner,
        people,
        out: GroupPlan::default(),
    };
    p.run()
}

impl<'a> Planner<'a> {
    fn run(mut self) -> GroupPlan {
        let linked_ids: BTreeSet<&str> = self
            .inp
            .group_links
            .values()
            .map(|l| l.group_id.as_str())
            .collect();
        let app_by_id: BTreeMap<&str, &AppGroup> = self
            .inp
            .app_groups
            .iter()
            .map(|g| (g.id.as_str(), g))
            .collect();
        let mut by_name: BTreeMap<String, Vec<&AppGroup>> = BTreeMap::new();
        for g in self.inp.app_groups {
            if !linked_ids.contains(g.id.as_str()) {
                by_name
                    .entry(g.display_name.to_lowercase())
                    .or_default()
                    .push(g);
            }
        }
        let mut claimed: BTreeSet<&str> = BTreeSet::new();
        let mut seen_names: BTreeMap<String, &Anchor> = BTreeMap::new();
        for group in self.inp.groups {
            if let Some(other) = seen_names.insert(group.name.to_lowercase(), &group.anchor) {
                let msg = format!(
                    "group not synced: its name `{}` is also the name of directory group {other}; make `groups.name` unique",
                    group.name
                );
                self.notice(&group.name, &group.anchor, None, msg);
                continue;
            }
            let link = self.inp.group_links.get(&group.anchor);
            let linked = link.and_then(|l| app_by_id.get(l.group_id.as_str()).copied());
            match linked {
                Some(app) => {
                    claimed.insert(app.id.as_str());
                    self.update(group, app, ActionKind::GroupUpdate, None);
                }
                None => {
                    let gone =
                        link.map(|l| format!("its app group {} no longer exists; ", l.group_id));
                    let matches: Vec<&AppGroup> = by_name
                        .get(&group.name.to_lowercase())
                        .map(|v| {
                            v.iter()
                                .copied()
                                .filter(|g| !claimed.contains(g.id.as_str()))
                                .collect()
                        })
                        .unwrap_or_default();
                    if let Some(app) = self.unlinked(group, &matches, gone.unwrap_or_default()) {
                        claimed.insert(app.id.as_str());
                    }
                }
            }
        }
        let present: BTreeSet<&Anchor> = self.inp.groups.iter().map(|g| &g.anchor).collect();
        for link in self.inp.group_links.values() {
            if present.contains(&link.anchor) {
                continue;
            }
            if let Some(app) = app_by_id.get(link.group_id.as_str()) {
                if !claimed.contains(app.id.as_str()) {
                    self.vanished(link, app);
                }
            }
        }
        self.out
            .actions
            .sort_by(|a, b| (a.kind, &a.user_name).cmp(&(b.kind, &b.user_name)));
        self.out
    }

    /// A directory group without a usable link: created, or the one unclaimed app group of
    /// its name adopted (returned), or, several of that name, a notice.
    fn unlinked(
        &mut self,
        group: &'a DirectoryGroup,
        matches: &[&'a AppGroup],
        gone: String,
    ) -> Option<&'a AppGroup> {
        match matches {
            [] => {
                self.create(group, gone);
                None
            }
            [app] => {
                let why = format!(
                    "{gone}an app group named `{}` exists: taken under management",
                    app.display_name
                );
                self.update(group, app, ActionKind::GroupAdopt, Some(why));
                Some(app)
            }
            many => {
                let ids: Vec<&str> = many.iter().map(|g| g.id.as_str()).collect();
                let msg = format!(
                    "group not synced: {} app groups are named `{}` ({}); rename or remove the extra ones",
                    ids.len(),
                    group.name,
                    ids.join(", ")
                );
                self.notice(&group.name, &group.anchor, None, msg);
                None
            }
        }
    }

    fn notice(&mut self, name: &str, anchor: &Anchor, group_id: Option<&str>, message: String) {
        self.out.notices.push(Notice {
            user_name: Some(name.to_string()),
            anchor: Some(anchor.clone()),
            account_id: group_id.map(AccountId::from),
            message,
        });
    }

    /// Where a person stands after the run's people actions.
    fn standing(&self, anchor: &Anchor) -> Standing {
        let user = self.users.get(anchor).copied();
        let link = self.inp.links.get(anchor);
        let account = link.and_then(|l| self.accounts.get(l.account_id.as_str()).copied());
        if let Some(action) = self.people.get(anchor) {
            if action.held.is_some() {
                return Standing::Frozen;
            }
            let after_active = action
                .changes
                .iter()
                .rev()
                .find(|c| c.field == Field::Active)
                .map(|c| c.after.as_deref() == Some("true"));
            return match action.kind {
                ActionKind::Create | ActionKind::Reinvite => Standing::Active(None),
                ActionKind::Suspend | ActionKind::Delete => Standing::Leaving(leaving_why(user)),
                ActionKind::Adopt | ActionKind::Update | ActionKind::Reactivate => {
                    let id = action.account_id.clone();
                    let active = after_active
                        .or_else(|| {
                            id.as_ref()
                                .and_then(|i| self.accounts.get(i.as_str()))
                                .map(|a| self.counts_as_active(a))
                        })
                        .unwrap_or(true);
                    if active {
                        Standing::Active(id)
                    } else {
                        Standing::Leaving(leaving_why(user))
                    }
                }
                _ => Standing::Frozen,
            };
        }
        let Some(account) = account else {
            return Standing::NoAccount;
        };
        let protected = self
            .inp
            .policy
            .protected
            .matching(account.user_name.as_str())
            .is_some();
        match user {
            _ if protected => Standing::Frozen,
            Some(u) if !u.problems.is_empty() => Standing::Frozen,
            Some(u) if !u.disabled && self.counts_as_active(account) => {
                Standing::Active(Some(account.id.clone()))
            }
            // Present and enabled, but the account stays inactive (after_window: hold).
            Some(u) if !u.disabled => Standing::Leaving("account suspended".into()),
            _ if self.counts_as_active(account) => Standing::Frozen,
            _ => Standing::Leaving(leaving_why(user)),
        }
    }

    fn counts_as_active(&self, account: &Account) -> bool {
        account.active || self.inp.policy.lifecycle.is_pending(account)
    }

    /// The member changes that bring `app` (None: a new group) in line with `group`.
    fn member_changes(
        &self,
        group: Option<&DirectoryGroup>,
        app: Option<&AppGroup>,
    ) -> (Vec<MemberChange>, usize) {
        let mut changes = Vec::new();
        let mut managed = 0usize;
        let mut present: BTreeSet<&Anchor> = BTreeSet::new();
        let wanted: BTreeSet<&Anchor> = group
            .map(|g| g.members.iter().collect())
            .unwrap_or_default();
        for id in app.map(|a| a.members.iter()).into_iter().flatten() {
            let Some(anchor) = self.owner.get(id.as_str()).copied() else {
                continue; // not an account idsync manages: not ours to remove
            };
            managed += 1;
            let name = self.name_of(anchor, Some(id.as_str()));
            let listed_as = app.and_then(|a| a.listed_as.get(id)).cloned();
            let remove = |why: String| MemberChange {
                add: false,
                user_name: name.clone(),
                anchor: Some(anchor.clone()),
                account_id: Some(id.clone()),
                listed_as: listed_as.clone(),
                why,
            };
            match self.standing(anchor) {
                Standing::Frozen => {
                    present.insert(anchor);
                }
                Standing::Leaving(why) => changes.push(remove(format!("suspended: {why}"))),
                Standing::Active(None) => {
                    changes.push(remove("replaced by a new account (reinvite)".into()))
                }
                Standing::Active(Some(now)) if now != *id => {
                    changes.push(remove("no longer this person's account".into()))
                }
                Standing::Active(Some(_)) if group.is_none() => {
                    // A vanished group left as it is: only leavers leave it.
                    present.insert(anchor);
                }
                Standing::Active(Some(_)) if wanted.contains(anchor) => {
                    present.insert(anchor);
                }
                Standing::Active(Some(_)) => {
                    changes.push(remove("no longer a member upstream".into()))
                }
                Standing::NoAccount => changes.push(remove("the account no longer exists".into())),
            }
        }
        for anchor in wanted {
            if present.contains(anchor) {
                continue;
            }
            if let Standing::Active(account) = self.standing(anchor) {
                let why = if account.is_none() {
                    "member upstream; account created by this run"
                } else {
                    "member upstream"
                };
                changes.push(MemberChange {
                    add: true,
                    user_name: self.name_of(anchor, account.as_ref().map(AccountId::as_str)),
                    anchor: Some(anchor.clone()),
                    account_id: account,
                    listed_as: None,
                    why: why.into(),
                });
            }
        }
        changes.sort_by(|a, b| (!a.add, &a.user_name).cmp(&(!b.add, &b.user_name)));
        (changes, managed)
    }

    /// The person's userName as this run leaves it (for plans and the journal).
    fn name_of(&self, anchor: &Anchor, account: Option<&str>) -> String {
        self.people
            .get(anchor)
            .map(|a| a.user_name.clone())
            .or_else(|| {
                account
                    .and_then(|id| self.accounts.get(id))
                    .map(|a| a.user_name.to_string())
            })
            .or_else(|| self.inp.links.get(anchor).map(|l| l.user_name.clone()))
            .unwrap_or_else(|| anchor.to_string())
    }

    fn create(&mut self, group: &DirectoryGroup, prefix: String) {
        let (members, _) = self.member_changes(Some(group), None);
        let reason = format!("{prefix}new in the directory{}", summary(&members));
        self.out.actions.push(Action {
            kind: ActionKind::GroupCreate,
            user_name: group.name.clone(),
            anchor: Some(group.anchor.clone()),
            account_id: None,
            previous_anchor: None,
            changes: with_members(
                vec![Change {
                    field: Field::DisplayName,
                    before: None,
                    after: Some(group.name.clone()),
                }],
                &members,
            ),
            reason,
            held: None,
            hooks: Vec::new(),
            members,
        });
    }

    fn update(
        &mut self,
        group: &DirectoryGroup,
        app: &AppGroup,
        kind: ActionKind,
        why: Option<String>,
    ) {
        let (members, managed) = self.member_changes(Some(group), Some(app));
        self.out.managed.insert(group.anchor.clone(), managed);
        let mut changes = Vec::new();
        if app.display_name != group.name {
            changes.push(Change {
                field: Field::DisplayName,
                before: Some(app.display_name.clone()),
                after: Some(group.name.clone()),
            });
        }
        if kind == ActionKind::GroupUpdate && changes.is_empty() && members.is_empty() {
            return;
        }
        let mut reason = why.unwrap_or_else(|| {
            if changes.is_empty() {
                "membership changed".into()
            } else {
                "renamed upstream".into()
            }
        });
        reason.push_str(&summary(&members));
        self.out.actions.push(Action {
            kind,
            user_name: group.name.clone(),
            anchor: Some(group.anchor.clone()),
            account_id: Some(AccountId::new(app.id.clone())),
            previous_anchor: None,
            changes: with_members(changes, &members),
            reason,
            held: None,
            hooks: Vec::new(),
            members,
        });
    }

    fn vanished(&mut self, link: &GroupLink, app: &AppGroup) {
        let (leavers, managed) = self.member_changes(None, Some(app));
        self.out.managed.insert(link.anchor.clone(), managed);
        match self.inp.groups_policy.vanished {
            Vanished::Leave => {
                let msg = format!(
                    "group gone upstream (deleted or no longer selected): app group {} left as it is (groups.vanished: leave)",
                    app.id
                );
                self.notice(&app.display_name, &link.anchor, Some(&app.id), msg);
                if leavers.is_empty() {
                    return;
                }
                let reason = format!("group gone upstream, left in place{}", summary(&leavers));
                self.out.actions.push(Action {
                    kind: ActionKind::GroupUpdate,
                    user_name: app.display_name.clone(),
                    anchor: Some(link.anchor.clone()),
                    account_id: Some(AccountId::new(app.id.clone())),
                    previous_anchor: None,
                    changes: with_members(Vec::new(), &leavers),
                    reason,
                    held: None,
                    hooks: Vec::new(),
                    members: leavers,
                });
            }
            Vanished::Delete => {
                // Every managed member leaves with the group: the caps count them.
                let members: Vec<MemberChange> = app
                    .members
                    .iter()
                    .filter_map(|id| {
                        let anchor = self.owner.get(id.as_str()).copied()?;
                        Some(MemberChange {
                            add: false,
                            user_name: self.name_of(anchor, Some(id.as_str())),
                            anchor: Some(anchor.clone()),
                            account_id: Some(id.clone()),
                            listed_as: app.listed_as.get(id).cloned(),
                            why: "the group is deleted".into(),
                        })
                    })
                    .collect();
                let reason = format!(
                    "group gone upstream (deleted or no longer selected); groups.vanished: delete{}",
                    summary(&members)
                );
                self.out.actions.push(Action {
                    kind: ActionKind::GroupDelete,
                    user_name: app.display_name.clone(),
                    anchor: Some(link.anchor.clone()),
                    account_id: Some(AccountId::new(app.id.clone())),
                    previous_anchor: None,
                    changes: with_members(Vec::new(), &members),
                    reason,
                    held: None,
                    hooks: Vec::new(),
                    members,
                });
            }
        }
    }
}

fn leaving_why(user: Option<&DirectoryUser>) -> String {
    match user {
        Some(u) if u.disabled => "disabled upstream".into(),
        Some(_) => "account suspended".into(),
        None => "gone upstream".into(),
    }
}

/// Adds the `members` change (removed names before, added names after) to a change list.
pub fn with_members(mut changes: Vec<Change>, members: &[MemberChange]) -> Vec<Change> {
    if members.is_empty() {
        return changes;
    }
    let names = |add: bool| {
        let v: Vec<&str> = members
            .iter()
            .filter(|m| m.add == add)
            .map(|m| m.user_name.as_str())
            .collect();
        (!v.is_empty()).then(|| v.join(", "))
    };
    changes.push(Change {
        field: Field::Members,
        before: names(false),
        after: names(true),
    });
    changes
}

/// `: 2 added (member upstream); 1 removed (suspended: gone upstream)`.
fn summary(members: &[MemberChange]) -> String {
    let mut parts: BTreeMap<(bool, &str), usize> = BTreeMap::new();
    for m in members {
        *parts.entry((!m.add, m.why.as_str())).or_default() += 1;
    }
    if parts.is_empty() {
        return String::new();
    }
    let text: Vec<String> = parts
        .into_iter()
        .map(|((removed, why), n)| {
            let verb = if removed { "removed" } else { "added" };
            format!("{n} {verb} ({why})")
        })
        .collect();
    format!(": {}", text.join("; "))
}

/// `+alice +dave -bob`: a membership change as plans print it.
pub fn member_text(members: &[MemberChange]) -> String {
    members
        .iter()
        .map(|m| format!("{}{}", if m.add { '+' } else { '-' }, m.user_name))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every person a group holds, nested groups included: `direct` maps each group to its
/// people, `children` to the groups it contains. Cycles are cut; a group appears once.
pub fn flatten(
    group: &Anchor,
    direct: &BTreeMap<Anchor, BTreeSet<Anchor>>,
    children: &BTreeMap<Anchor, BTreeSet<Anchor>>,
) -> BTreeSet<Anchor> {
    let mut out = BTreeSet::new();
    let mut visited = BTreeSet::new();
    let mut stack = vec![group.clone()];
    while let Some(g) = stack.pop() {
        if !visited.insert(g.clone()) {
            continue;
        }
        if let Some(people) = direct.get(&g) {
            out.extend(people.iter().cloned());
        }
        if let Some(kids) = children.get(&g) {
            stack.extend(kids.iter().filter(|k| !visited.contains(*k)).cloned());
        }
    }
    out
}

#[cfg(test)]
mod tests;
