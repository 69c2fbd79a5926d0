//! Table-driven planner tests: one case per SPEC.md section 2 row the planner decides.

use super::*;
use crate::mapping::{FieldMapping, FieldPath, Mapping, Template};
use chrono::TimeZone;
use serde_json::json;

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
}

fn field(path: &str, template: &str, set_once: bool) -> FieldMapping {
    FieldMapping {
        path: FieldPath::parse(path).unwrap(),
        template: Template::parse(template).unwrap(),
        set_once,
    }
}

pub(super) fn policy() -> Policy {
    Policy {
        photos: None,
        mapping: Mapping::new(vec![
            field("userName", "{mail}", false),
            field("title", "{title}", false),
            field("emails[type eq \"work\"].value", "{mail}", false),
            field("preferredLanguage", "{lang}", true),
        ])
        .unwrap(),
        match_rule: MatchRule {
            target: FieldPath::parse("userName").unwrap(),
            source: Template::parse("{mail}").unwrap(),
        },
        lifecycle: Lifecycle::default(),
        protected: Protected::new(vec![glob::Pattern::new("admin@*").unwrap()]),
    }
}

pub(super) fn person(anchor: &str, mail: &str, title: &str, disabled: bool) -> DirectoryUser {
    let mut attrs = BTreeMap::new();
    attrs.insert("mail".to_string(), vec![mail.to_string()]);
    attrs.insert("title".to_string(), vec![title.to_string()]);
    attrs.insert("lang".to_string(), vec!["en".to_string()]);
    DirectoryUser {
        anchor: Anchor::new(anchor),
        locator: format!("uid={anchor}"),
        attrs: attrs.into(),
        disabled,
        problems: vec![],
        photo: None,
        sync_id: None,
    }
}

pub(super) fn account(id: &str, mail: &str, title: &str, active: bool) -> Account {
    Account {
        id: id.into(),
        user_name: UserName::new(mail),
        active,
        resource: json!({"id": id, "userName": mail, "title": title, "active": active,
                         "emails": [{"type": "work", "value": mail}], "preferredLanguage": "en"})
        .into(),
    }
}

/// Changes an account's resource in place.
pub(super) fn edit(acct: &mut Account, f: impl FnOnce(&mut serde_json::Value)) {
    let mut r = acct.resource.value();
    f(&mut r);
    acct.resource = r.into();
}

pub(super) fn link(
    anchor: &str,
    id: &str,
    state: LinkState,
    suspended_days_ago: Option<i64>,
) -> Link {
    Link {
        anchor: Anchor::new(anchor),
        account_id: id.into(),
        user_name: "x".into(),
        state,
        suspended_at: suspended_days_ago.map(|d| now() - Duration::days(d)),
        last_seen: None,
        photo_hash: None,
    }
}

fn run(
    users: Vec<DirectoryUser>,
    accounts: Vec<Account>,
    links: Vec<Link>,
    policy: &Policy,
) -> Plan {
    let links: BTreeMap<Anchor, Link> = links.into_iter().map(|l| (l.anchor.clone(), l)).collect();
    plan(&Inputs {
        users: &users,
        accounts: &accounts,
        links: &links,
        policy,
        now: now(),
        out_of_scope: &BTreeMap::new(),
        focus: None,
    })
}

/// What a case expects: the one action's kind (or none), and a reason fragment.
struct Case {
    name: &'static str,
    users: Vec<DirectoryUser>,
    accounts: Vec<Account>,
    links: Vec<Link>,
    kind: Option<ActionKind>,
    reason: &'static str,
}

#[test]
fn lifecycle_rows() {
    let a = "a1";
    let cases = vec![
        Case {
            name: "in scope, no link, an account matches: adopt",
            users: vec![person(a, "ada@x.org", "Eng", false)],
            accounts: vec![account("s1", "ADA@x.org", "Eng", true)],
            links: vec![],
            kind: Some(ActionKind::Adopt),
            reason: "matches existing account by userName",
        },
        Case {
            name: "in scope, no link, no match: create",
            users: vec![person(a, "ada@x.org", "Eng", false)],
            accounts: vec![],
            links: vec![],
            kind: Some(ActionKind::Create),
            reason: "new in the directory",
        },
        Case {
            name: "linked, active, a field differs: update",
            users: vec![person(a, "ada@x.org", "Boss", false)],
            accounts: vec![account("s1", "ada@x.org", "Eng", true)],
            links: vec![link(a, "s1", LinkState::Active, None)],
            kind: Some(ActionKind::Update),
            reason: "changed upstream: title",
        },
        Case {
            name: "linked, nothing differs: no action",
            users: vec![person(a, "ada@x.org", "Eng", false)],
            accounts: vec![account("s1", "ada@x.org", "Eng", true)],
            links: vec![link(a, "s1", LinkState::Active, None)],
            kind: None,
            reason: "",
        },
        Case {
            name: "disabled upstream, account active: suspend",
            users: vec![person(a, "ada@x.org", "Eng", true)],
            accounts: vec![account("s1", "ada@x.org", "Eng", true)],
            links: vec![link(a, "s1", LinkState::Active, None)],
            kind: Some(ActionKind::Suspend),
            reason: "disabled upstream",
        },
        Case {
            name: "disabled upstream, no account: never created",
            users: vec![person(a, "ada@x.org", "Eng", true)],
            accounts: vec![],
            links: vec![],
            kind: None,
            reason: "",
        },
        Case {
            name: "deleted upstream, account active: suspend",
            users: vec![],
            accounts: vec![account("s1", "ada@x.org", "Eng", true)],
            links: vec![link(a, "s1", LinkState::Active, None)],
            kind: Some(ActionKind::Suspend),
            reason: "no longer in the directory",
        },
        Case {
            name: "deleted upstream, already suspended, retention never: nothing",
            users: vec![],
            accounts: vec![account("s1", "ada@x.org", "Eng", false)],
            links: vec![link(a, "s1", LinkState::Suspended, Some(400))],
            kind: None,
            reason: "",
        },
        Case {
            name: "back within the window: reactivate",
            users: vec![person(a, "ada@x.org", "Eng", false)],
            accounts: vec![account("s1", "ada@x.org", "Eng", false)],
            links: vec![link(a, "s1", LinkState::Suspended, Some(6))],
            kind: Some(ActionKind::Reactivate),
            reason: "within reactivation_window 7d",
        },
        Case {
            name: "back after the window, after_window reinvite: reinvite",
            users: vec![person(a, "ada@x.org", "Eng", false)],
            accounts: vec![account("s1", "ada@x.org", "Eng", false)],
            links: vec![link(a, "s1", LinkState::Suspended, Some(8))],
            kind: Some(ActionKind::Reinvite),
            reason: "after the reactivation_window",
        },
        Case {
            name: "exists only in the app, unmanaged ignore: nothing",
            users: vec![],
            accounts: vec![account("s9", "temp@x.org", "Temp", true)],
            links: vec![],
            kind: None,
            reason: "",
        },
        Case {
            name: "protected account gone upstream: never touched",
            users: vec![],
            accounts: vec![account("s1", "admin@x.org", "Root", true)],
            links: vec![link(a, "s1", LinkState::Active, None)],
            kind: None,
            reason: "",
        },
        Case {
            name: "re-hire: a new anchor matches the account of an anchor gone upstream",
            users: vec![person("a2", "ada@x.org", "Eng", false)],
            accounts: vec![account("s1", "ada@x.org", "Eng", false)],
            links: vec![link(a, "s1", LinkState::Suspended, Some(2))],
            kind: Some(ActionKind::Adopt),
            reason: "re-hire: takes over the account of a1",
        },
    ];
    let policy = policy();
    for case in cases {
        let plan = run(case.users, case.accounts, case.links, &policy);
        match case.kind {
            None => assert!(
                plan.actions.is_empty(),
                "{}: expected no action, got {:?}",
                case.name,
                plan.actions
            ),
            Some(kind) => {
                assert_eq!(plan.actions.len(), 1, "{}: {:?}", case.name, plan.actions);
                assert_eq!(plan.actions[0].kind, kind, "{}", case.name);
                assert!(
                    plan.actions[0].reason.contains(case.reason),
                    "{}: reason {:?}",
                    case.name,
                    plan.actions[0].reason
                );
            }
        }
    }
}

#[test]
fn reactivation_window_boundary_is_inclusive() {
    let mut p = policy();
    p.lifecycle.after_window = AfterWindow::Hold;
    let at = |secs_past_window: i64| {
        let mut l = link("a1", "s1", LinkState::Suspended, None);
        l.suspended_at = Some(now() - Duration::days(7) - Duration::seconds(secs_past_window));
        run(
            vec![person("a1", "ada@x.org", "Eng", false)],
            vec![account("s1", "ada@x.org", "Eng", false)],
            vec![l],
            &p,
        )
    };
    assert_eq!(at(-1).actions[0].kind, ActionKind::Reactivate);
    assert_eq!(at(0).actions[0].kind, ActionKind::Reactivate);
    let late = at(1);
    assert!(
        late.actions.is_empty(),
        "after_window: hold changes nothing"
    );
    assert!(late.notices[0].message.contains("an admin decides"));
}

#[test]
fn retention_deletes_only_after_delete_after() {
    let mut p = policy();
    p.lifecycle.delete_after = Some(Duration::days(30));
    let at = |days: i64| {
        run(
            vec![],
            vec![account("s1", "ada@x.org", "Eng", false)],
            vec![link("a1", "s1", LinkState::Suspended, Some(days))],
            &p,
        )
    };
    assert!(at(29).actions.is_empty());
    assert!(at(30).actions.is_empty());
    assert_eq!(at(31).actions[0].kind, ActionKind::Delete);
}

#[test]
fn update_changes_only_the_differing_fields_and_never_set_once_ones() {
    let mut acct = account("s1", "ada@x.org", "Eng", true);
    edit(&mut acct, |r| r["preferredLanguage"] = json!("fr"));
    let plan = run(
        vec![person("a1", "ada@x.org", "Boss", false)],
        vec![acct],
        vec![link("a1", "s1", LinkState::Active, None)],
        &policy(),
    );
    assert_eq!(
        plan.actions[0].changes,
        vec![Change {
            field: "title".into(),
            before: Some("Eng".into()),
            after: Some("Boss".into())
        }]
    );
}

#[test]
fn a_mail_change_renames_the_linked_account() {
    let plan = run(
        vec![person("a1", "ada.l@x.org", "Eng", false)],
        vec![account("s1", "ada@x.org", "Eng", true)],
        vec![link("a1", "s1", LinkState::Active, None)],
        &policy(),
    );
    let a = &plan.actions[0];
    assert_eq!(
        (a.kind, a.account_id.as_ref().map(AccountId::as_str)),
        (ActionKind::Update, Some("s1"))
    );
    let fields: Vec<String> = a.changes.iter().map(|c| c.field.to_string()).collect();
    assert_eq!(fields, vec!["userName", "emails[type eq \"work\"].value"]);
}

#[test]
fn suspension_applies_the_leaver_profile_and_reactivation_restores_the_mapping() {
    let mut p = policy();
    p.lifecycle.leaver = vec![(FieldPath::parse("title").unwrap(), "Former member".into())];
    let gone = run(
        vec![],
        vec![account("s1", "ada@x.org", "Eng", true)],
        vec![link("a1", "s1", LinkState::Active, None)],
        &p,
    );
    let changes: Vec<(String, Option<&str>)> = gone.actions[0]
        .changes
        .iter()
        .map(|c| (c.field.to_string(), c.after.as_deref()))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("active".to_string(), Some("false")),
            ("title".to_string(), Some("Former member"))
        ]
    );

    let back = run(
        vec![person("a1", "ada@x.org", "Eng", false)],
        vec![account("s1", "ada@x.org", "Former member", false)],
        vec![link("a1", "s1", LinkState::Suspended, Some(1))],
        &p,
    );
    let changes: Vec<(String, Option<&str>)> = back.actions[0]
        .changes
        .iter()
        .map(|c| (c.field.to_string(), c.after.as_deref()))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("active".to_string(), Some("true")),
            ("title".to_string(), Some("Eng"))
        ]
    );
}

#[test]
fn unmanaged_accounts_follow_the_unmanaged_policy_and_protected_ones_are_always_reported() {
    let accounts = vec![
        account("s9", "temp@x.org", "Temp", true),
        account("s0", "admin@x.org", "Root", true),
    ];
    let mut p = policy();
    p.lifecycle.unmanaged = Unmanaged::Report;
    let plan = run(vec![], accounts.clone(), vec![], &p);
    assert!(plan.actions.is_empty());
    let msgs: Vec<&str> = plan.notices.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(
        msgs,
        vec![
            "protected by `admin@*`: never touched",
            "unmanaged: no directory user owns or matches this account"
        ]
    );

    p.lifecycle.unmanaged = Unmanaged::Suspend;
    let plan = run(vec![], accounts, vec![], &p);
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(
        (plan.actions[0].kind, plan.actions[0].user_name.as_str()),
        (ActionKind::Suspend, "temp@x.org")
    );
}

#[test]
fn a_matching_account_owned_by_another_present_person_is_a_conflict_not_an_adoption() {
    let plan = run(
        vec![
            person("a1", "ada@x.org", "Eng", false),
            person("a2", "bob@x.org", "Eng", false),
        ],
        vec![account("s1", "bob@x.org", "Eng", true)],
        vec![link("a1", "s1", LinkState::Active, None)],
        &policy(),
    );
    // a1 owns s1 (and renames it to ada); a2 must not grab it.
    assert!(plan.actions.iter().all(|a| !(a.kind == ActionKind::Adopt
        && a.account_id.as_ref().map(AccountId::as_str) == Some("s1"))));
}

#[test]
fn a_person_with_unreadable_data_is_kept_and_reported_not_suspended() {
    let mut u = person("a1", "ada@x.org", "Eng", false);
    u.problems.push("attribute title is not valid UTF-8".into());
    let plan = run(
        vec![u],
        vec![account("s1", "ada@x.org", "Old", true)],
        vec![link("a1", "s1", LinkState::Active, None)],
        &policy(),
    );
    assert!(plan.actions.is_empty());
    assert!(plan.notices[0].message.contains("not valid UTF-8"));
}

#[test]
fn adoption_fills_set_once_fields_only_where_the_account_has_none() {
    let mut acct = account("s1", "ada@x.org", "Eng", true);
    edit(&mut acct, |r| {
        r.as_object_mut().unwrap().remove("preferredLanguage");
    });
    let plan = run(
        vec![person("a1", "ada@x.org", "Eng", false)],
        vec![acct],
        vec![],
        &policy(),
    );
    assert_eq!(
        plan.actions[0].changes,
        vec![Change {
            field: "preferredLanguage".into(),
            before: None,
            after: Some("en".into())
        }]
    );
}

#[test]
fn plans_are_byte_stable() {
    let users = vec![
        person("b", "bob@x.org", "Eng", false),
        person("a", "ada@x.org", "Eng", false),
    ];
    let p1 = run(users.clone(), vec![], vec![], &policy());
    let mut rev = users;
    rev.reverse();
    let p2 = run(rev, vec![], vec![], &policy());
    assert_eq!(
        serde_json::to_string(&p1).unwrap(),
        serde_json::to_string(&p2).unwrap()
    );
    assert_eq!(p1.actions[0].user_name, "ada@x.org");
}

#[test]
fn a_pending_invitation_is_not_reactivated_but_its_fields_are_kept_current() {
    let mut p = policy();
    p.lifecycle.pending = Some(FieldPath::parse("urn:example:app:User:pending").unwrap());
    let mut acct = account("s1", "ada@x.org", "Eng", false);
    edit(&mut acct, |r| {
        r["urn:example:app:User"] = json!({"pending": true})
    });
    let plan = run(
        vec![person("a1", "ada@x.org", "Boss", false)],
        vec![acct.clone()],
        vec![link("a1", "s1", LinkState::Active, None)],
        &p,
    );
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.actions[0].kind, ActionKind::Update);
    assert!(plan.actions[0]
        .changes
        .iter()
        .all(|c| c.field != Field::Active));
    // Without the pending mark, the same inactive account is reactivated.
    edit(&mut acct, |r| {
        r["urn:example:app:User"] = json!({"pending": false})
    });
    let plan = run(
        vec![person("a1", "ada@x.org", "Boss", false)],
        vec![acct],
        vec![link("a1", "s1", LinkState::Active, None)],
        &p,
    );
    assert_eq!(plan.actions[0].kind, ActionKind::Reactivate);
}

fn with_photos() -> Policy {
    Policy {
        photos: Some(PhotoPolicy { max_bytes: 2000 }),
        ..policy()
    }
}

fn with_photo(mut u: DirectoryUser, bytes: Vec<u8>) -> DirectoryUser {
    u.photo = Some(crate::photo::Photo::new(bytes));
    u
}

fn photo_link(anchor: &str, id: &str, hash: Option<&str>) -> Link {
    Link {
        photo_hash: hash.map(str::to_string),
        ..link(anchor, id, LinkState::Active, None)
    }
}

fn photo_change(plan: &Plan) -> Option<&Change> {
    plan.actions
        .iter()
        .flat_map(|a| &a.changes)
        .find(|c| c.field == Field::Photo)
}

#[test]
fn a_new_person_is_created_with_their_photo_shown_as_a_digest_prefix() {
    let jpeg = crate::photo::sample_jpeg(64, 64, 600);
    let sha = crate::photo::digest(&jpeg);
    let p = run(
        vec![with_photo(person("a1", "ada@x.org", "Eng", false), jpeg)],
        vec![],
        vec![],
        &with_photos(),
    );
    assert_eq!(p.actions[0].kind, ActionKind::Create);
    let c = photo_change(&p).unwrap();
    assert_eq!(
        (c.before.as_deref(), c.after.as_deref()),
        (None, Some(&sha[..12]))
    );
}

#[test]
fn an_unchanged_photo_plans_nothing_and_a_changed_one_plans_an_update() {
    let old = crate::photo::sample_jpeg(64, 64, 600);
    let new = crate::photo::sample_png(64, 64);
    let (old_sha, new_sha) = (crate::photo::digest(&old), crate::photo::digest(&new));
    let accounts = || vec![account("s1", "ada@x.org", "Eng", true)];
    let same = run(
        vec![with_photo(
            person("a1", "ada@x.org", "Eng", false),
            old.clone(),
        )],
        accounts(),
        vec![photo_link("a1", "s1", Some(&old_sha))],
        &with_photos(),
    );
    assert!(same.actions.is_empty(), "{:?}", same.actions);
    let changed = run(
        vec![with_photo(person("a1", "ada@x.org", "Eng", false), new)],
        accounts(),
        vec![photo_link("a1", "s1", Some(&old_sha))],
        &with_photos(),
    );
    assert_eq!(changed.actions[0].kind, ActionKind::Update);
    assert_eq!(changed.actions[0].reason, "changed upstream: photo");
    let c = photo_change(&changed).unwrap();
    assert_eq!(
        (c.before.as_deref(), c.after.as_deref()),
        (Some(&old_sha[..12]), Some(&new_sha[..12]))
    );
}

#[test]
fn a_photo_removed_upstream_is_removed_in_the_app() {
    let p = run(
        vec![person("a1", "ada@x.org", "Eng", false)],
        vec![account("s1", "ada@x.org", "Eng", true)],
        vec![photo_link("a1", "s1", Some("0123456789abcdef"))],
        &with_photos(),
    );
    let c = photo_change(&p).unwrap();
    assert_eq!(
        (c.before.as_deref(), c.after.as_deref()),
        (Some("0123456789ab"), None)
    );
}

#[test]
fn a_bad_photo_is_a_notice_for_that_person_and_the_rest_still_applies() {
    let p = run(
        vec![
            with_photo(
                person("a1", "ada@x.org", "Boss", false),
                b"not an image".to_vec(),
            ),
            with_photo(
                person("a2", "bob@x.org", "Eng", false),
                crate::photo::sample_jpeg(8, 8, 5000),
            ),
        ],
        vec![account("s1", "ada@x.org", "Eng", true)],
        vec![photo_link("a1", "s1", None)],
        &with_photos(),
    );
    assert!(photo_change(&p).is_none(), "no photo is uploaded");
    let kinds: Vec<_> = p.actions.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [ActionKind::Update, ActionKind::Create],
        "the title and the newcomer still go through"
    );
    let notices: Vec<&str> = p.notices.iter().map(|n| n.message.as_str()).collect();
    assert!(
        notices[0].contains("photo not synced: not a JPEG or PNG"),
        "{notices:?}"
    );
    assert!(
        notices[1].contains("more than target.photo_max_bytes"),
        "{notices:?}"
    );
}

#[test]
fn photos_are_ignored_when_photo_sync_is_off() {
    let p = run(
        vec![with_photo(
            person("a1", "ada@x.org", "Eng", false),
            crate::photo::sample_png(4, 4),
        )],
        vec![account("s1", "ada@x.org", "Eng", true)],
        vec![photo_link("a1", "s1", None)],
        &policy(),
    );
    assert!(p.actions.is_empty());
}

#[test]
fn a_refused_photo_remembered_without_its_bytes_is_still_a_notice_not_an_upload() {
    let mut u = person("a1", "ada@x.org", "Eng", false);
    u.photo = Some(crate::photo::Photo {
        sha256: "ab".repeat(32),
        bytes: Vec::new(),
        etag: None,
        oversize: None,
    });
    let p = run(
        vec![u],
        vec![account("s1", "ada@x.org", "Eng", true)],
        vec![photo_link("a1", "s1", None)],
        &with_photos(),
    );
    assert!(p.actions.is_empty());
    assert!(
        p.notices[0].message.contains("refused by an earlier run"),
        "{:?}",
        p.notices
    );
}

#[test]
fn an_account_keeps_only_the_attributes_the_lifecycle_reads() {
    let mut p = policy();
    p.lifecycle.pending = Some(FieldPath::parse("urn:example:app:User:pending").unwrap());
    p.lifecycle.leaver = vec![(FieldPath::parse("name.familyName").unwrap(), "Left".into())];
    let keep = p.account_attributes();
    let want = [
        "active",
        "emails",
        "id",
        "name",
        "preferredlanguage",
        "title",
        "urn:example:app:user",
        "username",
    ];
    assert_eq!(keep, want.iter().map(|s| s.to_string()).collect());
    // Photos are kept only when they are synced.
    p.photos = Some(PhotoPolicy { max_bytes: 1024 });
    assert!(p.account_attributes().contains("photos"));
}

#[test]
fn leaving_an_apps_scope_suspends_the_linked_account_with_why_and_creates_nobody() {
    let users = vec![
        person("a1", "ada@x.org", "Eng", false),
        person("a2", "bob@x.org", "Eng", false),
    ];
    let accounts = vec![account("s1", "ada@x.org", "Eng", true)];
    let links: BTreeMap<Anchor, Link> = [link("a1", "s1", LinkState::Active, None)]
        .into_iter()
        .map(|l| (l.anchor.clone(), l))
        .collect();
    let why = "out of scope for miro: no longer in group miro-users".to_string();
    let outside: BTreeMap<Anchor, String> = [
        (Anchor::new("a1"), why.clone()),
        (Anchor::new("a2"), why.clone()),
    ]
    .into();
    let p = policy();
    let plan = plan(&Inputs {
        users: &users,
        accounts: &accounts,
        links: &links,
        policy: &p,
        now: now(),
        out_of_scope: &outside,
        focus: None,
    });
    assert_eq!(plan.actions.len(), 1, "{:?}", plan.actions);
    assert_eq!(plan.actions[0].kind, ActionKind::Suspend);
    assert_eq!(plan.actions[0].user_name, "ada@x.org");
    assert_eq!(plan.actions[0].reason, why);
}

#[test]
fn a_leaver_is_said_to_be_last_seen_on_a_day_not_at_a_minute() {
    // Links are touched once a day (`run::unseen_today`): a minute would be made up.
    let a = "a1";
    let seen = Link {
        last_seen: Some(now() - Duration::days(3)),
        ..link(a, "s1", LinkState::Active, None)
    };
    let accounts = vec![account("s1", "ada@x.org", "Eng", true)];
    let p = run(vec![], accounts, vec![seen], &policy());
    assert_eq!(p.actions.len(), 1);
    assert!(
        p.actions[0]
            .reason
            .ends_with("out of scope); last seen 2026-03-07"),
        "{}",
        p.actions[0].reason
    );
}
