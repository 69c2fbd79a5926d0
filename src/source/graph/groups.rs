//! Graph groups: `/groups` and each group's `/members`, incrementally with `/groups/delta`
//! (members read only for groups it reports changed).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::transport::{get_failed, GetError};
use super::{anchor_of, user_from, GraphReader};
use crate::http::{path_segment, snippet};
use crate::model::{Anchor, DirectoryGroup, DirectoryUser};
use crate::source::settings::{GroupsConfig, Incremental};
use crate::source::SourceError;

/// Graph group properties a group name template may read.
const GROUP_PROPERTIES: &[&str] = &[
    "displayName",
    "description",
    "mail",
    "mailNickname",
    "securityEnabled",
    "mailEnabled",
    "onPremisesSamAccountName",
];

/// One group as remembered between runs: as listed, and every member id.
#[derive(Serialize, Deserialize)]
struct GraphGroup {
    id: String,
    props: Value,
    users: BTreeSet<String>,
    groups: BTreeSet<String>,
}

/// What a Graph source remembers of the groups: the `/groups/delta` link and the members
/// read so far.
#[derive(Serialize, Deserialize)]
struct GroupCursor {
    delta_link: String,
    select: String,
    filter: Option<String>,
    last_full: DateTime<Utc>,
    groups: Vec<GraphGroup>,
}

/// A groups read: the groups, and (incremental) what to remember for the next one.
pub struct GroupRead {
    pub groups: Vec<DirectoryGroup>,
    pub cursor: Option<String>,
    /// Groups whose members were read (not taken from what was remembered).
    pub members_read: usize,
}

/// The `$select` of `/groups`: `id`, `displayName` and what the name template reads.
fn group_select(cfg: &GroupsConfig) -> String {
    let mut select: Vec<String> = vec!["id".into(), "displayName".into()];
    for a in cfg.name.attributes() {
        let known = GROUP_PROPERTIES
            .iter()
            .find(|p| p.eq_ignore_ascii_case(a))
            .map_or(a, |p| *p);
        if !select.iter().any(|s| s.eq_ignore_ascii_case(known)) {
            select.push(known.to_string());
        }
    }
    select.join(",")
}

impl GraphReader {
    /// What the remembered groups cursor still says: which groups changed since (`None`:
    /// read every group's members), the delta link to remember, when the last full read was.
    async fn groups_since(
        &self,
        cfg: &GroupsConfig,
        select: &str,
        remembered: Option<&str>,
        force_full: bool,
        now: DateTime<Utc>,
    ) -> Result<Since, SourceError> {
        let tracked = self.cfg.incremental == Incremental::Delta;
        let cursor = remembered
            .and_then(|c| serde_json::from_str::<GroupCursor>(c).ok())
            .filter(|c| tracked && !force_full && c.select == *select && c.filter == cfg.filter)
            .filter(|c| !crate::source::full_every_due(c.last_full, self.cfg.full_every, now));
        // Which remembered groups changed since (None: read every group's members).
        let mut changed: Option<BTreeSet<String>> = None;
        let mut delta_link = None;
        let mut last_full = now;
        if let Some(c) = &cursor {
            match self
                .pages(self.link(&c.delta_link).map_err(get_failed)?)
                .await
            {
                Ok(pages) => {
                    changed = Some(
                        pages
                            .items
                            .iter()
                            .filter_map(|i| anchor_of(i).ok())
                            .map(|a| a.to_string())
                            .collect(),
                    );
                    delta_link = pages.delta_link;
                    last_full = c.last_full;
                }
                Err(GetError::Failed(e)) => return Err(e),
                Err(GetError::Stale(why)) => {
                    tracing::warn!(reason = %why, "the groups delta link is no longer valid; reading every group again");
                }
            }
        }
        if tracked && delta_link.is_none() {
            // Taken before the read, so no change made during it is missed.
            let mut u = self.api("groups/delta");
            u.query_pairs_mut()
                .append_pair("$select", "displayName,members")
                .append_pair("$deltatoken", "latest");
            delta_link = Some(self.all_delta_link(u).await?);
            changed = None;
            last_full = now;
        }
        Ok(Since {
            cursor,
            changed,
            delta_link,
            last_full,
        })
    }

    /// The configured groups (`/groups`, each group's `/members`), members resolved to
    /// `people`; member groups are nesting, flattened when `groups.nested` is on.
    ///
    /// With `incremental: delta` the group list (cheap: one page per 999 groups) is read
    /// every run, but members only of the groups `/groups/delta` reports changed since the
    /// remembered delta link (and of new ones); the others' members come from `remembered`.
    /// A dead delta link, `full_every` or `--full` read every group's members again.
    pub async fn read_groups(
        &self,
        cfg: &GroupsConfig,
        people: &[DirectoryUser],
        remembered: Option<&str>,
        force_full: bool,
        now: DateTime<Utc>,
    ) -> Result<GroupRead, SourceError> {
        let select = group_select(cfg);
        let Since {
            cursor,
            changed,
            delta_link,
            last_full,
        } = self
            .groups_since(cfg, &select, remembered, force_full, now)
            .await?;
        let known: BTreeMap<&str, &GraphGroup> = cursor
            .iter()
            .flat_map(|c| c.groups.iter())
            .map(|g| (g.id.as_str(), g))
            .collect();
        let mut url = self.api("groups");
        url.query_pairs_mut()
            .append_pair("$select", &select)
            .append_pair("$top", &self.cfg.page_size.to_string());
        if let Some(f) = &cfg.filter {
            url.query_pairs_mut().append_pair("$filter", f);
        }
        let mut groups = Vec::new();
        let mut members_read = 0usize;
        for item in self.all_pages(url).await? {
            let id = anchor_of(&item)
                .map_err(|_| SourceError::BadEntry {
                    dn: snippet(&item.to_string()),
                    detail: "a group without `id`".into(),
                })?
                .to_string();
            let reuse = known
                .get(id.as_str())
                .filter(|_| changed.as_ref().is_some_and(|c| !c.contains(&id)));
            let (users, nested) = match reuse {
                Some(g) => (g.users.clone(), g.groups.clone()),
                None => {
                    members_read += 1;
                    self.group_members(&id).await?
                }
            };
            groups.push(GraphGroup {
                id,
                props: item,
                users,
                groups: nested,
            });
        }
        tracing::debug!(groups = groups.len(), members_read, "graph groups read");
        let raw = raw_groups(&groups, people, cfg);
        let cursor = delta_link.map(|delta_link| {
            serde_json::to_string(&GroupCursor {
                delta_link,
                select,
                filter: cfg.filter.clone(),
                last_full,
                groups,
            })
            .unwrap_or_default()
        });
        Ok(GroupRead {
            groups: crate::source::groups::assemble(raw, cfg),
            cursor,
            members_read,
        })
    }

    /// A group's member ids: (users, groups), every page.
    async fn group_members(
        &self,
        id: &str,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>), SourceError> {
        let mut url = self.api(&format!("groups/{}/members", path_segment(id)));
        url.query_pairs_mut()
            .append_pair("$select", "id")
            .append_pair("$top", &self.cfg.page_size.to_string());
        let (mut users, mut groups) = (BTreeSet::new(), BTreeSet::new());
        for m in self.all_pages(url).await? {
            let Ok(member) = anchor_of(&m) else { continue };
            let kind = m
                .get("@odata.type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if kind.eq_ignore_ascii_case("#microsoft.graph.group") {
                groups.insert(member.to_string());
            } else {
                users.insert(member.to_string());
            }
        }
        Ok((users, groups))
    }
}

/// Graph groups as the group assembler takes them: members that are people read.
fn raw_groups(
    groups: &[GraphGroup],
    people: &[DirectoryUser],
    cfg: &GroupsConfig,
) -> Vec<crate::source::groups::RawGroup> {
    let present: BTreeSet<&Anchor> = people.iter().map(|p| &p.anchor).collect();
    groups
        .iter()
        .map(|g| {
            let as_user = user_from(&g.props).ok();
            crate::source::groups::RawGroup {
                key: g.id.clone(),
                anchor: Anchor::new(g.id.clone()),
                locator: format!("group {}", g.id),
                name: as_user.and_then(|u| cfg.name.render(&u)),
                people: g
                    .users
                    .iter()
                    .map(|u| Anchor::new(u.clone()))
                    .filter(|a| present.contains(a))
                    .collect(),
                groups: g.groups.clone(),
            }
        })
        .collect()
}

/// The groups' incremental state for one read (see `groups_since`).
struct Since {
    cursor: Option<GroupCursor>,
    changed: Option<BTreeSet<String>>,
    delta_link: Option<String>,
    last_full: DateTime<Utc>,
}
