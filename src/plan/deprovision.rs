//! How an app takes a leaver, laid over a plan: most apps suspend (`PATCH active=false`),
//! some have no suspension (their `active: false` deletes, or there is none), some cannot
//! deprovision over SCIM at all, some take no DELETE. The planner plans suspensions and
//! deletes; this turns them into what the app can do. Pure.

use super::{Action, ActionKind, Notice, Plan};

/// How an app takes a leaver (`target.deprovision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Deprovision {
    /// PATCH `active: false` (a suspension, undone by a reactivation).
    #[default]
    PatchActive,
    /// The app has no suspension (or its `active: false` deletes): a leaver is deleted.
    Delete,
    /// Not over SCIM at all: a leaver's action is held for an operator (and `held` hooks).
    None,
}

/// Turns the plan's suspensions and deletes into what the app can do: `Delete` makes a
/// suspension a delete; `None` holds them; `deletes: false` leaves a hard delete out with a
/// notice (the account stays suspended).
pub fn deprovision(plan: &mut Plan, how: Deprovision, deletes: bool) {
    let mut notices = Vec::new();
    plan.actions.retain_mut(|a| {
        if !a.kind.is_deprovision() || a.held.is_some() {
            return true;
        }
        match (how, a.kind) {
            (Deprovision::None, _) => {
                a.held = Some(format!(
                    "this app has no deprovisioning over SCIM (target.deprovision: none): {} it in the app, then approve or reject this",
                    a.kind
                ));
                true
            }
            (Deprovision::Delete, ActionKind::Suspend) if deletes => {
                to_delete(a);
                true
            }
            (_, ActionKind::Delete) if !deletes => {
                notices.push(Notice {
                    user_name: Some(a.user_name.clone()),
                    anchor: a.anchor.clone(),
                    account_id: a.account_id.clone(),
                    message: "not deleted: this app takes no DELETE (target.deletes: false); the account stays suspended".into(),
                });
                false
            }
            (Deprovision::Delete, ActionKind::Suspend) => {
                a.held = Some("this app's suspension deletes (target.deprovision: delete), and it takes no DELETE (target.deletes: false): deprovision in the app, then approve or reject this".into());
                true
            }
            _ => true,
        }
    });
    plan.notices.extend(notices);
}

fn to_delete(a: &mut Action) {
    a.kind = ActionKind::Delete;
    a.changes.clear();
    a.reason = format!(
        "{}; this app has no suspension (target.deprovision: delete), so the account is deleted and a return creates a new one",
        a.reason
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, Anchor};

    fn plan_of(kinds: &[ActionKind]) -> Plan {
        Plan {
            actions: kinds
                .iter()
                .map(|k| {
                    Action::on_account(
                        *k,
                        "ada@x.org",
                        &Anchor::new("ada"),
                        &AccountId::new("A1"),
                        Vec::new(),
                        "gone upstream".into(),
                    )
                })
                .collect(),
            ..Plan::default()
        }
    }

    #[test]
    fn an_app_without_suspension_deletes_its_leavers() {
        let mut p = plan_of(&[ActionKind::Suspend, ActionKind::Update]);
        deprovision(&mut p, Deprovision::Delete, true);
        assert_eq!(p.actions[0].kind, ActionKind::Delete);
        assert!(p.actions[0].reason.contains("target.deprovision: delete"));
        assert_eq!(p.actions[1].kind, ActionKind::Update);
    }

    #[test]
    fn an_app_that_cannot_deprovision_holds_leavers_for_an_operator() {
        let mut p = plan_of(&[ActionKind::Suspend, ActionKind::Delete]);
        deprovision(&mut p, Deprovision::None, true);
        assert!(p.actions.iter().all(|a| a.held.is_some()));
    }

    #[test]
    fn an_app_without_delete_keeps_suspended_accounts_with_a_notice() {
        let mut p = plan_of(&[ActionKind::Suspend, ActionKind::Delete]);
        deprovision(&mut p, Deprovision::PatchActive, false);
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].kind, ActionKind::Suspend);
        assert!(p.notices[0].message.contains("takes no DELETE"));
    }
}
