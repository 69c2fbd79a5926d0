//! Links: which app account (or app group) belongs to which directory anchor, its state,
//! and when it was last seen.

use super::*;

impl Journal {
    /// Every link, by anchor.
    pub fn links(&self) -> Result<BTreeMap<Anchor, Link>, JournalError> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT anchor, account, user_name, state, suspended_at, last_seen, photo_hash FROM links",
            )?;
            let rows = stmt
                .query_map([], |r| {
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
                path: self.path.clone(),
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
    /// Every group link, with the members idsync put in the group.
    pub fn group_links(&self) -> Result<BTreeMap<Anchor, GroupLink>, JournalError> {
        self.with(|c| {
            let mut out: BTreeMap<Anchor, GroupLink> = BTreeMap::new();
            let mut stmt = c.prepare("SELECT anchor, group_id, name FROM group_links")?;
            let rows = stmt.query_map([], |r| {
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
            let mut stmt = c.prepare("SELECT group_anchor, person FROM group_members")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
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
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt =
                    tx.prepare_cached("UPDATE links SET last_seen = ?2 WHERE anchor = ?1")?;
                let now = ts(now);
                for a in anchors {
                    stmt.execute(params![a.as_str(), now])?;
                }
            }
            tx.commit()
        })
    }
}

pub(super) fn upsert_group_link(
    tx: &rusqlite::Transaction<'_>,
    anchor: &Anchor,
    group_id: &str,
    name: &str,
    added: &[Anchor],
    removed: &[Anchor],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    // One app group belongs to one directory group.
    tx.execute(
        "DELETE FROM group_links WHERE group_id = ?1 AND anchor <> ?2",
        params![group_id, anchor.as_str()],
    )?;
    tx.execute(
        "INSERT INTO group_links (anchor, group_id, name, updated) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(anchor) DO UPDATE SET group_id = excluded.group_id, name = excluded.name, updated = excluded.updated",
        params![anchor.as_str(), group_id, name, ts(now)],
    )?;
    let mut add = tx.prepare_cached(
        "INSERT OR IGNORE INTO group_members (group_anchor, person) VALUES (?1, ?2)",
    )?;
    for p in added {
        add.execute(params![anchor.as_str(), p.as_str()])?;
    }
    let mut del =
        tx.prepare_cached("DELETE FROM group_members WHERE group_anchor = ?1 AND person = ?2")?;
    for p in removed {
        del.execute(params![anchor.as_str(), p.as_str()])?;
    }
    Ok(())
}
pub(super) fn upsert_link(tx: &rusqlite::Transaction<'_>, l: &Link) -> rusqlite::Result<()> {
    // One account belongs to one anchor: a re-hire takeover drops the old anchor's link.
    tx.prepare_cached("DELETE FROM links WHERE account = ?1 AND anchor <> ?2")?
        .execute(params![l.account_id, l.anchor.as_str()])?;
    tx.prepare_cached(
        "INSERT INTO links (anchor, account, user_name, state, suspended_at, last_seen, photo_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(anchor) DO UPDATE SET account = excluded.account, user_name = excluded.user_name,
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
            l.photo_hash
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
