//! A present person without a usable link: an existing account found by `match` is
//! adopted (a re-hire takes over its predecessor's), otherwise an account is created.

use super::*;

impl<'a> Planner<'a> {
    /// A present, readable person with no usable link.
    pub(super) fn unlinked(&mut self, user: &DirectoryUser, user_name: &str, why: Option<String>) {
        let prefix = why.map(|w| format!("{w}; ")).unwrap_or_default();
        let candidates = self.unclaimed_matches(user);
        if candidates.len() > 1 {
            let ids: Vec<&str> = candidates.iter().map(|a| a.id.as_str()).collect();
            let msg = format!(
                "not changed: {} app accounts match ({}); remove the duplicates or tighten `match`",
                ids.len(),
                ids.join(", ")
            );
            self.notice(Some(user_name), Some(&user.anchor), None, msg);
            return;
        }
        if let Some(account) = candidates.first().copied() {
            self.claimed.insert(account.id.as_str());
            self.adopt(user, user_name, account, &prefix);
            return;
        }
        if user.disabled {
            return;
        }
        if let Some(p) = self.protected_by(&[user_name]) {
            let msg = format!("protected by `{p}`: not created");
            self.notice(Some(user_name), Some(&user.anchor), None, msg);
            return;
        }
        let desired = self.policy().mapping.desired(user);
        let mut changes = create_changes(&self.policy().mapping, &desired);
        changes.extend(self.photo_change(user, user_name, None));
        self.plan.actions.push(Action {
            kind: ActionKind::Create,
            user_name: user_name.to_string(),
            anchor: Some(user.anchor.clone()),
            account_id: None,
            previous_anchor: None,
            changes,
            reason: format!("{prefix}new in the directory"),
            held: None,
            hooks: Vec::new(),
            members: Vec::new(),
        });
    }

    /// The accounts no one has claimed yet that `match` finds for this person.
    fn unclaimed_matches(&self, user: &DirectoryUser) -> Vec<&'a Account> {
        let key = self
            .policy()
            .match_rule
            .source
            .render(user)
            .map(|k| k.to_lowercase());
        key.and_then(|k| self.by_match().get(&k))
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|a| !self.claimed.contains(a.id.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A person without a link whose `match` finds `account`: adopted (or, protected or
    /// another present person's, left alone with a notice). A re-hire takes over the account
    /// its previous anchor, gone upstream, had.
    fn adopt(&mut self, user: &DirectoryUser, user_name: &str, account: &'a Account, prefix: &str) {
        if let Some(p) = self.protected_by(&[account.user_name.as_str(), user_name]) {
            let msg = format!("protected by `{p}`: never touched (matches this directory user)");
            let who = Some(account.user_name.as_str());
            self.notice(who, Some(&user.anchor), Some(&account.id), msg);
            return;
        }
        let mut previous_anchor = None;
        if let Some(owner) = self.link_of_account.get(account.id.as_str()) {
            if owner.anchor != user.anchor {
                if self.present.contains(&owner.anchor) {
                    let msg = format!(
                        "not changed: account {} matches but belongs to another directory user ({})",
                        account.id, owner.anchor
                    );
                    self.notice(Some(user_name), Some(&user.anchor), Some(&account.id), msg);
                    return;
                }
                previous_anchor = Some(owner.anchor.clone());
            }
        }
        let desired = self.policy().mapping.desired(user);
        let mut changes = adoption_changes(self.policy(), &desired, account, user.disabled);
        if !user.disabled {
            let before = previous_anchor
                .as_ref()
                .and_then(|a| self.inp.links.get(a))
                .and_then(|l| l.photo_hash.as_deref());
            changes.extend(self.photo_change(user, user_name, before));
        }
        let mut reason = match &previous_anchor {
            Some(old) => format!("{prefix}re-hire: takes over the account of {old}, gone upstream"),
            None => format!(
                "{prefix}matches existing account by {}",
                self.policy().match_rule.target
            ),
        };
        if user.disabled && account.active {
            reason.push_str("; disabled upstream");
        }
        self.plan.actions.push(Action {
            kind: ActionKind::Adopt,
            user_name: user_name.to_string(),
            anchor: Some(user.anchor.clone()),
            account_id: Some(account.id.clone()),
            previous_anchor,
            changes,
            reason,
            held: None,
            hooks: Vec::new(),
            members: Vec::new(),
        });
    }
}
