//! Who gets an account in an app: members of chosen directory groups (nested membership
//! counting unless turned off), people matching a filter on their attributes, or everyone.
//! Pure: judged on the cycle's one directory read.

use std::collections::BTreeMap;

use crate::model::{Anchor, DirectoryGroup, DirectoryUser};
use crate::source::filter::Filter;
use crate::source::groups::normal_dn;

/// An app's `scope:`.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Directory groups, as written: a name (any case), a DN, or an id.
    pub groups: Vec<String>,
    /// Members of nested groups count.
    pub nested: bool,
    pub filter: Option<Filter>,
    /// The filter as written, for reasons.
    pub filter_text: Option<String>,
}

/// A scope that cannot be judged on this read: the app's run stops before any write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope group `{group}` is not in the directory read; check apps.{app}.scope.groups (a name, DN or id) and groups.base_dn / groups.filter")]
    Missing { app: String, group: String },
    #[error("scope group `{group}` has no members in this read while {app} has {linked} linked account(s): a lost or emptied group would suspend them all; nothing is written for {app} (fix the group, or remove it from apps.{app}.scope.groups)")]
    Emptied {
        app: String,
        group: String,
        linked: usize,
    },
}

impl Scope {
    /// Everyone in the directory read is in scope.
    pub fn everyone(&self) -> bool {
        self.groups.is_empty() && self.filter.is_none()
    }

    /// The people of `users` outside this scope, each with why (the reason a suspension
    /// carries). `linked` is how many accounts the app has linked: a scope group that reads
    /// empty while accounts are linked refuses the judgement.
    pub fn outside(
        &self,
        app: &str,
        users: &[DirectoryUser],
        groups: &[DirectoryGroup],
        linked: usize,
    ) -> Result<BTreeMap<Anchor, String>, ScopeError> {
        let mut chosen: Vec<&DirectoryGroup> = Vec::new();
        for wanted in &self.groups {
            let group =
                groups
                    .iter()
                    .find(|g| names(g, wanted))
                    .ok_or_else(|| ScopeError::Missing {
                        app: app.to_string(),
                        group: wanted.clone(),
                    })?;
            let members = if self.nested {
                &group.transitive
            } else {
                &group.direct
            };
            if members.is_empty() && linked > 0 {
                return Err(ScopeError::Emptied {
                    app: app.to_string(),
                    group: wanted.clone(),
                    linked,
                });
            }
            chosen.push(group);
        }
        let mut out = BTreeMap::new();
        for u in users {
            let in_groups = chosen.is_empty()
                || chosen.iter().any(|g| {
                    let members = if self.nested {
                        &g.transitive
                    } else {
                        &g.direct
                    };
                    members.contains(&u.anchor)
                });
            let why = if !in_groups {
                let names: Vec<&str> = chosen.iter().map(|g| g.name.as_str()).collect();
                let what = if names.len() == 1 { "group" } else { "groups" };
                Some(format!("no longer in {what} {}", names.join(", ")))
            } else if self.filter.as_ref().is_some_and(|f| !f.matches(u)) {
                let text = self.filter_text.as_deref().unwrap_or_default();
                Some(format!("no longer matches {text}"))
            } else {
                None
            };
            if let Some(why) = why {
                out.insert(u.anchor.clone(), format!("out of scope for {app}: {why}"));
            }
        }
        Ok(out)
    }
}

/// Whether `wanted` (a name, DN or id) names `g`.
pub(crate) fn names(g: &DirectoryGroup, wanted: &str) -> bool {
    g.name.eq_ignore_ascii_case(wanted.trim())
        || g.anchor.as_str() == wanted.trim()
        || (wanted.contains('=') && normal_dn(wanted) == normal_dn(&g.locator))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn person(id: &str, dept: &str) -> DirectoryUser {
        DirectoryUser {
            anchor: Anchor::new(id),
            locator: format!("uid={id},ou=people,dc=x"),
            attrs: [("department".to_string(), vec![dept.to_string()])]
                .into_iter()
                .collect(),
            disabled: false,
            problems: vec![],
            photo: None,
            sync_id: None,
        }
    }

    fn group(name: &str, direct: &[&str], transitive: &[&str]) -> DirectoryGroup {
        let set = |ids: &[&str]| ids.iter().map(|i| Anchor::new(*i)).collect::<BTreeSet<_>>();
        DirectoryGroup {
            anchor: Anchor::new(format!("id-{name}")),
            locator: format!("cn={name},ou=groups,dc=x"),
            name: name.to_string(),
            members: set(direct),
            direct: set(direct),
            transitive: set(transitive),
        }
    }

    #[test]
    fn people_outside_the_scope_groups_are_out_with_the_groups_named() {
        let users = [
            person("ada", "eng"),
            person("bob", "eng"),
            person("cy", "ops"),
        ];
        let groups = [group("miro-users", &["ada"], &["ada", "bob"])];
        let nested = Scope {
            groups: vec!["Miro-Users".into()],
            nested: true,
            ..Scope::default()
        };
        let out = nested.outside("miro", &users, &groups, 2).unwrap();
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            vec![(
                Anchor::new("cy"),
                "out of scope for miro: no longer in group miro-users".to_string()
            )]
        );
        let direct = Scope {
            groups: vec!["cn=miro-users, ou=groups,dc=x".into()],
            nested: false,
            ..Scope::default()
        };
        let out = direct.outside("miro", &users, &groups, 2).unwrap();
        assert!(out.contains_key(&Anchor::new("bob")) && !out.contains_key(&Anchor::new("ada")));
    }

    #[test]
    fn a_filter_scope_and_a_missing_or_emptied_group_are_judged_or_refused() {
        let users = [person("ada", "eng"), person("cy", "ops")];
        let by_filter = Scope {
            filter: Some(Filter::parse("(department=eng)").unwrap()),
            filter_text: Some("(department=eng)".into()),
            ..Scope::default()
        };
        let out = by_filter.outside("slack", &users, &[], 0).unwrap();
        assert_eq!(
            out[&Anchor::new("cy")],
            "out of scope for slack: no longer matches (department=eng)"
        );
        let missing = Scope {
            groups: vec!["nope".into()],
            nested: true,
            ..Scope::default()
        };
        assert!(matches!(
            missing.outside("miro", &users, &[], 0),
            Err(ScopeError::Missing { .. })
        ));
        let empty = [group("miro-users", &[], &[])];
        let scoped = Scope {
            groups: vec!["miro-users".into()],
            nested: true,
            ..Scope::default()
        };
        assert!(matches!(
            scoped.outside("miro", &users, &empty, 3),
            Err(ScopeError::Emptied { linked: 3, .. })
        ));
        assert_eq!(scoped.outside("miro", &users, &empty, 0).unwrap().len(), 2);
    }
}
