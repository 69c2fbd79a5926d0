//! What each app said of itself (`/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`),
//! kept a day so a cycle does not ask again.

use super::*;

impl Journal {
    /// This app's discovery documents and when they were read, if kept.
    pub fn discovery_documents(&self) -> Result<Option<(DateTime<Utc>, String)>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT fetched, documents FROM discovery WHERE app = ?1",
                params![self.app()],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
        })
        .map(|row| row.and_then(|(at, docs)| Some((parse_ts(Some(at))?, docs))))
    }

    /// Keeps this app's discovery documents (JSON), read at `now`.
    /// Keeps what the app said of itself. When it says something else than before (its
    /// schema changed), the parts it refused for good are forgotten: tried again.
    pub fn save_discovery(&self, documents: &str, now: DateTime<Utc>) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let before: Option<String> = tx
                .query_row(
                    "SELECT documents FROM discovery WHERE app = ?1",
                    params![self.app()],
                    |r| r.get(0),
                )
                .optional()?;
            tx.execute(
                "INSERT INTO discovery (app, fetched, documents) VALUES (?1, ?2, ?3)
                 ON CONFLICT (app) DO UPDATE SET fetched = ?2, documents = ?3",
                params![self.app(), ts(now), documents],
            )?;
            if before.is_some_and(|b| b != documents) {
                tx.execute(
                    "DELETE FROM escrow WHERE app = ?1 AND key LIKE ?2",
                    params![self.app(), format!("{}%", crate::escrow::PART_PREFIX)],
                )?;
            }
            tx.commit()
        })
    }
}
