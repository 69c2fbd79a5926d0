//! The plan a run acts on: the people's plan, gated, with the groups' plan after it, cut
//! down to one person for `sync --user`. Pure: both sides were read before.

use chrono::{DateTime, Utc};

use crate::config::AppConfig;
use crate::model::UserName;
use crate::plan::{self, Plan};
use crate::safety;

use super::snapshot::Snapshot;

pub(super) fn make_plan(
    cfg: &AppConfig,
    snap: &Snapshot<'_>,
    only_user: Option<&str>,
    now: DateTime<Utc>,
) -> Plan {
    let policy = match snap.photos_read_only {
        true => std::borrow::Cow::Owned(plan::Policy {
            photos: None,
            ..cfg.policy.clone()
        }),
        false => std::borrow::Cow::Borrowed(&cfg.policy),
    };
    let mut plan = plan::plan(&plan::Inputs {
        users: snap.users,
        accounts: &snap.accounts,
        links: &snap.links,
        policy: &policy,
        now,
        out_of_scope: &snap.out_of_scope,
        focus: snap.focus.as_ref(),
    });
    if snap.photos_read_only {
        plan.notices.push(plan::Notice {
            user_name: None,
            anchor: None,
            account_id: None,
            message: format!(
                "photos are read-only in app {} (its /Schemas says so): no photo is sent to it; set its `target.photo: none` to silence this",
                cfg.name
            ),
        });
    }
    // What the app can do with a leaver, then escrow, then the gates.
    plan::deprovision(&mut plan, cfg.target.deprovision, cfg.target.deletes);
    lay_escrow(&mut plan, cfg, snap, now);
    safety::gate(&mut plan, &cfg.safety);
    if let (Some(groups), Some(gcfg)) = (&snap.groups, &cfg.groups) {
        let mut g = crate::groups::plan(&crate::groups::Inputs {
            groups: &groups.directory,
            app_groups: &groups.app,
            group_links: &groups.links,
            users: snap.users,
            accounts: &snap.accounts,
            links: &snap.links,
            people: &plan,
            policy: &cfg.policy,
            groups_policy: &gcfg.policy,
        });
        safety::gate_groups(&mut g.actions, &g.managed, &cfg.safety);
        plan.actions.extend(g.actions);
        plan.notices.extend(g.notices);
    }
    for a in &mut plan.actions {
        a.hooks = crate::hooks::labels(&cfg.hooks, a);
    }
    if let Some(name) = only_user {
        let wanted = UserName::new(name);
        for a in plan.actions.iter_mut().filter(|a| a.kind.is_group()) {
            only_member(a, &wanted);
        }
        plan.actions.retain(|a| {
            UserName::new(a.user_name.as_str()) == wanted
                || (a.kind.is_group() && !a.members.is_empty())
        });
        plan.notices.retain(|n| {
            n.user_name
                .as_deref()
                .is_some_and(|u| UserName::new(u) == wanted)
        });
    }
    plan
}

/// Before the gates: an action waiting in escrow is no write of this run, and a part the
/// app refused for good is not proposed again as it was (a notice says so).
fn lay_escrow(plan: &mut Plan, cfg: &AppConfig, snap: &Snapshot<'_>, now: DateTime<Utc>) {
    let (quarantined, waiting) = crate::escrow::apply_to_plan(plan, &snap.escrowed, now);
    if quarantined + waiting > 0 {
        tracing::warn!(app = %cfg.name, quarantined, waiting, "actions in escrow: waiting ones are left out, quarantined ones held (`idsync approvals`)");
    }
    let left = crate::escrow::leave_refused_parts(plan, &snap.escrowed, now);
    if left > 0 {
        tracing::info!(app = %cfg.name, left, "photos the app refused for good are left alone (`idsync show last` names them)");
    }
}

/// True when `name` is a person's userName (as the mapping renders it) or an account's.
pub(super) fn knows(cfg: &AppConfig, snap: &Snapshot<'_>, name: &str) -> bool {
    let wanted = UserName::new(name);
    snap.accounts.iter().any(|a| a.user_name == wanted)
        || snap
            .users
            .iter()
            .filter_map(|u| cfg.policy.mapping.user_name(u))
            .any(|u| UserName::new(u.as_str()) == wanted)
}

/// `sync --user`: a group action cut down to that person's membership changes (a group
/// that does not exist yet is created by a full run, not for one person).
fn only_member(a: &mut crate::plan::Action, wanted: &UserName) {
    if a.kind == crate::plan::ActionKind::GroupCreate
        || a.kind == crate::plan::ActionKind::GroupDelete
    {
        a.members.clear();
        return;
    }
    a.members
        .retain(|m| UserName::new(m.user_name.as_str()) == *wanted);
    let kept: Vec<plan::Change> = std::mem::take(&mut a.changes)
        .into_iter()
        .filter(|c| c.field != plan::Field::DisplayName && c.field != plan::Field::Members)
        .collect();
    a.changes = crate::groups::with_members(kept, &a.members);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Anchor;

    #[test]
    fn sync_user_keeps_only_that_persons_membership_change() {
        let member = |name: &str, add: bool| plan::MemberChange {
            add,
            user_name: name.into(),
            anchor: Some(Anchor::new(name)),
            account_id: None,
            listed_as: None,
            why: "member upstream".into(),
        };
        let members = vec![member("ada@x", true), member("bob@x", false)];
        let rename = plan::Change {
            field: plan::Field::DisplayName,
            before: Some("old".into()),
            after: Some("eng".into()),
        };
        let mut a = plan::Action {
            kind: plan::ActionKind::GroupUpdate,
            user_name: "eng".into(),
            anchor: Some(Anchor::new("g1")),
            account_id: Some("G1".into()),
            previous_anchor: None,
            changes: crate::groups::with_members(vec![rename], &members),
            reason: String::new(),
            held: None,
            hooks: Vec::new(),
            members,
        };
        only_member(&mut a, &UserName::new("BOB@x"));
        assert_eq!(a.members.len(), 1);
        assert_eq!(
            a.changes,
            vec![plan::Change {
                field: plan::Field::Members,
                before: Some("bob@x".into()),
                after: None,
            }]
        );
        only_member(&mut a, &UserName::new("carol@x"));
        assert!(a.members.is_empty() && a.changes.is_empty());
    }
}
