//! The group rules, one test each, driven through the people planner as a run does.

use super::*;
use crate::mapping::{FieldMapping, FieldPath, Mapping, Template};
use crate::model::{LinkState, UserName};
use crate::plan::{Lifecycle, MatchRule, Protected};
use crate::safety::{gate_groups, DeprovisionLimit, SafetyConfig};
use chrono::{TimeZone, Utc};
use serde_json::json;

fn policy() -> Policy {
    Policy {
        photos: None,
        mapping: Mapping::new(vec![FieldMapping {
            path: FieldPath::parse("userName").unwrap(),
            template: Template::parse("{mail}").unwrap(),
            set_once: false,
        }])
        .unwrap(),
        match_rule: MatchRule {
            target: FieldPath::parse("userName").unwrap(),
            source: Template::parse("{mail}").unwrap(),
        },
        lifecycle: Lifecycle::default(),
        protected: Protected::new(vec![glob::Pattern::new("admin@*").unwrap()]),
    }
}

fn person(anchor: &str, disabled: bool) -> DirectoryUser {
    let mut attrs = BTreeMap::new();
    attrs.insert("mail".to_string(), vec![format!("{anchor}@x.org")]);
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

/// `anchor`'s account `acc-<anchor>`, linked.
fn account(anchor: &str, active: bool) -> (Account, Link) {
    let id = format!("acc-{anchor}");
    let name = format!("{anchor}@x.org");
    (
        Account {
            id: AccountId::new(id.clone()),
            user_name: UserName::new(&name),
            active,
            resource: json!({"id": id, "userName": name, "active": active}).into(),
        },
        Link {
            anchor: Anchor::new(anchor),
            account_id: AccountId::new(id),
            user_name: name,
            state: if active {
                LinkState::Active
            } else {
                LinkState::Suspended
            },
            suspended_at: (!active).then(|| Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0).unwrap()),
            last_seen: None,
            photo_hash: None,
        },
    )
}

fn group(anchor: &str, name: &str, members: &[&str]) -> DirectoryGroup {
    let members: BTreeSet<Anchor> = members.iter().map(|m| Anchor::new(*m)).collect();
    DirectoryGroup {
        anchor: Anchor::new(anchor),
        locator: format!("cn={name}"),
        name: name.into(),
        direct: members.clone(),
        transitive: members.clone(),
        members,
    }
}

fn app(id: &str, name: &str, members: &[&str]) -> AppGroup {
    AppGroup {
        id: id.into(),
        display_name: name.into(),
        members: members.iter().map(|m| AccountId::new(*m)).collect(),
        listed_as: Default::default(),
        modified: None,
    }
}

fn glink(anchor: &str, id: &str) -> GroupLink {
    GroupLink {
        anchor: Anchor::new(anchor),
        group_id: id.into(),
        name: "x".into(),
        members: Default::default(),
    }
}

struct World {
    users: Vec<DirectoryUser>,
    accounts: Vec<Account>,
    links: BTreeMap<Anchor, Link>,
    groups: Vec<DirectoryGroup>,
    app: Vec<AppGroup>,
    group_links: BTreeMap<Anchor, GroupLink>,
    vanished: Vanished,
    safety: SafetyConfig,
}

impl World {
    /// Alice and Bob, both linked and active.
    fn new() -> World {
        let mut w = World {
            users: vec![person("alice", false), person("bob", false)],
            accounts: vec![],
            links: BTreeMap::new(),
            groups: vec![],
            app: vec![],
            group_links: BTreeMap::new(),
            vanished: Vanished::Leave,
            safety: SafetyConfig::default(),
        };
        for a in ["alice", "bob"] {
            w.account(a, true);
        }
        w
    }
    fn account(&mut self, anchor: &str, active: bool) {
        let (acc, link) = account(anchor, active);
        self.accounts.retain(|a| a.id != acc.id);
        self.accounts.push(acc);
        self.links.insert(link.anchor.clone(), link);
    }
    fn managed(&mut self, anchor: &str, id: &str, name: &str, dir: &[&str], in_app: &[&str]) {
        self.groups.push(group(anchor, name, dir));
        self.app.push(app(id, name, in_app));
        self.group_links
            .insert(Anchor::new(anchor), glink(anchor, id));
    }
    fn plan(&self) -> GroupPlan {
        let policy = policy();
        let mut people = crate::plan::plan(&crate::plan::Inputs {
            users: &self.users,
            accounts: &self.accounts,
            links: &self.links,
            policy: &policy,
            now: Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap(),
            out_of_scope: &BTreeMap::new(),
            focus: None,
        });
        crate::safety::gate(&mut people, &self.safety);
        let mut out = plan(&Inputs {
            groups: &self.groups,
            app_groups: &self.app,
            group_links: &self.group_links,
            users: &self.users,
            accounts: &self.accounts,
            links: &self.links,
            people: &people,
            policy: &policy,
            groups_policy: &GroupPolicy {
                vanished: self.vanished,
            },
        });
        gate_groups(&mut out.actions, &out.managed, &self.safety);
        out
    }
}

fn one(p: &GroupPlan) -> &Action {
    assert_eq!(p.actions.len(), 1, "{:#?}", p.actions);
    &p.actions[0]
}

#[test]
fn a_new_directory_group_is_created_with_its_members() {
    let mut w = World::new();
    w.groups.push(group("g1", "eng", &["alice", "bob"]));
    let p = w.plan();
    let a = one(&p);
    assert_eq!(a.kind, ActionKind::GroupCreate);
    assert_eq!(member_text(&a.members), "+alice@x.org +bob@x.org");
    assert_eq!(
        a.members[0].account_id.as_ref().map(AccountId::as_str),
        Some("acc-alice")
    );
}

#[test]
fn a_person_created_by_the_same_run_joins_by_anchor() {
    let mut w = World::new();
    w.users.push(person("carol", false));
    w.managed("g1", "G1", "eng", &["alice", "carol"], &["acc-alice"]);
    let p = w.plan();
    let a = one(&p);
    assert_eq!(member_text(&a.members), "+carol@x.org");
    assert_eq!(
        a.members[0].account_id, None,
        "apply looks the new account up"
    );
    assert_eq!(a.members[0].anchor, Some(Anchor::new("carol")));
}

#[test]
fn a_group_in_line_plans_nothing() {
    let mut w = World::new();
    w.managed("g1", "G1", "eng", &["alice"], &["acc-alice"]);
    assert!(w.plan().actions.is_empty());
}

#[test]
fn joins_and_leaves_upstream_are_one_update() {
    let mut w = World::new();
    w.managed("g1", "G1", "eng", &["bob"], &["acc-alice"]);
    let p = w.plan();
    let a = one(&p);
    assert_eq!(a.kind, ActionKind::GroupUpdate);
    assert_eq!(member_text(&a.members), "+bob@x.org -alice@x.org");
    let members = a
        .changes
        .iter()
        .find(|c| c.field == Field::Members)
        .unwrap();
    assert_eq!(members.before.as_deref(), Some("alice@x.org"));
    assert_eq!(members.after.as_deref(), Some("bob@x.org"));
    assert!(
        a.reason.contains("1 removed (no longer a member upstream)"),
        "{}",
        a.reason
    );
}

#[test]
fn a_renamed_group_is_renamed() {
    let mut w = World::new();
    w.managed("g1", "G1", "eng", &["alice"], &["acc-alice"]);
    w.app[0].display_name = "engineering".into();
    let p = w.plan();
    let a = one(&p);
    assert_eq!(a.changes[0].field, Field::DisplayName);
    assert_eq!(a.changes[0].after.as_deref(), Some("eng"));
}

#[test]
fn a_disabled_person_leaves_every_synced_group_though_still_listed_upstream() {
    let mut w = World::new();
    w.users[0].disabled = true;
    w.managed(
        "g1",
        "G1",
        "eng",
        &["alice", "bob"],
        &["acc-alice", "acc-bob"],
    );
    w.managed("g2", "G2", "ops", &["alice"], &["acc-alice"]);
    let p = w.plan();
    assert_eq!(p.actions.len(), 2);
    for a in &p.actions {
        assert_eq!(member_text(&a.members), "-alice@x.org");
        assert_eq!(a.members[0].why, "suspended: disabled upstream");
        assert!(a.held.is_none(), "{:?}", a.held);
    }
}

#[test]
fn a_person_gone_upstream_leaves_and_one_back_within_the_window_returns() {
    let mut w = World::new();
    w.users.retain(|u| u.anchor.as_str() != "alice");
    w.managed("g1", "G1", "eng", &["bob"], &["acc-alice", "acc-bob"]);
    let p = w.plan();
    assert_eq!(member_text(&one(&p).members), "-alice@x.org");
    assert_eq!(one(&p).members[0].why, "suspended: gone upstream");
    // Next time: Alice's account is suspended; she is back and listed again.
    let mut w = World::new();
    w.account("alice", false);
    w.managed("g1", "G1", "eng", &["alice", "bob"], &["acc-bob"]);
    let p = w.plan();
    assert_eq!(member_text(&one(&p).members), "+alice@x.org");
}

#[test]
fn a_held_suspension_keeps_the_memberships_as_they_are() {
    let mut w = World::new();
    w.users.clear();
    w.users.push(person("carol", false));
    w.account("carol", true);
    w.safety.max_deprovisions = Some(DeprovisionLimit::Count(0));
    w.managed(
        "g1",
        "G1",
        "eng",
        &["carol"],
        &["acc-alice", "acc-bob", "acc-carol"],
    );
    assert!(w.plan().actions.is_empty(), "{:#?}", w.plan().actions);
}

#[test]
fn members_idsync_does_not_manage_are_left_in_place() {
    let mut w = World::new();
    w.managed(
        "g1",
        "G1",
        "eng",
        &["alice"],
        &["acc-alice", "someone-else", "nested-group"],
    );
    assert!(w.plan().actions.is_empty());
}

#[test]
fn a_protected_persons_membership_is_never_touched() {
    let mut w = World::new();
    w.users.push(person("admin", false));
    w.account("admin", true);
    w.users.retain(|u| u.anchor.as_str() != "admin");
    w.managed("g1", "G1", "eng", &["alice"], &["acc-alice", "acc-admin"]);
    assert!(w.plan().actions.is_empty(), "{:#?}", w.plan().actions);
}

#[test]
fn an_app_group_of_the_same_name_is_adopted_and_others_are_never_touched() {
    let mut w = World::new();
    w.groups.push(group("g1", "eng", &["alice"]));
    w.app.push(app("X", "Eng", &["stranger"]));
    w.app.push(app("Y", "marketing", &["acc-bob"]));
    let p = w.plan();
    let a = one(&p);
    assert_eq!(a.kind, ActionKind::GroupAdopt);
    assert_eq!(a.account_id.as_ref().map(AccountId::as_str), Some("X"));
    assert_eq!(member_text(&a.members), "+alice@x.org");
    assert_eq!(
        a.changes[0].after.as_deref(),
        Some("eng"),
        "renamed to the directory's spelling"
    );
}

#[test]
fn two_app_groups_of_one_name_are_reported_not_guessed() {
    let mut w = World::new();
    w.groups.push(group("g1", "eng", &["alice"]));
    w.app.push(app("X", "eng", &[]));
    w.app.push(app("Y", "ENG", &[]));
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert!(p.notices[0].message.contains("2 app groups are named"));
}

#[test]
fn a_linked_group_deleted_in_the_app_is_created_again() {
    let mut w = World::new();
    w.groups.push(group("g1", "eng", &["alice"]));
    w.group_links.insert(Anchor::new("g1"), glink("g1", "GONE"));
    let p = w.plan();
    let a = one(&p);
    assert_eq!(a.kind, ActionKind::GroupCreate);
    assert!(a.reason.contains("its app group GONE no longer exists"));
}

#[test]
fn a_vanished_group_is_left_and_reported_but_its_leavers_still_leave() {
    let mut w = World::new();
    w.users[1].disabled = true;
    w.managed("g1", "G1", "eng", &[], &["acc-alice", "acc-bob"]);
    w.groups.clear();
    let p = w.plan();
    assert!(p.notices[0].message.contains("groups.vanished: leave"));
    let a = one(&p);
    assert_eq!(a.kind, ActionKind::GroupUpdate);
    assert_eq!(member_text(&a.members), "-bob@x.org");
    assert!(a.held.is_none());
}

#[test]
fn deleting_a_vanished_group_counts_its_members_and_is_held_when_it_empties_it() {
    let mut w = World::new();
    w.vanished = Vanished::Delete;
    w.managed("g1", "G1", "eng", &[], &["acc-alice", "acc-bob"]);
    w.groups.clear();
    let p = w.plan();
    let a = one(&p);
    assert_eq!(a.kind, ActionKind::GroupDelete);
    assert_eq!(a.members.len(), 2);
    assert!(a
        .held
        .as_deref()
        .unwrap()
        .contains("would remove all 2 members"));
}

#[test]
fn a_read_that_empties_a_group_is_held() {
    let mut w = World::new();
    w.managed("g1", "G1", "eng", &[], &["acc-alice", "acc-bob"]);
    let p = w.plan();
    assert!(one(&p)
        .held
        .as_deref()
        .unwrap()
        .contains("would remove all 2"));
}

#[test]
fn member_removals_above_the_cap_are_held_and_adds_are_not() {
    let mut w = World::new();
    w.users.push(person("carol", false));
    w.account("carol", true);
    w.safety.max_member_removals = Some(DeprovisionLimit::Count(1));
    w.managed(
        "g1",
        "G1",
        "eng",
        &["carol"],
        &["acc-alice", "acc-bob", "acc-carol"],
    );
    w.managed("g2", "G2", "ops", &["alice", "bob"], &["acc-alice"]);
    let p = w.plan();
    let held: Vec<(&str, bool)> = p
        .actions
        .iter()
        .map(|a| (a.user_name.as_str(), a.held.is_some()))
        .collect();
    assert_eq!(held, vec![("eng", true), ("ops", false)]);
    assert!(p.actions[0]
        .held
        .as_deref()
        .unwrap()
        .contains("2 group member removals exceed max_member_removals 1"));
}

#[test]
fn a_reinvited_persons_old_account_makes_way_for_the_new_one() {
    let mut w = World::new();
    w.account("alice", false);
    // Suspended long ago: past the reactivation window, so she is re-invited.
    w.links.get_mut(&Anchor::new("alice")).unwrap().suspended_at =
        Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap());
    w.managed("g1", "G1", "eng", &["alice"], &["acc-alice"]);
    let p = w.plan();
    let a = one(&p);
    assert_eq!(member_text(&a.members), "+alice@x.org -alice@x.org");
    assert_eq!(a.members[0].account_id, None);
    assert_eq!(a.members[1].why, "replaced by a new account (reinvite)");
}

fn set(xs: &[&str]) -> BTreeSet<Anchor> {
    xs.iter().map(|x| Anchor::new(*x)).collect()
}

#[test]
fn nested_groups_flatten_and_cycles_end() {
    let direct: BTreeMap<Anchor, BTreeSet<Anchor>> = [
        (Anchor::new("all"), set(&["ceo"])),
        (Anchor::new("eng"), set(&["alice"])),
        (Anchor::new("ops"), set(&["bob"])),
        (Anchor::new("oncall"), set(&["carol"])),
    ]
    .into();
    // all > eng > oncall > ops > eng (a cycle), and all > ops.
    let children: BTreeMap<Anchor, BTreeSet<Anchor>> = [
        (Anchor::new("all"), set(&["eng", "ops"])),
        (Anchor::new("eng"), set(&["oncall"])),
        (Anchor::new("oncall"), set(&["ops"])),
        (Anchor::new("ops"), set(&["eng"])),
    ]
    .into();
    assert_eq!(
        flatten(&Anchor::new("all"), &direct, &children),
        set(&["alice", "bob", "carol", "ceo"])
    );
    assert_eq!(
        flatten(&Anchor::new("ops"), &direct, &children),
        set(&["alice", "bob", "carol"])
    );
    // A group that contains itself.
    let selfish: BTreeMap<Anchor, BTreeSet<Anchor>> = [(Anchor::new("eng"), set(&["eng"]))].into();
    assert_eq!(
        flatten(&Anchor::new("eng"), &direct, &selfish),
        set(&["alice"])
    );
}
