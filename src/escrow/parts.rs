//! Parts of an action the app refused for good: the photo it will not take (a `data:` URI
//! where its schema wants an external URL, a read-only `photos`). The rest of the action
//! applied; the refused part is remembered (an escrow record keyed by the person, the part
//! and its value) and left out of the next plans with a notice, until the value changes
//! upstream, the back-off (1 h, 4 h, 16 h) passes, the app's discovery documents change or
//! `--full` asks; after `QUARANTINE_AFTER` refusals it waits for a person
//! (`idsync approvals`). Pure.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::Escrowed;
use crate::plan::{Action, Field, Notice, Plan};

/// Every part escrow key starts so: what a change of discovery or `--full` forgets.
pub const PART_PREFIX: &str = "part:";

/// True when a reply (its status and `scimType`) refuses what was sent for good, not for
/// the moment (RFC 7644 3.12: `invalidValue`, `mutability`, `invalidSyntax` on a 400 or
/// 422; or 501).
pub fn refuses_for_good(status: u16, scim_type: Option<&str>) -> bool {
    match (status, scim_type) {
        (501, _) => true,
        (400 | 422, Some(t)) => ["invalidValue", "mutability", "invalidSyntax"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(t)),
        _ => false,
    }
}

/// The key of `field`'s value in `action`: the person and the value, not the account (a
/// create's photo refused is the same part as the next update's).
pub fn part_key(action: &Action, field: &Field) -> Option<String> {
    let change = action.changes.iter().find(|c| &c.field == field)?;
    let mut h = Sha256::new();
    h.update(action.anchor.as_ref().map(|a| a.as_str()).unwrap_or(""));
    h.update([0]);
    h.update(field.to_string());
    h.update([0]);
    h.update(change.after.as_deref().unwrap_or("\u{0}none"));
    let hex: String = h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("{PART_PREFIX}{hex}"))
}

/// Whether an action is nothing but `field` (a photo-only update): refused, it is no
/// change at all.
pub fn only(action: &Action, field: &Field) -> bool {
    !action.changes.is_empty() && action.changes.iter().all(|c| &c.field == field)
}

/// Whether escrow leaves a settled plan standing: every record is a refused part still
/// waiting (left out with a notice, nothing due). A whole action in escrow, a part come
/// due or one waiting for a person means a cycle must plan.
pub fn only_waiting_parts<'e>(
    mut escrowed: impl Iterator<Item = &'e Escrowed>,
    now: DateTime<Utc>,
) -> bool {
    escrowed.all(|e| e.key.starts_with(PART_PREFIX) && !e.quarantined() && e.next_try > now)
}

/// Lays the remembered refusals over a plan: a refused photo still waiting is left out (a
/// notice says what and until when; an action left with nothing is dropped), a quarantined
/// one is held for a person where it is all the action does. Returns how many parts were
/// left out.
pub fn leave_refused_parts(
    plan: &mut Plan,
    escrowed: &std::collections::BTreeMap<String, Escrowed>,
    now: DateTime<Utc>,
) -> usize {
    if !escrowed.keys().any(|k| k.starts_with(PART_PREFIX)) {
        return 0;
    }
    let mut left = 0;
    let mut notices = Vec::new();
    plan.actions.retain_mut(|a| {
        if a.kind.is_group() {
            return true;
        }
        let Some(e) = part_key(a, &Field::Photo).and_then(|k| escrowed.get(&k)) else {
            return true;
        };
        let since = e.first_failed.format("%Y-%m-%d %H:%M UTC");
        if e.quarantined() && only(a, &Field::Photo) {
            a.held.get_or_insert_with(|| {
                format!(
                    "quarantined: the app refused this photo {} times since {since} ({}); `idsync approve` sends it again, or set the app's `target.photo`",
                    e.failures, e.reason
                )
            });
            return true;
        }
        if !e.quarantined() && e.next_try <= now {
            return true;
        }
        left += 1;
        let until = match e.quarantined() {
            true => "until a person approves it (`idsync approvals`) or the photo changes".to_string(),
            false => format!(
                "tried again after {} or when the photo changes",
                e.next_try.format("%Y-%m-%d %H:%M UTC")
            ),
        };
        notices.push(Notice {
            user_name: Some(a.user_name.clone()),
            anchor: a.anchor.clone(),
            account_id: a.account_id.clone(),
            message: format!(
                "photo left alone: the app refused it {} time(s) since {since} ({}); {until}",
                e.failures, e.reason
            ),
        });
        a.changes.retain(|c| c.field != Field::Photo);
        !a.changes.is_empty()
    });
    plan.notices.extend(notices);
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, Anchor};
    use crate::plan::{ActionKind, Change};

    fn update(changes: &[(Field, &str)]) -> Action {
        Action::on_account(
            ActionKind::Update,
            "ada@example.org",
            &Anchor::new("a1"),
            &AccountId::new("A1"),
            changes
                .iter()
                .map(|(f, after)| Change {
                    field: f.clone(),
                    before: None,
                    after: Some(after.to_string()),
                })
                .collect(),
            "changed upstream".into(),
        )
    }

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::hours(hours)
    }

    fn refused(action: &Action, failures: u32, next_try: DateTime<Utc>) -> (String, Escrowed) {
        let key = part_key(action, &Field::Photo).unwrap();
        let e = Escrowed {
            key: key.clone(),
            user_name: action.user_name.clone(),
            kind: "photo".into(),
            failures,
            first_failed: at(0),
            last_failed: at(0),
            next_try,
            reason: "400 invalidValue: photos.value must be a URL".into(),
        };
        (key, e)
    }

    fn plan_of(actions: Vec<Action>) -> Plan {
        Plan {
            actions,
            ..Plan::default()
        }
    }

    #[test]
    fn a_refused_photo_is_left_out_until_its_back_off_passes() {
        let photo = update(&[(Field::Photo, "sha:1")]);
        let escrowed = [refused(&photo, 1, at(1))].into_iter().collect();
        let mut plan = plan_of(vec![photo.clone()]);
        assert_eq!(leave_refused_parts(&mut plan, &escrowed, at(0)), 1);
        assert!(plan.actions.is_empty(), "a photo-only update is no write");
        assert!(plan.notices[0].message.starts_with("photo left alone"));
        // Past the back-off, it is sent again.
        let mut plan = plan_of(vec![photo]);
        assert_eq!(leave_refused_parts(&mut plan, &escrowed, at(2)), 0);
        assert_eq!(plan.actions.len(), 1);
    }

    #[test]
    fn a_new_photo_upstream_is_another_part_and_is_sent_at_once() {
        let old = update(&[(Field::Photo, "sha:1")]);
        let escrowed = [refused(&old, 2, at(4))].into_iter().collect();
        let mut plan = plan_of(vec![update(&[(Field::Photo, "sha:2")])]);
        assert_eq!(leave_refused_parts(&mut plan, &escrowed, at(0)), 0);
        assert_eq!(plan.actions.len(), 1);
    }

    #[test]
    fn the_rest_of_an_action_goes_on_without_its_refused_photo() {
        let both = update(&[(Field::Photo, "sha:1"), (Field::DisplayName, "Ada L.")]);
        let escrowed = [refused(&both, 1, at(1))].into_iter().collect();
        let mut plan = plan_of(vec![both]);
        leave_refused_parts(&mut plan, &escrowed, at(0));
        assert_eq!(plan.actions.len(), 1);
        assert_eq!(plan.actions[0].changes.len(), 1);
        assert_eq!(plan.actions[0].changes[0].field, Field::DisplayName);
    }

    #[test]
    fn a_photo_refused_again_and_again_waits_for_a_person() {
        let photo = update(&[(Field::Photo, "sha:1")]);
        let escrowed = [refused(&photo, super::super::QUARANTINE_AFTER, at(64))]
            .into_iter()
            .collect();
        let mut plan = plan_of(vec![photo]);
        leave_refused_parts(&mut plan, &escrowed, at(100));
        assert_eq!(plan.actions.len(), 1);
        assert!(plan.actions[0]
            .held
            .as_deref()
            .unwrap()
            .starts_with("quarantined"));
    }

    #[test]
    fn only_lasting_refusals_are_remembered() {
        assert!(refuses_for_good(400, Some("invalidValue")));
        assert!(refuses_for_good(400, Some("mutability")));
        assert!(refuses_for_good(422, Some("invalidSyntax")));
        assert!(refuses_for_good(501, None));
        assert!(!refuses_for_good(400, None), "says nothing of why");
        assert!(!refuses_for_good(400, Some("tooMany")));
        assert!(!refuses_for_good(413, None));
        assert!(!refuses_for_good(503, None));
    }
}
