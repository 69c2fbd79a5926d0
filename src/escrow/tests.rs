use super::*;
use crate::model::{AccountId, Anchor};
use crate::plan::{ActionKind, Change, Field};

fn rename(after: &str) -> Action {
    Action::on_account(
        ActionKind::Update,
        "ada@x.org",
        &Anchor::new("ada"),
        &AccountId::new("A1"),
        vec![Change {
            field: Field::parse("userName"),
            before: Some("ada@x.org".into()),
            after: Some(after.into()),
        }],
        "userName changed".into(),
    )
}

fn http(status: u16) -> TargetError {
    TargetError::Http {
        method: "PATCH".into(),
        url: "https://app/Users/A1".into(),
        status,
        detail: "no".into(),
        scim_type: None,
    }
}

fn at(hours: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::hours(hours)
}

fn escrowed(action: &Action, failures: u32, next_try: DateTime<Utc>) -> Escrowed {
    Escrowed {
        key: key(action),
        user_name: action.user_name.clone(),
        kind: action.kind.to_string(),
        failures,
        first_failed: at(0),
        last_failed: at(0),
        next_try,
        reason: "PATCH answered 500".into(),
    }
}

#[test]
fn refusals_and_repeated_server_errors_last_throttling_and_timeouts_pass() {
    for s in [400, 403, 404, 409, 413, 422, 500] {
        assert!(lasting(&http(s)), "{s}");
    }
    for s in [408, 429, 502, 503, 504] {
        assert!(!lasting(&http(s)), "{s}");
    }
    let exhausted = |status| TargetError::Exhausted {
        method: "PATCH".into(),
        url: "u".into(),
        attempts: 6,
        detail: "d".into(),
        status,
    };
    assert!(lasting(&exhausted(Some(500))));
    assert!(!lasting(&exhausted(Some(429))));
    assert!(
        !lasting(&exhausted(Some(503))),
        "an app unavailable: not this request"
    );
    assert!(!lasting(&exhausted(None)), "no answer: may pass by itself");
}

#[test]
fn the_same_write_has_the_same_key_and_another_write_another() {
    assert_eq!(key(&rename("ada.l@x.org")), key(&rename("ada.l@x.org")));
    assert_ne!(
        key(&rename("ada.l@x.org")),
        key(&rename("ada.lovelace@x.org"))
    );
}

#[test]
fn back_off_grows_one_four_sixteen_hours() {
    assert_eq!(next_try(1, at(0)), at(1));
    assert_eq!(next_try(2, at(0)), at(4));
    assert_eq!(next_try(3, at(0)), at(16));
}

#[test]
fn a_waiting_action_leaves_the_plan_with_a_notice_and_is_tried_when_its_time_comes() {
    let a = rename("ada.l@x.org");
    let book = [(key(&a), escrowed(&a, 1, at(1)))].into();
    let mut plan = Plan {
        actions: vec![a.clone()],
        ..Plan::default()
    };
    assert_eq!(apply_to_plan(&mut plan, &book, at(0)), (0, 1));
    assert!(plan.actions.is_empty());
    assert!(plan.notices[0]
        .message
        .starts_with("escrowed update: failed 1 time(s)"));
    let mut later = Plan {
        actions: vec![a],
        ..Plan::default()
    };
    assert_eq!(apply_to_plan(&mut later, &book, at(2)), (0, 0));
    assert_eq!(later.actions.len(), 1);
}

#[test]
fn after_four_failures_the_action_is_held_for_an_operator() {
    let a = rename("ada.l@x.org");
    let book = [(key(&a), escrowed(&a, QUARANTINE_AFTER, at(100)))].into();
    let mut plan = Plan {
        actions: vec![a, rename("other@x.org")],
        ..Plan::default()
    };
    assert_eq!(apply_to_plan(&mut plan, &book, at(0)), (1, 0));
    let held = plan.actions[0].held.as_deref().unwrap();
    assert!(
        held.starts_with("quarantined: failed 4 times since 2026-12-01 00:00 UTC"),
        "{held}"
    );
    assert!(plan.actions[1].held.is_none(), "another write is not held");
}

fn runs(failed: &[bool]) -> Vec<RecentRun<'static>> {
    failed
        .iter()
        .enumerate()
        .map(|(i, f)| RecentRun {
            failed: *f,
            finished: at(-(i as i64)),
            reason: "cannot reach the app",
        })
        .collect()
}

#[test]
fn an_app_rests_after_three_failed_runs_in_a_row_and_longer_each_time() {
    let hour = Duration::hours(1);
    assert!(app_rest(&runs(&[true, true, false]), hour, at(0)).is_none());
    let (until, why) = app_rest(&runs(&[true, true, true]), hour, at(0)).unwrap();
    assert_eq!(until, at(2));
    assert!(
        why.contains("its last 3 runs failed (last: cannot reach the app)"),
        "{why}"
    );
    assert_eq!(app_rest(&runs(&[true; 4]), hour, at(0)).unwrap().0, at(4));
    assert!(
        app_rest(&runs(&[true, true, true]), hour, at(3)).is_none(),
        "rested enough"
    );
    let day = app_rest(&runs(&[true; 12]), hour, at(0)).unwrap().0;
    assert_eq!(day, at(24), "never more than a day");
}
