//! The app's groups on a quiet cycle, as its accounts (`super`): the journal remembers every
//! group as the app last listed it (`journal/app_groups.rs`). `/Groups` is listed whole
//! when the accounts are (and the first time groups are synced); between, a cycle plans
//! against the remembered groups plus what the app changed since (`meta.lastModified`,
//! where the app filters) and the groups written since they were read; before writing, the
//! groups the plan acts on are read again and the groups it would create looked up by
//! name; after, the written groups are read back.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::app::scim::Stamp;
use crate::app::{GroupReader, TargetError};
use crate::journal::{Journal, Watermark};
use crate::model::Anchor;
use crate::model::{AppGroup, GroupLink};
use crate::plan::{ActionKind, Plan};

use super::{latest_stamp, AppSide, Verified};
use crate::run::RunError;

/// How a cycle read the app's groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppGroupsRead {
    /// `/Groups` listed whole (and remembered).
    Listed,
    /// The remembered groups; `read` of them read again, `verified` before writing.
    Remembered { read: usize, verified: usize },
}

impl std::fmt::Display for AppGroupsRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppGroupsRead::Listed => write!(f, "groups listed in full"),
            AppGroupsRead::Remembered { read, verified } => write!(
                f,
                "groups remembered: {read} read again, {verified} checked before writing"
            ),
        }
    }
}

/// The latest `meta.lastModified` of these groups and `since`.
fn latest(groups: &[AppGroup], since: Option<&str>) -> Option<String> {
    latest_stamp(groups.iter().filter_map(|g| g.modified.as_deref()), since)
}

impl AppSide<'_> {
    /// The app's groups for this cycle: listed whole and remembered when `list` (the
    /// accounts were listed whole) or when they never were, else the remembered ones with
    /// what changed since read again.
    pub async fn groups(
        &self,
        links: &BTreeMap<Anchor, GroupLink>,
        list: bool,
        now: DateTime<Utc>,
    ) -> Result<(Vec<AppGroup>, AppGroupsRead), RunError> {
        let marks = match self.journal.group_read_marks()? {
            Some(marks) if !list => marks,
            _ => {
                let groups = self.client.list_groups().await?;
                let watermark = latest(&groups, None);
                self.journal
                    .remember_all_groups(&groups, watermark.as_deref(), now)?;
                return Ok((groups, AppGroupsRead::Listed));
            }
        };
        let remembered = self.journal.remembered_groups()?;
        let stamps = self
            .groups_changed_since(marks.watermark.as_deref())
            .await?;
        let known: BTreeMap<&str, Option<&str>> = remembered
            .groups
            .iter()
            .map(|g| (g.id.as_str(), g.modified.as_deref()))
            .collect();
        // Changed since they were read (by their stamp), written since, or linked and never
        // read (a create): read now.
        let mut again: BTreeSet<String> = remembered.stale.clone();
        again.extend(
            stamps
                .iter()
                .filter(|s| known.get(s.id.as_str()) != Some(&s.modified.as_deref()))
                .map(|s| s.id.clone()),
        );
        again.extend(
            links
                .values()
                .map(|l| l.group_id.clone())
                .filter(|id| !known.contains_key(id.as_str())),
        );
        let again: Vec<String> = again.into_iter().collect();
        let (seen, gone) = self.groups_again(&again).await?;
        let watermark = latest_stamp(
            stamps.iter().filter_map(|s| s.modified.as_deref()),
            marks.watermark.as_deref(),
        );
        let moved = watermark.as_deref().map(Watermark::Moved);
        self.journal.remember_groups(&seen, &gone, moved)?;
        let read = seen.len() + gone.len();
        Ok((
            merged(remembered.groups, seen, &gone),
            AppGroupsRead::Remembered { read, verified: 0 },
        ))
    }

    /// What the app changed in its groups since `watermark`, where it can say.
    async fn groups_changed_since(&self, watermark: Option<&str>) -> Result<Vec<Stamp>, RunError> {
        let Some(since) = watermark else {
            return Ok(Vec::new());
        };
        if !self.client.discovery().await?.filter {
            return Ok(Vec::new());
        }
        match self.client.groups_changed_since(since).await {
            Ok(changed) => Ok(changed),
            Err(TargetError::Http { status, .. }) if (400..500).contains(&status) => {
                tracing::warn!(app = %self.app.name, status, "the app does not filter groups on meta.lastModified: memberships edited in the app are repaired at the next full read (target.full_every)");
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// These groups as the app has them now, and those it no longer has.
    async fn groups_again(&self, ids: &[String]) -> Result<(Vec<AppGroup>, Vec<String>), RunError> {
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let fresh = self
            .client
            .get_groups(ids, self.app.target.concurrency)
            .await?;
        let found: BTreeSet<&str> = fresh.iter().map(|g| g.id.as_str()).collect();
        let gone = ids
            .iter()
            .filter(|id| !found.contains(id.as_str()))
            .cloned()
            .collect();
        Ok((fresh, gone))
    }

    /// Before an incremental plan writes: the groups it acts on read again and the groups
    /// it creates looked up by name. What differs from the remembered groups is remembered
    /// as read now (`remembered_groups` then gives this cycle's groups).
    pub async fn verify_groups(
        &self,
        plan: &Plan,
        read: &mut Option<AppGroupsRead>,
    ) -> Result<Verified, RunError> {
        let acting = plan
            .actions
            .iter()
            .filter(|a| a.held.is_none() && a.kind.is_group());
        let ids: Vec<String> = acting
            .clone()
            .filter(|a| a.kind != ActionKind::GroupCreate)
            .filter_map(|a| a.account_id.as_ref().map(|id| id.as_str().to_string()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let names: BTreeSet<&str> = acting
            .filter(|a| a.kind == ActionKind::GroupCreate)
            .map(|a| a.user_name.as_str())
            .collect();
        if ids.is_empty() && names.is_empty() {
            return Ok(Verified::Same);
        }
        if !names.is_empty() && !self.client.discovery().await?.filter {
            return Ok(Verified::NeedsFull);
        }
        let remembered = self.journal.remembered_groups()?.groups;
        let before: BTreeMap<&str, &AppGroup> =
            remembered.iter().map(|g| (g.id.as_str(), g)).collect();
        let (mut fresh, gone) = self.groups_again(&ids).await?;
        let mut found = Vec::new();
        for name in &names {
            if let Some(id) = self.client.find_group(name).await? {
                if !before.contains_key(id.as_str()) {
                    found.push(id);
                }
            }
        }
        let (made, _) = self.groups_again(&found).await?;
        if let Some(AppGroupsRead::Remembered { verified, .. }) = read {
            *verified = ids.len() + names.len();
        }
        let same = |g: &AppGroup| {
            before
                .get(g.id.as_str())
                .is_some_and(|b| b.display_name == g.display_name && b.members == g.members)
        };
        let differs = !gone.is_empty() || !made.is_empty() || fresh.iter().any(|g| !same(g));
        fresh.extend(made);
        self.journal.remember_groups(&fresh, &gone, None)?;
        Ok(match differs {
            true => Verified::Changed,
            false => Verified::Same,
        })
    }

    /// After the writes: the groups written (or tried) read again. Those that cannot be
    /// read now are read at the next cycle.
    pub async fn after_group_writes(&self, ids: Vec<String>) -> Result<(), RunError> {
        if ids.is_empty() {
            return Ok(());
        }
        match self.groups_again(&ids).await {
            Ok((fresh, gone)) => {
                let first = latest(&fresh, None);
                let first = first.as_deref().map(Watermark::First);
                self.journal.remember_groups(&fresh, &gone, first)?
            }
            Err(e) => {
                tracing::warn!(app = %self.app.name, error = %e, "the written groups could not be read again: the next cycle reads them");
                self.journal.forget_group_state(&ids)?;
            }
        }
        Ok(())
    }
}

/// `groups` with `seen` put in (as read now) and `gone` taken out.
fn merged(groups: Vec<AppGroup>, seen: Vec<AppGroup>, gone: &[String]) -> Vec<AppGroup> {
    let gone: BTreeSet<&str> = gone.iter().map(String::as_str).collect();
    let mut by_id: BTreeMap<String, AppGroup> = groups
        .into_iter()
        .filter(|g| !gone.contains(g.id.as_str()))
        .map(|g| (g.id.clone(), g))
        .collect();
    for g in seen {
        by_id.insert(g.id.clone(), g);
    }
    by_id.into_values().collect()
}

/// The groups these actions wrote or tried to: those they name, and those the run's
/// creates linked.
pub fn written_groups(
    journal: &Journal,
    actions: &[crate::plan::Action],
) -> Result<Vec<String>, RunError> {
    let acted = actions
        .iter()
        .filter(|a| a.held.is_none() && a.kind.is_group());
    let mut ids: BTreeSet<String> = acted
        .clone()
        .filter_map(|a| a.account_id.as_ref().map(|id| id.as_str().to_string()))
        .collect();
    let created: BTreeSet<&Anchor> = acted
        .filter(|a| a.kind == ActionKind::GroupCreate)
        .filter_map(|a| a.anchor.as_ref())
        .collect();
    if !created.is_empty() {
        let links = journal.group_links()?;
        ids.extend(
            created
                .iter()
                .filter_map(|a| links.get(*a))
                .map(|l| l.group_id.clone()),
        );
    }
    Ok(ids.into_iter().collect())
}
