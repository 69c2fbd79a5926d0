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
    /// finds that group instead. Returns the group's id and the members not yet sent.
    pub(super) async fn post_group<'m>(
        &self,
        name: &str,
        members: &'m [AccountId],
    ) -> Result<(String, &'m [AccountId]), TargetError> {
        let url = self.url("Groups");
        let (first, rest) = members.split_at(members.len().min(self.group_batch));
        let body = json!({
            "schemas": [GROUP_SCHEMA],
            "displayName": name,
            "members": first.iter().map(|id| json!({ "value": id })).collect::<Vec<_>>(),
        });
        let reply = match self
            .send_create(&url, &body, || self.find_group(name))
            .await?
        {
            Ok(reply) => reply,
            // The create that timed out did reach the app, with the first batch.
            Err(id) => return Ok((id, rest)),
        };
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

    pub(super) async fn find_group(&self, name: &str) -> Result<Option<String>, TargetError> {
        let (url, resources) = self.filter_eq("Groups", "displayName", name).await?;
        let found = resources
            .into_iter()
            .filter_map(|r| group_from(&url, r).ok())
            .find(|g| g.display_name.eq_ignore_ascii_case(name));
        Ok(found.map(|g| g.id))
    }

    /// PATCHes a group: rename, then members added and removed, `group_batch` members per
    /// request (the rename rides with the first).
    pub(super) async fn patch_group(
        &self,
        id: &str,
        rename: Option<&str>,
        add: &[AccountId],
        remove: &[AccountId],
    ) -> Result<(), TargetError> {
        let url = self.url(&format!("Groups/{}", path_segment(id)));
        let mut ops: Vec<Value> = rename
            .map(|n| json!({ "op": "replace", "path": "displayName", "value": n }))
            .into_iter()
            .collect();
        let changes: Vec<(bool, &AccountId)> = add
            .iter()
            .map(|m| (true, m))
            .chain(remove.iter().map(|m| (false, m)))
            .collect();
        let mut chunks = changes.chunks(self.group_batch.max(1)).peekable();
        if chunks.peek().is_none() && ops.is_empty() {
            return Ok(());
        }
        loop {
            let chunk = chunks.next().unwrap_or_default();
            let adds: Vec<Value> = chunk
                .iter()
                .filter(|(a, _)| *a)
                .map(|(_, m)| json!({ "value": m }))
                .collect();
            if !adds.is_empty() {
                ops.push(json!({ "op": "add", "path": "members", "value": adds }));
            }
            for (_, m) in chunk.iter().filter(|(a, _)| !*a) {
                let literal = serde_json::to_string(m).unwrap_or_default();
                ops.push(json!({ "op": "remove", "path": format!("members[value eq {literal}]") }));
            }
            let body = json!({ "schemas": [PATCH_OP], "Operations": std::mem::take(&mut ops) });
            let reply = self.send(Method::PATCH, url.clone(), Some(&body)).await?;
            if !reply.status.is_success() {
                return Err(Self::http_error("PATCH", &url, &reply));
            }
            if chunks.peek().is_none() {
                return Ok(());
            }
        }
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
    Ok(AppGroup {
        id,
        display_name,
        members,
    })
}
