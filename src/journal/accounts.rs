//! The app's accounts as idsync last saw them (`run::remembered`): every account of the
//! last full read, kept up to date by each incremental read and each write, so a quiet
//! cycle plans against them instead of listing the app. Per app.

use std::collections::BTreeSet;

use super::*;
use crate::model::{Account, AccountId, Resource, UserName};

/// When the app was last read in full, and the latest `meta.lastModified` it showed (the
/// app's own clock: what changed since is asked for by that).
#[derive(Clone, Debug)]
pub struct AppReadMarks {
    pub full_at: DateTime<Utc>,
    pub watermark: Option<String>,
}

/// A new latest change of the app's.
#[derive(Clone, Copy, Debug)]
pub enum Watermark<'a> {
    /// Every change up to this one was seen (a changes query): the mark moves here.
    Moved(&'a str),
    /// Accounts read by id: a mark only for an app that has none.
    First(&'a str),
}

/// The remembered accounts, and which of them were written since they were read.
pub struct RememberedAccounts {
    pub accounts: Vec<Account>,
    pub stale: BTreeSet<AccountId>,
}

impl Journal {
    /// When this app was last read in full, if it was.
    pub fn app_read_marks(&self) -> Result<Option<AppReadMarks>, JournalError> {
        let row = self.with(|c| {
            c.query_row(
                "SELECT full_at, watermark FROM app_reads WHERE app = ?1",
                params![self.app()],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()
        })?;
        Ok(row.and_then(|(at, watermark)| {
            Some(AppReadMarks {
                full_at: parse_ts(Some(at))?,
                watermark,
            })
        }))
    }

    /// Every remembered account of this app.
    pub fn remembered_accounts(&self) -> Result<RememberedAccounts, JournalError> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, user_name, active, resource, stale FROM app_accounts WHERE app = ?1",
            )?;
            let rows = stmt.query_map(params![self.app()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let mut out = RememberedAccounts {
            accounts: Vec::with_capacity(rows.len()),
            stale: BTreeSet::new(),
        };
        for (id, user_name, active, resource, stale) in rows {
            // Checked, not built: the text becomes the account's resource as it is.
            serde_json::from_str::<serde::de::IgnoredAny>(&resource).map_err(|e| {
                JournalError::Corrupt {
                    path: self.path().to_path_buf(),
                    detail: format!("a remembered account of app {} ({id}): {e}", self.app()),
                }
            })?;
            let id = AccountId::new(id);
            if stale {
                out.stale.insert(id.clone());
            }
            out.accounts.push(Account {
                id,
                user_name: UserName::new(user_name),
                active,
                resource: Resource::from_text(resource),
            });
        }
        Ok(out)
    }

    /// A full read of the app: what is remembered becomes exactly `accounts`.
    pub fn remember_full_read(
        &self,
        accounts: &[Account],
        watermark: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM app_accounts WHERE app = ?1",
                params![self.app()],
            )?;
            put_accounts(&tx, self.app(), accounts)?;
            tx.execute(
                "INSERT INTO app_reads (app, full_at, watermark) VALUES (?1, ?2, ?3)
                 ON CONFLICT (app) DO UPDATE SET full_at = ?2, watermark = ?3",
                params![self.app(), ts(now), watermark],
            )?;
            tx.commit()
        })
    }

    /// Accounts read again (`found`, as the app has them now) and accounts the app said
    /// are gone; `watermark`, when given, is the latest change seen so far (`first`: only
    /// where the app has no watermark yet).
    pub fn remember_accounts(
        &self,
        found: &[Account],
        gone: &[AccountId],
        watermark: Option<Watermark<'_>>,
    ) -> Result<(), JournalError> {
        if found.is_empty() && gone.is_empty() && watermark.is_none() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            put_accounts(&tx, self.app(), found)?;
            {
                let mut del =
                    tx.prepare_cached("DELETE FROM app_accounts WHERE app = ?1 AND id = ?2")?;
                for id in gone {
                    del.execute(params![self.app(), id.as_str()])?;
                }
            }
            move_watermark(&tx, self.app(), "watermark", watermark)?;
            tx.commit()
        })
    }

    /// The app is to be listed whole at its next cycle (what is remembered cannot be
    /// trusted: many writes whose outcome was not read back).
    pub fn forget_app_reads(&self) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute("DELETE FROM app_reads WHERE app = ?1", params![self.app()])
                .map(|_| ())
        })
    }

    /// Accounts written (or tried) whose state is not known now: read again next time.
    pub fn forget_account_state(&self, ids: &[AccountId]) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stale = tx.prepare_cached(
                    "UPDATE app_accounts SET stale = 1 WHERE app = ?1 AND id = ?2",
                )?;
                for id in ids {
                    stale.execute(params![self.app(), id.as_str()])?;
                }
            }
            tx.commit()
        })
    }
}

/// Moves one of the app's watermarks (`column` of `app_reads`) as `watermark` says.
pub(super) fn move_watermark(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    column: &str,
    watermark: Option<Watermark<'_>>,
) -> rusqlite::Result<()> {
    let (w, guard) = match watermark {
        Some(Watermark::Moved(w)) => (w, String::new()),
        Some(Watermark::First(w)) => (w, format!(" AND {column} IS NULL")),
        None => return Ok(()),
    };
    let sql = format!("UPDATE app_reads SET {column} = ?2 WHERE app = ?1{guard}");
    tx.execute(&sql, params![app, w]).map(|_| ())
}

fn put_accounts(
    tx: &rusqlite::Transaction<'_>,
    app: &str,
    accounts: &[Account],
) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT INTO app_accounts (app, id, user_name, active, resource, stale) VALUES (?1, ?2, ?3, ?4, ?5, 0)
         ON CONFLICT (app, id) DO UPDATE SET user_name = ?3, active = ?4, resource = ?5, stale = 0",
    )?;
    for a in accounts {
        put.execute(params![
            app,
            a.id.as_str(),
            a.user_name.as_str(),
            a.active,
            a.resource.text()
        ])?;
    }
    Ok(())
}
