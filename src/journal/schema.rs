//! Forward-only schema migrations, tracked by `PRAGMA user_version`.

use super::{Journal, JournalError};

/// Each entry moves the schema from version `index` to `index + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: runs, actions, links, cursors, approvals.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started TEXT NOT NULL,
        finished TEXT,
        mode TEXT NOT NULL CHECK (mode IN ('dry-run', 'apply')),
        trigger TEXT NOT NULL,
        source_users INTEGER,
        counts TEXT NOT NULL DEFAULT '{}',
        outcome TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'aborted', 'held', 'failed')),
        reason TEXT
    );
    CREATE TABLE actions (
        run INTEGER NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        anchor TEXT,
        account TEXT,
        user_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        before TEXT NOT NULL,
        after TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('planned', 'applied', 'failed', 'held', 'skipped')),
        error TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (run, seq)
    );
    CREATE INDEX actions_by_anchor ON actions(anchor);
    CREATE INDEX actions_by_account ON actions(account);
    CREATE TABLE links (
        anchor TEXT PRIMARY KEY,
        account TEXT NOT NULL UNIQUE,
        user_name TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'suspended')),
        suspended_at TEXT,
        last_seen TEXT,
        field_hash TEXT,
        photo_hash TEXT
    );
    CREATE TABLE cursors (
        source TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        decided TEXT,
        decision TEXT CHECK (decision IN ('approved', 'rejected')),
        FOREIGN KEY (run, seq) REFERENCES actions(run, seq)
    );",
    // 2: the population an incremental source (Graph delta) last read, per source.
    "CREATE TABLE source_users (
        source TEXT NOT NULL,
        anchor TEXT NOT NULL,
        user TEXT NOT NULL,
        PRIMARY KEY (source, anchor)
    );",
    // 3: what a run reported without acting (protected, conflicts, bad photos, ...).
    "CREATE TABLE notices (
        run INTEGER NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        user_name TEXT,
        anchor TEXT,
        account TEXT,
        message TEXT NOT NULL,
        PRIMARY KEY (run, seq)
    );",
    // 4: group sync: which app group each directory group owns, and the members idsync put
    // there (removed again when it removes them).
    "CREATE TABLE group_links (
        anchor TEXT PRIMARY KEY,
        group_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE TABLE group_members (
        group_anchor TEXT NOT NULL REFERENCES group_links(anchor) ON DELETE CASCADE,
        person TEXT NOT NULL,
        PRIMARY KEY (group_anchor, person)
    );",
    // 5: many apps. Runs, links and group links belong to an app; what an older release
    // wrote belongs to the app `default` (a config with a single `target:`).
    "ALTER TABLE runs ADD COLUMN app TEXT NOT NULL DEFAULT 'default';
    CREATE INDEX runs_by_app ON runs(app, id);
    CREATE TABLE links_v5 (
        app TEXT NOT NULL,
        anchor TEXT NOT NULL,
        account TEXT NOT NULL,
        user_name TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'suspended')),
        suspended_at TEXT,
        last_seen TEXT,
        field_hash TEXT,
        photo_hash TEXT,
        PRIMARY KEY (app, anchor),
        UNIQUE (app, account)
    );
    INSERT INTO links_v5 (app, anchor, account, user_name, state, suspended_at, last_seen, field_hash, photo_hash)
        SELECT 'default', anchor, account, user_name, state, suspended_at, last_seen, field_hash, photo_hash FROM links;
    DROP TABLE links;
    ALTER TABLE links_v5 RENAME TO links;
    CREATE TABLE group_links_v5 (
        app TEXT NOT NULL,
        anchor TEXT NOT NULL,
        group_id TEXT NOT NULL,
        name TEXT NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (app, anchor),
        UNIQUE (app, group_id)
    );
    INSERT INTO group_links_v5 (app, anchor, group_id, name, updated)
        SELECT 'default', anchor, group_id, name, updated FROM group_links;
    CREATE TABLE group_members_v5 (
        app TEXT NOT NULL,
        group_anchor TEXT NOT NULL,
        person TEXT NOT NULL,
        PRIMARY KEY (app, group_anchor, person),
        FOREIGN KEY (app, group_anchor) REFERENCES group_links_v5(app, anchor) ON DELETE CASCADE
    );
    INSERT INTO group_members_v5 (app, group_anchor, person)
        SELECT 'default', group_anchor, person FROM group_members;
    DROP TABLE group_members;
    DROP TABLE group_links;
    ALTER TABLE group_links_v5 RENAME TO group_links;
    ALTER TABLE group_members_v5 RENAME TO group_members;",
    // 6: what each hook call came to.
    "CREATE TABLE hook_results (
        run INTEGER NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        hook TEXT NOT NULL,
        moment TEXT NOT NULL CHECK (moment IN ('before', 'after', 'held')),
        ok INTEGER NOT NULL,
        status TEXT NOT NULL,
        duration_ms INTEGER NOT NULL,
        output TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX hook_results_by_run ON hook_results(run, seq);",
    // 7: actions that failed for a lasting reason, waiting or quarantined (`escrow`).
    "CREATE TABLE escrow (
        app TEXT NOT NULL,
        key TEXT NOT NULL,
        user_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        failures INTEGER NOT NULL,
        first_failed TEXT NOT NULL,
        last_failed TEXT NOT NULL,
        next_try TEXT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (app, key)
    );",
    // 8: what each app said of itself, kept a day.
    "CREATE TABLE discovery (
        app TEXT PRIMARY KEY,
        fetched TEXT NOT NULL,
        documents TEXT NOT NULL
    );",
    // 9: who decided a held action (`cli:USER`, `console:NAME`) and their comment.
    "ALTER TABLE approvals ADD COLUMN who TEXT;
    ALTER TABLE approvals ADD COLUMN comment TEXT;",
    // 10: who is in the groups and subtrees the console's people scopes name, as of the
    // last sync's directory read.
    "CREATE TABLE roster (
        unit TEXT NOT NULL,
        anchor TEXT NOT NULL,
        PRIMARY KEY (unit, anchor)
    );",
    // 11: every app's accounts as last read (a quiet cycle plans against them), and when
    // each app was last listed whole.
    "CREATE TABLE app_accounts (
        app TEXT NOT NULL,
        id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        active INTEGER NOT NULL,
        resource TEXT NOT NULL,
        stale INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app, id)
    );
    CREATE TABLE app_reads (
        app TEXT PRIMARY KEY,
        full_at TEXT NOT NULL,
        watermark TEXT
    );",
    // 12: every app's groups as last read (members as the app lists them), and when each
    // app's groups were last listed whole.
    "CREATE TABLE app_groups (
        app TEXT NOT NULL,
        id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        members TEXT NOT NULL,
        modified TEXT,
        stale INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app, id)
    );
    ALTER TABLE app_reads ADD COLUMN groups_at TEXT;
    ALTER TABLE app_reads ADD COLUMN groups_watermark TEXT;",
    // 13: an action the app refused for good is `refused`, not `applied` or `failed`; a
    // held action a person decided is `approved` or `rejected`, not `skipped`. The table
    // is rebuilt for its CHECK, and approvals (which point at its rows) with it: children
    // first, so no row ever points nowhere.
    "CREATE TABLE actions_v13 (
        run INTEGER NOT NULL REFERENCES runs(id),
        seq INTEGER NOT NULL,
        anchor TEXT,
        account TEXT,
        user_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        before TEXT NOT NULL,
        after TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('planned', 'applied', 'failed', 'held', 'skipped', 'refused', 'approved', 'rejected')),
        error TEXT,
        at TEXT NOT NULL,
        PRIMARY KEY (run, seq)
    );
    INSERT INTO actions_v13 SELECT run, seq, anchor, account, user_name, kind, reason, before, after, status, error, at FROM actions;
    CREATE TABLE approvals_v13 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        decided TEXT,
        decision TEXT CHECK (decision IN ('approved', 'rejected')),
        who TEXT,
        comment TEXT,
        FOREIGN KEY (run, seq) REFERENCES actions_v13(run, seq)
    );
    INSERT INTO approvals_v13 SELECT id, run, seq, decided, decision, who, comment FROM approvals;
    DROP TABLE approvals;
    DROP TABLE actions;
    ALTER TABLE actions_v13 RENAME TO actions;
    ALTER TABLE approvals_v13 RENAME TO approvals;
    CREATE INDEX actions_by_anchor ON actions(anchor);
    CREATE INDEX actions_by_account ON actions(account);",
];

pub fn migrate(journal: &Journal) -> Result<(), JournalError> {
    let known = MIGRATIONS.len() as i64;
    // An IMMEDIATE transaction takes the write lock before reading the version, so two
    // processes opening a new journal at once (the daemon and a CLI) migrate it once.
    let found = journal.with(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found < known {
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            }
        }
        tx.commit()?;
        Ok(found)
    })?;
    if found > known {
        return Err(JournalError::TooNew {
            path: journal.path().to_path_buf(),
            found,
            known,
        });
    }
    Ok(())
}
