//! The one place that turns configured kinds into connectors: the directory reader (LDAP/AD
//! or Graph) and the app client (SCIM). A run is handed `Connectors` and never matches on
//! a config kind itself.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::app::scim::ScimClient;
use crate::app::TargetError;
use crate::config::{AppConfig, Config, GroupsConfig, Incremental, LdapIncremental, SourceConfig};
use crate::model::{DirectoryGroup, DirectoryUser};
use crate::source::graph::GraphReader;
use crate::source::ldap::LdapReader;
use crate::source::{DirectoryReader, Read, ReadKind, ReadRequest, Remembered, Since, SourceError};

/// Where a run reads people and groups from.
pub enum Directory {
    Ldap(LdapReader),
    Graph(GraphReader),
}

/// What one cycle reads from and writes to: one directory, the apps it serves.
pub struct Connectors {
    pub directory: Directory,
    /// Each selected app's client, by app name.
    pub apps: BTreeMap<String, ScimClient>,
}

/// Either side's connector could not be made (an unreadable CA file, ...).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Target(#[from] TargetError),
}

impl Connectors {
    /// The directory `cfg` describes, and a client for each of `apps`.
    pub fn open(cfg: &Config, apps: &[&AppConfig]) -> Result<Connectors, ConnectError> {
        let directory = match &cfg.source {
            SourceConfig::Ldap(l) => Directory::Ldap(LdapReader::new(l.clone())),
            SourceConfig::Graph(g) => Directory::Graph(GraphReader::new(g.clone())?),
        };
        let mut clients = BTreeMap::new();
        for app in apps {
            clients.insert(app.name.clone(), client(app)?);
        }
        Ok(Connectors {
            directory,
            apps: clients,
        })
    }

    /// The client of an app `open` was given.
    pub fn app(&self, name: &str) -> &ScimClient {
        &self.apps[name]
    }
}

/// An app's SCIM client: keeping only what its policy reads, its group PATCH size.
pub fn client(app: &AppConfig) -> Result<ScimClient, TargetError> {
    let c = ScimClient::new(app.target.clone())?.keeping(app.policy.account_attributes());
    Ok(match &app.groups {
        Some(g) => c.with_group_batch(
            app.target
                .group_patch_max_members
                .map_or(g.batch, |cap| g.batch.min(cap)),
        ),
        None => c,
    })
}

/// `check --connect` with an incremental source: one incremental read from the cookie
/// (or USN mark) the full read just took, and what it returned. A server that cannot
/// resume from a cookie it has just issued, or that reports removals nobody made, shows
/// here instead of at the first scheduled cycle.
async fn incremental_probe(
    reader: &LdapReader,
    cursor: String,
    users: &[DirectoryUser],
) -> Result<String, SourceError> {
    let remembered = Remembered {
        cursor: Some(cursor),
        users: users.to_vec(),
    };
    let request = ReadRequest {
        remembered: Some(&remembered),
        force_full: false,
        now: Utc::now(),
        photo_hashes: &BTreeMap::new(),
    };
    let again = reader.read(&request).await?;
    let (how, settings) = match reader.settings().incremental {
        LdapIncremental::Usn => ("USN", None),
        _ => ("syncrepl", reader.ds389_sync_settings().await?),
    };
    let settings = settings.map(|s| format!("; {s}")).unwrap_or_default();
    let said = match again.kind {
        ReadKind::Incremental { changed, removed: 0 } => format!(
            "; {how}: an incremental read from a fresh cookie works ({changed} changed since, 0 removed)"
        ),
        ReadKind::Incremental { changed, removed } => format!(
            "; warning: {how}: an incremental read from a fresh cookie reported {changed} changed and {removed} removed although the read had just been taken: idsync confirms every removal by a direct read before planning it, but check the server's content sync settings"
        ),
        ReadKind::Full { why } => format!(
            "; warning: {how}: the server could not resume from the cookie it had just issued ({why}): every cycle would read everything; OpenLDAP: load the syncprov overlay on this database; 389-ds: enable the Retro Changelog (nsslapd-attribute: nsuniqueid:targetUniqueId) and the Content Synchronization plugin"
        ),
    };
    Ok(said + &settings)
}

/// A directory's groups, and (Graph delta) the state to remember for the next read.
pub struct GroupsRead {
    pub groups: Vec<DirectoryGroup>,
    pub cursor: Option<String>,
}

impl Directory {
    /// Whether a read needs what the journal remembers of the last one: an incremental
    /// read does, and so does a forced full read of Graph photos (their ETags).
    pub fn wants_remembered(&self, force_full: bool) -> bool {
        match self {
            Directory::Ldap(l) => l.settings().incremental != LdapIncremental::None && !force_full,
            Directory::Graph(g) => {
                let s = g.settings();
                s.incremental == Incremental::Delta && (!force_full || s.photo)
            }
        }
    }

    /// What the directory changed since `cursor`, where the source can tell without
    /// reading the population (LDAP syncrepl, Active Directory's USNs, a Graph delta that
    /// reports nobody) and few changed; else `None`.
    pub async fn quiet_since(
        &self,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Since>, SourceError> {
        match self {
            Directory::Ldap(l) => match l.settings().incremental {
                LdapIncremental::Syncrepl => l.quiet_since(cursor, now).await,
                LdapIncremental::Usn => l.usn_quiet_since(cursor, now).await,
                LdapIncremental::None => Ok(None),
            },
            Directory::Graph(g) => g.quiet_since(cursor, now).await,
        }
    }

    /// Each of `people` (remembered) read again directly, as they are now (`None`: gone
    /// or out of scope): what confirms an incremental read's removals and disables.
    pub async fn read_people_at(
        &self,
        people: &[&DirectoryUser],
    ) -> Result<Vec<Option<DirectoryUser>>, SourceError> {
        match self {
            Directory::Ldap(l) => l.read_people_at(people).await,
            Directory::Graph(g) => g.read_people_at(people).await,
        }
    }

    /// The configured groups, members resolved to `users`; `remembered` is the cursor the
    /// last groups read left (only Graph keeps one).
    pub async fn read_groups(
        &self,
        groups: &GroupsConfig,
        users: &[DirectoryUser],
        remembered: Option<&str>,
        force_full: bool,
        now: DateTime<Utc>,
    ) -> Result<GroupsRead, SourceError> {
        Ok(match self {
            Directory::Ldap(l) => GroupsRead {
                groups: l.read_groups(groups, users).await?,
                cursor: None,
            },
            Directory::Graph(g) => {
                let read = g
                    .read_groups(groups, users, remembered, force_full, now)
                    .await?;
                tracing::info!(members_read = read.members_read, "graph group members read");
                GroupsRead {
                    groups: read.groups,
                    cursor: read.cursor,
                }
            }
        })
    }

    /// `check --connect`'s line about the directory, and the people it read: LDAP binds
    /// and reads the people (and groups); Graph gets a token and the first page of
    /// `/users` (no one returned).
    pub async fn probe(
        &self,
        groups: Option<&GroupsConfig>,
    ) -> Result<(String, Vec<DirectoryUser>), SourceError> {
        let reader = match self {
            Directory::Graph(g) => return Ok((g.probe().await?, Vec::new())),
            Directory::Ldap(l) => l,
        };
        let request = ReadRequest {
            remembered: None,
            force_full: true,
            now: Utc::now(),
            photo_hashes: &BTreeMap::new(),
        };
        let Read {
            users, remember, ..
        } = reader.read(&request).await?;
        let mut text = format!(
            "directory: {} people in scope ({} disabled)",
            users.len(),
            users.iter().filter(|u| u.disabled).count()
        );
        if users.is_empty() {
            text.push_str("; warning: the read found no one: check source.base_dn, source.filter and the bind account's read rights (a sync would stop at min_source_users)");
        }
        let refs = reader.skipped_references();
        if !refs.is_empty() {
            let what = if reader.settings().follow_referrals {
                "not followed further"
            } else {
                "skipped; set source.follow_referrals: true to read them too"
            };
            text.push_str(&format!(
                "; {} search reference(s) to other naming contexts or servers, {what}: {}",
                refs.len(),
                refs.join(", ")
            ));
        }
        if let Some(g) = groups {
            let read = self.read_groups(g, &users, None, true, Utc::now()).await?;
            text.push_str(&format!(", {} groups", read.groups.len()));
        }
        if let Some(remember) = remember {
            text.push_str(&incremental_probe(reader, remember.cursor, &users).await?);
        }
        Ok((text, users))
    }
}

impl DirectoryReader for Directory {
    async fn read(&self, request: &ReadRequest<'_>) -> Result<Read, SourceError> {
        match self {
            Directory::Ldap(l) => l.read(request).await,
            Directory::Graph(g) => g.read(request).await,
        }
    }
}
