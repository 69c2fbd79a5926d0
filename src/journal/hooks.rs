//! Hook calls: each one's result, with the action it ran for.

use super::*;
use crate::hooks::{HookResult, Moment};

impl Journal {
    /// Records one hook call for action `seq` of `run`.
    pub fn record_hook(
        &self,
        run: i64,
        seq: usize,
        r: &HookResult,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO hook_results (run, seq, hook, moment, ok, status, duration_ms, output, idempotency_key, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                run,
                seq as i64,
                r.hook,
                r.moment.as_str(),
                r.ok,
                r.status,
                r.duration_ms as i64,
                r.output,
                r.key,
                ts(now)
            ])
            .map(|_| ())
        })
    }

    /// Holds a planned action that a required `before` hook refused: it waits for a
    /// decision like any held action, and nothing was written to the app.
    pub fn hold_action(
        &self,
        run: i64,
        seq: usize,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE actions SET status = 'held', error = ?3, at = ?4 WHERE run = ?1 AND seq = ?2",
                params![run, seq as i64, why, ts(now)],
            )
            .map(|_| ())
        })
    }

    /// A run's hook calls: (action seq, result), in the order they ran.
    pub fn hook_results(&self, run: i64) -> Result<Vec<(i64, HookResult)>, JournalError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT seq, hook, moment, ok, status, duration_ms, output, idempotency_key
                 FROM hook_results WHERE run = ?1 ORDER BY rowid",
            )?;
            let rows = st.query_map(params![run], |r| {
                let moment: String = r.get(2)?;
                Ok((
                    r.get(0)?,
                    HookResult {
                        hook: r.get(1)?,
                        moment: Moment::parse(&moment).unwrap_or(Moment::After),
                        ok: r.get(3)?,
                        status: r.get(4)?,
                        duration_ms: r.get::<_, i64>(5)? as u64,
                        output: r.get(6)?,
                        key: r.get(7)?,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// Hook calls of apply runs: (app, hook, ok, calls), for `/metrics`.
    pub fn hook_counts(&self) -> Result<Vec<(String, String, bool, i64)>, JournalError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT r.app, h.hook, h.ok, COUNT(*) FROM hook_results h JOIN runs r ON r.id = h.run
                 GROUP BY r.app, h.hook, h.ok ORDER BY r.app, h.hook, h.ok",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })
    }
}
