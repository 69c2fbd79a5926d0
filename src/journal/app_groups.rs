//! The app's groups as idsync last saw them (`run::remembered::groups`): every group of the
//! last full list of `/Groups`, members as the app lists them, kept up to date by each
//! incremental read and each group write, so a quiet cycle reads no group. Per app.

use std::collections::{BTreeMap, BTreeSet};

use super::accounts::{move_watermark, Watermark};
use super::*;
use crate::model::{AccountId, AppGroup};

/// When the app's groups were last listed whole, and the latest `meta.lastModified` a
/// group showed then or since.
#[derive(Clone, Debug)]
pub struct GroupReadMarks {
    pub listed_at: DateTime<Utc>,
    pub watermark: Option<String>,
}

/// The remembered groups, and which of them were written since they were read.
pub struct RememberedGroups {
    pub groups: Vec<AppGroup>,
    pub stale: BTreeSet<String>,
}

impl Journal {
    /// When this app's groups were last listed whole, if they were since its accounts
    /// last were (a full read of the accounts that forgot the app forgets its groups too).
    pub fn group_read_marks(&self) -> Result<Option<GroupReadMarks>, JournalError> {
        let row = self.with(|c| {
            c.query_row(
                "SELECT groups_at, groups_watermark FROM app_reads WHERE app = ?1",
                params![self.app()],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                    ))
                },
            )
            .optional()
        })?;
        Ok(row.and_then(|(at, watermark)| {
            Some(GroupReadMarks {
                listed_at: parse_ts(at)?,
                watermark,
            })
        }))
    }

    /// Every remembered group of this app.
    pub fn remembered_groups(&self) -> Result<RememberedGroups, JournalError> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, display_name, members, modified, stale FROM app_groups WHERE app = ?1",
            )?;
            let rows = stmt.query_map(params![self.app()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let mut out = RememberedGroups {
            groups: Vec::with_capacity(rows.len()),
            stale: BTreeSet::new(),
        };
        for (id, display_name, members, modified, stale) in rows {
            let members: BTreeSet<AccountId> =
                serde_json::from_str(&members).map_err(|e| JournalError::Corrupt {
                    path: self.path().to_path_buf(),
                    detail: format!("a remembered group of app {} ({id}): {e}", self.app()),
                })?;
            if stale {
                out.stale.insert(id.clone());
            }
            out.groups.push(AppGroup {
                id,
                display_name,
                members,
                listed_as: BTreeMap::new(),
                modified,
            });
        }
        Ok(out)
    }

    /// A full list of the app's groups: what is remembered becomes exactly `groups`. The
    /// app's accounts must have been read in full before (the marks live with theirs).
    pub fn remember_all_groups(
        &self,
        groups: &[AppGroup],
        watermark: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM app_groups WHERE app = ?1", params![self.app()])?;
            put_groups(&tx, self.app(), groups)?;
            tx.execute(
                "UPDATE app_reads SET groups_at = ?2, groups_watermark = ?3 WHERE app = ?1",
                params![self.app(), ts(now), watermark],
            )?;
            tx.commit()
        })
    }

    /// Groups read again (`found`, as the app has them now) and groups the app said are
    /// gone; `watermark` as for accounts (`Watermark`).
    pub fn remember_groups(
        &self,
        found: &[AppGroup],
        gone: &[String],
        watermark: Option<Watermark<'_>>,
    ) -> Result<(), JournalError> {
        if found.is_empty() && gone.is_empty() && watermark.is_none() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            put_groups(&tx, self.app(), found)?;
            {
                let mut del =
                    tx.prepare_cached("DELETE FROM app_groups WHERE app = ?1 AND id = ?2")?;
                for id in gone {
                    del.execute(params![self.app(), id])?;
                }
            }
            move_watermark(&tx, self.app(), "groups_watermark", watermark)?;
            tx.commit()
        })
    }

    /// Groups written (or tried) whose state is not known now: read again next time.
    pub fn forget_group_state(&self, ids: &[String]) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stale = tx
                    .prepare_cached("UPDATE app_groups SET stale = 1 WHERE app = ?1 AND id = ?2")?;
                for id in ids {
                    stale.execute(params![self.app(), id])?;
                }
            }
            tx.commit()
        })
    }
}

fn put_groups(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    groups: &[AppGroup],
) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT INTO app_groups (app, id, display_name, members, modified, stale) VALUES (?1, ?2, ?3, ?4, ?5, 0)
         ON CONFLICT (app, id) DO UPDATE SET display_name = ?3, members = ?4, modified = ?5, stale = 0",
    )?;
    for g in groups {
        let members = serde_json::to_string(&g.members).unwrap_or_else(|_| "[]".into());
        put.execute(params![app, g.id, g.display_name, members, g.modified])?;
    }
    Ok(())
}
