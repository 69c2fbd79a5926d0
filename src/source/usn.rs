//! Incremental reads from Active Directory by update sequence numbers (USN).
//!
//! A DC numbers every change it applies; `highestCommittedUSN` (rootDSE) is its latest. A
//! first read reads everyone (paged) and remembers that number and the DC's
//! `invocationID`. Later reads, on the same DC, ask only for what changed above it:
//! - in scope: `(&<filter>(uSNChanged>=N+1))` under `base_dn`: the people changed or added;
//! - anywhere in the domain: `(uSNChanged>=N+1)`: a remembered person who changed but is no
//!   longer in scope (moved out of `base_dn`, or no longer matching `filter`) has left;
//! - deleted objects (`isDeleted=TRUE`, with the Show Deleted control) by `objectGUID`.
//!
//! USNs are per DC: when `invocationID` differs (another DC, or this one restored from
//! backup) the numbers mean nothing, and the read is a full one.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use ldap3::controls::RawControl;
use ldap3::{Ldap, Scope};
use serde::{Deserialize, Serialize};

use super::binary::guid_text;
use super::ldap::{LdapReader, Search};
use super::refresh::{apply_refresh, Refresh};
use super::{CacheChange, Read, ReadKind, ReadRequest, Remember, Since, SourceError};
use crate::model::{Anchor, DirectoryUser};

/// LDAP_SERVER_SHOW_DELETED_OID: include tombstones in a search.
pub const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// The well-known GUID of a domain's Deleted Objects container.
const DELETED_OBJECTS_WKGUID: &str = "18e2ea80684f11d2b9aa00c04f79f805";

/// What the journal keeps between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The DC's `invocationID` the USN belongs to.
    pub invocation_id: String,
    /// `highestCommittedUSN` when the last read started.
    pub usn: u64,
    /// Base, scope, filter and attributes of the search.
    pub search: String,
    pub last_full: DateTime<Utc>,
}

/// The DC's position, read from its rootDSE and its NTDS settings object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcState {
    pub invocation_id: String,
    pub highest_usn: u64,
    /// The domain naming context (`defaultNamingContext`).
    pub naming_context: String,
}

/// The three searches of an incremental read above `usn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    pub changed_in_scope: String,
    pub changed_anywhere: String,
    pub deleted: String,
}

pub fn filters(scope_filter: &str, usn: u64) -> Filters {
    let above = usn.saturating_add(1);
    Filters {
        changed_in_scope: format!("(&{scope_filter}(uSNChanged>={above}))"),
        changed_anywhere: format!("(uSNChanged>={above})"),
        deleted: format!("(&(isDeleted=TRUE)(uSNChanged>={above}))"),
    }
}

/// What changed on a DC above a USN (`LdapReader::changes_above`).
#[derive(Debug, Default)]
struct Changes {
    in_scope: Vec<DirectoryUser>,
    anywhere: BTreeSet<Anchor>,
    deleted: BTreeSet<Anchor>,
}

/// Why a read must be full, or `None` when an incremental read from `cursor` is sound.
pub fn full_read_reason(
    cursor: Option<&Cursor>,
    dc: &DcState,
    search: &str,
    force: bool,
    full_every: std::time::Duration,
    now: DateTime<Utc>,
) -> Option<String> {
    let Some(c) = cursor else {
        return Some("first read: no USN high-water mark yet".into());
    };
    if force {
        return Some("asked for (--full)".into());
    }
    if c.invocation_id != dc.invocation_id {
        return Some(format!(
            "the domain controller's invocationID changed ({} -> {}): another DC, or one restored from backup; its USNs are not comparable",
            c.invocation_id, dc.invocation_id
        ));
    }
    if dc.highest_usn < c.usn {
        return Some(format!(
            "the DC's highestCommittedUSN ({}) is below the remembered one ({})",
            dc.highest_usn, c.usn
        ));
    }
    if c.search != search {
        return Some("the search (base, filter or attributes) changed since the last read".into());
    }
    super::full_every_reason(c.last_full, full_every, now)
}

/// Who left: tombstones, and remembered people who changed somewhere in the domain but are
/// not among the in-scope changes (moved out of the base, or no longer matching the filter).
pub fn departures(
    remembered: &BTreeSet<Anchor>,
    changed_in_scope: &BTreeSet<Anchor>,
    changed_anywhere: &BTreeSet<Anchor>,
    deleted: &BTreeSet<Anchor>,
) -> BTreeSet<Anchor> {
    let moved_out = changed_anywhere
        .iter()
        .filter(|a| remembered.contains(*a) && !changed_in_scope.contains(*a));
    deleted.iter().chain(moved_out).cloned().collect()
}

impl LdapReader {
    /// The DC's invocationID and highestCommittedUSN.
    async fn dc_state(&self, ldap: &mut Ldap) -> Result<DcState, SourceError> {
        let root = self
            .paged_search(
                ldap,
                Search {
                    base: "",
                    scope: Scope::Base,
                    filter: "(objectClass=*)",
                    attrs: [
                        "highestCommittedUSN",
                        "dsServiceName",
                        "defaultNamingContext",
                    ]
                    .map(String::from)
                    .to_vec(),
                    controls: Vec::new(),
                },
            )
            .await?;
        let bad = |detail: String| SourceError::Search {
            base: "(rootDSE)".into(),
            detail,
        };
        let root = root
            .into_iter()
            .next()
            .ok_or_else(|| bad("the rootDSE is not readable".into()))?;
        let one = |name: &str| {
            root.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
        };
        let not_ad = "; is this Active Directory? (incremental: usn needs an AD domain controller)";
        let highest_usn = one("highestCommittedUSN")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| bad(format!("no highestCommittedUSN in the rootDSE{not_ad}")))?;
        let service = one("dsServiceName")
            .ok_or_else(|| bad(format!("no dsServiceName in the rootDSE{not_ad}")))?;
        let naming_context = one("defaultNamingContext")
            .ok_or_else(|| bad(format!("no defaultNamingContext in the rootDSE{not_ad}")))?;
        let ntds = self
            .paged_search(
                ldap,
                Search {
                    base: &service,
                    scope: Scope::Base,
                    filter: "(objectClass=*)",
                    attrs: vec!["invocationID".into()],
                    controls: Vec::new(),
                },
            )
            .await?;
        let invocation_id = ntds
            .into_iter()
            .next()
            .and_then(|e| {
                e.bin_attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("invocationID"))
                    .and_then(|(_, v)| v.first())
                    .and_then(|b| guid_text(b))
            })
            .ok_or_else(|| bad(format!("{service} has no readable invocationID{not_ad}")))?;
        Ok(DcState {
            invocation_id,
            highest_usn,
            naming_context,
        })
    }

    /// objectGUIDs of the entries a search finds.
    async fn guids(
        &self,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        controls: Vec<RawControl>,
    ) -> Result<BTreeSet<Anchor>, SourceError> {
        let entries = self
            .paged_search(
                ldap,
                Search {
                    base,
                    scope: Scope::Subtree,
                    filter,
                    attrs: vec!["objectGUID".into()],
                    controls,
                },
            )
            .await?;
        Ok(entries
            .iter()
            .filter_map(|e| {
                e.bin_attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("objectGUID"))
                    .and_then(|(_, v)| v.first())
                    .and_then(|b| guid_text(b))
            })
            .map(Anchor::new)
            .collect())
    }

    fn usn_remember(&self, dc: &DcState, last_full: DateTime<Utc>, cache: CacheChange) -> Remember {
        let cursor = Cursor {
            invocation_id: dc.invocation_id.clone(),
            usn: dc.highest_usn,
            search: self.search_key(),
            last_full,
        };
        Remember {
            cursor: serde_json::to_string(&cursor).unwrap_or_default(),
            cache,
        }
    }

    /// A USN read: incremental above the remembered high-water mark on the same DC, or full.
    /// The objectGUIDs of the tombstones in the domain's Deleted Objects container that
    /// `filter` selects (the Show Deleted control).
    async fn tombstones(
        &self,
        ldap: &mut ldap3::Ldap,
        dc: &DcState,
        filter: &str,
    ) -> Result<BTreeSet<Anchor>, SourceError> {
        let show_deleted = RawControl {
            ctype: SHOW_DELETED_OID.into(),
            crit: true,
            val: None,
        };
        let container = format!("<WKGUID={DELETED_OBJECTS_WKGUID},{}>", dc.naming_context);
        self.guids(ldap, &container, filter, vec![show_deleted])
            .await
    }

    /// What changed on the DC above `usn`: the people in scope (whole), and the anchors
    /// of every object changed anywhere in the domain and of the tombstones.
    async fn changes_above(
        &self,
        ldap: &mut Ldap,
        dc: &DcState,
        usn: u64,
    ) -> Result<Changes, SourceError> {
        let cfg = self.config();
        let f = filters(&cfg.filter, usn);
        let in_scope = self
            .paged_search_map(
                ldap,
                Search {
                    base: &cfg.base_dn,
                    scope: self.scope(),
                    filter: &f.changed_in_scope,
                    attrs: cfg.attributes.clone(),
                    controls: Vec::new(),
                },
                |e| self.user(e),
            )
            .await?;
        let anywhere = self
            .guids(ldap, &dc.naming_context, &f.changed_anywhere, Vec::new())
            .await?;
        let deleted = self.tombstones(ldap, dc, &f.deleted).await?;
        Ok(Changes {
            in_scope,
            anywhere,
            deleted,
        })
    }

    /// What changed on the DC since `cursor` (its in-scope changes, whole, and the anchors
    /// changed anywhere or deleted), or `None` when a full read is due, the DC is another
    /// one or more than `Since::LIMIT` people changed. Nothing when `highestCommittedUSN`
    /// has not moved. Reads no population: a quiet cycle's first question (`run::quiet`).
    pub async fn usn_quiet_since(
        &self,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Since>, SourceError> {
        let Ok(c) = serde_json::from_str::<Cursor>(cursor) else {
            return Ok(None);
        };
        let full_every = self.config().full_every;
        let mut ldap = self.connect().await?;
        let dc = self.dc_state(&mut ldap).await?;
        let why = full_read_reason(Some(&c), &dc, &self.search_key(), false, full_every, now);
        let changes = match why {
            Some(_) => None,
            None if dc.highest_usn == c.usn => Some(Changes::default()),
            None => Some(self.changes_above(&mut ldap, &dc, c.usn).await?),
        };
        let _ = ldap.unbind().await;
        Ok(changes
            .filter(|ch| ch.in_scope.len() <= Since::LIMIT)
            .map(|ch| Since {
                cursor: self
                    .usn_remember(&dc, c.last_full, CacheChange::none())
                    .cursor,
                changed: ch.in_scope,
                touched: ch.anywhere.into_iter().chain(ch.deleted).collect(),
                ..Since::default()
            }))
    }

    pub(super) async fn usn_read(&self, request: &ReadRequest<'_>) -> Result<Read, SourceError> {
        let cfg = self.config();
        let now = request.now;
        let mut ldap = self.connect().await?;
        // The position first: a change made during the read is above it, read again next time.
        let dc = self.dc_state(&mut ldap).await?;
        let remembered = request.remembered.filter(|r| r.cursor.is_some());
        let cursor = remembered
            .and_then(|r| r.cursor.as_deref())
            .and_then(|c| serde_json::from_str::<Cursor>(c).ok());
        let why = full_read_reason(
            cursor.as_ref(),
            &dc,
            &self.search_key(),
            request.force_full,
            cfg.full_every,
            now,
        );
        let (Some(c), Some(r), None) = (&cursor, remembered, &why) else {
            let _ = ldap.unbind().await;
            let users = self.read_everything().await?;
            return Ok(Read {
                users,
                kind: ReadKind::Full {
                    why: why.unwrap_or_default(),
                },
                remember: Some(self.usn_remember(&dc, now, CacheChange::Replace)),
            });
        };
        let changes = self.changes_above(&mut ldap, &dc, c.usn).await?;
        let _ = ldap.unbind().await;
        let Changes {
            in_scope: upserts,
            anywhere,
            deleted,
        } = changes;
        let known: BTreeSet<Anchor> = r.users.iter().map(|u| u.anchor.clone()).collect();
        let in_scope: BTreeSet<Anchor> = upserts.iter().map(|u| u.anchor.clone()).collect();
        let gone = departures(&known, &in_scope, &anywhere, &deleted);
        let refresh = Refresh {
            upserts,
            deleted: gone,
            ..Refresh::default()
        };
        let (users, upserted, removed) = apply_refresh(&r.users, refresh);
        Ok(Read {
            users,
            kind: ReadKind::Incremental {
                changed: upserted.len(),
                removed: removed.len(),
            },
            remember: Some(self.usn_remember(
                &dc,
                c.last_full,
                CacheChange::Delta { upserted, removed },
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
    }

    fn dc(invocation: &str, usn: u64) -> DcState {
        DcState {
            invocation_id: invocation.into(),
            highest_usn: usn,
            naming_context: "DC=corp,DC=example".into(),
        }
    }

    fn cursor(invocation: &str, usn: u64) -> Cursor {
        Cursor {
            invocation_id: invocation.into(),
            usn,
            search: "s".into(),
            last_full: now() - chrono::Duration::hours(1),
        }
    }

    fn set(items: &[&str]) -> BTreeSet<Anchor> {
        items.iter().map(|a| Anchor::new(*a)).collect()
    }

    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

    #[test]
    fn reads_above_the_high_water_mark_in_scope_anywhere_and_among_tombstones() {
        let f = filters("(&(objectCategory=person)(objectClass=user))", 41_200);
        assert_eq!(
            f.changed_in_scope,
            "(&(&(objectCategory=person)(objectClass=user))(uSNChanged>=41201))"
        );
        assert_eq!(f.changed_anywhere, "(uSNChanged>=41201)");
        assert_eq!(f.deleted, "(&(isDeleted=TRUE)(uSNChanged>=41201))");
    }

    #[test]
    fn the_same_dc_above_its_mark_reads_incrementally() {
        let reason = full_read_reason(
            Some(&cursor("a", 100)),
            &dc("a", 150),
            "s",
            false,
            DAY,
            now(),
        );
        assert_eq!(reason, None);
    }

    #[test]
    fn another_dc_or_a_restored_one_forces_a_full_read() {
        let reason = full_read_reason(
            Some(&cursor("a", 100)),
            &dc("b", 150),
            "s",
            false,
            DAY,
            now(),
        )
        .unwrap();
        assert!(reason.contains("invocationID changed (a -> b)"), "{reason}");
        let reason = full_read_reason(
            Some(&cursor("a", 100)),
            &dc("a", 90),
            "s",
            false,
            DAY,
            now(),
        )
        .unwrap();
        assert!(reason.contains("below the remembered one"), "{reason}");
    }

    #[test]
    fn no_mark_a_changed_search_force_or_full_every_read_everything() {
        assert!(full_read_reason(None, &dc("a", 1), "s", false, DAY, now())
            .unwrap()
            .starts_with("first read"));
        assert!(full_read_reason(
            Some(&cursor("a", 1)),
            &dc("a", 1),
            "other",
            false,
            DAY,
            now()
        )
        .unwrap()
        .contains("search"));
        assert_eq!(
            full_read_reason(Some(&cursor("a", 1)), &dc("a", 1), "s", true, DAY, now()).unwrap(),
            "asked for (--full)"
        );
        let hourly = std::time::Duration::from_secs(3600);
        assert!(full_read_reason(
            Some(&cursor("a", 1)),
            &dc("a", 1),
            "s",
            false,
            hourly,
            now()
        )
        .unwrap()
        .starts_with("full_every 1h"));
    }

    #[test]
    fn tombstones_and_people_who_changed_out_of_scope_have_left() {
        // Recorded from a cycle: b edited (in scope), c moved to another OU (changed, not in
        // scope), d deleted (tombstone), x a group that changed (never a remembered person).
        let gone = departures(
            &set(&["a", "b", "c", "d"]),
            &set(&["b", "n"]),
            &set(&["b", "c", "n", "x"]),
            &set(&["d"]),
        );
        assert_eq!(gone, set(&["c", "d"]));
    }

    #[test]
    fn a_cursor_survives_the_journal() {
        let c = cursor("2b1a3c4d-6e5f-7a8b-9c0d-1e2f3a4b5c6d", 987_654);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Cursor>(&text).unwrap(), c);
    }
}
