//! Incremental LDAP reads by content synchronization (RFC 4533, refreshOnly), as OpenLDAP's
//! syncprov and 389-ds serve it.
//!
//! A first read (no cookie) is the whole content and ends with a cookie. Later reads send
//! the cookie back and get only what changed: changed and renamed entries as whole entries
//! (an upsert keyed by entryUUID), deletions as UUID sets (delete phase), or, when the
//! server cannot tell what was deleted, the UUIDs still present (present phase: every
//! remembered entry not listed is gone). `e-syncRefreshRequired` makes the reader fall back
//! to a full read. ldap3's control parsers panic on malformed BER: each parse is contained.
//!
//! Entries are keyed by the Sync State control's UUID (RFC 4533 2.2), not by the anchor:
//! OpenLDAP sends the `entryUUID`, 389-ds a UUID derived from `nsUniqueId`. Each person
//! remembers theirs (`DirectoryUser::sync_id`) where it is not the anchor.
//!
//! Servers bend the protocol, and a reader that took them at their word would suspend
//! people nobody removed:
//! - 389-ds ends every refresh from a cookie with `refreshDeletes` FALSE, whatever it sent:
//!   read strictly, a present phase naming nobody says everyone was deleted. A present
//!   phase with no present message at all is read as "no removals reported"; deletions
//!   still arrive as syncIdSets or delete states, and `full_every` is the backstop.
//! - 389-ds sends a changed entry from its changelog with user attributes only, whatever
//!   the search asked (no anchor, no `nsAccountLock`). Every sync search also asks for
//!   `entryUUID` and `nsUniqueId`, one of which every entry carries on the server's normal
//!   path; an entry with neither (or without its anchor) is read again by its DN.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ldap3::controls::{
    parse_syncinfo, Control, EntryState, MakeCritical, RawControl, RefreshMode, SyncDone, SyncInfo,
    SyncRequest, SyncState,
};
use ldap3::SearchEntry;
use serde::{Deserialize, Serialize};

use super::ldap::{contained, LdapReader};
use super::refresh::{apply_refresh, Refresh};
use super::{CacheChange, Read, ReadKind, ReadRequest, Remember, Remembered, Since, SourceError};
use crate::model::{Anchor, DirectoryUser};

const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
/// Operational attributes one of which every entry carries when a server sends it whole
/// (OpenLDAP: `entryUUID`; 389-ds: `nsUniqueId`, and `entryUUID` with its plugin).
const WHOLE_ENTRY_MARKERS: [&str; 2] = ["entryUUID", "nsUniqueId"];
/// `e-syncRefreshRequired`: the server cannot resume from the cookie.
const REFRESH_REQUIRED: u32 = 4096;

/// What the journal keeps between runs: the cookie, and what it was taken for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// The sync cookie, as the server sent it (hex: cookies are octet strings).
    cookie: String,
    /// Base, scope, filter and attributes of the search the cookie belongs to.
    search: String,
    last_full: DateTime<Utc>,
    /// Some person's sync UUID is not their anchor (389-ds, or an anchor other than
    /// `entryUUID`): a deletion is matched through the remembered population.
    #[serde(default)]
    sync_ids: bool,
}

/// entryUUID bytes -> `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (entryUUID's text form).
pub fn uuid_text(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn anchor(uuid: &[u8]) -> Result<Anchor, SourceError> {
    uuid_text(uuid)
        .map(Anchor::new)
        .ok_or_else(|| SourceError::BadEntry {
            dn: "(sync protocol)".into(),
            detail: format!("a sync UUID of {} bytes, not 16", uuid.len()),
        })
}

impl LdapReader {
    /// The identity of the search a cookie belongs to.
    pub(super) fn search_key(&self) -> String {
        let c = self.config();
        format!(
            "{} {} {} {}",
            c.base_dn,
            if c.one_level { "one" } else { "sub" },
            c.filter,
            c.attributes.join(",")
        )
    }

    /// One refreshOnly search. `Ok(None)`: the server wants a full refresh.
    /// One entry of a sync refresh, by its SyncState: present, deleted, or added/changed
    /// (read as a person).
    fn sync_entry(&self, out: &mut Refresh, entry: ldap3::ResultEntry) -> Result<(), SourceError> {
        let state = entry
            .1
            .iter()
            .find(|Control(_, raw)| raw.ctype == SYNC_STATE_OID)
            .map(|Control(_, raw)| contained("SyncState control", || raw.parse::<SyncState>()))
            .transpose()?;
        let Some(state) = state else {
            return Err(SourceError::BadEntry {
                dn: "(sync protocol)".into(),
                detail: "an entry without its SyncState control".into(),
            });
        };
        if let Some(c) = state.cookie {
            out.cookie = Some(c);
        }
        let uuid = anchor(&state.entry_uuid)?;
        match state.state {
            EntryState::Present => {
                out.present.insert(uuid);
            }
            EntryState::Delete => {
                out.deleted.insert(uuid);
            }
            EntryState::Add | EntryState::Modify => {
                let entry = contained("entry", || SearchEntry::construct(entry))?;
                if !self.whole(&entry) {
                    out.partial.push((entry.dn, uuid));
                    return Ok(());
                }
                let user = self.sync_user(entry, uuid)?;
                out.upserts.push(user);
            }
        }
        Ok(())
    }

    /// Whether a changed entry came as the server's normal search path sends it: with its
    /// anchor and one of the operational attributes every entry carries there.
    fn whole(&self, entry: &SearchEntry) -> bool {
        let has = |name: &str| {
            entry.attrs.keys().any(|k| k.eq_ignore_ascii_case(name))
                || entry.bin_attrs.keys().any(|k| k.eq_ignore_ascii_case(name))
        };
        has(&self.config().anchor) && WHOLE_ENTRY_MARKERS.iter().any(|m| has(m))
    }

    /// A person from a sync entry: the marker attributes the search added dropped, the sync
    /// UUID kept where it is not the anchor.
    fn sync_user(
        &self,
        mut entry: SearchEntry,
        uuid: Anchor,
    ) -> Result<DirectoryUser, SourceError> {
        let asked = &self.config().attributes;
        let added = |k: &String| {
            WHOLE_ENTRY_MARKERS
                .iter()
                .any(|m| m.eq_ignore_ascii_case(k))
                && !asked.iter().any(|a| a.eq_ignore_ascii_case(k))
        };
        entry.attrs.retain(|k, _| !added(k));
        entry.bin_attrs.retain(|k, _| !added(k));
        let mut user = self.user(entry)?;
        user.sync_id = (uuid != user.anchor).then_some(uuid);
        Ok(user)
    }

    /// The search's attributes and the markers `whole` looks for.
    fn sync_attributes(&self) -> Vec<String> {
        let mut attrs = self.config().attributes.clone();
        for m in WHOLE_ENTRY_MARKERS {
            if !attrs.iter().any(|a| a.eq_ignore_ascii_case(m)) {
                attrs.push(m.to_string());
            }
        }
        attrs
    }

    /// Reads again, by DN, the changed entries a refresh sent without what idsync needs
    /// (389-ds's changelog path): in scope, they are upserts; no longer there or no longer
    /// matching the filter, they are reported deleted (and confirmed before anyone is
    /// suspended, as every removal is).
    async fn read_partial(
        &self,
        ldap: &mut ldap3::Ldap,
        out: &mut Refresh,
    ) -> Result<(), SourceError> {
        for (dn, uuid) in std::mem::take(&mut out.partial) {
            match self.read_dn(ldap, &dn).await? {
                Some(entry) => out.upserts.push(self.sync_user(entry, uuid)?),
                None => {
                    out.deleted.insert(uuid);
                }
            }
        }
        Ok(())
    }

    async fn refresh(&self, cookie: Option<Vec<u8>>) -> Result<Option<Refresh>, SourceError> {
        self.refresh_until(cookie, None).await
    }

    /// `refresh`; with `stop_after` it stops once more changes than that came (abandoned
    /// on the server): enough to know that many changed, at the cost of that many entries.
    async fn refresh_until(
        &self,
        cookie: Option<Vec<u8>>,
        stop_after: Option<usize>,
    ) -> Result<Option<Refresh>, SourceError> {
        let cfg = self.config();
        let mut ldap = self.connect().await?;
        let request = SyncRequest {
            mode: RefreshMode::RefreshOnly,
            cookie,
            reload_hint: false,
        };
        let mut stream = ldap
            .with_controls(vec![RawControl::from(request.critical())])
            .with_timeout(cfg.timeout)
            .streaming_search(
                &cfg.base_dn,
                self.scope(),
                &cfg.filter,
                self.sync_attributes(),
            )
            .await
            .map_err(|e| self.classify(e))?;
        let mut out = Refresh::default();
        loop {
            let entry = match stream.next().await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => return Err(self.classify(e)),
            };
            if entry.is_ref() {
                // Not followed on a sync read: the cookie stands for this server's entries.
                self.note_reference(entry)?;
                continue;
            }
            if entry.is_intermediate() {
                sync_info(&mut out, entry)?;
                continue;
            }
            self.sync_entry(&mut out, entry)?;
            let reported = out.upserts.len() + out.partial.len() + out.deleted.len();
            if stop_after.is_some_and(|n| reported > n) {
                let id = stream.ldap_handle().last_id();
                let _ = stream.finish().await;
                let _ = stream.ldap_handle().abandon(id).await;
                let _ = ldap.unbind().await;
                out.stopped = true;
                return Ok(Some(out));
            }
        }
        let res = stream.finish().await;
        if res.rc == REFRESH_REQUIRED {
            let _ = ldap.unbind().await;
            return Ok(None);
        }
        let partial = self.read_partial(&mut ldap, &mut out).await;
        let _ = ldap.unbind().await;
        partial?;
        self.search_done(&res, false)?;
        self.sync_done(&mut out, &res)?;
        Ok(Some(out))
    }

    /// The refresh's end (its SyncDone control): the last cookie, and whether it ended in
    /// a present phase.
    fn sync_done(&self, out: &mut Refresh, res: &ldap3::LdapResult) -> Result<(), SourceError> {
        let done = res
            .ctrls
            .iter()
            .find(|Control(_, raw)| raw.ctype == SYNC_DONE_OID)
            .map(|Control(_, raw)| contained("SyncDone control", || raw.parse::<SyncDone>()))
            .transpose()?;
        let Some(d) = done else {
            return Err(SourceError::Search {
                base: self.config().base_dn.clone(),
                detail: "the server ended the sync search without a SyncDone control; it does not speak RFC 4533: set source.incremental: none".into(),
            });
        };
        // A present phase that names nobody present is 389-ds's way of ending every
        // refresh from a cookie, not a report that everyone left.
        out.present_phase = !d.refresh_deletes && !out.present.is_empty();
        if !d.refresh_deletes && out.present.is_empty() {
            tracing::debug!("the sync refresh ended in a present phase naming nobody: read as no removals reported");
        }
        if d.cookie.is_some() {
            out.cookie = d.cookie;
        }
        Ok(())
    }

    fn remember(
        &self,
        cookie: Vec<u8>,
        last_full: DateTime<Utc>,
        sync_ids: bool,
        cache: CacheChange,
    ) -> Remember {
        let cursor = Cursor {
            cookie: hex(&cookie),
            search: self.search_key(),
            last_full,
            sync_ids,
        };
        Remember {
            cursor: serde_json::to_string(&cursor).unwrap_or_default(),
            cache,
        }
    }

    async fn full_sync_read(&self, why: String, now: DateTime<Utc>) -> Result<Read, SourceError> {
        let refresh = self
            .refresh(None)
            .await?
            .ok_or_else(|| SourceError::Search {
                base: self.config().base_dn.clone(),
                detail: "the server asked for a full refresh in answer to one".into(),
            })?;
        let cookie = refresh.cookie.clone().ok_or_else(|| SourceError::Search {
            base: self.config().base_dn.clone(),
            detail: "the full refresh ended without a cookie; check the syncprov overlay".into(),
        })?;
        let sync_ids = refresh.names_by_sync_id();
        let mut by_anchor = BTreeMap::new();
        for u in refresh.upserts {
            by_anchor.insert(u.anchor.clone(), u);
        }
        Ok(Read {
            users: by_anchor.into_values().collect(),
            kind: ReadKind::Full { why },
            remember: Some(self.remember(cookie, now, sync_ids, CacheChange::Replace)),
        })
    }

    /// Why a read cannot go on from cursor `c` (it belongs to another search, or
    /// `full_every` is due), if it cannot: what a read and the quiet question both ask.
    fn full_read_reason(&self, c: &Cursor, now: DateTime<Utc>) -> Option<String> {
        if c.search != self.search_key() {
            return Some(
                "the search (base, filter or attributes) changed since the cookie was taken".into(),
            );
        }
        super::full_every_reason(c.last_full, self.config().full_every, now)
    }

    /// What changed since `cursor` (a refresh from its cookie, stopped after
    /// `Since::LIMIT` changes), or `None` when a full read is due, the cookie is stale or
    /// more than that changed. Reads no population: a quiet cycle's first question
    /// (`run::quiet`).
    pub async fn quiet_since(
        &self,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Since>, SourceError> {
        let Ok(c) = serde_json::from_str::<Cursor>(cursor) else {
            return Ok(None);
        };
        if self.full_read_reason(&c, now).is_some() {
            return Ok(None);
        }
        let Some(old_cookie) = unhex(&c.cookie) else {
            return Ok(None);
        };
        let refresh = self
            .refresh_until(Some(old_cookie.clone()), Some(Since::LIMIT))
            .await?;
        let Some(refresh) = refresh else {
            return Ok(None);
        };
        if refresh.stopped
            || refresh.present_phase
            || refresh.upserts.len() + refresh.deleted.len() > Since::LIMIT
        {
            return Ok(None);
        }
        // Deletions name sync UUIDs; where those are not the anchors, only the population
        // (which this question does not load) tells who left.
        if c.sync_ids && !refresh.deleted.is_empty() {
            return Ok(None);
        }
        let sync_ids = c.sync_ids || refresh.names_by_sync_id();
        let cookie = refresh.cookie.unwrap_or(old_cookie);
        Ok(Some(Since {
            cursor: self
                .remember(cookie, c.last_full, sync_ids, CacheChange::none())
                .cursor,
            changed: refresh.upserts,
            touched: refresh.deleted,
            ..Since::default()
        }))
    }

    /// A syncrepl read: incremental from the remembered cookie, or full when there is none,
    /// when it belongs to another search, when `full_every` is due, or when asked.
    pub(super) async fn sync_read(&self, request: &ReadRequest<'_>) -> Result<Read, SourceError> {
        let now = request.now;
        let remembered: Option<&Remembered> = request.remembered.filter(|r| r.cursor.is_some());
        let cursor = remembered
            .and_then(|r| r.cursor.as_deref())
            .and_then(|c| serde_json::from_str::<Cursor>(c).ok());
        let why = match &cursor {
            _ if request.force_full => Some("asked for (--full)".to_string()),
            None => Some("first read: no sync cookie yet".to_string()),
            Some(c) => self.full_read_reason(c, now),
        };
        let (Some(c), Some(r), None) = (&cursor, remembered, &why) else {
            return self.full_sync_read(why.unwrap_or_default(), now).await;
        };
        let Some(old_cookie) = unhex(&c.cookie) else {
            return self
                .full_sync_read("the remembered cookie is unreadable".into(), now)
                .await;
        };
        let Some(refresh) = self.refresh(Some(old_cookie.clone())).await? else {
            tracing::warn!(
                "the server wants a full refresh (e-syncRefreshRequired); reading everything"
            );
            return self
                .full_sync_read(
                    "the server asked for a full refresh (e-syncRefreshRequired)".into(),
                    now,
                )
                .await;
        };
        let cookie = refresh.cookie.clone().unwrap_or(old_cookie);
        let sync_ids = c.sync_ids || refresh.names_by_sync_id();
        let phase = if refresh.present_phase {
            "present"
        } else {
            "delete"
        };
        let (users, upserted, removed) = apply_refresh(&r.users, refresh);
        tracing::debug!(
            phase,
            changed = upserted.len(),
            removed = removed.len(),
            "sync refresh"
        );
        let kind = ReadKind::Incremental {
            changed: upserted.len(),
            removed: removed.len(),
        };
        Ok(Read {
            users,
            kind,
            remember: Some(self.remember(
                cookie,
                c.last_full,
                sync_ids,
                CacheChange::Delta { upserted, removed },
            )),
        })
    }
}

/// A SyncInfo intermediate message: a new cookie, or a set of present or deleted entries.
fn sync_info(out: &mut Refresh, entry: ldap3::ResultEntry) -> Result<(), SourceError> {
    match contained("SyncInfo message", || parse_syncinfo(entry))? {
        SyncInfo::NewCookie(c) => out.cookie = Some(c),
        SyncInfo::RefreshDelete { cookie, .. } => out.cookie = cookie.or(out.cookie.take()),
        SyncInfo::RefreshPresent { cookie, .. } => {
            out.cookie = cookie.or(out.cookie.take());
        }
        SyncInfo::SyncIdSet {
            cookie,
            refresh_deletes,
            sync_uuids,
        } => {
            out.cookie = cookie.or(out.cookie.take());
            let set = if refresh_deletes {
                &mut out.deleted
            } else {
                &mut out.present
            };
            for u in sync_uuids {
                set.insert(anchor(&u)?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_uuids_read_as_entry_uuid_text_and_cookies_survive_hex() {
        let b = [
            0xa0, 0xd9, 0x45, 0xca, 0x7b, 0xcc, 0x10, 0x41, 0x9f, 0xda, 0x4d, 0x8c, 0xcc, 0x23,
            0x1e, 0x22,
        ];
        assert_eq!(
            uuid_text(&b).unwrap(),
            "a0d945ca-7bcc-1041-9fda-4d8ccc231e22"
        );
        assert!(uuid_text(&b[..15]).is_none());
        let cookie = b"rid=000,csn=20261123210016.333120Z#000000#000#000000".to_vec();
        assert_eq!(unhex(&hex(&cookie)), Some(cookie));
        assert_eq!(unhex("abc"), None);
    }
}
