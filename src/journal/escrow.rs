//! Escrowed actions (`crate::escrow`): per app, by action key, how often and why each
//! failed and when it may be tried again.

use super::*;
use crate::escrow::Escrowed;

impl Journal {
    /// This app's escrowed actions, by key.
    pub fn escrowed(&self) -> Result<BTreeMap<String, Escrowed>, JournalError> {
        Ok(self
            .escrow_rows(None)?
            .into_iter()
            .map(|e| (e.key.clone(), e))
            .collect())
    }

    /// This app's escrow records: all of them, or the one with this key.
    fn escrow_rows(&self, key: Option<&str>) -> Result<Vec<Escrowed>, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT key, user_name, kind, failures, first_failed, last_failed, next_try, reason
                 FROM escrow WHERE app = ?1 AND (?2 IS NULL OR key = ?2)",
            )?;
            let rows = stmt.query_map(params![self.app(), key], |r| {
                let at = |i: usize| -> rusqlite::Result<DateTime<Utc>> {
                    let text: String = r.get(i)?;
                    parse_ts(Some(text.clone())).ok_or_else(|| {
                        rusqlite::Error::FromSqlConversionFailure(
                            i,
                            rusqlite::types::Type::Text,
                            format!("escrow time `{text}` is not RFC 3339").into(),
                        )
                    })
                };
                Ok(Escrowed {
                    key: r.get(0)?,
                    user_name: r.get(1)?,
                    kind: r.get(2)?,
                    failures: r.get(3)?,
                    first_failed: at(4)?,
                    last_failed: at(5)?,
                    next_try: at(6)?,
                    reason: r.get(7)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Counts a lasting failure of the action with this key; returns the record.
    pub fn escrow_failure(
        &self,
        key: &str,
        user_name: &str,
        kind: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Escrowed, JournalError> {
        let before = self.escrow_rows(Some(key))?.into_iter().next();
        let failures = before.as_ref().map_or(0, |e| e.failures) + 1;
        let next = crate::escrow::next_try(failures, now);
        self.with(|c| {
            c.execute(
                "INSERT INTO escrow (app, key, user_name, kind, failures, first_failed, last_failed, next_try, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)
                 ON CONFLICT (app, key) DO UPDATE SET failures = ?5, last_failed = ?6,
                     next_try = ?7, reason = ?8, user_name = ?3",
                params![self.app(), key, user_name, kind, failures, ts(now), ts(next), reason],
            )
        })?;
        // The record as the journal keeps it (times to the millisecond).
        let kept = |t: DateTime<Utc>| parse_ts(Some(ts(t))).unwrap_or(t);
        Ok(Escrowed {
            key: key.to_string(),
            user_name: user_name.to_string(),
            kind: kind.to_string(),
            failures,
            first_failed: before.map_or(kept(now), |e| e.first_failed),
            last_failed: kept(now),
            next_try: kept(next),
            reason: reason.to_string(),
        })
    }

    /// Escrowed actions of every app, by app: (waiting, quarantined).
    pub fn escrow_counts(&self) -> Result<Vec<(String, i64, i64)>, JournalError> {
        let quarantine = i64::from(crate::escrow::QUARANTINE_AFTER);
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT app, SUM(failures < ?1), SUM(failures >= ?1) FROM escrow GROUP BY app ORDER BY app",
            )?;
            let rows = stmt.query_map(params![quarantine], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    /// The apps among `apps` whose scheduled runs rest now (`escrow::app_rest`), with why.
    pub fn resting_apps(
        &self,
        apps: &[String],
        period: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, JournalError> {
        let mut out = Vec::new();
        for app in apps {
            let rows = self.for_app(app).runs(20)?;
            let recent: Vec<crate::escrow::RecentRun<'_>> = rows
                .iter()
                .filter(|r| r.mode == Mode::Apply && r.outcome != Outcome::Running)
                .filter_map(|r| {
                    Some(crate::escrow::RecentRun {
                        failed: r.outcome == Outcome::Failed,
                        finished: parse_ts(r.finished.clone())?,
                        reason: r.reason.as_deref().unwrap_or("no reason journaled"),
                    })
                })
                .collect();
            if let Some((_, why)) = crate::escrow::app_rest(&recent, period, now) {
                out.push((app.clone(), why));
            }
        }
        Ok(out)
    }

    /// Forgets the action with this key: it applied.
    pub fn escrow_clear(&self, key: &str) -> Result<(), JournalError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM escrow WHERE app = ?1 AND key = ?2")?
                .execute(params![self.app(), key])
                .map(|_| ())
        })
    }
}
