//! What both sides look like now: the directory read (full or incremental, with what it
//! remembers), the app's accounts and groups, the journal's links.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::app::{AccountReader, GroupReader};
use crate::config::Config;
use crate::connectors::{Connectors, Directory, GroupsRead};
use crate::journal::Journal;
use crate::model::{Account, Anchor, AppGroup, DirectoryGroup, DirectoryUser, GroupLink, Link};
use crate::safety;
use crate::source::{DirectoryReader, Read, ReadKind, ReadRequest, Remember};

use super::RunError;

/// What both sides look like now.
pub(super) struct Snapshot {
    pub(super) users: Vec<DirectoryUser>,
    pub(super) accounts: Vec<Account>,
    pub(super) links: BTreeMap<Anchor, Link>,
    pub(super) read_kind: ReadKind,
    /// An incremental source's state to commit with the run, if the run applies everything.
    pub(super) remember: Option<Remember>,
    /// How long the directory read took (the app's read not included).
    pub(super) source_ms: u64,
    /// Both sides' groups, when group sync is configured.
    pub(super) groups: Option<Groups>,
}

/// What group sync plans from.
pub(super) struct Groups {
    pub(super) directory: Vec<DirectoryGroup>,
    pub(super) app: Vec<AppGroup>,
    pub(super) links: BTreeMap<Anchor, GroupLink>,
    /// The groups' incremental state to commit with the run (Graph delta).
    pub(super) cursor: Option<String>,
}

/// The journal's key for what an incremental source remembers of the groups.
pub(super) fn groups_key(cfg: &Config) -> String {
    format!("{} groups", source_key(cfg))
}

/// The journal's key for what an incremental source remembers.
pub(super) fn source_key(cfg: &Config) -> String {
    cfg.source.describe()
}

async fn read_source(
    directory: &Directory,
    key: &str,
    journal: &Journal,
    links: &BTreeMap<Anchor, Link>,
    force_full: bool,
    now: DateTime<Utc>,
) -> Result<Read, RunError> {
    let photo_hashes: BTreeMap<Anchor, String> = links
        .values()
        .filter_map(|l| Some((l.anchor.clone(), l.photo_hash.clone()?)))
        .collect();
    let remembered = if directory.wants_remembered(force_full) {
        Some(journal.remembered(key)?)
    } else {
        None
    };
    let request = ReadRequest {
        remembered: remembered.as_ref(),
        force_full,
        now,
        photo_hashes: &photo_hashes,
    };
    Ok(directory.read(&request).await?)
}

/// Reads both sides: the directory (with what the journal remembers), checked against the
/// last good read, then the app's accounts and, with `groups:`, both sides' groups. Only
/// readers are used: a dry run writes nothing.
pub(super) async fn snapshot(
    cfg: &Config,
    journal: &Journal,
    connectors: &Connectors,
    force_full: bool,
    now: DateTime<Utc>,
) -> Result<Snapshot, RunError> {
    let (directory, reader) = (&connectors.directory, &connectors.app);
    let links = journal.links()?;
    let started = std::time::Instant::now();
    let spin = crate::progress::spinner(cfg.progress, "reading the directory");
    let read = read_source(
        directory,
        &source_key(cfg),
        journal,
        &links,
        force_full,
        now,
    )
    .await;
    spin.finish_and_clear();
    let Read {
        users,
        kind: read_kind,
        remember,
    } = read?;
    let source_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        people = users.len(),
        read = %read_kind,
        ms = source_ms,
        "directory read"
    );
    safety::check_read(users.len(), journal.last_good_source_count()?, &cfg.safety)?;
    let started = std::time::Instant::now();
    let spin = crate::progress::spinner(cfg.progress, "reading the app's accounts");
    let accounts = reader.list_accounts().await;
    spin.finish_and_clear();
    let accounts = accounts?;
    tracing::info!(
        accounts = accounts.len(),
        ms = started.elapsed().as_millis() as u64,
        "app accounts read"
    );
    let groups = match &cfg.groups {
        None => None,
        Some(g) => {
            let spin = crate::progress::spinner(cfg.progress, "reading groups");
            let remembered = journal.cursor(&groups_key(cfg))?;
            let read = directory
                .read_groups(g, &users, remembered.as_deref(), force_full, now)
                .await;
            let app = match &read {
                Ok(_) => reader.list_groups().await.map_err(RunError::from),
                Err(_) => Ok(Vec::new()),
            };
            spin.finish_and_clear();
            let (
                GroupsRead {
                    groups: directory,
                    cursor,
                },
                app,
            ) = (read?, app?);
            let links = journal.group_links()?;
            safety::check_groups(directory.len(), links.len())?;
            tracing::info!(directory = directory.len(), app = app.len(), "groups read");
            Some(Groups {
                directory,
                app,
                links,
                cursor,
            })
        }
    };
    Ok(Snapshot {
        users,
        accounts,
        links,
        read_kind,
        remember,
        source_ms,
        groups,
    })
}

/// What a sync leaves undone and why (a person whose data is unusable, an ambiguous match)
/// goes to the log too, the first few in full.
pub(super) fn warn_notices(notices: &[crate::plan::Notice]) {
    const SHOWN: usize = 20;
    for n in notices.iter().take(SHOWN) {
        let who = n.user_name.as_deref().unwrap_or("-");
        tracing::warn!(user = who, "{}", n.message);
    }
    if notices.len() > SHOWN {
        tracing::warn!(
            "{} more notice(s): `idsync show last` lists them all",
            notices.len() - SHOWN
        );
    }
}
