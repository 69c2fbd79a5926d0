//! Who is in the directory groups and subtrees the console's people scopes name, as of a
//! sync's directory read: each sync records it in the journal (`Journal::save_roster`),
//! and the console, which reads no directory itself, scopes by it. Pure.

use std::collections::BTreeSet;

use crate::model::{Anchor, DirectoryGroup, DirectoryUser};
use crate::source::groups::normal_dn;

/// A part of a people scope the directory decides: a group or a subtree.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// A group's name (any case), DN or id; members of nested groups count.
    Group(String),
    /// A subtree's DN: the people under it.
    Ou(String),
}

impl Unit {
    /// The journal's key for this unit (two spellings of one DN share it).
    pub fn key(&self) -> String {
        match self {
            Unit::Group(g) if g.contains('=') => format!("group:{}", normal_dn(g)),
            Unit::Group(g) => format!("group:{}", g.trim().to_lowercase()),
            Unit::Ou(dn) => format!("ou:{}", normal_dn(dn)),
        }
    }
}

/// The people in `unit` in this read; `None` when a group is not in the read (what was
/// recorded before stands, and the caller says so).
pub fn members(
    unit: &Unit,
    users: &[DirectoryUser],
    groups: &[DirectoryGroup],
) -> Option<BTreeSet<Anchor>> {
    match unit {
        Unit::Group(wanted) => groups
            .iter()
            .find(|g| crate::scope::names(g, wanted))
            .map(|g| g.transitive.clone()),
        Unit::Ou(dn) => {
            let suffix = format!(",{}", normal_dn(dn));
            Some(
                users
                    .iter()
                    .filter(|u| normal_dn(&u.locator).ends_with(&suffix))
                    .map(|u| u.anchor.clone())
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, dn: &str) -> DirectoryUser {
        DirectoryUser {
            anchor: Anchor::new(id),
            locator: dn.into(),
            attrs: Default::default(),
            disabled: false,
            problems: vec![],
            photo: None,
            sync_id: None,
        }
    }

    #[test]
    fn a_subtree_holds_the_people_under_it_however_its_dn_is_spelt() {
        let users = [
            person("ada", "uid=ada,ou=Research,dc=example,dc=org"),
            person("bob", "uid=bob,ou=sales,dc=example,dc=org"),
            person("cy", "uid=cy,ou=lab,ou=research,dc=example,dc=org"),
        ];
        let unit = Unit::Ou("OU=research, DC=example,DC=org".into());
        let found = members(&unit, &users, &[]).unwrap();
        assert_eq!(
            found,
            [Anchor::new("ada"), Anchor::new("cy")]
                .into_iter()
                .collect()
        );
        assert_eq!(
            unit.key(),
            Unit::Ou("ou=research,dc=example,dc=org".into()).key()
        );
    }

    #[test]
    fn a_group_holds_its_nested_members_and_a_missing_group_is_unknown_not_empty() {
        let all: BTreeSet<Anchor> = [Anchor::new("ada"), Anchor::new("cy")]
            .into_iter()
            .collect();
        let group = DirectoryGroup {
            anchor: Anchor::new("g1"),
            locator: "cn=research,ou=groups,dc=x".into(),
            name: "research".into(),
            members: all.clone(),
            direct: [Anchor::new("ada")].into_iter().collect(),
            transitive: all.clone(),
        };
        let groups = [group];
        assert_eq!(
            members(&Unit::Group("Research".into()), &[], &groups),
            Some(all)
        );
        assert_eq!(members(&Unit::Group("sales".into()), &[], &groups), None);
    }
}
