//! SCIM 2.0 (RFC 7643/7644) client on reqwest: users (creates that turn a 409 into a lookup,
//! never a duplicate; PATCH `replace`/`remove` with real booleans; DELETE; photos) and the
//! trait impls. `transport` sends with bounded retries, `list` pages, `groups` handles
//! `/Groups`. The token never reaches a log.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::Duration;

use crate::http::path_segment;
use crate::redact::Redactor;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use url::Url;

use super::settings::{PhotoUpload, ScimConfig};
use super::{AccountReader, AccountWriter, Created, TargetError};
use crate::mapping::{FieldPath, CORE_USER_SCHEMA};
use crate::model::{Account, AccountId, AppGroup, UserName};
use crate::photo::Photo;
use crate::plan::{Change, Field};

mod discover;
mod put;
pub use discover::Documents;
mod groups;
pub use groups::Stamp;
mod list;
mod transport;

use transport::{Payload, Replay};

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";

pub struct ScimClient {
    http: reqwest::Client,
    base: Url,
    cfg: ScimConfig,
    limiter: Option<DefaultDirectRateLimiter>,
    /// `target.rate_limits`: each request waits on every limiter covering its method.
    method_limiters: Vec<(super::settings::LimitScope, DefaultDirectRateLimiter)>,
    /// Members added or removed per group PATCH.
    group_batch: usize,
    /// The smallest group PATCH size the app answered 413 above, halved (usize::MAX: none).
    learnt_batch: std::sync::atomic::AtomicUsize,
    /// The accounts' top-level attributes kept once read (lower-cased); `None` keeps all.
    keep: Option<BTreeSet<String>>,
    /// Scrubs the token (and anything credential-shaped) out of the app's replies.
    redact: Redactor,
    /// What the app says of itself, read on first need (`discover`).
    discovered: tokio::sync::OnceCell<discover::Discovered>,
    /// The app refused a `meta.lastModified` filter this cycle (a 4xx).
    changes_refused: std::sync::atomic::AtomicBool,
}

/// A listed resource's id, for de-duplicating pages.
trait HasId {
    fn id(&self) -> &str;
}

impl HasId for Account {
    fn id(&self) -> &str {
        self.id.as_str()
    }
}

impl HasId for AppGroup {
    fn id(&self) -> &str {
        &self.id
    }
}

impl ScimClient {
    pub fn new(cfg: ScimConfig) -> Result<ScimClient, TargetError> {
        let http = crate::http::client(crate::http::ClientSettings {
            timeout: cfg.timeout,
            ca_file: cfg.ca_file.as_deref(),
            ca_key: "target.ca_file",
            proxy: cfg.proxy.as_ref(),
        })
        .map_err(|detail| TargetError::Connect {
            url: cfg.url.to_string(),
            detail,
        })?;
        let redact = Redactor::new([cfg.token.expose()]);
        let mut base = cfg.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let limiter = cfg.rate_limit.map(|per_sec| {
            let period = Duration::from_secs_f64(1.0 / per_sec);
            let quota = Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::MIN);
            RateLimiter::direct(quota)
        });
        let method_limiters = cfg
            .rate_limits
            .iter()
            .map(|r| {
                let count = NonZeroU32::new(r.count).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::with_period(r.per / count.get())
                    .unwrap_or_else(|| Quota::per_second(count))
                    .allow_burst(count);
                (r.scope.clone(), RateLimiter::direct(quota))
            })
            .collect();
        Ok(ScimClient {
            http,
            base,
            cfg,
            limiter,
            method_limiters,
            group_batch: 100,
            learnt_batch: std::sync::atomic::AtomicUsize::new(usize::MAX),
            keep: None,
            redact,
            discovered: tokio::sync::OnceCell::new(),
            changes_refused: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Keeps only these top-level attributes (any case) of the accounts it reads: what the
    /// lifecycle uses (`Policy::account_attributes`). `id`, `userName` and `active` are
    /// always kept.
    pub fn keeping(mut self, attrs: BTreeSet<String>) -> Self {
        let mut keep: BTreeSet<String> = attrs.iter().map(|a| a.to_ascii_lowercase()).collect();
        keep.extend(["id", "username", "active"].map(String::from));
        self.keep = Some(keep);
        self
    }

    /// An account from a resource the app sent, less what is not kept.
    fn account(&self, url: &Url, r: Value) -> Result<Account, TargetError> {
        let r = match &self.keep {
            Some(keep) => prune(r, keep),
            None => r,
        };
        account_from(url, r)
    }

    /// Sets how many members one group PATCH adds or removes.
    pub fn with_group_batch(mut self, batch: usize) -> Self {
        self.group_batch = batch.max(1);
        self
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    async fn post(&self, resource: Value) -> Result<Created, TargetError> {
        let url = self.url("Users");
        let user_name = resource
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let reply = match self
            .send_create(&url, &resource, || self.find_by_user_name(user_name))
            .await?
        {
            Ok(reply) => reply,
            // The create that timed out did reach the app: that account is ours.
            Err(found) => return Ok(Created::Existing(found)),
        };
        if reply.status.is_success() {
            return Ok(Created::New(self.account(&url, reply.body)?));
        }
        if reply.status == StatusCode::CONFLICT {
            if let Some(existing) = self.find_taken(user_name).await? {
                return Ok(Created::Existing(existing));
            }
        }
        Err(Self::http_error("POST", &url, &reply))
    }

    async fn patch(
        &self,
        id: &str,
        current: &Value,
        changes: &[Change],
    ) -> Result<(), TargetError> {
        let version = self.if_match(current).await?;
        self.send_patch(id, patch_operations(current, changes), version)
            .await
    }

    /// PATCHes a User with these operations (none: no request); with a `version` (what
    /// `if_match` gives), only if the account is still at it.
    async fn send_patch(
        &self,
        id: &str,
        ops: Vec<Value>,
        version: Option<&str>,
    ) -> Result<(), TargetError> {
        if ops.is_empty() {
            return Ok(());
        }
        let url = self.url(&format!("Users/{}", path_segment(id)));
        let discovery = self.discovery().await?;
        if !discovery.patch {
            return self.put_with(&url, &ops).await;
        }
        let body = json!({ "schemas": [PATCH_OP], "Operations": ops });
        let payload = Payload::json_if(&body, version);
        let reply = self
            .send_payload(Method::PATCH, url.clone(), Some(payload), Replay::Safe)
            .await?;
        // 200 with the resource or 204 with no body: both are success (RFC 7644 3.5.2).
        if reply.status.is_success() {
            return Ok(());
        }
        if reply.status == StatusCode::PRECONDITION_FAILED {
            return Err(changed("PATCH", &url, version));
        }
        Err(Self::http_error("PATCH", &url, &reply))
    }

    async fn photo(
        &self,
        id: &str,
        current: &Value,
        photo: Option<&Photo>,
    ) -> Result<(), TargetError> {
        match &self.cfg.photo {
            PhotoUpload::None => Ok(()),
            PhotoUpload::Scim => {
                self.send_patch(id, photo_operations(current, photo), None)
                    .await
            }
            PhotoUpload::Http { method, url } => {
                let base = self.cfg.url.as_str().trim_end_matches('/');
                let text = url
                    .replace("{url}", base)
                    .replace("{id}", &path_segment(id));
                let url = Url::parse(&text).map_err(|e| TargetError::BadReply {
                    url: text.clone(),
                    detail: format!("target.photo gives no URL for account {id}: {e}"),
                })?;
                let (method, payload) = match photo {
                    Some(p) => {
                        let mime = crate::photo::inspect(&p.bytes, usize::MAX)
                            .map(|i| i.kind.mime())
                            .unwrap_or("application/octet-stream");
                        (
                            method.clone(),
                            Some(Payload::Bytes {
                                bytes: &p.bytes,
                                mime,
                            }),
                        )
                    }
                    None => (Method::DELETE, None),
                };
                let reply = self
                    .send_payload(method.clone(), url.clone(), payload, Replay::Safe)
                    .await?;
                let gone = method == Method::DELETE && reply.status == StatusCode::NOT_FOUND;
                if reply.status.is_success() || gone {
                    return Ok(());
                }
                Err(Self::http_error(method.as_str(), &url, &reply))
            }
        }
    }

    /// DELETEs a User; with the version it was read at, where the app supports ETags,
    /// only if it is still at it.
    async fn remove(&self, id: &str, current: &Value) -> Result<(), TargetError> {
        let url = self.url(&format!("Users/{}", path_segment(id)));
        let version = self.if_match(current).await?;
        let reply = self
            .send_payload(
                Method::DELETE,
                url.clone(),
                version.map(Payload::IfMatch),
                Replay::Safe,
            )
            .await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        if reply.status == StatusCode::PRECONDITION_FAILED {
            return Err(changed("DELETE", &url, version));
        }
        Err(Self::http_error("DELETE", &url, &reply))
    }

    /// Whether a write to a resource that carries its version is refused (412) when the
    /// resource changed since: the app announces ETags and `target.etags` is not off.
    pub async fn guards_writes(&self) -> Result<bool, TargetError> {
        Ok(self.cfg.etags && self.discovery().await?.etag)
    }

    /// The version to send as `If-Match` for a write to this resource, if any: where the
    /// app announces ETags and `target.etags` is not off.
    pub(super) async fn if_match<'v>(
        &self,
        resource: &'v Value,
    ) -> Result<Option<&'v str>, TargetError> {
        let version = resource["meta"]["version"]
            .as_str()
            .filter(|v| !v.is_empty());
        if version.is_none() || !self.guards_writes().await? {
            return Ok(None);
        }
        Ok(version)
    }
}

impl AccountReader for ScimClient {
    fn list_accounts(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<Account>, TargetError>> + Send {
        self.list()
    }
}

impl AccountWriter for ScimClient {
    fn create(
        &self,
        changes: &[Change],
    ) -> impl std::future::Future<Output = Result<Created, TargetError>> + Send {
        self.post(new_resource(changes))
    }
    fn update(
        &self,
        id: &AccountId,
        current: &Value,
        changes: &[Change],
    ) -> impl std::future::Future<Output = Result<(), TargetError>> + Send {
        self.patch(id.as_str(), current, changes)
    }
    fn delete(
        &self,
        id: &AccountId,
        current: &Value,
    ) -> impl std::future::Future<Output = Result<(), TargetError>> + Send {
        self.remove(id.as_str(), current)
    }
    fn set_photo(
        &self,
        id: &AccountId,
        current: &Value,
        photo: Option<&Photo>,
    ) -> impl std::future::Future<Output = Result<(), TargetError>> + Send {
        self.photo(id.as_str(), current, photo)
    }
}

/// The PATCH that sets the `photos` entry of type `photo` (a `data:` URI, primary) or
/// removes it, keeping any other photos the account has.
pub fn photo_operations(current: &Value, photo: Option<&Photo>) -> Vec<Value> {
    use base64::Engine as _;
    let mut list: Vec<Value> = current
        .get("photos")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter(|p| !is_photo_type(p)).cloned().collect())
        .unwrap_or_default();
    if let Some(p) = photo {
        let mime = crate::photo::inspect(&p.bytes, usize::MAX)
            .map(|i| i.kind.mime())
            .unwrap_or("application/octet-stream");
        let data = base64::engine::general_purpose::STANDARD.encode(&p.bytes);
        for other in &mut list {
            if let Some(o) = other.as_object_mut() {
                o.remove("primary");
            }
        }
        list.insert(
            0,
            json!({ "value": format!("data:{mime};base64,{data}"), "type": "photo", "primary": true }),
        );
    }
    if list.is_empty() {
        vec![json!({ "op": "remove", "path": "photos" })]
    } else {
        vec![json!({ "op": "replace", "path": "photos", "value": list })]
    }
}

/// A write the app refused because the resource changed since idsync read it (412).
fn changed(method: &str, url: &Url, version: Option<&str>) -> TargetError {
    TargetError::Changed {
        detail: format!("{method} {url}: the account changed in the app since idsync read it (412 to If-Match {}); it is read again and planned anew (an app that refuses every version it gives: `target.etags: false`)", version.unwrap_or_default()),
    }
}

/// A SCIM id as text: a non-empty string, or a number some servers send. `.` and `..` are
/// refused: as a path segment they would address another resource.
fn id_text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if crate::http::usable_id(s) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// The resource less the top-level attributes not in `keep` (lower-cased), and less the
/// `photos` entries of type `photo`: idsync's own, always replaced whole (see
/// `photo_operations`), and the bulk of a listed account where apps return photos as
/// `data:` URIs.
fn prune(mut r: Value, keep: &BTreeSet<String>) -> Value {
    if let Value::Object(map) = &mut r {
        map.retain(|k, _| keep.contains(&k.to_ascii_lowercase()) || k == "meta");
        // Of `meta`, what a remembered account needs: when the app last changed it (the
        // next cycle asks for what changed since) and its version.
        if let Some(Value::Object(meta)) = map.get_mut("meta") {
            meta.retain(|k, _| k == "lastModified" || k == "version");
        }
        for (k, v) in map.iter_mut() {
            if let (true, Value::Array(list)) = (k.eq_ignore_ascii_case("photos"), v) {
                list.retain(|p| !is_photo_type(p));
            }
        }
    }
    r
}

/// A `photos` entry of type `photo` (the one idsync manages).
fn is_photo_type(p: &Value) -> bool {
    p.get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("photo"))
}

fn account_from(url: &Url, r: Value) -> Result<Account, TargetError> {
    let bad = |detail: &str| TargetError::BadReply {
        url: url.to_string(),
        detail: detail.to_string(),
    };
    let id = id_text(r.get("id"))
        .ok_or_else(|| bad("a User without a usable `id` (missing, empty, `.` or `..`)"))?;
    let user_name = r
        .get("userName")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a User without `userName`"))?;
    let active = match r.get("active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
        Some(_) => return Err(bad("`active` is not a boolean")),
    };
    Ok(Account {
        id: AccountId::new(id),
        user_name: UserName::new(user_name),
        active,
        resource: r.into(),
    })
}

/// A new account's resource from a create's changes.
fn new_resource(changes: &[Change]) -> Value {
    let mut r = json!({ "schemas": [CORE_USER_SCHEMA], "active": true });
    for c in changes {
        if let Some(path) = c.field.path() {
            path.set(&mut r, c.after.as_deref());
        }
    }
    r
}

/// PATCH operations that turn `current` into `current` + `changes`: `replace` of each
/// touched top-level attribute (whole multi-valued lists, so other elements survive),
/// `remove` of what became empty, `active` as a real boolean.
pub fn patch_operations(current: &Value, changes: &[Change]) -> Vec<Value> {
    let mut next = current.clone();
    let mut ops = Vec::new();
    let mut touched: BTreeMap<String, FieldPath> = BTreeMap::new();
    for c in changes {
        if c.field == Field::Active {
            let on = c.after.as_deref() == Some("true");
            ops.push(json!({ "op": "replace", "path": "active", "value": on }));
            continue;
        }
        let Some(path) = c.field.path() else {
            continue;
        };
        path.set(&mut next, c.after.as_deref());
        touched.entry(path.patch_target()).or_insert(path);
    }
    for (target, path) in touched {
        match path.patch_value(&next) {
            Some(value) => ops.push(json!({ "op": "replace", "path": target, "value": value })),
            None => ops.push(json!({ "op": "remove", "path": target })),
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(field: &str, before: Option<&str>, after: Option<&str>) -> Change {
        Change {
            field: Field::parse(field),
            before: before.map(str::to_string),
            after: after.map(str::to_string),
        }
    }

    #[test]
    fn patch_replaces_whole_lists_and_sends_real_booleans() {
        let current = json!({"emails": [{"type": "home", "value": "h@x"}, {"type": "work", "value": "old@x"}], "title": "Eng"});
        let ops = patch_operations(
            &current,
            &[
                change("active", Some("true"), Some("false")),
                change(
                    "emails[type eq \"work\"].value",
                    Some("old@x"),
                    Some("new@x"),
                ),
                change("title", Some("Eng"), None),
            ],
        );
        assert_eq!(
            ops,
            vec![
                json!({"op": "replace", "path": "active", "value": false}),
                json!({"op": "replace", "path": "emails", "value": [{"type": "home", "value": "h@x"}, {"type": "work", "value": "new@x"}]}),
                json!({"op": "remove", "path": "title"}),
            ]
        );
    }

    #[test]
    fn new_resource_builds_nested_and_extension_attributes() {
        let r = new_resource(&[
            change("userName", None, Some("ada@x")),
            change("name.givenName", None, Some("Ada")),
            change(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                None,
                Some("R&D"),
            ),
        ]);
        assert_eq!(r["name"]["givenName"], "Ada");
        assert_eq!(
            r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "R&D"
        );
        assert_eq!(r["active"], true);
    }

    #[test]
    fn a_listed_account_keeps_only_what_idsync_reads_and_when_it_changed() {
        let keep: BTreeSet<String> = ["id", "username", "active", "name", "photos"]
            .map(String::from)
            .into();
        let listed = json!({
            "schemas": [CORE_USER_SCHEMA],
            "id": "7",
            "userName": "ada@x.org",
            "meta": { "resourceType": "User", "version": "W/\"3\"" },
            "Name": { "givenName": "Ada" },
            "nickName": "ada",
            "Photos": [
                { "type": "photo", "value": "data:image/jpeg;base64,/9j/4AAQ" },
                { "type": "thumbnail", "value": "https://cdn.example/ada.png" }
            ]
        });
        assert_eq!(
            prune(listed, &keep),
            json!({
                "id": "7",
                "userName": "ada@x.org",
                "meta": { "version": "W/\"3\"" },
                "Name": { "givenName": "Ada" },
                "Photos": [{ "type": "thumbnail", "value": "https://cdn.example/ada.png" }]
            })
        );
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
