//! SCIM `/Groups`: create (with the first batch of members), find, PATCH members in
//! batches, delete.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use url::Url;

use super::{id_text, ScimClient, GROUP_SCHEMA, PATCH_OP};
use crate::app::{GroupReader, GroupWriter, TargetError};
use crate::http::path_segment;
use crate::model::{AccountId, AppGroup};

impl ScimClient {
    /// POST /Groups with the first batch of members; a 409 (the name is taken meanwhile)
    /// finds that group instead; a 413 (too many members at once) creates it with none, the
    /// PATCHes add them. Returns the group's id and the members not yet sent.
    pub(super) async fn post_group<'m>(
        &self,
        name: &str,
        members: &'m [AccountId],
    ) -> Result<(String, &'m [AccountId]), TargetError> {
        let url = self.url("Groups");
        let mut cut = members.len().min(self.batch());
        let reply = loop {
            let (first, rest) = members.split_at(cut);
            let body = json!({
                "schemas": [GROUP_SCHEMA],
                "displayName": name,
                "members": self.members(first).await?,
            });
            match self
                .send_create(&url, &body, || self.find_group(name))
                .await?
            {
                Ok(reply) if reply.status == StatusCode::PAYLOAD_TOO_LARGE && cut > 0 => {
                    self.learnt_batch
                        .fetch_min((cut / 2).max(1), std::sync::atomic::Ordering::SeqCst);
                    cut = 0;
                }
                Ok(reply) => break reply,
                // The create that timed out did reach the app, with the first batch.
                Err(id) => return Ok((id, rest)),
            }
        };
        let rest = &members[cut..];
        if reply.status.is_success() {
            return Ok((group_from(&url, reply.body)?.id, rest));
        }
        if reply.status == StatusCode::CONFLICT {
            if let Some(id) = self.find_group(name).await? {
                // Taken by a group created meanwhile: every member still has to be added.
                return Ok((id, members));
            }
        }
        Err(Self::http_error("POST", &url, &reply))
    }

    /// The id of the group named `name` (without case): by an `eq` filter, or by listing
    /// the groups where the app cannot filter.
    pub async fn find_group(&self, name: &str) -> Result<Option<String>, TargetError> {
        let groups = if self.discovery().await?.filter {
            let (url, resources) = self.filter_eq("Groups", "displayName", name).await?;
            resources
                .into_iter()
                .filter_map(|r| group_from(&url, r).ok())
                .collect()
        } else {
            self.list_all("Groups", group_from).await?
        };
        let found = groups
            .into_iter()
            .find(|g| g.display_name.eq_ignore_ascii_case(name));
        Ok(found.map(|g| g.id))
    }

    /// Members as the app takes them: `value`, and `$ref` (the account's URL) where the
    /// app's Group schema has it (or `target.member_ref` says so).
    async fn members(&self, ids: &[AccountId]) -> Result<Vec<Value>, TargetError> {
        let with_ref = match self.cfg.member_ref {
            Some(forced) => forced,
            None => self.discovery().await?.member_ref(),
        };
        Ok(ids
            .iter()
            .map(|id| match with_ref {
                true => {
                    let url = self.url(&format!("Users/{}", path_segment(id.as_str())));
                    json!({ "value": id, "$ref": url.as_str() })
                }
                false => json!({ "value": id }),
            })
            .collect())
    }

    /// PATCHes a group: rename, then members added and removed, `group_batch` members per
    /// request (the rename rides with the first). A PATCH the app finds too large (413) is
    /// sent again in halves, and the rest of this client's group PATCHes keep the smaller
    /// size: the app's cap is learnt, not guessed.
    pub(super) async fn patch_group(
        &self,
        id: &str,
        rename: Option<&str>,
        add: &[AccountId],
        remove: &[AccountId],
    ) -> Result<(), TargetError> {
        let url = self.url(&format!("Groups/{}", path_segment(id)));
        if !self.discovery().await?.patch {
            return self.put_group(&url, rename, add, remove).await;
        }
        let mut rename =
            rename.map(|n| json!({ "op": "replace", "path": "displayName", "value": n }));
        let changes: Vec<(bool, &AccountId)> = add
            .iter()
            .map(|m| (true, m))
            .chain(remove.iter().map(|m| (false, m)))
            .collect();
        let mut todo: std::collections::VecDeque<&[(bool, &AccountId)]> =
            changes.chunks(self.batch()).collect();
        if todo.is_empty() && rename.is_some() {
            todo.push_back(&[]);
        }
        while let Some(chunk) = todo.pop_front() {
            let mut ops: Vec<Value> = rename.clone().into_iter().collect();
            let added: Vec<AccountId> = chunk
                .iter()
                .filter(|(a, _)| *a)
                .map(|(_, m)| (*m).clone())
                .collect();
            let adds = self.members(&added).await?;
            if !adds.is_empty() {
                ops.push(json!({ "op": "add", "path": "members", "value": adds }));
            }
            for (_, m) in chunk.iter().filter(|(a, _)| !*a) {
                let literal = serde_json::to_string(m).unwrap_or_default();
                ops.push(json!({ "op": "remove", "path": format!("members[value eq {literal}]") }));
            }
            let body = json!({ "schemas": [PATCH_OP], "Operations": ops });
            let reply = self.send(Method::PATCH, url.clone(), Some(&body)).await?;
            if reply.status == StatusCode::PAYLOAD_TOO_LARGE && chunk.len() > 1 {
                let (first, second) = chunk.split_at(chunk.len() / 2);
                self.learnt_batch
                    .fetch_min(first.len(), std::sync::atomic::Ordering::SeqCst);
                tracing::info!(
                    group = id,
                    members = chunk.len(),
                    "the app found a group PATCH too large (413); sending it in halves"
                );
                todo.push_front(second);
                todo.push_front(first);
                continue;
            }
            if !reply.status.is_success() {
                return Err(Self::http_error("PATCH", &url, &reply));
            }
            rename = None;
        }
        Ok(())
    }

    /// For an app without PATCH: the group read afresh, renamed and its members changed,
    /// and PUT back whole.
    async fn put_group(
        &self,
        url: &Url,
        rename: Option<&str>,
        add: &[AccountId],
        remove: &[AccountId],
    ) -> Result<(), TargetError> {
        let reply = self.send(Method::GET, url.clone(), None).await?;
        if !reply.status.is_success() {
            return Err(Self::http_error("GET", url, &reply));
        }
        let mut group = reply.body;
        let gone = |m: &Value| {
            m.get("value")
                .and_then(Value::as_str)
                .is_some_and(|v| remove.iter().any(|r| r.as_str() == v))
        };
        let mut members: Vec<Value> = group
            .get("members")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter(|m| !gone(m)).cloned().collect())
            .unwrap_or_default();
        members.extend(self.members(add).await?);
        if let Some(map) = group.as_object_mut() {
            map.remove("meta");
            map.insert("members".into(), Value::Array(members));
            if let Some(name) = rename {
                map.insert("displayName".into(), Value::String(name.into()));
            }
        }
        let reply = self.send(Method::PUT, url.clone(), Some(&group)).await?;
        if reply.status.is_success() {
            return Ok(());
        }
        Err(Self::http_error("PUT", url, &reply))
    }

    /// Members per group PATCH: `group_batch`, or less once the app said 413.
    fn batch(&self) -> usize {
        self.learnt_batch
            .load(std::sync::atomic::Ordering::SeqCst)
            .min(self.group_batch)
            .max(1)
    }

    /// The group with this id, or `None` when the app says it is gone (404).
    pub async fn get_group(&self, id: &str) -> Result<Option<AppGroup>, TargetError> {
        let url = self.url(&format!("Groups/{}", path_segment(id)));
        let reply = self.send(Method::GET, url.clone(), None).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.status.is_success() {
            return Err(Self::http_error("GET", &url, &reply));
        }
        group_from(&url, reply.body).map(Some)
    }

    /// The groups with these ids the app has now (those it does not have are gone), one
    /// GET each, `width` at a time.
    pub async fn get_groups(
        &self,
        ids: &[String],
        width: usize,
    ) -> Result<Vec<AppGroup>, TargetError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let by_id: Vec<Option<AppGroup>> = stream::iter(ids)
            .map(|id| self.get_group(id))
            .buffer_unordered(width.max(1))
            .try_collect()
            .await?;
        Ok(by_id.into_iter().flatten().collect())
    }

    /// The groups the app changed since `since` (its own `meta.lastModified`) as their ids
    /// and stamps only (`attributes=meta`): a group's members are read only when its stamp
    /// is not the one remembered. Asked as the accounts' changes are: where the app sorts,
    /// first one page newest first, and where that page does not tell, a `ge` filter, paged.
    pub async fn groups_changed_since(&self, since: &str) -> Result<Vec<Stamp>, TargetError> {
        if self.discovery().await?.sort {
            let modified = |s: &Stamp| super::list::stamp_of(s.modified.as_deref());
            let newest = self
                .newest_since(GROUP_STAMPS, since, stamp, modified)
                .await?;
            if let Some(newest) = newest {
                return Ok(newest);
            }
        }
        let literal = serde_json::to_string(since).unwrap_or_default();
        let filter = format!("meta.lastModified ge {literal}");
        let endpoint = super::list::filtered(GROUP_STAMPS, &filter);
        self.list_all(&endpoint, stamp).await
    }

    pub(super) async fn remove_group(&self, id: &str) -> Result<(), TargetError> {
        let url = self.url(&format!("Groups/{}", path_segment(id)));
        let reply = self.send(Method::DELETE, url.clone(), None).await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(Self::http_error("DELETE", &url, &reply))
    }
}

impl GroupReader for ScimClient {
    fn list_groups(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<AppGroup>, TargetError>> + Send {
        self.list_all("Groups", group_from)
    }
}

impl GroupWriter for ScimClient {
    async fn create_group(&self, name: &str, members: &[AccountId]) -> Result<String, TargetError> {
        let (id, rest) = self.post_group(name, members).await?;
        self.patch_group(&id, None, rest, &[]).await?;
        Ok(id)
    }
    fn update_group(
        &self,
        id: &str,
        rename: Option<&str>,
        add: &[AccountId],
        remove: &[AccountId],
    ) -> impl std::future::Future<Output = Result<(), TargetError>> + Send {
        self.patch_group(id, rename, add, remove)
    }
    fn delete_group(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<(), TargetError>> + Send {
        self.remove_group(id)
    }
}

/// The groups' ids and stamps, without their members.
const GROUP_STAMPS: &str = "Groups?attributes=meta";

/// A group's id and stamp from a reply to `GROUP_STAMPS`.
fn stamp(url: &Url, r: Value) -> Result<Stamp, TargetError> {
    let id = id_text(r.get("id")).ok_or_else(|| TargetError::BadReply {
        url: url.to_string(),
        detail: "a Group without a usable `id` (missing, empty, `.` or `..`)".into(),
    })?;
    let modified = r["meta"]["lastModified"].as_str().map(String::from);
    Ok(Stamp { id, modified })
}

/// A resource's id and `meta.lastModified`, without the rest of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub id: String,
    pub modified: Option<String>,
}

impl super::HasId for Stamp {
    fn id(&self) -> &str {
        &self.id
    }
}

pub(super) fn group_from(url: &Url, r: Value) -> Result<AppGroup, TargetError> {
    let bad = |detail: &str| TargetError::BadReply {
        url: url.to_string(),
        detail: detail.to_string(),
    };
    let id = id_text(r.get("id"))
        .ok_or_else(|| bad("a Group without a usable `id` (missing, empty, `.` or `..`)"))?;
    let display_name = r
        .get("displayName")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a Group without `displayName`"))?
        .to_string();
    let members = match r.get("members") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|m| match m.get("value") {
                Some(Value::String(s)) => Ok(AccountId::new(s.as_str())),
                Some(Value::Number(n)) => Ok(AccountId::new(n.to_string())),
                _ => Err(bad("a Group member without `value`")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("a Group's `members` is not a list")),
    };
    let modified = r["meta"]["lastModified"].as_str().map(String::from);
    Ok(AppGroup {
        id,
        display_name,
        members,
        listed_as: Default::default(),
        modified,
    })
}
