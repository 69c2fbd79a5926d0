//! Who is in the groups and subtrees the console's people scopes name (`crate::roster`),
//! recorded by each sync and read by the console.

use std::collections::BTreeSet;

use super::*;

impl Journal {
    /// Records who is in each unit (by its key) as of this read; a unit whose people did
    /// not change is not written again.
    pub fn save_roster(&self, units: &[(String, BTreeSet<String>)]) -> Result<(), JournalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for (unit, anchors) in units {
                let known: BTreeSet<String> = {
                    let mut stmt =
                        tx.prepare_cached("SELECT anchor FROM roster WHERE unit = ?1")?;
                    let rows = stmt.query_map(params![unit], |r| r.get(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                if &known == anchors {
                    continue;
                }
                tx.execute("DELETE FROM roster WHERE unit = ?1", params![unit])?;
                let mut put =
                    tx.prepare_cached("INSERT INTO roster (unit, anchor) VALUES (?1, ?2)")?;
                for a in anchors {
                    put.execute(params![unit, a])?;
                }
            }
            tx.commit()
        })
    }

    /// The people (anchors) in any of these units, as the last sync recorded them.
    pub fn roster(&self, units: &[String]) -> Result<BTreeSet<String>, JournalError> {
        self.with(|c| {
            let mut out = BTreeSet::new();
            let mut stmt = c.prepare_cached("SELECT anchor FROM roster WHERE unit = ?1")?;
            for unit in units {
                for a in stmt.query_map(params![unit], |r| r.get::<_, String>(0))? {
                    out.insert(a?);
                }
            }
            Ok(out)
        })
    }
}
