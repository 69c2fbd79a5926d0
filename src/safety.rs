//! SPEC.md section 3: the gates a run passes before any write.
//!
//! Pure: `check_read` decides whether a directory read is trustworthy enough to plan from,
//! `gate` marks the plan's actions that must wait (a tripped `max_deprovisions`, a `manual`
//! approval rule). Nothing here writes; the caller journals what it decided.

use std::collections::BTreeMap;
use std::fmt;

use crate::plan::{Action, ActionKind, Plan};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DeprovisionLimit {
    Count(u64),
    /// Percent of linked accounts.
    Percent(f64),
}

impl DeprovisionLimit {
    /// The largest number of suspensions + deletions allowed with `linked` accounts.
    pub fn allowed(self, linked: usize) -> u64 {
        match self {
            DeprovisionLimit::Count(n) => n,
            DeprovisionLimit::Percent(p) => ((linked as f64) * p / 100.0).floor() as u64,
        }
    }
}

impl fmt::Display for DeprovisionLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeprovisionLimit::Count(n) => write!(f, "{n}"),
            DeprovisionLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    Auto,
    Manual,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SafetyConfig {
    pub min_source_users: u64,
    pub min_source_ratio: Option<f64>,
    pub max_deprovisions: Option<DeprovisionLimit>,
    /// Caps member removals from synced groups per run (percent: of the memberships idsync
    /// manages in them).
    pub max_member_removals: Option<DeprovisionLimit>,
    /// Caps how many accounts may lose the value of one mapped field in one run (a template
    /// typo blanks a field for everyone); `None` turns the gate off.
    pub max_field_clears: Option<DeprovisionLimit>,
    pub approvals: BTreeMap<ActionKind, Approval>,
}

/// Default `safety.max_field_clears`.
pub const DEFAULT_MAX_FIELD_CLEARS: DeprovisionLimit = DeprovisionLimit::Percent(10.0);

/// A share of linked accounts never holds fewer field clears than this: in a small
/// directory one person losing a phone number is news, not a typo.
const MIN_FIELD_CLEARS_HELD: u64 = 5;

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            min_source_users: 1,
            min_source_ratio: Some(0.5),
            max_deprovisions: None,
            max_member_removals: None,
            max_field_clears: Some(DEFAULT_MAX_FIELD_CLEARS),
            approvals: BTreeMap::new(),
        }
    }
}

/// Why a run stops before any write. Abort the run; the journal records this text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadRefused {
    #[error("the directory read returned {got} people, fewer than min_source_users {min}; check the bind account's read rights, base_dn and filter")]
    TooFew { got: usize, min: u64 },
    #[error("the directory read returned {got} people, {ratio:.0}% of the {last} of the last good run, below min_source_ratio {min:.0}%; if this shrink is real, run `idsync sync --allow-shrink` once")]
    ShrankTooMuch {
        got: usize,
        last: usize,
        ratio: f64,
        min: f64,
    },
    #[error("the directory read returned no groups, but idsync manages {linked} app group(s); check the bind account's read rights on groups.base_dn and groups.filter (if every group is really gone, remove them from the app by hand or drop `groups:`)")]
    NoGroups { linked: usize },
}

/// Is a group read of `got` groups safe to plan from, when idsync manages `linked` app
/// groups? None at all while some are managed is a read that failed silently (no read
/// rights on the groups' base), never "every group was deleted".
pub fn check_groups(got: usize, linked: usize) -> Result<(), ReadRefused> {
    if got == 0 && linked > 0 {
        return Err(ReadRefused::NoGroups { linked });
    }
    Ok(())
}

/// Is a read of `got` people (the last good run saw `last_good`) safe to plan from?
pub fn check_read(
    got: usize,
    last_good: Option<usize>,
    cfg: &SafetyConfig,
) -> Result<(), ReadRefused> {
    if (got as u64) < cfg.min_source_users {
        return Err(ReadRefused::TooFew {
            got,
            min: cfg.min_source_users,
        });
    }
    if let (Some(min), Some(last)) = (cfg.min_source_ratio, last_good) {
        if last > 0 {
            let ratio = got as f64 / last as f64;
            if ratio < min {
                return Err(ReadRefused::ShrankTooMuch {
                    got,
                    last,
                    ratio: ratio * 100.0,
                    min: min * 100.0,
                });
            }
        }
    }
    Ok(())
}

/// Marks held actions: every suspension and deletion when there are more than
/// `max_deprovisions` of them, and every action whose kind needs manual approval.
/// Creates, updates and reactivations are never held by the deprovision cap.
pub fn gate(plan: &mut Plan, cfg: &SafetyConfig) {
    let linked = plan.stats.links;
    let deprovisions = plan
        .actions
        .iter()
        .filter(|a| a.kind.is_deprovision())
        .count();
    if let Some(limit) = cfg.max_deprovisions {
        let allowed = limit.allowed(linked);
        if deprovisions as u64 > allowed {
            let why = format!(
                "{deprovisions} suspensions/deletions exceed max_deprovisions {limit} (at most {allowed} of {linked} linked accounts); approve with `idsync approve`"
            );
            for a in plan.actions.iter_mut().filter(|a| a.kind.is_deprovision()) {
                a.held = Some(why.clone());
            }
        }
    }
    if let Some(limit) = cfg.max_field_clears {
        hold_mass_clears(&mut plan.actions, limit, linked);
    }
    hold_manual(&mut plan.actions, cfg);
}

/// Holds the updates of every mapped field that more accounts would lose in this run than
/// `limit` allows (a share never counts fewer than `MIN_FIELD_CLEARS_HELD`).
fn hold_mass_clears(actions: &mut [Action], limit: DeprovisionLimit, linked: usize) {
    let clears = |a: &Action| -> Vec<String> {
        if a.kind != ActionKind::Update {
            return Vec::new();
        }
        a.changes
            .iter()
            .filter(|c| c.before.is_some() && c.after.is_none())
            .map(|c| c.field.to_string())
            .collect()
    };
    let mut per_field: BTreeMap<String, u64> = BTreeMap::new();
    for a in actions.iter() {
        for f in clears(a) {
            *per_field.entry(f).or_default() += 1;
        }
    }
    let allowed = match limit {
        DeprovisionLimit::Percent(_) => limit.allowed(linked).max(MIN_FIELD_CLEARS_HELD),
        DeprovisionLimit::Count(n) => n,
    };
    let tripped: BTreeMap<String, u64> = per_field
        .into_iter()
        .filter(|(_, n)| *n > allowed)
        .collect();
    if tripped.is_empty() {
        return;
    }
    for a in actions.iter_mut().filter(|a| a.held.is_none()) {
        let Some((field, n)) = clears(a)
            .into_iter()
            .find_map(|f| tripped.get(&f).map(|n| (f, *n)))
        else {
            continue;
        };
        a.held = Some(format!(
            "{n} accounts would lose their {field} in one run, more than safety.max_field_clears {limit} (at most {allowed} of {linked} linked accounts): is the mapping's template for {field} right? approve with `idsync approve` if it is"
        ));
    }
}

/// Holds every action whose kind needs manual approval.
fn hold_manual(actions: &mut [Action], cfg: &SafetyConfig) {
    for a in actions.iter_mut() {
        if a.held.is_none() && cfg.approvals.get(&a.kind) == Some(&Approval::Manual) {
            a.held = Some(format!("approvals.{}: manual", a.kind));
        }
    }
}

/// The group actions' gates. A group action that would remove every member idsync manages
/// from a group with at least two is held (a directory read that lost a group's members, or
/// the group itself, looks exactly like that); member removals above `max_member_removals`
/// hold every group action that removes someone; manual approval rules apply as for people.
/// `managed` is each group's count of managed members before the run.
pub fn gate_groups(
    actions: &mut [Action],
    managed: &BTreeMap<crate::model::Anchor, usize>,
    cfg: &SafetyConfig,
) {
    let removals = |a: &Action| a.members.iter().filter(|m| !m.add).count();
    for a in actions.iter_mut() {
        let (out, before) = (
            removals(a),
            a.anchor
                .as_ref()
                .and_then(|g| managed.get(g))
                .copied()
                .unwrap_or(0),
        );
        let adds = a.members.iter().any(|m| m.add);
        if before >= 2 && out >= before && !adds {
            a.held = Some(format!(
                "would remove all {before} members idsync manages in group `{}`: a directory read that lost the group or its members looks the same; if it is real, approve with `idsync approve`",
                a.user_name
            ));
        }
    }
    if let Some(limit) = cfg.max_member_removals {
        let total: usize = managed.values().sum();
        let planned: usize = actions.iter().map(removals).sum();
        let allowed = limit.allowed(total);
        if planned as u64 > allowed {
            let why = format!(
                "{planned} group member removals exceed max_member_removals {limit} (at most {allowed} of {total} managed memberships); approve with `idsync approve`"
            );
            for a in actions.iter_mut().filter(|a| removals(a) > 0) {
                a.held.get_or_insert_with(|| why.clone());
            }
        }
    }
    hold_manual(actions, cfg);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update_clearing(field: &str, who: &str) -> Action {
        Action {
            kind: ActionKind::Update,
            user_name: who.into(),
            anchor: None,
            account_id: Some(who.into()),
            previous_anchor: None,
            changes: vec![crate::plan::Change {
                field: field.into(),
                before: Some("x".into()),
                after: None,
            }],
            reason: String::new(),
            held: None,
            hooks: Vec::new(),
            members: Vec::new(),
        }
    }

    #[test]
    fn mass_clears_of_one_field_are_held_and_a_few_are_not() {
        let mut many: Vec<Action> = (0..30)
            .map(|i| update_clearing("title", &format!("u{i}")))
            .collect();
        many.push(update_clearing("nickName", "u99"));
        hold_mass_clears(&mut many, DEFAULT_MAX_FIELD_CLEARS, 100);
        assert!(many[..30].iter().all(|a| a
            .held
            .as_deref()
            .is_some_and(|h| h.contains("30 accounts would lose their title"))));
        assert!(many[30].held.is_none(), "another field, one account");
        let mut few: Vec<Action> = (0..5)
            .map(|i| update_clearing("title", &format!("u{i}")))
            .collect();
        hold_mass_clears(&mut few, DEFAULT_MAX_FIELD_CLEARS, 10);
        assert!(
            few.iter().all(|a| a.held.is_none()),
            "a share never holds 5 or fewer"
        );
        hold_mass_clears(&mut few, DeprovisionLimit::Count(2), 10);
        assert!(
            few.iter().all(|a| a.held.is_some()),
            "an explicit count is exact"
        );
    }
    use crate::plan::PlanStats;

    fn action(kind: ActionKind) -> Action {
        Action {
            kind,
            user_name: "u".into(),
            anchor: None,
            account_id: None,
            previous_anchor: None,
            changes: vec![],
            reason: String::new(),
            held: None,
            hooks: Vec::new(),
            members: Vec::new(),
        }
    }

    #[test]
    fn no_groups_while_some_are_managed_is_refused() {
        assert!(check_groups(0, 0).is_ok());
        assert!(check_groups(3, 5).is_ok());
        assert_eq!(check_groups(0, 2), Err(ReadRefused::NoGroups { linked: 2 }));
    }

    #[test]
    fn an_empty_read_is_refused() {
        assert!(matches!(
            check_read(0, None, &SafetyConfig::default()),
            Err(ReadRefused::TooFew { .. })
        ));
    }

    #[test]
    fn a_read_that_shrank_below_the_ratio_is_refused() {
        let cfg = SafetyConfig {
            min_source_ratio: Some(0.8),
            ..Default::default()
        };
        assert!(check_read(80, Some(100), &cfg).is_ok());
        assert!(matches!(
            check_read(79, Some(100), &cfg),
            Err(ReadRefused::ShrankTooMuch { .. })
        ));
    }

    #[test]
    fn too_many_deprovisions_are_held_but_onboarding_goes_through() {
        let cfg = SafetyConfig {
            max_deprovisions: Some(DeprovisionLimit::Percent(10.0)),
            ..Default::default()
        };
        let mut plan = Plan {
            actions: vec![
                action(ActionKind::Suspend),
                action(ActionKind::Suspend),
                action(ActionKind::Create),
                action(ActionKind::Reactivate),
            ],
            stats: PlanStats {
                links: 10,
                ..Default::default()
            },
            ..Default::default()
        };
        gate(&mut plan, &cfg);
        let held: Vec<_> = plan
            .actions
            .iter()
            .map(|a| (a.kind, a.held.is_some()))
            .collect();
        assert_eq!(
            held,
            vec![
                (ActionKind::Suspend, true),
                (ActionKind::Suspend, true),
                (ActionKind::Create, false),
                (ActionKind::Reactivate, false)
            ]
        );
        assert!(plan.actions[0]
            .held
            .as_ref()
            .unwrap()
            .contains("exceed max_deprovisions 10%"));
    }

    #[test]
    fn deprovisions_at_the_limit_go_through() {
        let cfg = SafetyConfig {
            max_deprovisions: Some(DeprovisionLimit::Count(2)),
            ..Default::default()
        };
        let mut plan = Plan {
            actions: vec![action(ActionKind::Suspend), action(ActionKind::Delete)],
            ..Default::default()
        };
        gate(&mut plan, &cfg);
        assert!(plan.actions.iter().all(|a| a.held.is_none()));
    }

    #[test]
    fn manual_kinds_are_held_for_approval() {
        let mut cfg = SafetyConfig::default();
        cfg.approvals.insert(ActionKind::Delete, Approval::Manual);
        let mut plan = Plan {
            actions: vec![action(ActionKind::Delete), action(ActionKind::Update)],
            ..Default::default()
        };
        gate(&mut plan, &cfg);
        assert_eq!(
            plan.actions[0].held.as_deref(),
            Some("approvals.delete: manual")
        );
        assert!(plan.actions[1].held.is_none());
    }
}
