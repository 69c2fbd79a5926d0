//! Held actions: what waits for a decision, the decisions, and what a new full run
//! supersedes.

use super::*;

impl Journal {
    /// Closes the held actions of earlier apply runs: each full run re-plans from the current
    /// state, so its own held actions are the only ones left to approve (no duplicates).
    pub fn supersede_held(&self, run: i64, now: DateTime<Utc>) -> Result<usize, JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE actions SET status = 'skipped', error = 'superseded by run ' || ?1, at = ?2
                 WHERE status = 'held' AND run < ?1 AND run IN (SELECT id FROM runs WHERE app = ?3)",
                params![run, ts(now), self.app()],
            )
        })
    }

    /// Held actions of apply runs, waiting for `approve` or `reject`.
    pub fn held_actions(&self) -> Result<Vec<ActionRow>, JournalError> {
        self.select_actions(
            "SELECT a.run, a.seq, a.kind, a.user_name, a.anchor, a.account, a.reason, a.before, a.after, a.status, a.error, a.at, r.app
             FROM actions a JOIN runs r ON r.id = a.run WHERE a.status = 'held' AND r.mode = 'apply' AND (?1 IS NULL OR r.app = ?1) ORDER BY a.run, a.seq",
            params![self.only_app()],
        )
    }

    /// Records a decision on a held action, by whom and why; the action leaves the held
    /// list, its note naming the decider.
    pub fn decide(
        &self,
        run: i64,
        seq: i64,
        approved: bool,
        note: &str,
        by: &Decider,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        let word = if approved { "approved" } else { "rejected" };
        let comment = match by.comment.trim() {
            "" => String::new(),
            c => format!(" (comment: {c})"),
        };
        let note = format!("{word} by {}{comment}: {note}", by.who);
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE actions SET status = ?5, error = ?3, at = ?4 WHERE run = ?1 AND seq = ?2 AND status = 'held'",
                params![run, seq, note, ts(now), word],
            )?;
            tx.execute(
                "INSERT INTO approvals (run, seq, decided, decision, who, comment) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run, seq, ts(now), word, by.who, by.comment.trim()],
            )?;
            tx.commit()
        })
    }
}

/// Who decides a held action (`cli:root`, `console:abe`) and their comment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decider {
    pub who: String,
    pub comment: String,
}

impl Decider {
    /// The operator at the command line: their login name.
    pub fn cli(comment: Option<&str>) -> Decider {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Decider {
            who: format!("cli:{user}"),
            comment: comment.unwrap_or_default().to_string(),
        }
    }
}
