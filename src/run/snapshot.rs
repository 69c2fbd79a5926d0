//! What both sides look like now. The directory is read once per cycle (`read_directory`:
//! people, full or incremental, and groups), checked against the last good read; each app's
//! side (`read_app`: its accounts, links, groups and who is outside its scope) is read on
//! its own, so one unreachable app fails only its own run.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::app::scim::ScimClient;
use crate::app::GroupReader;
use crate::config::{AppConfig, Config};
use crate::connectors::{Directory, GroupsRead};
use crate::journal::Journal;
use crate::model::{
    Account, AccountId, Anchor, AppGroup, DirectoryGroup, DirectoryUser, GroupLink, Link,
};
use crate::safety;
use crate::source::{confirm, CacheChange, DirectoryReader, Read, ReadKind, ReadRequest, Remember};

use super::remembered::{AppGroupsRead, AppRead, AppSide};
use super::RunError;

/// How a run reads an app's accounts.
#[derive(Clone, Copy, Debug)]
pub(super) enum AppSource<'c> {
    /// Listed as `target.list` says (dry runs, approvals, saved plans).
    List,
    /// A sync: the accounts the journal remembers, listed whole when due (`remembered`).
    Remembered {
        force_full: bool,
        /// What the app changed since its watermark, when that was already asked (and
        /// remembered) this cycle: the ids of those that differed from what was remembered.
        changes_read: Option<&'c BTreeSet<AccountId>>,
        now: DateTime<Utc>,
    },
}

/// The cycle's one directory read.
pub(super) struct DirectoryRead {
    pub(super) users: Vec<DirectoryUser>,
    pub(super) read_kind: ReadKind,
    /// An incremental source's state to commit, if every app applies everything.
    pub(super) remember: Option<Remember>,
    /// How long the directory read took.
    pub(super) source_ms: u64,
    /// The directory's groups, when an app syncs groups or is scoped by them.
    pub(super) groups: Option<GroupsRead>,
    /// What an incremental read found changed since the cursor it started from.
    pub(super) delta: Option<Delta>,
}

/// The people an incremental read reports changed or removed since its starting cursor.
pub(super) struct Delta {
    /// `cursor_mark` of the cursor the read started from.
    pub(super) from: String,
    pub(super) anchors: BTreeSet<Anchor>,
}

impl DirectoryRead {
    /// `cursor_mark` of the cursor an incremental read moves its source to.
    pub(super) fn read_to(&self) -> Option<String> {
        self.remember.as_ref().map(|m| cursor_mark(&m.cursor))
    }
}

/// A short fingerprint of an incremental source's cursor (a cookie, a USN, a delta link:
/// opaque, possibly long, and not for the runs table).
pub(super) fn cursor_mark(cursor: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(cursor.as_bytes());
    hash.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// What one app's plan is made from.
pub(super) struct Snapshot<'d> {
    pub(super) users: &'d [DirectoryUser],
    pub(super) accounts: Vec<Account>,
    pub(super) links: BTreeMap<Anchor, Link>,
    /// Both sides' groups, when the app syncs groups.
    pub(super) groups: Option<Groups>,
    /// People read but outside the app's scope, with why.
    pub(super) out_of_scope: BTreeMap<Anchor, String>,
    /// The app's schema makes `photos` read-only: no photo is planned for it.
    pub(super) photos_read_only: bool,
    /// The app's actions in escrow (failed for a lasting reason), by key.
    pub(super) escrowed: BTreeMap<String, crate::escrow::Escrowed>,
    /// How the accounts were read.
    pub(super) app_read: AppRead,
    /// How the app's groups were read, when it syncs groups and its accounts are remembered.
    pub(super) groups_read: Option<AppGroupsRead>,
    /// What changed since the last plan, when the plan may look only at that (`focus`).
    pub(super) focus: Option<crate::plan::Focus>,
}

/// What group sync plans from.
pub(super) struct Groups {
    pub(super) directory: Vec<DirectoryGroup>,
    pub(super) app: Vec<AppGroup>,
    pub(super) links: BTreeMap<Anchor, GroupLink>,
}

/// The journal's key for what an incremental source remembers of the groups.
pub(super) fn groups_key(cfg: &Config) -> String {
    format!("{} groups", source_key(cfg))
}

/// The journal's key for what an incremental source remembers.
pub(super) fn source_key(cfg: &Config) -> String {
    cfg.source.describe()
}

/// Reads the directory once for every app: people (with what the journal remembers and
/// the photos `links` say an app already has), checked against the last good read, and the
/// groups when an app needs them.
pub(super) async fn read_directory(
    cfg: &Config,
    journal: &Journal,
    directory: &Directory,
    links: &BTreeMap<Anchor, Link>,
    force_full: bool,
    now: DateTime<Utc>,
) -> Result<DirectoryRead, RunError> {
    let started = std::time::Instant::now();
    let from = journal.cursor(&source_key(cfg))?;
    let spin = crate::progress::spinner(cfg.progress, "reading the directory");
    let read = read_people(directory, &source_key(cfg), journal, links, force_full, now).await;
    spin.finish_and_clear();
    let Read {
        users,
        kind: read_kind,
        remember,
    } = read?;
    let source_ms = started.elapsed().as_millis() as u64;
    tracing::info!(people = users.len(), read = %read_kind, ms = source_ms, "directory read");
    safety::check_read(users.len(), journal.last_good_source_count()?, &cfg.safety)?;
    let groups = match &cfg.groups {
        None => None,
        Some(g) => {
            let spin = crate::progress::spinner(cfg.progress, "reading groups");
            let remembered = journal.cursor(&groups_key(cfg))?;
            let read = directory
                .read_groups(g, &users, remembered.as_deref(), force_full, now)
                .await;
            spin.finish_and_clear();
            Some(read?)
        }
    };
    let delta = match (&remember, from) {
        (
            Some(Remember {
                cache: CacheChange::Delta { upserted, removed },
                ..
            }),
            Some(from),
        ) => Some(Delta {
            from: cursor_mark(&from),
            anchors: upserted.union(removed).cloned().collect(),
        }),
        _ => None,
    };
    Ok(DirectoryRead {
        users,
        read_kind,
        remember,
        source_ms,
        groups,
        delta,
    })
}

async fn read_people(
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
    let mut read = directory.read(&request).await?;
    let Some(remembered) = &remembered else {
        return Ok(read);
    };
    // An incremental read never suspends anyone on its own (`source::confirm`).
    let leavers = confirm::reported_leavers(&read, remembered);
    if leavers.len() > confirm::AT_MOST {
        let why = confirm::full_read_reason(leavers.len());
        tracing::warn!(reported = leavers.len(), "{why}");
        let request = ReadRequest {
            force_full: true,
            ..request
        };
        let mut full = directory.read(&request).await?;
        full.kind = ReadKind::Full { why };
        return Ok(full);
    }
    if !leavers.is_empty() {
        let found = directory.read_people_at(&leavers).await?;
        let kept = confirm::apply(&mut read, &leavers, found);
        tracing::info!(
            reported = leavers.len(),
            kept,
            "removals and disables the incremental read reported, confirmed by direct reads"
        );
    }
    Ok(read)
}

/// One app's side: its accounts, its links (from `journal`, the app's handle), its groups
/// and who of the read is outside its scope. Only readers are used.
pub(super) async fn read_app<'d>(
    app: &AppConfig,
    journal: &Journal,
    client: &ScimClient,
    read: &'d DirectoryRead,
    progress: bool,
    source: AppSource<'_>,
) -> Result<Snapshot<'d>, RunError> {
    let links = journal.links()?;
    let directory_groups = read
        .groups
        .as_ref()
        .map(|g| g.groups.as_slice())
        .unwrap_or_default();
    let out_of_scope = app
        .scope
        .outside(&app.name, &read.users, directory_groups, links.len())?;
    discover(journal, client).await?;
    let side = AppSide {
        app,
        journal,
        client,
    };
    let started = std::time::Instant::now();
    let spin = crate::progress::spinner(progress, "reading the app's accounts");
    let accounts = match source {
        AppSource::List => {
            super::accounts::read_accounts(app, client, &links, &read.users, &out_of_scope)
                .await
                .map(|a| {
                    let why = "listed".to_string();
                    (a, AppRead::Full { why })
                })
                .map_err(RunError::from)
        }
        AppSource::Remembered {
            force_full,
            changes_read,
            now,
        } => {
            let users = &read.users;
            side.accounts(&links, users, &out_of_scope, force_full, changes_read, now)
                .await
        }
    };
    spin.finish_and_clear();
    let (accounts, app_read) = accounts?;
    tracing::info!(
        app = %app.name,
        accounts = accounts.len(),
        ms = started.elapsed().as_millis() as u64,
        "app accounts read"
    );
    let (groups, groups_read) = match &app.groups {
        None => (None, None),
        Some(g) => {
            let links = journal.group_links()?;
            let (listed, read) = list_groups(&side, &links, source, app_read.is_full()).await?;
            let groups = app_groups(app, g, listed, links, directory_groups, &accounts)?;
            (Some(groups), read)
        }
    };
    // Asked only of apps that sync photos: the app's own word beats a refusal per person.
    let photos_read_only = app.policy.photos.is_some()
        && app.target.photo == crate::app::settings::PhotoUpload::Scim
        && client.discovery().await?.photos_read_only();
    Ok(Snapshot {
        users: &read.users,
        accounts,
        links,
        groups,
        out_of_scope,
        photos_read_only,
        escrowed: escrowed(journal, source)?,
        app_read,
        groups_read,
        focus: None,
    })
}

/// The app's escrowed actions, and the parts it refused for good unless `--full` asks
/// for them again.
fn escrowed(
    journal: &Journal,
    source: AppSource<'_>,
) -> Result<BTreeMap<String, crate::escrow::Escrowed>, RunError> {
    let mut escrowed = journal.escrowed()?;
    if let AppSource::Remembered {
        force_full: true, ..
    } = source
    {
        escrowed.retain(|k, _| !k.starts_with(crate::escrow::PART_PREFIX));
    }
    Ok(escrowed)
}

/// The app's groups as `source` says: listed, or remembered (listed whole when the
/// accounts were, `accounts_listed`).
async fn list_groups(
    side: &AppSide<'_>,
    links: &BTreeMap<Anchor, GroupLink>,
    source: AppSource<'_>,
    accounts_listed: bool,
) -> Result<(Vec<AppGroup>, Option<AppGroupsRead>), RunError> {
    Ok(match source {
        AppSource::List => (side.client.list_groups().await?, None),
        AppSource::Remembered { now, .. } => {
            let (groups, read) = side.groups(links, accounts_listed, now).await?;
            (groups, Some(read))
        }
    })
}

/// Both sides' groups of an app that syncs them: the directory's it takes (`only`, nested
/// or direct members), the app's (members it names by userName recognised), the links.
fn app_groups(
    app: &AppConfig,
    g: &crate::config::GroupsConfig,
    mut app_groups: Vec<AppGroup>,
    links: BTreeMap<Anchor, GroupLink>,
    directory_groups: &[DirectoryGroup],
    accounts: &[Account],
) -> Result<Groups, RunError> {
    let directory: Vec<DirectoryGroup> = directory_groups
        .iter()
        .filter(|d| {
            g.only
                .as_ref()
                .is_none_or(|only| only.contains(&d.name.to_lowercase()))
        })
        .map(|d| DirectoryGroup {
            members: if g.nested {
                d.transitive.clone()
            } else {
                d.direct.clone()
            },
            ..d.clone()
        })
        .collect();
    let named = recognise_members(&mut app_groups, accounts);
    if named > 0 {
        tracing::info!(app = %app.name, members = named, "the app names group members by userName, not id: recognised");
    }
    safety::check_groups(directory.len(), links.len())?;
    tracing::info!(app = %app.name, directory = directory.len(), app_groups = app_groups.len(), "groups read");
    Ok(Groups {
        directory,
        app: app_groups,
        links,
    })
}

/// What the app says of itself: the journal's copy when read less than a day ago (handed
/// to the client: no request), else read now and kept for a day.
pub(super) async fn discover(journal: &Journal, client: &ScimClient) -> Result<(), RunError> {
    let now = Utc::now();
    let kept = journal.discovery_documents()?.and_then(|(at, text)| {
        let fresh = now - at < chrono::Duration::hours(24) && at <= now;
        fresh.then(|| serde_json::from_str(&text).ok()).flatten()
    });
    match kept {
        Some(documents) => client.preload(documents),
        None => {
            if let Some(documents) = client.fetched_documents().await? {
                // Real schemas are tens of KiB; an app sending megabytes is not kept (each
                // run then asks again).
                const MAX_KEPT: usize = 4 << 20;
                let text = serde_json::to_string(documents).unwrap_or_default();
                if text.len() <= MAX_KEPT {
                    journal.save_discovery(&text, now)?;
                } else {
                    tracing::warn!(
                        bytes = text.len(),
                        "the app's discovery documents are too large to keep in the journal"
                    );
                }
            }
        }
    }
    Ok(())
}

/// Group members an app reads back by userName (or email) instead of the account's id,
/// translated to the id when it names exactly one account (detected per member, never
/// assumed), so group sync converges. Returns how many were translated.
pub(super) fn recognise_members(groups: &mut [AppGroup], accounts: &[Account]) -> usize {
    use std::collections::BTreeSet;
    let ids: BTreeSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    let mut by_name: BTreeMap<String, Vec<&crate::model::AccountId>> = BTreeMap::new();
    for a in accounts {
        by_name
            .entry(a.user_name.as_str().to_lowercase())
            .or_default()
            .push(&a.id);
    }
    let mut translated = 0;
    for g in groups {
        let members = std::mem::take(&mut g.members);
        g.members = members
            .into_iter()
            .map(|m| {
                if ids.contains(m.as_str()) {
                    return m;
                }
                match by_name.get(&m.as_str().to_lowercase()).map(Vec::as_slice) {
                    Some([id]) => {
                        translated += 1;
                        g.listed_as.insert((*id).clone(), m.as_str().to_string());
                        (*id).clone()
                    }
                    _ => m,
                }
            })
            .collect();
    }
    translated
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

/// Records who is in the groups and subtrees the console's people scopes name, as of this
/// read (a group missing from it keeps what was recorded before).
pub(super) fn record_roster(
    cfg: &Config,
    journal: &Journal,
    read: &DirectoryRead,
) -> Result<(), RunError> {
    let Some(console) = &cfg.console else {
        return Ok(());
    };
    let groups = read
        .groups
        .as_ref()
        .map_or(&[][..], |g| g.groups.as_slice());
    let mut found = Vec::new();
    for unit in console.roster_units() {
        match crate::roster::members(&unit, &read.users, groups) {
            Some(people) => {
                let anchors = people.iter().map(|a| a.as_str().to_string()).collect();
                found.push((unit.key(), anchors));
            }
            None => {
                tracing::warn!(unit = ?unit, "a console people scope names a group this read does not have: its people stay as last recorded")
            }
        }
    }
    if !found.is_empty() {
        journal.save_roster(&found)?;
    }
    Ok(())
}

/// How the app was read, for the run's counts: its accounts, its groups, and how many
/// people a focused plan looked at.
pub(super) fn app_read_text(snap: &Snapshot<'_>, plan: &crate::plan::Plan) -> String {
    let mut text = snap.app_read.to_string();
    if let Some(groups) = &snap.groups_read {
        text.push_str(&format!("; {groups}"));
    }
    if let Some(n) = plan.stats.looked_at {
        let gone = match plan.stats.gone_looked_at {
            Some(g) if g > 0 => format!(" and {g} link(s) whose person is gone"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "; plan looked at {n} of {} people{gone} (changed since the last plan, or the rules may act on them)",
            snap.users.len()
        ));
    }
    text
}

/// The linked people of this read whose link was last seen on an earlier day (a leaver's
/// reason says the day they were last seen): a quiet cycle rewrites no link.
pub(super) fn unseen_today<'s>(snap: &'s Snapshot<'_>, now: DateTime<Utc>) -> Vec<&'s Anchor> {
    let today = now.date_naive();
    snap.users
        .iter()
        .map(|u| &u.anchor)
        .filter(|a| {
            snap.links
                .get(*a)
                .is_some_and(|l| l.last_seen.is_none_or(|t| t.date_naive() < today))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, UserName};

    fn account(id: &str, name: &str) -> Account {
        Account {
            id: AccountId::new(id),
            user_name: UserName::new(name),
            active: true,
            resource: serde_json::json!({}).into(),
        }
    }

    #[test]
    fn members_named_by_user_name_are_recognised_as_their_accounts() {
        let accounts = [account("A1", "ada@x.org"), account("B2", "bob@x.org")];
        let mut groups = [AppGroup {
            id: "G".into(),
            display_name: "eng".into(),
            members: ["A1", "BOB@x.org", "someone-else", "G2"]
                .into_iter()
                .map(AccountId::new)
                .collect(),
            listed_as: Default::default(),
            modified: None,
        }];
        assert_eq!(recognise_members(&mut groups, &accounts), 1);
        let members: Vec<&str> = groups[0].members.iter().map(AccountId::as_str).collect();
        assert_eq!(members, ["A1", "B2", "G2", "someone-else"]);
        // A removal names the member as the app lists it.
        assert_eq!(groups[0].listed_as[&AccountId::new("B2")], "BOB@x.org");
    }
}
