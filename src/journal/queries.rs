//! Reading runs and actions back: for `runs`, `show`, approvals, the shrink guard and
//! `/metrics`.

use super::*;

impl Journal {
    /// How many people the last successful apply run read (for `min_source_ratio`).
    pub fn last_good_source_count(&self) -> Result<Option<usize>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT source_users FROM runs WHERE mode = 'apply' AND outcome IN ('ok', 'held') AND source_users IS NOT NULL ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|n| n.map(|n| n as usize))
        })
    }
    /// Aggregates for `/metrics`: (mode, outcome, runs), (kind, status, actions), and the
    /// finish time of the last apply run that ended ok or held.
    pub fn metrics(&self) -> Result<MetricsData, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT app, mode, outcome, COUNT(*) FROM runs GROUP BY app, mode, outcome ORDER BY app, mode, outcome")?;
            let runs = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<rusqlite::Result<_>>()?;
            let mut stmt = c.prepare(
                "SELECT r.app, a.kind, a.status, COUNT(*) FROM actions a JOIN runs r ON r.id = a.run WHERE r.mode = 'apply'
                 GROUP BY r.app, a.kind, a.status ORDER BY r.app, a.kind, a.status",
            )?;
            let actions = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<rusqlite::Result<_>>()?;
            let last_success = c
                .query_row(
                    "SELECT finished FROM runs WHERE mode = 'apply' AND outcome IN ('ok', 'held') ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?;
            Ok(MetricsData { runs, actions, last_success: parse_ts(last_success) })
        })
    }
    /// The newest runs (of this handle's app, or of every app), newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, started, finished, mode, trigger, source_users, counts, outcome, reason, app FROM runs
                 WHERE (?2 IS NULL OR app = ?2) ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64, self.only_app()], run_row)?.collect();
            rows
        })
    }
    pub fn run(&self, id: i64) -> Result<Option<RunRow>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, started, finished, mode, trigger, source_users, counts, outcome, reason, app FROM runs WHERE id = ?1",
                params![id],
                run_row,
            )
            .optional()
        })
    }
    pub fn last_run_id(&self) -> Result<Option<i64>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT MAX(id) FROM runs WHERE (?1 IS NULL OR app = ?1)",
                [self.only_app()],
                |r| r.get(0),
            )
        })
    }

    /// The approvals and rejections recorded for a run's held action(s), newest first:
    /// (decision, when).
    pub fn decisions(
        &self,
        run: i64,
        seq: Option<i64>,
    ) -> Result<Vec<(String, String)>, JournalError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT decision, decided FROM approvals WHERE run = ?1 AND (?2 IS NULL OR seq = ?2) ORDER BY decided DESC",
            )?;
            let rows = st.query_map(rusqlite::params![run, seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// The newest run of this mode (`show last` means the last apply run).
    pub fn last_run_of(&self, mode: Mode) -> Result<Option<i64>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT MAX(id) FROM runs WHERE mode = ?1 AND (?2 IS NULL OR app = ?2)",
                params![mode.as_str(), self.only_app()],
                |r| r.get(0),
            )
        })
    }
    pub fn actions(&self, run: i64) -> Result<Vec<ActionRow>, JournalError> {
        self.select_actions(
            "SELECT run, seq, kind, user_name, anchor, account, reason, before, after, status, error, at,
                    (SELECT app FROM runs WHERE runs.id = actions.run) FROM actions WHERE run = ?1 ORDER BY seq",
            params![run],
        )
    }
    /// One person's actions in apply runs across every app, newest first (a timeline: "why
    /// is Alice suspended in Miro?"). Matched by userName, any case.
    pub fn actions_of_person(
        &self,
        user_name: &str,
        limit: usize,
    ) -> Result<Vec<ActionRow>, JournalError> {
        self.select_actions(
            "SELECT a.run, a.seq, a.kind, a.user_name, a.anchor, a.account, a.reason, a.before, a.after, a.status, a.error, a.at, r.app
             FROM actions a JOIN runs r ON r.id = a.run
             WHERE a.user_name = ?1 COLLATE NOCASE AND r.mode = 'apply'
             ORDER BY a.run DESC, a.seq DESC LIMIT ?2",
            params![user_name, limit as i64],
        )
    }
    pub(super) fn select_actions(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<ActionRow>, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt
                .query_map(args, |r| {
                    let after: String = r.get(8)?;
                    Ok(ActionRow {
                        run: r.get(0)?,
                        seq: r.get(1)?,
                        kind: r.get(2)?,
                        user_name: r.get(3)?,
                        anchor: r.get(4)?,
                        account: r.get(5)?,
                        reason: r.get(6)?,
                        before: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                        after: serde_json::from_str(&after).unwrap_or_default(),
                        fields: keys_in_order(&after),
                        status: r.get(9)?,
                        error: r.get(10)?,
                        at: r.get(11)?,
                        app: r.get(12)?,
                    })
                })?
                .collect();
            rows
        })
    }
}

pub(super) fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        started: r.get(1)?,
        finished: r.get(2)?,
        mode: r.get(3)?,
        trigger: r.get(4)?,
        source_users: r.get(5)?,
        counts: RunCounts::from_json(
            &serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
        ),
        outcome: r.get(7)?,
        reason: r.get(8)?,
        app: r.get(9)?,
    })
}

/// The journal's words read back as the types that wrote them; a word this release does
/// not know is a corrupt row, never a guess.
macro_rules! text_column {
    ($ty:ty, $parse:expr) => {
        impl rusqlite::types::FromSql for $ty {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                $parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!("unknown {} `{text}`", stringify!($ty)).into(),
                    )
                })
            }
        }
    };
}

text_column!(Mode, Mode::parse);
text_column!(Outcome, Outcome::parse);
text_column!(Status, Status::parse);
text_column!(ActionKind, ActionKind::parse);

macro_rules! shown_as_text {
    ($($ty:ty),*) => {$(
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    )*};
}

shown_as_text!(Mode, Outcome, Status);

/// The keys of a JSON object in the order they are written (serde_json's maps sort them).
fn keys_in_order(text: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Keys, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                        out.push(k);
                    }
                    Ok(Keys(out))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    serde_json::from_str::<Keys>(text)
        .map(|k| k.0)
        .unwrap_or_default()
}
