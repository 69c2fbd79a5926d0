//! A focused plan: when the last plan stands for everyone and every action it planned was
//! applied (`run::focus` decides), a plan made now can differ from it only where something
//! changed since, or where the rules move a person without a change. So it looks only at:
//! - the people the directory reports changed or removed since that plan, and the people
//!   whose account the app changed (or idsync wrote) since;
//! - everyone the rules may still act on without a change: people without a link, with a
//!   suspended link or an inactive account, disabled, outside the app's scope or with
//!   unreadable values (reactivation windows, `delete_after`, scope groups and re-hires
//!   all live there), and every link whose person is gone;
//! - the unmanaged accounts among the accounts read this cycle (the rest are judged at
//!   full reads).
//!
//! What it does not look at keeps the last plan's notices. Anything else plans everyone.

use super::*;

/// What changed since the last plan, and what that plan said.
#[derive(Clone, Debug, Default)]
pub struct Focus {
    /// People the directory reports changed or removed since the last plan.
    pub anchors: BTreeSet<Anchor>,
    /// Accounts read from the app this cycle: changed there, or written since read.
    pub accounts: BTreeSet<AccountId>,
    /// The last plan's notices: those about people and accounts this plan does not look
    /// at still stand.
    pub notices: Vec<Notice>,
}

impl<'a> Planner<'a> {
    /// Whether the plan looks at this present person.
    pub(super) fn looks_at(&self, user: &DirectoryUser) -> bool {
        let Some(focus) = self.inp.focus else {
            return true;
        };
        if focus.anchors.contains(&user.anchor)
            || user.disabled
            || !user.problems.is_empty()
            || self.inp.out_of_scope.contains_key(&user.anchor)
        {
            return true;
        }
        let Some(link) = self.inp.links.get(&user.anchor) else {
            return true;
        };
        link.state != LinkState::Active
            || focus.accounts.contains(&link.account_id)
            || !self
                .by_id
                .get(link.account_id.as_str())
                .is_some_and(|a| a.active)
    }

    /// Whether a notice of the last plan still stands: it is about a person this plan did
    /// not look at, or an account it did not judge. Notices about nothing in particular
    /// (and groups') are made anew by every plan.
    pub(super) fn still_stands(
        &self,
        focus: &Focus,
        n: &Notice,
        looked: &BTreeSet<&Anchor>,
    ) -> bool {
        match (&n.anchor, &n.account_id) {
            (Some(anchor), _) => self.present.contains(anchor) && !looked.contains(anchor),
            (None, Some(id)) => {
                self.by_id.contains_key(id.as_str())
                    && !focus.accounts.contains(id)
                    && !self.claimed.contains(id.as_str())
                    && !self.link_of_account.contains_key(id.as_str())
            }
            (None, None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{account, edit, link, now, person, policy};
    use super::*;

    /// A company after its last plan, which planned nothing: a protected account and an
    /// unmanaged one (notices), a leaver suspended 40 days ago (not yet past a
    /// 60-day `delete_after`), a disabled person, and four people as they should be.
    struct Company {
        users: Vec<DirectoryUser>,
        accounts: Vec<Account>,
        links: BTreeMap<Anchor, Link>,
        policy: Policy,
    }

    fn company() -> Company {
        let mut policy = policy();
        policy.lifecycle.unmanaged = Unmanaged::Report;
        policy.lifecycle.delete_after = Some(Duration::days(60));
        let users = vec![
            person("a1", "ada@x.org", "Eng", false),
            person("a2", "bob@x.org", "Eng", false),
            person("a3", "cy@x.org", "Eng", false),
            person("a4", "dee@x.org", "Eng", false),
            person("a6", "fay@x.org", "Eng", true),
        ];
        let accounts = vec![
            account("s1", "ada@x.org", "Eng", true),
            account("s2", "bob@x.org", "Eng", true),
            account("s3", "cy@x.org", "Eng", true),
            account("s4", "dee@x.org", "Eng", true),
            account("s5", "eve@x.org", "Former", false),
            account("s6", "fay@x.org", "Eng", false),
            account("s8", "temp@x.org", "Temp", true),
            account("s9", "admin@x.org", "Root", true),
        ];
        let links = [
            link("a1", "s1", LinkState::Active, None),
            link("a2", "s2", LinkState::Active, None),
            link("a3", "s3", LinkState::Active, None),
            link("a4", "s4", LinkState::Active, None),
            link("a5", "s5", LinkState::Suspended, Some(40)),
            link("a6", "s6", LinkState::Suspended, Some(10)),
        ]
        .into_iter()
        .map(|l| (l.anchor.clone(), l))
        .collect();
        Company {
            users,
            accounts,
            links,
            policy,
        }
    }

    impl Company {
        fn plan(&self, focus: Option<&Focus>, days_later: i64) -> Plan {
            plan(&Inputs {
                users: &self.users,
                accounts: &self.accounts,
                links: &self.links,
                policy: &self.policy,
                now: now() + Duration::days(days_later),
                out_of_scope: &BTreeMap::new(),
                focus,
            })
        }
    }

    fn kinds(plan: &Plan) -> Vec<(ActionKind, &str)> {
        plan.actions
            .iter()
            .map(|a| (a.kind, a.user_name.as_str()))
            .collect()
    }

    #[test]
    fn a_focused_plan_plans_what_a_whole_plan_would_when_every_change_is_in_focus() {
        let mut c = company();
        let settled = c.plan(None, 0);
        assert!(settled.actions.is_empty(), "{:?}", settled.actions);
        assert_eq!(settled.notices.len(), 2, "{:?}", settled.notices);

        // Since: ada promoted and cy removed upstream, a new hire; bob's account edited
        // in the app (the changes query brought it back); 30 days pass, so the leaver
        // suspended 40 days ago is now past `delete_after`.
        c.users[0] = person("a1", "ada@x.org", "Lead", false);
        c.users.remove(2);
        c.users.push(person("a7", "gus@x.org", "Eng", false));
        edit(&mut c.accounts[1], |r| r["title"] = "Intern".into());
        let focus = Focus {
            anchors: ["a1", "a3", "a7"].into_iter().map(Anchor::new).collect(),
            accounts: [AccountId::new("s2")].into(),
            notices: settled.notices.clone(),
        };
        let whole = c.plan(None, 30);
        let focused = c.plan(Some(&focus), 30);
        assert_eq!(
            kinds(&focused),
            vec![
                (ActionKind::Update, "ada@x.org"),
                (ActionKind::Update, "bob@x.org"),
                (ActionKind::Suspend, "cy@x.org"),
                (ActionKind::Delete, "eve@x.org"),
                (ActionKind::Create, "gus@x.org"),
            ]
        );
        assert_eq!(focused.actions, whole.actions);
        // The notices of what it did not look at stand as the last plan said them.
        assert_eq!(focused.notices, whole.notices);
        // ada, bob, gus (changed) and fay (disabled); not dee.
        assert_eq!(focused.stats.looked_at, Some(4));
        // cy (just removed) and eve (gone for 40 days): every gone person's link is judged.
        assert_eq!(focused.stats.gone_looked_at, Some(2));
        assert_eq!(whole.stats.gone_looked_at, None);
        assert_eq!(focused.stats.source_users, whole.stats.source_users);
    }

    #[test]
    fn an_edit_the_app_did_not_report_waits_for_the_next_full_read() {
        let mut c = company();
        edit(&mut c.accounts[3], |r| r["title"] = "Intern".into());
        let focus = Focus::default();
        assert!(c.plan(Some(&focus), 0).actions.is_empty());
        assert_eq!(
            kinds(&c.plan(None, 0)),
            vec![(ActionKind::Update, "dee@x.org")]
        );
    }

    #[test]
    fn a_notice_about_someone_looked_at_again_is_made_anew_not_kept() {
        let mut c = company();
        let settled = c.plan(None, 0);
        // The unmanaged account is now read again and matches a new hire: adopted, and
        // the old "unmanaged" notice goes.
        c.users.push(person("a8", "temp@x.org", "Temp", false));
        let focus = Focus {
            anchors: [Anchor::new("a8")].into(),
            accounts: [AccountId::new("s8")].into(),
            notices: settled.notices,
        };
        let focused = c.plan(Some(&focus), 0);
        assert_eq!(kinds(&focused), vec![(ActionKind::Adopt, "temp@x.org")]);
        let msgs: Vec<&str> = focused.notices.iter().map(|n| n.message.as_str()).collect();
        assert_eq!(msgs, vec!["protected by `admin@*`: never touched"]);
    }
}
