//! What an incremental source remembers between runs (its cursor and the population as
//! of it), committed with the run that read it.

use super::*;

impl Journal {
    /// What an incremental source saved last: its cursor and population (empty if none).
    pub fn remembered(&self, source: &str) -> Result<Remembered, JournalError> {
        let (cursor, rows) = self.with(|c| {
            let cursor: Option<String> = c
                .query_row(
                    "SELECT value FROM cursors WHERE source = ?1",
                    params![source],
                    |r| r.get(0),
                )
                .optional()?;
            let mut stmt = c.prepare("SELECT user FROM source_users WHERE source = ?1")?;
            let rows = stmt
                .query_map(params![source], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((cursor, rows))
        })?;
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            let user = serde_json::from_str(&row).map_err(|e| JournalError::Corrupt {
                path: self.path().to_path_buf(),
                detail: format!("a remembered directory user of {source}: {e}"),
            })?;
            users.push(user);
        }
        Ok(Remembered { cursor, users })
    }
    /// The people a source saved with these anchors (those it saved), by anchor: what a
    /// quiet cycle compares the directory's few changes with, one indexed query each.
    pub fn remembered_people_with<'a>(
        &self,
        source: &str,
        anchors: impl IntoIterator<Item = &'a Anchor>,
    ) -> Result<BTreeMap<Anchor, DirectoryUser>, JournalError> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT user FROM source_users WHERE source = ?1 AND anchor = ?2",
            )?;
            let mut out = Vec::new();
            for a in anchors {
                let row = stmt
                    .query_row(params![source, a.as_str()], |r| r.get::<_, String>(0))
                    .optional()?;
                out.extend(row);
            }
            Ok(out)
        })?;
        rows.iter()
            .map(|row| {
                let user: DirectoryUser =
                    serde_json::from_str(row).map_err(|e| JournalError::Corrupt {
                        path: self.path().to_path_buf(),
                        detail: format!("a remembered directory user of {source}: {e}"),
                    })?;
                Ok((user.anchor.clone(), user))
            })
            .collect()
    }

    /// A source's saved cursor, if any.
    pub fn cursor(&self, source: &str) -> Result<Option<String>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT value FROM cursors WHERE source = ?1",
                params![source],
                |r| r.get(0),
            )
            .optional()
        })
    }
}

pub(super) fn save_source(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    r: &Remember,
    users: &[DirectoryUser],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let row = |u: &DirectoryUser| serde_json::to_string(u).unwrap_or_default();
    let mut put = tx.prepare_cached(
        "INSERT INTO source_users (source, anchor, user) VALUES (?1, ?2, ?3)
         ON CONFLICT(source, anchor) DO UPDATE SET user = excluded.user",
    )?;
    match &r.cache {
        CacheChange::Replace => {
            tx.execute(
                "DELETE FROM source_users WHERE source = ?1",
                params![source],
            )?;
            for u in users {
                put.execute(params![source, u.anchor.as_str(), row(u)])?;
            }
        }
        CacheChange::Delta { upserted, removed } => {
            let mut del =
                tx.prepare_cached("DELETE FROM source_users WHERE source = ?1 AND anchor = ?2")?;
            for a in removed {
                del.execute(params![source, a.as_str()])?;
            }
            for u in users.iter().filter(|u| upserted.contains(&u.anchor)) {
                put.execute(params![source, u.anchor.as_str(), row(u)])?;
            }
        }
    }
    save_cursor(tx, source, &r.cursor, now)
}
pub(super) fn save_cursor(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    value: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO cursors (source, value, updated) VALUES (?1, ?2, ?3)
         ON CONFLICT(source) DO UPDATE SET value = excluded.value, updated = excluded.updated",
        params![source, value, ts(now)],
    )?;
    Ok(())
}
