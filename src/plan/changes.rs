//! Field changes between what an account has and what the directory wants, and the small
//! texts plans print (days, durations, field lists).

use super::*;

pub(super) fn active_change(before: bool, after: bool) -> Change {
    Change {
        field: Field::Active,
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
pub(super) fn diff(
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
                field: Field::mapped(&f.path),
                before: have,
                after: want,
            });
        }
    }
    out
}

/// Every mapped field with a value, as written by a create.
pub(super) fn create_changes(
    mapping: &Mapping,
    desired: &BTreeMap<String, Option<String>>,
) -> Vec<Change> {
    mapping
        .fields
        .iter()
        .filter_map(|f| {
            let field = f.path.to_string();
            let after = desired.get(&field).cloned().flatten()?;
            Some(Change {
                field: Field::mapped(&f.path),
                before: None,
                after: Some(after),
            })
        })
        .collect()
}

pub(super) fn day(t: DateTime<Utc>) -> String {
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

/// Why an update: fields changed upstream, and fields whose template renders empty for this
/// person (all its attributes empty or missing: removed upstream, or a template typo).
pub(super) fn update_reason(changes: &[Change]) -> String {
    let (cleared, changed): (Vec<&Change>, Vec<&Change>) = changes
        .iter()
        .partition(|c| c.before.is_some() && c.after.is_none());
    let names = |cs: &[&Change]| {
        cs.iter()
            .map(|c| c.field.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (changed.is_empty(), cleared.is_empty()) {
        (_, true) => format!("changed upstream: {}", names(&changed)),
        (true, false) => format!(
            "the mapping's template is empty for this person: {}",
            names(&cleared)
        ),
        (false, false) => format!(
            "changed upstream: {}; the mapping's template is empty for this person: {}",
            names(&changed),
            names(&cleared)
        ),
    }
}
