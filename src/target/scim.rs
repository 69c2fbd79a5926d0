//! SCIM 2.0 (RFC 7643/7644) client on reqwest: paged listing that survives wrong
//! `totalResults` and repeated items, creates that turn a 409 into a lookup (never a
//! duplicate), PATCH `replace`/`remove` with real booleans, DELETE, and retries that honour
//! `Retry-After` (seconds or HTTP date) within a bound. The token never reaches a log.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::Duration;

use crate::http::{
    backoff, is_tls, path_segment, read_body, redirect_text, retry_after, snippet, transport_text,
    Body, MAX_RETRY_WAIT,
};
use crate::redact::Redactor;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use url::Url;

use super::{AccountReader, AccountWriter, Created, GroupWriter, TargetError};
use crate::config::{PhotoUpload, ScimConfig};
use crate::mapping::{FieldPath, CORE_USER_SCHEMA};
use crate::model::{Account, AppGroup, UserName};
use crate::photo::Photo;
use crate::plan::{Change, ACTIVE};

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";

pub struct ScimClient {
    http: reqwest::Client,
    base: Url,
    cfg: ScimConfig,
    limiter: Option<DefaultDirectRateLimiter>,
    /// Members added or removed per group PATCH.
    group_batch: usize,
    /// The accounts' top-level attributes kept once read (lower-cased); `None` keeps all.
    keep: Option<BTreeSet<String>>,
    /// Scrubs the token (and anything credential-shaped) out of the app's replies.
    redact: Redactor,
}

/// A listed resource's id, for de-duplicating pages.
trait HasId {
    fn id(&self) -> &str;
}

impl HasId for Account {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for AppGroup {
    fn id(&self) -> &str {
        &self.id
    }
}

struct Reply {
    status: StatusCode,
    body: Value,
}

/// Whether an attempt that failed without a clear answer may simply be sent again.
#[derive(Clone, Copy)]
enum Replay {
    /// Reads, PATCHes, PUTs and DELETEs: sending them twice ends in the same state.
    Safe,
    /// A POST: sending it twice could create two resources.
    Create,
}

/// A request body: SCIM JSON, or raw bytes of a type (a photo).
#[derive(Clone, Copy)]
enum Payload<'a> {
    Json(&'a Value),
    Bytes { bytes: &'a [u8], mime: &'static str },
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
        Ok(ScimClient {
            http,
            base,
            cfg,
            limiter,
            group_batch: 100,
            keep: None,
            redact,
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

    /// Sends one request with bounded retries on 429/5xx/transport errors.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Reply, TargetError> {
        self.send_payload(method, url, body.map(Payload::Json), Replay::Safe)
            .await
    }

    /// Sends a create. An attempt whose fate is unknown (a timeout, a reset, a 5xx: the app
    /// may have created the resource before failing) is not sent again blindly: `find` looks
    /// for the resource first and its answer wins; only when it finds nothing is the create
    /// sent again. A 429 or a refused connection did not reach the app and is retried as usual.
    async fn send_create<T, F, Fut>(
        &self,
        url: &Url,
        body: &Value,
        find: F,
    ) -> Result<Result<Reply, T>, TargetError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, TargetError>>,
    {
        let mut looked = 0;
        loop {
            match self
                .send_payload(
                    Method::POST,
                    url.clone(),
                    Some(Payload::Json(body)),
                    Replay::Create,
                )
                .await
            {
                Err(TargetError::Uncertain { detail }) => {
                    looked += 1;
                    tracing::info!(%url, error = %detail, "a create may have reached the app; looking for it before sending it again");
                    if let Some(found) = find().await? {
                        return Ok(Err(found));
                    }
                    if looked > self.cfg.max_retries {
                        return Err(TargetError::Exhausted {
                            method: "POST".into(),
                            url: url.to_string(),
                            attempts: looked,
                            detail,
                        });
                    }
                    tokio::time::sleep(backoff(looked)).await;
                }
                other => return other.map(Ok),
            }
        }
    }

    async fn send_payload(
        &self,
        method: Method,
        url: Url,
        body: Option<Payload<'_>>,
        replay: Replay,
    ) -> Result<Reply, TargetError> {
        let attempts = self.cfg.max_retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            if let Some(l) = &self.limiter {
                l.until_ready().await;
            }
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.cfg.token.expose())
                .header(reqwest::header::ACCEPT, SCIM_JSON);
            match body {
                Some(Payload::Json(b)) => {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, SCIM_JSON)
                        .body(b.to_string());
                }
                Some(Payload::Bytes { bytes, mime }) => {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, mime)
                        .body(bytes.to_vec());
                }
                None => {}
            }
            let backoff = backoff(attempt);
            match req.send().await {
                Err(e) => {
                    last = transport_text(&e);
                    if is_tls(&e) {
                        return Err(TargetError::Tls {
                            url: url.to_string(),
                            detail: last,
                        });
                    }
                    if e.is_connect() && attempt == attempts {
                        return Err(TargetError::Connect {
                            url: url.to_string(),
                            detail: last,
                        });
                    }
                    if !e.is_connect() && matches!(replay, Replay::Create) {
                        return Err(TargetError::Uncertain { detail: last });
                    }
                    tracing::debug!(%method, %url, attempt, error = %last, "request failed, retrying");
                    tokio::time::sleep(backoff).await;
                }
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = retry_after(&resp);
                    if status.is_redirection() {
                        let location = resp
                            .headers()
                            .get(reqwest::header::LOCATION)
                            .and_then(|v| v.to_str().ok())
                            .map(|l| self.redact.clean(l));
                        return Err(TargetError::Redirect {
                            method: method.to_string(),
                            url: url.to_string(),
                            detail: redirect_text(status, location.as_deref(), "target.url"),
                        });
                    }
                    let text = match read_body(resp, self.cfg.max_response_bytes).await {
                        Ok(Body::Whole(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                        Ok(Body::Over { .. }) => {
                            return Err(TargetError::BadReply {
                                url: url.to_string(),
                                detail: crate::http::over_cap(
                                    self.cfg.max_response_bytes,
                                    "target.max_response_bytes",
                                ),
                            })
                        }
                        // The reply was cut (a reset, the timeout): never an empty reply.
                        Err(e) => {
                            last = self.redact.clean(&transport_text(&e));
                            if matches!(replay, Replay::Create) {
                                return Err(TargetError::Uncertain { detail: last });
                            }
                            tracing::debug!(%method, %url, attempt, error = %last, "reading the reply failed, retrying");
                            tokio::time::sleep(backoff).await;
                            continue;
                        }
                    };
                    // An error may echo the request: scrubbed whole. Data keeps its words,
                    // less any secret value.
                    let text = if status.is_success() {
                        self.redact.values(&text)
                    } else {
                        self.redact.clean(&text)
                    };
                    if status.is_server_error() && matches!(replay, Replay::Create) {
                        return Err(TargetError::Uncertain {
                            detail: format!("{status} {}", snippet(&text)),
                        });
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        last = format!("{status} {}", snippet(&text));
                        if attempt == attempts {
                            break;
                        }
                        let wait = retry_after.unwrap_or(backoff);
                        if wait > MAX_RETRY_WAIT {
                            last = format!(
                                "{status}: Retry-After asks for {}s, more than idsync waits ({}s)",
                                wait.as_secs(),
                                MAX_RETRY_WAIT.as_secs()
                            );
                            break;
                        }
                        tracing::info!(%method, %url, %status, wait_ms = wait.as_millis() as u64, attempt, "app busy, waiting before retry");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        return Err(TargetError::Auth {
                            url: url.to_string(),
                            status: status.as_u16(),
                        });
                    }
                    let body = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(snippet(&text)))
                    };
                    return Ok(Reply { status, body });
                }
            }
        }
        Err(TargetError::Exhausted {
            method: method.to_string(),
            url: url.to_string(),
            attempts,
            detail: last,
        })
    }

    fn http_error(method: &str, url: &Url, reply: &Reply) -> TargetError {
        let detail = reply
            .body
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| snippet(&reply.body.to_string()));
        TargetError::Http {
            method: method.into(),
            url: url.to_string(),
            status: reply.status.as_u16(),
            detail,
        }
    }

    /// The resources of `endpoint` whose `attr` equals `value` (a SCIM `eq` filter), with the
    /// URL asked.
    async fn filter_eq(
        &self,
        endpoint: &str,
        attr: &str,
        value: &str,
    ) -> Result<(Url, Vec<Value>), TargetError> {
        let mut url = self.url(endpoint);
        // A JSON string literal is exactly a SCIM filter string (quotes and backslashes escaped).
        let literal = serde_json::to_string(value).unwrap_or_default();
        url.query_pairs_mut()
            .append_pair("filter", &format!("{attr} eq {literal}"));
        let reply = self.send(Method::GET, url.clone(), None).await?;
        if !reply.status.is_success() {
            return Err(Self::http_error("GET", &url, &reply));
        }
        let mut body = reply.body;
        let resources = match body.get_mut("Resources").map(Value::take) {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        };
        Ok((url, resources))
    }

    async fn find_by_user_name(&self, user_name: &str) -> Result<Option<Account>, TargetError> {
        let (url, resources) = self.filter_eq("Users", "userName", user_name).await?;
        let wanted = UserName::new(user_name);
        for r in resources {
            let account = self.account(&url, r)?;
            if account.user_name == wanted {
                return Ok(Some(account));
            }
        }
        Ok(None)
    }

    async fn list(&self) -> Result<Vec<Account>, TargetError> {
        self.list_all("Users", |url, r| self.account(url, r)).await
    }

    /// Every resource of an endpoint, paged by startIndex, to the first short or empty page
    /// (a wrong `totalResults` neither stops the read early nor makes it run on). A page that
    /// repeats items already seen means the list moved while it was read (index paging over a
    /// changing list skips as many items as it repeats), so the whole list is read again; a
    /// list that keeps moving fails the read rather than hand the planner a list with holes.
    async fn list_all<T, F>(&self, endpoint: &str, parse: F) -> Result<Vec<T>, TargetError>
    where
        T: HasId,
        F: Fn(&Url, Value) -> Result<T, TargetError> + Sync,
    {
        const READS: usize = 3;
        let mut repeated = 0;
        for read in 1..=READS {
            match self.list_once(endpoint, &parse).await? {
                Ok(items) => return Ok(items),
                Err(n) => {
                    repeated = n;
                    tracing::warn!(
                        endpoint,
                        read,
                        repeated = n,
                        "the app's list repeated items while it was read; reading it again"
                    );
                }
            }
        }
        Err(TargetError::BadReply {
            url: self.url(endpoint).to_string(),
            detail: format!(
                "the list repeated {repeated} item(s) across pages in each of {READS} reads (it changes while it is read, or the app ignores startIndex); nothing was written: run again when the app is quiet, or raise target.page_size above the number of accounts"
            ),
        })
    }

    /// One paged read: every item, or (`Err`) how many items came twice.
    async fn list_once<T, F>(
        &self,
        endpoint: &str,
        parse: &F,
    ) -> Result<Result<Vec<T>, usize>, TargetError>
    where
        T: HasId,
        F: Fn(&Url, Value) -> Result<T, TargetError> + Sync,
    {
        let mut seen: BTreeMap<String, T> = BTreeMap::new();
        let mut repeated = 0usize;
        let mut start = 1usize;
        loop {
            let mut url = self.url(endpoint);
            url.query_pairs_mut()
                .append_pair("startIndex", &start.to_string())
                .append_pair("count", &self.cfg.page_size.to_string());
            let reply = self.send(Method::GET, url.clone(), None).await?;
            if !reply.status.is_success() {
                return Err(Self::http_error("GET", &url, &reply));
            }
            let mut body = reply.body;
            let total = body.get("totalResults").and_then(Value::as_u64);
            let resources = match body.get_mut("Resources").map(Value::take) {
                Some(Value::Array(list)) => list,
                // RFC 7644: Resources may be omitted when there are none.
                _ if total == Some(0) => Vec::new(),
                _ if body.get("totalResults").is_some() => break,
                _ => {
                    return Err(TargetError::BadReply {
                        url: url.to_string(),
                        detail: "a list response needs `Resources` or `totalResults`".into(),
                    })
                }
            };
            if resources.is_empty() {
                break;
            }
            let count = resources.len();
            let mut new = 0usize;
            // Each resource is moved out of its page: a page is never held twice.
            for r in resources {
                let item = parse(&url, r)?;
                if seen.insert(item.id().to_string(), item).is_none() {
                    new += 1;
                }
            }
            repeated += count - new;
            start += count;
            self.within_bounds(&url, seen.len() as u64, total)?;
            // A page of nothing new: the app ignores startIndex (or keeps moving); reading
            // on could go forever. A short page ends the list unless totalResults says more
            // (an app that caps `count` below ours sends short pages all along); a full one
            // never does, whatever totalResults says.
            let short = count < self.cfg.page_size as usize;
            if new == 0 || (short && total.is_none_or(|t| start as u64 > t)) {
                break;
            }
        }
        if repeated > 0 {
            return Ok(Err(repeated));
        }
        Ok(Ok(seen.into_values().collect()))
    }

    /// A list may not grow far past what the app announced (four times its `totalResults`,
    /// or ten pages more: apps that miscount are still read to the end) nor past
    /// `target.max_accounts`: an app that pages forever is cut off.
    fn within_bounds(
        &self,
        url: &Url,
        read: u64,
        announced: Option<u64>,
    ) -> Result<(), TargetError> {
        let page = u64::from(self.cfg.page_size);
        let detail = if read > self.cfg.max_accounts {
            format!("the list goes on past target.max_accounts ({}); nothing was written: raise it if the app really has that many accounts", self.cfg.max_accounts)
        } else if let Some(total) = announced.filter(|t| read > (t * 4).max(t + 10 * page)) {
            format!("the app announced {total} resources (totalResults) but sent {read} and more; nothing was written: the app's paging is broken")
        } else {
            return Ok(());
        };
        Err(TargetError::BadReply {
            url: url.to_string(),
            detail,
        })
    }

    /// POST /Groups with the first batch of members; a 409 (the name is taken meanwhile)
    /// finds that group instead. Returns the group's id and the members not yet sent.
    async fn post_group<'m>(
        &self,
        name: &str,
        members: &'m [String],
    ) -> Result<(String, &'m [String]), TargetError> {
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

    async fn find_group(&self, name: &str) -> Result<Option<String>, TargetError> {
        let (url, resources) = self.filter_eq("Groups", "displayName", name).await?;
        let found = resources
            .into_iter()
            .filter_map(|r| group_from(&url, r).ok())
            .find(|g| g.display_name.eq_ignore_ascii_case(name));
        Ok(found.map(|g| g.id))
    }

    /// PATCHes a group: rename, then members added and removed, `group_batch` members per
    /// request (the rename rides with the first).
    async fn patch_group(
        &self,
        id: &str,
        rename: Option<&str>,
        add: &[String],
        remove: &[String],
    ) -> Result<(), TargetError> {
        let url = self.url(&format!("Groups/{}", path_segment(id)));
        let mut ops: Vec<Value> = rename
            .map(|n| json!({ "op": "replace", "path": "displayName", "value": n }))
            .into_iter()
            .collect();
        let changes: Vec<(bool, &String)> = add
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

    async fn remove_group(&self, id: &str) -> Result<(), TargetError> {
        let url = self.url(&format!("Groups/{}", path_segment(id)));
        let reply = self.send(Method::DELETE, url.clone(), None).await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(Self::http_error("DELETE", &url, &reply))
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
            if let Some(existing) = self.find_by_user_name(user_name).await? {
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
        self.send_patch(id, patch_operations(current, changes))
            .await
    }

    /// PATCHes a User with these operations (none: no request).
    async fn send_patch(&self, id: &str, ops: Vec<Value>) -> Result<(), TargetError> {
        if ops.is_empty() {
            return Ok(());
        }
        let url = self.url(&format!("Users/{}", path_segment(id)));
        let body = json!({ "schemas": [PATCH_OP], "Operations": ops });
        let reply = self.send(Method::PATCH, url.clone(), Some(&body)).await?;
        // 200 with the resource or 204 with no body: both are success (RFC 7644 3.5.2).
        if reply.status.is_success() {
            return Ok(());
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
            PhotoUpload::Scim => self.send_patch(id, photo_operations(current, photo)).await,
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

    async fn remove(&self, id: &str) -> Result<(), TargetError> {
        let url = self.url(&format!("Users/{}", path_segment(id)));
        let reply = self.send(Method::DELETE, url.clone(), None).await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(Self::http_error("DELETE", &url, &reply))
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
        resource: Value,
    ) -> impl std::future::Future<Output = Result<Created, TargetError>> + Send {
        self.post(resource)
    }
    fn update(
        &self,
        id: &str,
        current: &Value,
        changes: &[Change],
    ) -> impl std::future::Future<Output = Result<(), TargetError>> + Send {
        self.patch(id, current, changes)
    }
    fn delete(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<(), TargetError>> + Send {
        self.remove(id)
    }
    fn set_photo(
        &self,
        id: &str,
        current: &Value,
        photo: Option<&Photo>,
    ) -> impl std::future::Future<Output = Result<(), TargetError>> + Send {
        self.photo(id, current, photo)
    }
}

impl GroupWriter for ScimClient {
    fn list_groups(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<AppGroup>, TargetError>> + Send {
        self.list_all("Groups", group_from)
    }
    async fn create_group(&self, name: &str, members: &[String]) -> Result<String, TargetError> {
        let (id, rest) = self.post_group(name, members).await?;
        self.patch_group(&id, None, rest, &[]).await?;
        Ok(id)
    }
    fn update_group(
        &self,
        id: &str,
        rename: Option<&str>,
        add: &[String],
        remove: &[String],
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
        map.retain(|k, _| keep.contains(&k.to_ascii_lowercase()));
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
        id,
        user_name: UserName::new(user_name),
        active,
        resource: r.into(),
    })
}

fn group_from(url: &Url, r: Value) -> Result<AppGroup, TargetError> {
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
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
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

/// A new account's resource from a create's changes.
pub fn new_resource(changes: &[Change]) -> Value {
    let mut r = json!({ "schemas": [CORE_USER_SCHEMA], "active": true });
    for c in changes.iter().filter(|c| c.field != ACTIVE) {
        if let Ok(path) = FieldPath::parse(&c.field) {
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
        if c.field == ACTIVE {
            let on = c.after.as_deref() == Some("true");
            ops.push(json!({ "op": "replace", "path": "active", "value": on }));
            continue;
        }
        let Ok(path) = FieldPath::parse(&c.field) else {
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
            field: field.into(),
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
    fn a_listed_account_keeps_only_what_idsync_reads() {
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
