//! Links: which app account (or app group) belongs to which directory anchor, its state,
//! and when it was last seen.

use super::*;

impl Journal {
    /// Every link, by anchor.
    pub fn links(&self) -> Result<BTreeMap<Anchor, Link>, JournalError> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT anchor, account, user_name, state, suspended_at, last_seen, photo_hash FROM links WHERE app = ?1",
            )?;
            let rows = stmt
                .query_map([self.app()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        let mut out = BTreeMap::new();
        for (anchor, account, user_name, state, suspended_at, last_seen, photo_hash) in rows {
            let state = LinkState::parse(&state).ok_or_else(|| JournalError::Corrupt {
                path: self.path().to_path_buf(),
                detail: format!("link {anchor} has state `{state}`"),
            })?;
            let anchor = Anchor::new(anchor);
            out.insert(
                anchor.clone(),
                Link {
                    anchor,
                    account_id: AccountId::new(account),
                    user_name,
                    state,
                    suspended_at: parse_ts(suspended_at),
                    last_seen: parse_ts(last_seen),
                    photo_hash,
                },
            );
        }
        Ok(out)
    }

    /// The accounts linked to these anchors (those linked).
    pub fn linked_accounts(&self, anchors: &[&Anchor]) -> Result<Vec<AccountId>, JournalError> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT account FROM links WHERE app = ?1 AND anchor = ?2")?;
            let mut out = Vec::new();
            for a in anchors {
                let id: Option<String> = stmt
                    .query_row(params![self.app(), a.as_str()], |r| r.get(0))
                    .optional()?;
                out.extend(id.map(AccountId::new));
            }
            Ok(out)
        })
    }

    /// Every group link, with the members idsync put in the group.
    pub fn group_links(&self) -> Result<BTreeMap<Anchor, GroupLink>, JournalError> {
        let app = self.app();
        self.with(|c| {
            let mut out: BTreeMap<Anchor, GroupLink> = BTreeMap::new();
            let mut stmt =
                c.prepare("SELECT anchor, group_id, name FROM group_links WHERE app = ?1")?;
            let rows = stmt.query_map([app], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (anchor, group_id, name) = row?;
                let anchor = Anchor::new(anchor);
                out.insert(
                    anchor.clone(),
                    GroupLink {
                        anchor,
                        group_id,
                        name,
                        members: Default::default(),
                    },
                );
            }
            let mut stmt =
                c.prepare("SELECT group_anchor, person FROM group_members WHERE app = ?1")?;
            let rows = stmt.query_map([app], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (group, person) = row?;
                if let Some(g) = out.get_mut(&Anchor::new(group)) {
                    g.members.insert(Anchor::new(person));
                }
            }
            Ok(out)
        })
    }
    /// Marks anchors as seen upstream at `now` (one transaction).
    pub fn touch_links(&self, anchors: &[&Anchor], now: DateTime<Utc>) -> Result<(), JournalError> {
        let app = self.app();
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE links SET last_seen = ?2 WHERE app = ?3 AND anchor = ?1",
                )?;
                let now = ts(now);
                for a in anchors {
                    stmt.execute(params![a.as_str(), now, app])?;
                }
            }
            tx.commit()
        })
    }
}

/// A group action's effect on the group's link.
pub(super) struct GroupLinkChange<'a> {
    pub(super) anchor: &'a Anchor,
    pub(super) group_id: &'a str,
    pub(super) name: &'a str,
    pub(super) added: &'a [Anchor],
    pub(super) removed: &'a [Anchor],
}

pub(super) fn upsert_group_link(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    g: &GroupLinkChange<'_>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let anchor = g.anchor.as_str();
    // One app group belongs to one directory group.
    tx.execute(
        "DELETE FROM group_links WHERE app = ?3 AND group_id = ?1 AND anchor <> ?2",
        params![g.group_id, anchor, app],
    )?;
    tx.execute(
        "INSERT INTO group_links (app, anchor, group_id, name, updated) VALUES (?5, ?1, ?2, ?3, ?4)
         ON CONFLICT(app, anchor) DO UPDATE SET group_id = excluded.group_id, name = excluded.name, updated = excluded.updated",
        params![anchor, g.group_id, g.name, ts(now), app],
    )?;
    let mut add = tx.prepare_cached(
        "INSERT OR IGNORE INTO group_members (app, group_anchor, person) VALUES (?3, ?1, ?2)",
    )?;
    for p in g.added {
        add.execute(params![anchor, p.as_str(), app])?;
    }
    let mut del = tx.prepare_cached(
        "DELETE FROM group_members WHERE app = ?3 AND group_anchor = ?1 AND person = ?2",
    )?;
    for p in g.removed {
        del.execute(params![anchor, p.as_str(), app])?;
    }
    Ok(())
}

pub(super) fn upsert_link(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    l: &Link,
) -> rusqlite::Result<()> {
    // One account belongs to one anchor: a re-hire takeover drops the old anchor's link.
    tx.prepare_cached("DELETE FROM links WHERE app = ?3 AND account = ?1 AND anchor <> ?2")?
        .execute(params![l.account_id, l.anchor.as_str(), app])?;
    tx.prepare_cached(
        "INSERT INTO links (app, anchor, account, user_name, state, suspended_at, last_seen, photo_hash) VALUES (?8, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(app, anchor) DO UPDATE SET account = excluded.account, user_name = excluded.user_name,
           state = excluded.state, suspended_at = excluded.suspended_at, last_seen = COALESCE(excluded.last_seen, links.last_seen),
           photo_hash = excluded.photo_hash",
    )?
    .execute(params![
            l.anchor.as_str(),
            l.account_id,
            l.user_name,
            l.state.as_str(),
            l.suspended_at.map(ts),
            l.last_seen.map(ts),
            l.photo_hash,
            app
        ],
    )?;
    Ok(())
}

impl rusqlite::ToSql for AccountId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.as_str().to_sql()
    }
}

impl rusqlite::types::FromSql for AccountId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        String::column_result(value).map(AccountId::new)
    }
}
