//! Apps without PATCH (their ServiceProviderConfig says so): a change is the whole
//! resource read afresh, changed, and PUT back.

use reqwest::Method;
use serde_json::{json, Value};
use url::Url;

use super::transport::{Payload, Replay};
use super::ScimClient;
use crate::app::TargetError;

impl ScimClient {
    /// For an app without PATCH (its ServiceProviderConfig says so): the whole resource read
    /// afresh, the operations applied to it, and PUT back, so attributes idsync does not
    /// manage keep their values.
    pub(super) async fn put_with(&self, url: &Url, ops: &[Value]) -> Result<(), TargetError> {
        let reply = self.send(Method::GET, url.clone(), None).await?;
        if !reply.status.is_success() {
            return Err(Self::http_error("GET", url, &reply));
        }
        let mut resource = reply.body;
        // The PUT replaces what was just read: only if it is still that (where the app
        // supports ETags), so an edit made in between is not overwritten.
        let version = self.if_match(&resource).await?.map(String::from);
        apply_operations(&mut resource, ops);
        if let Some(map) = resource.as_object_mut() {
            map.remove("meta");
        }
        let payload = Payload::json_if(&resource, version.as_deref());
        let reply = self
            .send_payload(Method::PUT, url.clone(), Some(payload), Replay::Safe)
            .await?;
        if reply.status.is_success() {
            return Ok(());
        }
        if reply.status == reqwest::StatusCode::PRECONDITION_FAILED {
            return Err(super::changed("PUT", url, version.as_deref()));
        }
        Err(Self::http_error("PUT", url, &reply))
    }
}

/// Applies idsync's own PATCH operations (`replace` / `remove` of a top-level attribute,
/// an `attr.sub`, or an extension's `urn:...:attr`) to a resource, for a PUT.
fn apply_operations(resource: &mut Value, ops: &[Value]) {
    for op in ops {
        let (Some(kind), Some(path)) = (
            op.get("op").and_then(Value::as_str),
            op.get("path").and_then(Value::as_str),
        ) else {
            continue;
        };
        let value = (kind == "replace")
            .then(|| op.get("value").cloned())
            .flatten();
        let (container, key) = match path.rfind(':') {
            Some(cut) if path.len() > 4 && path[..4].eq_ignore_ascii_case("urn:") => {
                (Some(&path[..cut]), &path[cut + 1..])
            }
            _ => (None, path),
        };
        let (parent, key) = match (container, key.split_once('.')) {
            (Some(urn), _) => (Some(urn.to_string()), key.to_string()),
            (None, Some((attr, sub))) => (Some(attr.to_string()), sub.to_string()),
            (None, None) => (None, key.to_string()),
        };
        let Some(root) = resource.as_object_mut() else {
            return;
        };
        let target = match &parent {
            Some(p) => {
                let slot = root.entry(p.clone()).or_insert_with(|| json!({}));
                if !slot.is_object() {
                    *slot = json!({});
                }
                slot.as_object_mut().expect("made an object")
            }
            None => root,
        };
        match value {
            Some(v) => {
                target.insert(key, v);
            }
            None => {
                target.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_without_patch_gets_the_whole_resource_with_the_changes() {
        let mut r = json!({
            "id": "7", "userName": "ada@x", "title": "Eng", "nickName": "ada",
            "name": { "givenName": "Ada", "familyName": "L" },
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "R&D" }
        });
        apply_operations(
            &mut r,
            &[
                json!({"op": "replace", "path": "active", "value": false}),
                json!({"op": "replace", "path": "name.givenName", "value": "Augusta"}),
                json!({"op": "remove", "path": "title"}),
                json!({"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Maths"}),
            ],
        );
        assert_eq!(r["active"], false);
        assert_eq!(
            r["name"],
            json!({ "givenName": "Augusta", "familyName": "L" })
        );
        assert!(r.get("title").is_none());
        assert_eq!(r["nickName"], "ada", "what idsync does not manage stays");
        assert_eq!(
            r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "Maths"
        );
    }
}
