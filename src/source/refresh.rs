//! A content sync's report (what changed, what left, what is still present) applied to
//! the population the journal remembers: shared by the syncrepl reader (RFC 4533) and the
//! Active Directory USN reader, which reports its changes in the same shape. Pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Anchor, DirectoryUser};

/// What one refresh reported. Deleted and present entries are named by sync UUID.
#[derive(Debug, Default)]
pub struct Refresh {
    /// Entries added, changed or renamed (whole).
    pub upserts: Vec<DirectoryUser>,
    /// Sync UUIDs the server says left the content (delete phase).
    pub deleted: BTreeSet<Anchor>,
    /// Sync UUIDs the server says are still present (present phase).
    pub present: BTreeSet<Anchor>,
    /// True when the refresh ended in a present phase that named anyone present: what was
    /// not reported present, added or changed is gone.
    pub present_phase: bool,
    pub cookie: Option<Vec<u8>>,
    /// Changed entries the server sent without what idsync needs: (DN, sync UUID), read
    /// again by DN before the refresh is used.
    pub(super) partial: Vec<(String, Anchor)>,
    /// The refresh was stopped (abandoned) before its end: it says only that many changed.
    pub stopped: bool,
}

impl Refresh {
    /// Whether some person it sent is named by a sync UUID that is not their anchor.
    pub fn names_by_sync_id(&self) -> bool {
        self.upserts.iter().any(|u| u.sync_id.is_some())
    }
}

/// The key a content sync names a person by.
fn sync_key(u: &DirectoryUser) -> &Anchor {
    u.sync_id.as_ref().unwrap_or(&u.anchor)
}

/// The remembered population with a refresh applied: (people, upserted, removed).
pub fn apply_refresh(
    remembered: &[DirectoryUser],
    refresh: Refresh,
) -> (Vec<DirectoryUser>, BTreeSet<Anchor>, BTreeSet<Anchor>) {
    let mut people: BTreeMap<Anchor, DirectoryUser> = remembered
        .iter()
        .map(|u| (u.anchor.clone(), u.clone()))
        .collect();
    // Sync UUID -> anchor, for the refresh's deleted and present sets.
    let by_sync: BTreeMap<Anchor, Anchor> = remembered
        .iter()
        .map(|u| (sync_key(u).clone(), u.anchor.clone()))
        .collect();
    let anchors_of = |ids: &BTreeSet<Anchor>| -> BTreeSet<Anchor> {
        ids.iter()
            .filter_map(|id| by_sync.get(id).cloned())
            .collect()
    };
    let upserted: BTreeSet<Anchor> = refresh.upserts.iter().map(|u| u.anchor.clone()).collect();
    let mut removed = BTreeSet::new();
    // A person whose anchor changed under the same sync UUID left under the old anchor.
    for u in &refresh.upserts {
        if let Some(old) = by_sync.get(sync_key(u)) {
            if *old != u.anchor && !upserted.contains(old) && people.remove(old).is_some() {
                removed.insert(old.clone());
            }
        }
    }
    for a in anchors_of(&refresh.deleted) {
        if !upserted.contains(&a) && people.remove(&a).is_some() {
            removed.insert(a);
        }
    }
    if refresh.present_phase {
        let present = anchors_of(&refresh.present);
        let gone: Vec<Anchor> = people
            .keys()
            .filter(|a| !present.contains(*a) && !upserted.contains(*a))
            .cloned()
            .collect();
        for a in gone {
            people.remove(&a);
            removed.insert(a);
        }
    }
    for u in refresh.upserts {
        people.insert(u.anchor.clone(), u);
    }
    (people.into_values().collect(), upserted, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(anchor: &str, title: &str) -> DirectoryUser {
        DirectoryUser {
            anchor: Anchor::new(anchor),
            locator: format!("uid={anchor}"),
            attrs: [("title".to_string(), vec![title.to_string()])].into(),
            disabled: false,
            problems: vec![],
            photo: None,
            sync_id: None,
        }
    }

    fn set(items: &[&str]) -> BTreeSet<Anchor> {
        items.iter().map(|a| Anchor::new(*a)).collect()
    }

    fn anchors(users: &[DirectoryUser]) -> Vec<&str> {
        users.iter().map(|u| u.anchor.as_str()).collect()
    }

    #[test]
    fn a_delete_phase_removes_the_listed_and_upserts_the_changed() {
        let known = [person("a", "Eng"), person("b", "Eng"), person("c", "Eng")];
        let refresh = Refresh {
            upserts: vec![person("b", "Lead"), person("d", "New")],
            deleted: set(&["c", "zz-never-known"]),
            ..Refresh::default()
        };
        let (users, upserted, removed) = apply_refresh(&known, refresh);
        assert_eq!(anchors(&users), ["a", "b", "d"]);
        assert_eq!(users[1].values("title"), ["Lead"]);
        assert_eq!(upserted, set(&["b", "d"]));
        assert_eq!(removed, set(&["c"]), "an unknown UUID is not a removal");
    }

    #[test]
    fn a_present_phase_removes_everything_not_listed() {
        let known = [person("a", "Eng"), person("b", "Eng"), person("c", "Eng")];
        let refresh = Refresh {
            upserts: vec![person("d", "New")],
            present: set(&["a"]),
            present_phase: true,
            ..Refresh::default()
        };
        let (users, _, removed) = apply_refresh(&known, refresh);
        assert_eq!(anchors(&users), ["a", "d"]);
        assert_eq!(removed, set(&["b", "c"]));
    }

    #[test]
    fn a_refresh_with_no_changes_changes_nothing() {
        let known = [person("a", "Eng")];
        let (users, upserted, removed) = apply_refresh(&known, Refresh::default());
        assert_eq!(anchors(&users), ["a"]);
        assert!(upserted.is_empty() && removed.is_empty());
    }

    #[test]
    fn deletions_and_presence_match_people_by_their_sync_uuid_not_their_anchor() {
        // 389-ds names entries by a UUID derived from nsUniqueId, not by the entryUUID anchor.
        let mut ada = person("ada-entryuuid", "Eng");
        ada.sync_id = Some(Anchor::new("ada-nsuniqueid"));
        let mut bob = person("bob-entryuuid", "Eng");
        bob.sync_id = Some(Anchor::new("bob-nsuniqueid"));
        let known = [ada.clone(), bob.clone()];
        let refresh = Refresh {
            deleted: set(&["bob-nsuniqueid", "bob-entryuuid"]),
            ..Refresh::default()
        };
        let (users, _, removed) = apply_refresh(&known, refresh);
        assert_eq!(anchors(&users), ["ada-entryuuid"]);
        assert_eq!(removed, set(&["bob-entryuuid"]));

        let refresh = Refresh {
            present: set(&["ada-nsuniqueid"]),
            present_phase: true,
            ..Refresh::default()
        };
        let (users, _, removed) = apply_refresh(&known, refresh);
        assert_eq!(anchors(&users), ["ada-entryuuid"]);
        assert_eq!(removed, set(&["bob-entryuuid"]));
    }

    #[test]
    fn an_anchor_that_changes_under_the_same_sync_uuid_leaves_under_the_old_one() {
        let mut ada = person("ada@old", "Eng");
        ada.sync_id = Some(Anchor::new("u1"));
        let mut renamed = person("ada@new", "Eng");
        renamed.sync_id = Some(Anchor::new("u1"));
        let refresh = Refresh {
            upserts: vec![renamed],
            ..Refresh::default()
        };
        let (users, upserted, removed) = apply_refresh(&[ada], refresh);
        assert_eq!(anchors(&users), ["ada@new"]);
        assert_eq!(upserted, set(&["ada@new"]));
        assert_eq!(removed, set(&["ada@old"]));
    }
}
