//! Console sessions kept server-side, in `<state_dir>/console-sessions.sqlite3` (0600): a
//! restart of `idsync serve` (an upgrade, a crash) logs nobody out. The cookie carries only
//! the session's random id; each record expires as the session layer says (8 h without a
//! request), an expired one is never loaded, and expired rows are swept as new sessions
//! start. tower-sessions' `SessionStore` over the rusqlite idsync already has.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

/// The file, beside the journal.
pub const FILE: &str = "console-sessions.sqlite3";

#[derive(Clone, Debug)]
pub struct FileStore {
    conn: Arc<Mutex<Connection>>,
}

impl FileStore {
    /// Opens (or makes, 0600) the store in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<FileStore, String> {
        let path: PathBuf = state_dir.join(FILE);
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| fail(&e))?;
        }
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| fail(&e))?;
        }
        let conn = Connection::open(&path).map_err(|e| fail(&e))?;
        conn.execute_batch(
            "PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS sessions (
                 id TEXT PRIMARY KEY,
                 record TEXT NOT NULL,
                 expiry INTEGER NOT NULL
             );",
        )
        .map_err(|e| fail(&e))?;
        Ok(FileStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> session_store::Result<T> {
        let conn = self.conn.lock().map_err(|_| {
            session_store::Error::Backend("the session store's lock is poisoned".into())
        })?;
        f(&conn).map_err(|e| session_store::Error::Backend(e.to_string()))
    }
}

fn encode(record: &Record) -> session_store::Result<String> {
    serde_json::to_string(record).map_err(|e| session_store::Error::Encode(e.to_string()))
}

#[async_trait]
impl SessionStore for FileStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.with(|c| c.execute("DELETE FROM sessions WHERE expiry <= ?1", params![now]))?;
        // A new id until it is one nobody has (the odds of a clash are nil; the check is free).
        loop {
            let text = encode(record)?;
            let made = self.with(|c| {
                c.execute(
                    "INSERT OR IGNORE INTO sessions (id, record, expiry) VALUES (?1, ?2, ?3)",
                    params![
                        record.id.to_string(),
                        text,
                        record.expiry_date.unix_timestamp()
                    ],
                )
            })?;
            if made == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let text = encode(record)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (id, record, expiry) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET record = ?2, expiry = ?3",
                params![
                    record.id.to_string(),
                    text,
                    record.expiry_date.unix_timestamp()
                ],
            )
            .map(|_| ())
        })
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let text: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT record FROM sessions WHERE id = ?1 AND expiry > ?2",
                params![id.to_string(), now],
                |r| r.get(0),
            )
            .optional()
        })?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| session_store::Error::Decode(e.to_string()))
        })
        .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM sessions WHERE id = ?1",
                params![id.to_string()],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_sessions::cookie::time::Duration;

    fn record(expires_in: Duration) -> Record {
        let mut data = std::collections::HashMap::new();
        data.insert("user".to_string(), serde_json::json!("vera"));
        Record {
            id: Id::default(),
            data,
            expiry_date: OffsetDateTime::now_utc() + expires_in,
        }
    }

    #[tokio::test]
    async fn a_session_outlives_the_store_that_made_it_and_not_its_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = record(Duration::hours(8));
        let mut gone = record(Duration::seconds(-1));
        {
            let store = FileStore::open(dir.path()).unwrap();
            store.create(&mut kept).await.unwrap();
            store.create(&mut gone).await.unwrap();
        }
        // Another process (a restarted `idsync serve`) opens the same file.
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(store.load(&kept.id).await.unwrap(), Some(kept.clone()));
        assert_eq!(store.load(&gone.id).await.unwrap(), None, "expired");
        store.delete(&kept.id).await.unwrap();
        assert_eq!(store.load(&kept.id).await.unwrap(), None, "logged out");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
