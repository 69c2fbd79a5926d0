//! What a quiet cycle asks the journal before it skips planning (`run::quiet`): the app's
//! previous apply run, and whether anything in the app's state could make a plan now
//! differ from that run's. Each answer is one indexed query, whatever the population.

use super::*;
use crate::model::{Account, AccountId, LinkState};

impl Journal {
    /// This app's last apply run before `run` (a sync, an approval or a saved plan).
    pub fn previous_apply_run(&self, run: i64) -> Result<Option<RunRow>, JournalError> {
        let id: Option<i64> = self.with(|c| {
            c.query_row(
                "SELECT MAX(id) FROM runs WHERE mode = 'apply' AND app = ?1 AND id < ?2",
                params![self.app(), run],
                |r| r.get(0),
            )
        })?;
        match id {
            Some(id) => self.run(id),
            None => Ok(None),
        }
    }

    /// Whether a suspended account of this app was suspended at or before `cutoff` (a
    /// `delete_after` that has run out since the last plan).
    pub fn suspended_since(&self, cutoff: DateTime<Utc>) -> Result<bool, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM links WHERE app = ?1 AND state = ?2 AND suspended_at <= ?3)",
                params![self.app(), LinkState::Suspended.as_str(), ts(cutoff)],
                |r| r.get(0),
            )
        })
    }

    /// Whether an account of this app is not known as the app has it: written since it
    /// was read, or linked and never read.
    pub fn accounts_unsettled(&self) -> Result<bool, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM app_accounts WHERE app = ?1 AND stale = 1)
                     OR EXISTS (SELECT 1 FROM links l WHERE l.app = ?1 AND NOT EXISTS
                         (SELECT 1 FROM app_accounts a WHERE a.app = ?1 AND a.id = l.account))",
                params![self.app()],
                |r| r.get(0),
            )
        })
    }

    /// The remembered accounts with these ids (those remembered).
    pub fn remembered_accounts_with(
        &self,
        ids: &[&AccountId],
    ) -> Result<Vec<Account>, JournalError> {
        let rows = self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, user_name, active, resource FROM app_accounts WHERE app = ?1 AND id = ?2",
            )?;
            let mut out = Vec::new();
            for id in ids {
                let row = stmt
                    .query_row(params![self.app(), id.as_str()], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, bool>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    })
                    .optional()?;
                out.extend(row);
            }
            Ok(out)
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, user_name, active, resource)| Account {
                id: AccountId::new(id),
                user_name: crate::model::UserName::new(user_name),
                active,
                resource: crate::model::Resource::from_text(resource),
            })
            .collect())
    }
}
