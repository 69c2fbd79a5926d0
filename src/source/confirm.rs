//! The rule every incremental source obeys: **an incremental read never suspends or
//! deletes on its own.** A removal or a disable it reports is a claim; the person is read
//! again directly (an LDAP base read of their DN, a Graph GET of their id) and only what
//! that read confirms (gone, out of scope, or disabled) stands. More than `AT_MOST` such
//! claims at once, or an answer that contradicts what the journal remembers in bulk, is
//! no claim to check one by one: the cycle reads everything instead.
//!
//! Pure: the reads themselves are the connectors' (`Directory::read_people_at`).

use std::collections::{BTreeMap, BTreeSet};

use super::{CacheChange, Read, ReadKind, Remember, Remembered};
use crate::model::{Anchor, DirectoryUser};

/// More removals or disables than this in one incremental read are confirmed by a full
/// read, not person by person.
pub const AT_MOST: usize = 10;

/// Who an incremental read reports as leaving: the remembered people it removed, and
/// those it reports disabled who were not. Empty for a full read.
pub fn reported_leavers<'r>(read: &Read, remembered: &'r Remembered) -> Vec<&'r DirectoryUser> {
    let Some(Remember {
        cache: CacheChange::Delta { upserted, removed },
        ..
    }) = &read.remember
    else {
        return Vec::new();
    };
    let now_disabled: BTreeSet<&Anchor> = read
        .users
        .iter()
        .filter(|u| u.disabled && upserted.contains(&u.anchor))
        .map(|u| &u.anchor)
        .collect();
    remembered
        .users
        .iter()
        .filter(|u| {
            removed.contains(&u.anchor) || (!u.disabled && now_disabled.contains(&u.anchor))
        })
        .collect()
}

/// Why a read that reported `n` leavers is done again in full.
pub fn full_read_reason(n: usize) -> String {
    format!("the incremental read reported {n} people removed or disabled, more than {AT_MOST}: a full read confirms them")
}

/// What the direct reads said, applied to the read: a claim the person's own read
/// contradicts is dropped (they are kept, as read now); a confirmed one stands. `found`
/// holds, for each of `leavers`, the person as read now (`None`: gone or out of scope).
/// Returns how many claims were contradicted.
pub fn apply(
    read: &mut Read,
    leavers: &[&DirectoryUser],
    found: Vec<Option<DirectoryUser>>,
) -> usize {
    let Some(Remember {
        cache: CacheChange::Delta { upserted, removed },
        ..
    }) = &mut read.remember
    else {
        return 0;
    };
    let mut people: BTreeMap<Anchor, DirectoryUser> = std::mem::take(&mut read.users)
        .into_iter()
        .map(|u| (u.anchor.clone(), u))
        .collect();
    let mut contradicted = 0;
    for (claim, now) in leavers.iter().zip(found) {
        let anchor = &claim.anchor;
        match now {
            None => {
                // Gone indeed (or out of scope): whatever the read said, they left.
                if people.remove(anchor).is_some() {
                    upserted.remove(anchor);
                }
                removed.insert(anchor.clone());
            }
            Some(now) => {
                if !now.disabled {
                    contradicted += 1;
                    tracing::info!(anchor = %anchor, dn = %now.locator, "an incremental read reported this person removed or disabled; a direct read finds them in scope and enabled: kept");
                }
                removed.remove(anchor);
                upserted.insert(anchor.clone());
                people.insert(anchor.clone(), now);
            }
        }
    }
    read.users = people.into_values().collect();
    read.kind = ReadKind::Incremental {
        changed: upserted.len(),
        removed: removed.len(),
    };
    contradicted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(anchor: &str, disabled: bool) -> DirectoryUser {
        DirectoryUser {
            anchor: Anchor::new(anchor),
            locator: format!("uid={anchor},ou=people"),
            attrs: Default::default(),
            disabled,
            problems: Vec::new(),
            photo: None,
            sync_id: None,
        }
    }

    fn set(items: &[&str]) -> BTreeSet<Anchor> {
        items.iter().map(|a| Anchor::new(*a)).collect()
    }

    fn incremental(users: Vec<DirectoryUser>, upserted: &[&str], removed: &[&str]) -> Read {
        Read {
            users,
            kind: ReadKind::Incremental {
                changed: upserted.len(),
                removed: removed.len(),
            },
            remember: Some(Remember {
                cursor: "c".into(),
                cache: CacheChange::Delta {
                    upserted: set(upserted),
                    removed: set(removed),
                },
            }),
        }
    }

    fn remembered(people: Vec<DirectoryUser>) -> Remembered {
        Remembered {
            cursor: Some("c".into()),
            users: people,
        }
    }

    fn anchors(users: &[&DirectoryUser]) -> Vec<String> {
        users
            .iter()
            .map(|u| u.anchor.as_str().to_string())
            .collect()
    }

    #[test]
    fn the_removed_and_the_newly_disabled_are_the_claims_to_confirm() {
        let known = remembered(vec![
            person("ada", false),
            person("bob", false),
            person("eve", true),
            person("sam", false),
        ]);
        // Bob removed; Eve disabled still (no claim); Ada newly disabled; Sam changed.
        let read = incremental(
            vec![
                person("ada", true),
                person("eve", true),
                person("sam", false),
            ],
            &["ada", "eve", "sam"],
            &["bob"],
        );
        assert_eq!(anchors(&reported_leavers(&read, &known)), ["ada", "bob"]);
    }

    #[test]
    fn a_full_read_claims_nothing() {
        let known = remembered(vec![person("ada", false)]);
        let read = Read::full(Vec::new());
        assert!(reported_leavers(&read, &known).is_empty());
    }

    #[test]
    fn a_removal_the_direct_read_contradicts_keeps_the_person() {
        let known = remembered(vec![person("ada", false), person("bob", false)]);
        let mut read = incremental(vec![person("ada", false)], &[], &["bob"]);
        let leavers = reported_leavers(&read, &known);
        let contradicted = apply(&mut read, &leavers, vec![Some(person("bob", false))]);
        assert_eq!(contradicted, 1);
        let users: Vec<&str> = read.users.iter().map(|u| u.anchor.as_str()).collect();
        assert_eq!(users, ["ada", "bob"], "nobody suspended");
        assert_eq!(
            read.kind,
            ReadKind::Incremental {
                changed: 1,
                removed: 0
            }
        );
    }

    #[test]
    fn a_confirmed_removal_and_a_confirmed_disable_stand() {
        let known = remembered(vec![person("ada", false), person("bob", false)]);
        let mut read = incremental(vec![person("ada", true)], &["ada"], &["bob"]);
        let leavers = reported_leavers(&read, &known);
        let found = vec![Some(person("ada", true)), None];
        assert_eq!(apply(&mut read, &leavers, found), 0);
        assert_eq!(read.users.len(), 1);
        assert!(read.users[0].disabled);
        assert_eq!(
            read.kind,
            ReadKind::Incremental {
                changed: 1,
                removed: 1
            }
        );
    }

    #[test]
    fn a_disable_claim_on_someone_now_gone_is_a_removal() {
        let known = remembered(vec![person("ada", false)]);
        let mut read = incremental(vec![person("ada", true)], &["ada"], &[]);
        let leavers = reported_leavers(&read, &known);
        apply(&mut read, &leavers, vec![None]);
        assert!(read.users.is_empty());
        assert_eq!(
            read.kind,
            ReadKind::Incremental {
                changed: 0,
                removed: 1
            }
        );
    }
}
