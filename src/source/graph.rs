//! Microsoft Graph (Entra ID) reader, and any HTTP directory that serves Graph's shape.
//!
//! OAuth2 client credentials (token cached until shortly before it expires, fetched again
//! once on a 401), `GET /users` with `$select` of just the attributes the mapping reads and
//! `$top`, pages followed by `@odata.nextLink` exactly as given (an empty page with a
//! nextLink is not the end), 429/5xx honoured by `Retry-After` within a bound. With
//! `incremental: delta`, a run reads only `/users/delta` changes since the delta link the
//! journal remembers and merges them into the remembered population; a dead delta link
//! (410 `resyncRequired`, 400 `syncStateNotFound`) or `full_every` falls back to a full read.
//! A read that cannot finish is an error, never a short list.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::{
    CacheChange, DirectoryReader, Read, ReadKind, ReadRequest, Remember, Remembered, SourceError,
};
use crate::config::{GraphConfig, GroupsConfig, Incremental};
use crate::http::{
    backoff, path_segment, read_body, redirect_text, retry_after, snippet, transport_text, Body,
    MAX_RETRY_WAIT,
};
use crate::model::{Anchor, Attrs, DirectoryGroup, DirectoryUser};
use crate::photo::Photo;
use crate::redact::Redactor;

pub const DEFAULT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
pub const DEFAULT_API_URL: &str = "https://graph.microsoft.com/v1.0";

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

/// Graph user properties by their lower-cased name, so `$select` asks for them as Graph
/// spells them (templates lower-case attribute names).
const KNOWN_PROPERTIES: &[&str] = &[
    "id",
    "accountEnabled",
    "ageGroup",
    "businessPhones",
    "city",
    "companyName",
    "country",
    "createdDateTime",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeId",
    "employeeType",
    "faxNumber",
    "givenName",
    "jobTitle",
    "mail",
    "mailNickname",
    "mobilePhone",
    "officeLocation",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesImmutableId",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesUserPrincipalName",
    "otherMails",
    "postalCode",
    "preferredLanguage",
    "proxyAddresses",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
];

/// The `$select` list for the attributes a config reads: Graph's spelling where known, the
/// anchor (`id`) and `accountEnabled` always, sorted and without repeats.
pub fn select_list(attrs: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: BTreeSet<String> = ["id", "accountEnabled"].map(String::from).into();
    for a in attrs {
        let known = KNOWN_PROPERTIES
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&a))
            .map(|k| k.to_string());
        out.insert(known.unwrap_or(a));
    }
    out.into_iter().collect()
}

/// What the journal keeps for a delta source: the link to ask next, what it selects, and
/// when the last full read happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    delta_link: String,
    select: Vec<String>,
    last_full: DateTime<Utc>,
}

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

fn get_failed(e: GetError) -> SourceError {
    match e {
        GetError::Failed(e) => e,
        GetError::Stale(why) => SourceError::Api {
            url: String::new(),
            detail: why,
        },
    }
}

struct Token {
    value: String,
    refresh_at: Instant,
}

/// Why one GET did not return a page.
enum GetError {
    /// The delta link is dead (410, or 400 `syncStateNotFound`): read everything again.
    Stale(String),
    Failed(SourceError),
}

impl From<SourceError> for GetError {
    fn from(e: SourceError) -> Self {
        GetError::Failed(e)
    }
}

/// A reply as it came, for the caller to judge.
struct Raw {
    status: StatusCode,
    etag: Option<String>,
    location: Option<String>,
    bytes: Vec<u8>,
    /// The body was longer than the cap asked: its size (announced, or read so far);
    /// `bytes` holds at most the cap plus one.
    over: Option<u64>,
}

/// One walk over a paged collection.
struct Pages {
    items: Vec<Value>,
    delta_link: Option<String>,
}

pub struct GraphReader {
    cfg: GraphConfig,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
    /// Scrubs the client secret (and anything credential-shaped) out of server replies.
    redact: Redactor,
}

impl GraphReader {
    pub fn new(cfg: GraphConfig) -> Result<GraphReader, SourceError> {
        let http = crate::http::client(crate::http::ClientSettings {
            timeout: cfg.timeout,
            ca_file: cfg.ca_file.as_deref(),
            ca_key: "source.ca_file",
            proxy: cfg.proxy.as_ref(),
        })
        .map_err(|detail| SourceError::Connect {
            url: cfg.api_url.to_string(),
            detail,
        })?;
        let redact = Redactor::new([cfg.client_secret.expose()]);
        Ok(GraphReader {
            cfg,
            http,
            token: Mutex::new(None),
            redact,
        })
    }

    fn api(&self, path: &str) -> Url {
        let mut u = self.cfg.api_url.clone();
        let joined = format!("{}/{path}", u.path().trim_end_matches('/'));
        u.set_path(&joined);
        u
    }

    fn select(&self) -> String {
        self.cfg.select.join(",")
    }

    /// A bearer token, fetched when there is none or it is about to expire.
    async fn bearer(&self, fresh: bool) -> Result<String, SourceError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot
            .as_ref()
            .filter(|t| !fresh && Instant::now() < t.refresh_at)
        {
            return Ok(t.value.clone());
        }
        let t = self.fetch_token().await?;
        let value = t.value.clone();
        *slot = Some(t);
        Ok(value)
    }

    async fn fetch_token(&self) -> Result<Token, SourceError> {
        let url = self.cfg.token_url.clone();
        let err = |detail: String| SourceError::Token {
            url: url.to_string(),
            detail,
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("client_secret", self.cfg.client_secret.expose())
            .append_pair("scope", &self.cfg.scope)
            .finish();
        let mut last = String::new();
        for attempt in 1..=self.cfg.max_retries + 1 {
            let sent = self
                .http
                .post(url.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body.clone())
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = self.redact.clean(&transport_text(&e));
                    if attempt <= self.cfg.max_retries {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    continue;
                }
            };
            let status = resp.status();
            let wait = retry_after(&resp).unwrap_or(backoff(attempt));
            if status.is_redirection() {
                let location = header_text(&resp, reqwest::header::LOCATION);
                return Err(err(redirect_text(
                    status,
                    location.map(|l| self.redact.clean(&l)).as_deref(),
                    "source.token_url",
                )));
            }
            let text = match read_body(resp, self.cfg.max_response_bytes).await {
                // Scrubbed only when it is an error to show: a success carries the token.
                Ok(Body::Whole(b)) if status.is_success() => {
                    String::from_utf8_lossy(&b).into_owned()
                }
                Ok(Body::Whole(b)) => self.redact.clean(&String::from_utf8_lossy(&b)),
                Ok(Body::Over { .. }) => {
                    return Err(err(crate::http::over_cap(
                        self.cfg.max_response_bytes,
                        "source.max_response_bytes",
                    )))
                }
                Err(e) => {
                    last = self.redact.clean(&transport_text(&e));
                    if attempt <= self.cfg.max_retries {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    continue;
                }
            };
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                last = format!("{status} {}", snippet(&text));
                if wait <= MAX_RETRY_WAIT {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                break;
            }
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if !status.is_success() {
                return Err(err(token_refusal(status, &json, &text)));
            }
            let value = json
                .get("access_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| err("the reply has no access_token".into()))?;
            let lifetime = json
                .get("expires_in")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(3600);
            // Fetch a new one shortly before expiry: 5 minutes early, or halfway for short lives.
            let early = (lifetime / 2).min(300);
            return Ok(Token {
                value: value.to_string(),
                refresh_at: Instant::now() + Duration::from_secs(lifetime - early),
            });
        }
        Err(SourceError::Api {
            url: url.to_string(),
            detail: format!("no token after {} attempts: {last}; check source.token_url and that the server is up", self.cfg.max_retries + 1),
        })
    }

    /// One GET with bounded retries on 429/5xx/transport errors (honouring Retry-After) and
    /// a fresh token once on 401; any other reply is returned as it is.
    async fn send_get(
        &self,
        url: &Url,
        if_none_match: Option<&str>,
        cap: usize,
    ) -> Result<Raw, GetError> {
        let fail = |detail: String| {
            GetError::Failed(SourceError::Api {
                url: url.to_string(),
                detail,
            })
        };
        let attempts = self.cfg.max_retries + 1;
        let mut refreshed = false;
        let mut last = String::new();
        let mut unreachable = false;
        let mut attempt = 0;
        while attempt < attempts {
            attempt += 1;
            let token = self.bearer(false).await?;
            let redact = self.redact.with(&token);
            let mut req = self.http.get(url.clone()).bearer_auth(token);
            if let Some(tag) = if_none_match {
                req = req.header(reqwest::header::IF_NONE_MATCH, tag);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = redact.clean(&transport_text(&e));
                    if crate::http::is_tls(&e) {
                        return Err(GetError::Failed(SourceError::Tls {
                            url: url.to_string(),
                            detail: last,
                        }));
                    }
                    unreachable = e.is_connect();
                    tracing::debug!(%url, attempt, error = %last, "Graph request failed, retrying");
                    if attempt < attempts {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    continue;
                }
            };
            unreachable = false;
            let status = resp.status();
            let wait = retry_after(&resp);
            let location = header_text(&resp, reqwest::header::LOCATION).map(|l| redact.clean(&l));
            let etag = header_text(&resp, reqwest::header::ETAG);
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                return Err(fail(redirect_text(
                    status,
                    location.as_deref(),
                    "source.api_url",
                )));
            }
            let (bytes, over) = match read_body(resp, cap).await {
                Ok(Body::Whole(b)) => (b, None),
                Ok(Body::Over { head, announced }) => {
                    let size = announced.unwrap_or(head.len() as u64);
                    (head, Some(size))
                }
                Err(e) => {
                    last = redact.clean(&transport_text(&e));
                    if attempt < attempts {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    continue;
                }
            };
            let bytes = if over.is_none() && !status.is_success() {
                // An error reply may echo the request: scrubbed before anyone reads it.
                redact.clean(&String::from_utf8_lossy(&bytes)).into_bytes()
            } else {
                bytes
            };
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                // The token may have been revoked or expired early: one fresh token, once.
                refreshed = true;
                attempt -= 1;
                self.bearer(true).await?;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                last = format!("{status} {}", snippet(&String::from_utf8_lossy(&bytes)));
                let wait = wait.unwrap_or(backoff(attempt));
                if wait > MAX_RETRY_WAIT {
                    last = format!(
                        "{status}: Retry-After asks for {}s, more than idsync waits ({}s)",
                        wait.as_secs(),
                        MAX_RETRY_WAIT.as_secs()
                    );
                    break;
                }
                if attempt < attempts {
                    tracing::info!(%url, %status, wait_ms = wait.as_millis() as u64, attempt, "directory busy, waiting before retry");
                    tokio::time::sleep(wait).await;
                }
                continue;
            }
            return Ok(Raw {
                status,
                etag,
                location,
                bytes,
                over,
            });
        }
        if unreachable {
            return Err(fail(format!(
                "cannot connect: {last}; check source.api_url and that the server is up"
            )));
        }
        Err(fail(format!(
            "gave up after {attempts} attempts: {last}; the read is incomplete, so nothing is changed"
        )))
    }

    /// GETs one JSON page; a dead delta link is `Stale`, other refusals fail the read.
    async fn get(&self, url: &Url) -> Result<Value, GetError> {
        let raw = self
            .send_get(url, None, self.cfg.max_response_bytes)
            .await?;
        if raw.over.is_some() {
            return Err(GetError::Failed(SourceError::Api {
                url: url.to_string(),
                detail: crate::http::over_cap(
                    self.cfg.max_response_bytes,
                    "source.max_response_bytes",
                ),
            }));
        }
        // A directory that echoes the client secret into its data does not get it journaled.
        let text = self.redact.values(&String::from_utf8_lossy(&raw.bytes));
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = json
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let status = raw.status;
        if status.is_success() && json.is_object() {
            return Ok(json);
        }
        if status == StatusCode::GONE
            || (status == StatusCode::BAD_REQUEST && code.eq_ignore_ascii_case("syncStateNotFound"))
        {
            let why = format!(
                "{status} {}{}",
                if code.is_empty() { "Gone" } else { &code },
                raw.location
                    .map(|l| format!(", Location {l}"))
                    .unwrap_or_default()
            );
            return Err(GetError::Stale(why));
        }
        let detail = if status.is_success() {
            format!("the reply is not a JSON object: {}", snippet(&text))
        } else {
            let message = json
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| snippet(&text));
            let hint = match status {
                StatusCode::UNAUTHORIZED => "; the token was refused twice: check source.tenant, source.client_id and that the secret is current",
                StatusCode::FORBIDDEN => "; grant the app registration the User.Read.All application permission, with admin consent",
                StatusCode::NOT_FOUND => "; check source.api_url (e.g. https://graph.microsoft.com/v1.0)",
                _ => "",
            };
            format!("{status} {code} {message}{hint}")
        };
        Err(GetError::Failed(SourceError::Api {
            url: url.to_string(),
            detail,
        }))
    }

    /// Follows `@odata.nextLink` from `first` to the last page.
    async fn pages(&self, first: Url) -> Result<Pages, GetError> {
        let mut out = Pages {
            items: Vec::new(),
            delta_link: None,
        };
        let mut url = first;
        let mut seen = BTreeSet::new();
        let mut pages = 0u64;
        loop {
            if !seen.insert(url.to_string()) {
                return Err(GetError::Failed(SourceError::Api {
                    url: url.to_string(),
                    detail:
                        "the server sent a nextLink it had already sent; the read cannot finish"
                            .into(),
                }));
            }
            let page = self.get(&url).await?;
            pages += 1;
            match page.get("value") {
                Some(Value::Array(items)) => out.items.extend(items.iter().cloned()),
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(GetError::Failed(SourceError::Api {
                        url: url.to_string(),
                        detail: "`value` is not a list".into(),
                    }))
                }
            }
            let max_pages = 2 * self.cfg.max_users.div_ceil(u64::from(self.cfg.page_size)) + 100;
            if out.items.len() as u64 > self.cfg.max_users || pages > max_pages {
                return Err(GetError::Failed(SourceError::Api {
                    url: url.to_string(),
                    detail: format!(
                        "the read goes on past source.max_users ({} items, or {max_pages} pages); nothing was changed: raise it if the directory really is that large",
                        self.cfg.max_users
                    ),
                }));
            }
            if let Some(next) = page.get("@odata.nextLink").and_then(Value::as_str) {
                url = self.link(next)?;
                continue;
            }
            out.delta_link = page
                .get("@odata.deltaLink")
                .and_then(Value::as_str)
                .map(str::to_string);
            return Ok(out);
        }
    }

    /// A link the server gave, followed as given, but only to the API's own origin: the
    /// bearer token goes nowhere else.
    fn link(&self, text: &str) -> Result<Url, GetError> {
        let url = Url::parse(text)
            .or_else(|_| self.cfg.api_url.join(text))
            .map_err(|e| {
                GetError::Failed(SourceError::Api {
                    url: self.cfg.api_url.to_string(),
                    detail: format!("the server sent a link that is not a URL ({e}): {text}"),
                })
            })?;
        if url.origin() != self.cfg.api_url.origin() {
            return Err(GetError::Failed(SourceError::Api {
                url: self.cfg.api_url.to_string(),
                detail: format!(
                    "the server sent a link to another origin ({}); idsync sends its token only to source.api_url",
                    url.origin().ascii_serialization()
                ),
            }));
        }
        Ok(url)
    }

    fn users_url(&self) -> Url {
        let mut u = self.api("users");
        u.query_pairs_mut()
            .append_pair("$select", &self.select())
            .append_pair("$top", &self.cfg.page_size.to_string());
        u
    }

    /// Every item of a collection that is not a delta (a 410 there is just an error).
    async fn all_pages(&self, first: Url) -> Result<Vec<Value>, SourceError> {
        match self.pages(first.clone()).await {
            Ok(p) => Ok(p.items),
            Err(GetError::Failed(e)) => Err(e),
            Err(GetError::Stale(why)) => Err(SourceError::Api {
                url: first.to_string(),
                detail: format!("unexpected {why} on a full read"),
            }),
        }
    }

    /// Every user, from `/users`.
    async fn read_everyone(&self) -> Result<Vec<DirectoryUser>, SourceError> {
        let pages = Pages {
            items: self.all_pages(self.users_url()).await?,
            delta_link: None,
        };
        let mut by_anchor = BTreeMap::new();
        for item in &pages.items {
            let u = user_from(item)?;
            by_anchor.insert(u.anchor.clone(), u);
        }
        Ok(by_anchor.into_values().collect())
    }

    /// A delta link for "from now on" (`$deltatoken=latest`), taken before a full read so no
    /// change made during the read is missed (one made then is reported again: harmless).
    async fn latest_delta_link(&self) -> Result<String, SourceError> {
        let mut u = self.api("users/delta");
        u.query_pairs_mut()
            .append_pair("$select", &self.select())
            .append_pair("$deltatoken", "latest");
        self.all_delta_link(u).await
    }

    async fn full_read(
        &self,
        why: String,
        now: DateTime<Utc>,
        tracked: bool,
    ) -> Result<Read, SourceError> {
        let delta_link = if tracked {
            Some(self.latest_delta_link().await?)
        } else {
            None
        };
        let users = self.read_everyone().await?;
        let remember = delta_link.map(|delta_link| Remember {
            cursor: cursor_text(&Cursor {
                delta_link,
                select: self.cfg.select.clone(),
                last_full: now,
            }),
            cache: CacheChange::Replace,
        });
        Ok(Read {
            users,
            kind: ReadKind::Full { why },
            remember,
        })
    }

    /// The changes since `cursor`, merged into the remembered population.
    async fn delta_read(&self, cursor: &Cursor, remembered: &Remembered) -> Result<Read, GetError> {
        let first = self.link(&cursor.delta_link)?;
        let pages = self.pages(first.clone()).await?;
        let Some(next_link) = pages.delta_link else {
            return Err(GetError::Failed(SourceError::Api {
                url: first.to_string(),
                detail: "the last page of changes has no @odata.deltaLink".into(),
            }));
        };
        let mut people: BTreeMap<Anchor, DirectoryUser> = remembered
            .users
            .iter()
            .map(|u| (u.anchor.clone(), u.clone()))
            .collect();
        let (mut upserted, mut removed) = (BTreeSet::new(), BTreeSet::new());
        for item in &pages.items {
            let anchor = anchor_of(item)?;
            if let Some(gone) = item.get("@removed") {
                let reason = gone.get("reason").and_then(Value::as_str).unwrap_or("");
                tracing::debug!(%anchor, reason, "removed upstream");
                people.remove(&anchor);
                upserted.remove(&anchor);
                removed.insert(anchor);
                continue;
            }
            let merged = match people.remove(&anchor) {
                Some(mut known) => {
                    merge(&mut known, item);
                    known
                }
                None => user_from(item)?,
            };
            removed.remove(&anchor);
            upserted.insert(anchor.clone());
            people.insert(anchor, merged);
        }
        let kind = ReadKind::Incremental {
            changed: upserted.len(),
            removed: removed.len(),
        };
        Ok(Read {
            users: people.into_values().collect(),
            kind,
            remember: Some(Remember {
                cursor: cursor_text(&Cursor {
                    delta_link: next_link,
                    select: cursor.select.clone(),
                    last_full: cursor.last_full,
                }),
                cache: CacheChange::Delta { upserted, removed },
            }),
        })
    }

    /// Photos in flight at once.
    const PHOTO_CONCURRENCY: usize = 8;

    /// One person's photo: 200 = these bytes, 304 = unchanged since `known` (the app has
    /// it), 404 = none.
    async fn photo(
        &self,
        anchor: &Anchor,
        known: Option<&Photo>,
    ) -> Result<Option<Photo>, SourceError> {
        let url = self.api(&format!(
            "users/{}/photo/$value",
            path_segment(anchor.as_str())
        ));
        let tag = known.and_then(|p| p.etag.as_deref());
        let raw = match self.send_get(&url, tag, self.cfg.photo_max_bytes).await {
            Ok(r) => r,
            Err(GetError::Failed(e)) => return Err(e),
            Err(GetError::Stale(why)) => {
                return Err(SourceError::Api {
                    url: url.to_string(),
                    detail: why,
                })
            }
        };
        match raw.status {
            StatusCode::NOT_MODIFIED if known.is_some() => Ok(known.cloned()),
            StatusCode::NOT_FOUND => Ok(None),
            // Cut at target.photo_max_bytes: a notice for this person, never a failed read.
            s if s.is_success() && raw.over.is_some() => Ok(Some(Photo::oversized(
                raw.bytes,
                raw.over.unwrap_or_default(),
                raw.etag,
            ))),
            s if s.is_success() && !raw.bytes.is_empty() => {
                let mut p = Photo::new(raw.bytes);
                p.etag = raw.etag;
                Ok(Some(p))
            }
            s if s.is_success() => Ok(None),
            s => Err(SourceError::Api {
                url: url.to_string(),
                detail: format!(
                    "{s} reading a photo: {}",
                    snippet(&String::from_utf8_lossy(&raw.bytes))
                ),
            }),
        }
    }

    /// Reads the photo of every enabled person, conditionally where the app already has the
    /// photo last read (its ETag), and returns the anchors whose photo changed.
    async fn read_photos(
        &self,
        users: &mut [DirectoryUser],
        app_has: &BTreeMap<Anchor, String>,
    ) -> Result<BTreeSet<Anchor>, SourceError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let jobs: Vec<(usize, Anchor, Option<Photo>)> = users
            .iter()
            .enumerate()
            .filter(|(_, u)| !u.disabled)
            .map(|(i, u)| {
                // Ask "changed since?" only when the app has exactly the photo remembered;
                // otherwise the bytes are needed.
                let known = u
                    .photo
                    .clone()
                    .filter(|p| app_has.get(&u.anchor) == Some(&p.sha256));
                (i, u.anchor.clone(), known)
            })
            .collect();
        let results: Vec<(usize, Option<Photo>)> = stream::iter(jobs)
            .map(|(i, anchor, known)| async move {
                let photo = self.photo(&anchor, known.as_ref()).await?;
                Ok::<_, SourceError>((i, photo))
            })
            .buffer_unordered(Self::PHOTO_CONCURRENCY)
            .try_collect()
            .await?;
        let mut changed = BTreeSet::new();
        for (i, photo) in results {
            let u = &mut users[i];
            let same = match (&u.photo, &photo) {
                (Some(a), Some(b)) => a.sha256 == b.sha256 && a.etag == b.etag,
                (None, None) => true,
                _ => false,
            };
            if !same {
                changed.insert(u.anchor.clone());
            }
            u.photo = photo;
        }
        Ok(changed)
    }

    async fn read_now(&self, request: &ReadRequest<'_>) -> Result<Read, SourceError> {
        let mut read = self.read_users(request).await?;
        if self.cfg.photo {
            // A full read knows no photo yet: carry over what was remembered (its ETag), so
            // a full read, too, downloads only photos that changed.
            if let Some(r) = request.remembered {
                let known: BTreeMap<&Anchor, &Photo> = r
                    .users
                    .iter()
                    .filter_map(|u| Some((&u.anchor, u.photo.as_ref()?)))
                    .collect();
                for u in read.users.iter_mut().filter(|u| u.photo.is_none()) {
                    u.photo = known.get(&u.anchor).map(|p| (*p).clone());
                }
            }
            let changed = self
                .read_photos(&mut read.users, request.photo_hashes)
                .await?;
            if let Some(Remember {
                cache: CacheChange::Delta { upserted, .. },
                ..
            }) = &mut read.remember
            {
                upserted.extend(changed);
            }
        }
        Ok(read)
    }

    async fn read_users(&self, request: &ReadRequest<'_>) -> Result<Read, SourceError> {
        let now = request.now;
        if self.cfg.incremental == Incremental::None {
            return self
                .full_read("source.incremental: none".into(), now, false)
                .await;
        }
        let remembered = request.remembered.filter(|r| r.cursor.is_some());
        let cursor = remembered
            .and_then(|r| r.cursor.as_deref())
            .and_then(|c| serde_json::from_str::<Cursor>(c).ok());
        let why = match (&cursor, remembered) {
            _ if request.force_full => Some("asked for (--full)".to_string()),
            (None, _) | (_, None) => Some("first read: no delta link yet".to_string()),
            (Some(c), _) if c.select != self.cfg.select => {
                Some("the mapping reads other attributes than the delta link tracks".to_string())
            }
            (Some(c), _) => {
                let every = chrono::Duration::from_std(self.cfg.full_every)
                    .unwrap_or(chrono::Duration::MAX);
                (now - c.last_full >= every).then(|| {
                    format!(
                        "full_every {} since the last full read at {}",
                        humantime::format_duration(self.cfg.full_every),
                        c.last_full.format("%Y-%m-%d %H:%M UTC")
                    )
                })
            }
        };
        match (why, cursor, remembered) {
            (None, Some(c), Some(r)) => match self.delta_read(&c, r).await {
                Ok(read) => Ok(read),
                Err(GetError::Failed(e)) => Err(e),
                Err(GetError::Stale(what)) => {
                    tracing::warn!(reason = %what, "the delta link is no longer valid; reading everything again");
                    let why = format!("the delta link expired ({what}); full resync");
                    self.full_read(why, now, true).await
                }
            },
            (why, _, _) => {
                let why = why.unwrap_or_else(|| "no delta link yet".into());
                self.full_read(why, now, true).await
            }
        }
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
        let tracked = self.cfg.incremental == Incremental::Delta;
        let cursor = remembered
            .and_then(|c| serde_json::from_str::<GroupCursor>(c).ok())
            .filter(|c| tracked && !force_full && c.select == select && c.filter == cfg.filter)
            .filter(|c| {
                let every = chrono::Duration::from_std(self.cfg.full_every)
                    .unwrap_or(chrono::Duration::MAX);
                now - c.last_full < every
            });
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
        let present: BTreeSet<&Anchor> = people.iter().map(|p| &p.anchor).collect();
        let raw = groups
            .iter()
            .map(|g| {
                let as_user = user_from(&g.props).ok();
                super::groups::RawGroup {
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
            .collect();
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
            groups: super::groups::assemble(raw, cfg),
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

    /// The delta link a `$deltatoken=latest` request ends with.
    async fn all_delta_link(&self, u: Url) -> Result<String, SourceError> {
        let pages = match self.pages(u.clone()).await {
            Ok(p) => p,
            Err(GetError::Failed(e)) => return Err(e),
            Err(GetError::Stale(why)) => {
                return Err(SourceError::Api {
                    url: u.to_string(),
                    detail: format!("unexpected {why} when starting change tracking"),
                })
            }
        };
        pages.delta_link.ok_or_else(|| SourceError::Api {
            url: u.to_string(),
            detail: "the reply has no @odata.deltaLink; the server does not track changes: set source.incremental: none".into(),
        })
    }

    /// `check --connect`: a token, then the first page of `/users`.
    pub async fn probe(&self) -> Result<String, SourceError> {
        self.bearer(true).await?;
        let mut u = self.api("users");
        u.query_pairs_mut()
            .append_pair("$select", "id")
            .append_pair("$top", "1");
        match self.get(&u).await {
            Ok(_) => Ok(format!(
                "directory: token from {} ok; {} reachable",
                self.cfg.token_url,
                self.api("users")
            )),
            Err(GetError::Failed(e)) => Err(e),
            Err(GetError::Stale(why)) => Err(SourceError::Api {
                url: u.to_string(),
                detail: why,
            }),
        }
    }
}

impl DirectoryReader for GraphReader {
    async fn read(&self, request: &ReadRequest<'_>) -> Result<Read, SourceError> {
        self.read_now(request).await
    }
}

fn cursor_text(c: &Cursor) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

/// What a token endpoint's refusal means, in the words of the key to fix.
fn token_refusal(status: StatusCode, json: &Value, text: &str) -> String {
    let error = json.get("error").and_then(Value::as_str).unwrap_or("");
    let description = json
        .get("error_description")
        .and_then(Value::as_str)
        .map(|d| d.lines().next().unwrap_or(d).to_string())
        .unwrap_or_else(|| snippet(text));
    let hint = if description.contains("AADSTS90002") || description.contains("AADSTS900023") {
        "check source.tenant"
    } else if description.contains("AADSTS700016") || error == "unauthorized_client" {
        "check source.client_id (the app registration's application id)"
    } else if description.contains("AADSTS7000215")
        || description.contains("AADSTS7000222")
        || error == "invalid_client"
    {
        "check the secret in source.client_secret_file: it is wrong or expired"
    } else if status == StatusCode::NOT_FOUND {
        "check source.token_url"
    } else {
        "check source.tenant, source.client_id and the client secret"
    };
    format!("{status} {error}: {description}; {hint}")
}

/// A header's value as text, if it is text.
fn header_text(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn anchor_of(item: &Value) -> Result<Anchor, SourceError> {
    match item.get("id") {
        Some(Value::String(s)) if crate::http::usable_id(s.trim()) => {
            Ok(Anchor::new(s.trim().to_ascii_lowercase()))
        }
        _ => Err(SourceError::BadEntry {
            dn: snippet(&item.to_string()),
            detail: "a user without a usable `id` (missing, empty, `.` or `..`); idsync needs it as the immutable anchor".into(),
        }),
    }
}

/// A property's values as text: strings, lists of strings, booleans and numbers; objects
/// are not mapped. `None` for null (the property is cleared).
fn values_of(v: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Value::Null => None,
        Value::Array(items) => Some(items.iter().filter_map(one).collect()),
        other => Some(one(other).into_iter().collect()),
    }
}

/// Sets the properties `item` carries (a null clears one); keeps the others. Graph's delta
/// replies carry at least the changed properties of an updated user, not always all.
fn merge(user: &mut DirectoryUser, item: &Value) {
    let Some(map) = item.as_object() else {
        return;
    };
    for (k, v) in map {
        if k.starts_with('@') || k.contains("@odata") {
            continue;
        }
        match values_of(v) {
            Some(vals) if !vals.is_empty() => user.attrs.insert(k, vals),
            _ => {
                user.attrs.remove(k);
            }
        }
    }
    user.attrs.shrink_to_fit();
    user.disabled = user
        .attrs
        .get("accountenabled")
        .and_then(|v| v.first())
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    user.locator = locator(user);
}

fn locator(user: &DirectoryUser) -> String {
    match user.values("userPrincipalName").first() {
        Some(upn) => format!("user {upn} ({})", user.anchor),
        None => format!("user {}", user.anchor),
    }
}

/// One Graph user object as a directory user.
fn user_from(item: &Value) -> Result<DirectoryUser, SourceError> {
    let mut user = DirectoryUser {
        anchor: anchor_of(item)?,
        locator: String::new(),
        attrs: Attrs::default(),
        disabled: false,
        problems: Vec::new(),
        photo: None,
    };
    merge(&mut user, item);
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn select_asks_for_graph_spellings_plus_id_and_account_enabled() {
        let list = select_list(
            ["userprincipalname", "jobtitle", "extension_abc_costCenter"].map(String::from),
        );
        assert_eq!(
            list,
            vec![
                "accountEnabled",
                "extension_abc_costCenter",
                "id",
                "jobTitle",
                "userPrincipalName"
            ]
        );
    }

    #[test]
    fn a_graph_user_becomes_a_directory_user_with_lists_and_booleans() {
        let u = user_from(&json!({
            "id": "6E9C-AB", "userPrincipalName": "ada@contoso.com", "accountEnabled": false,
            "businessPhones": ["+1 555 0100", "+1 555 0101"], "mobilePhone": null,
        }))
        .unwrap();
        assert_eq!(u.anchor.as_str(), "6e9c-ab");
        assert!(u.disabled, "accountEnabled=false means disabled");
        assert_eq!(u.values("businessPhones"), ["+1 555 0100", "+1 555 0101"]);
        assert!(u.values("mobilePhone").is_empty());
        assert_eq!(u.locator, "user ada@contoso.com (6e9c-ab)");
    }

    #[test]
    fn a_delta_update_changes_only_the_properties_it_carries() {
        let mut u = user_from(
            &json!({"id": "1", "jobTitle": "Eng", "department": "R&D", "accountEnabled": true}),
        )
        .unwrap();
        merge(
            &mut u,
            &json!({"id": "1", "jobTitle": "Lead", "department": null}),
        );
        assert_eq!(u.values("jobTitle"), ["Lead"]);
        assert!(u.values("department").is_empty(), "null clears");
        assert!(!u.disabled);
        merge(&mut u, &json!({"id": "1", "accountEnabled": false}));
        assert!(u.disabled);
        assert_eq!(u.values("jobTitle"), ["Lead"], "absent = unchanged");
    }

    #[test]
    fn a_user_without_id_is_a_bad_entry() {
        assert!(matches!(
            user_from(&json!({"displayName": "x"})),
            Err(SourceError::BadEntry { .. })
        ));
    }

    #[test]
    fn token_refusals_name_the_key_to_fix() {
        let tenant = token_refusal(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": "AADSTS90002: Tenant 'x' not found."}),
            "",
        );
        assert!(tenant.contains("source.tenant"), "{tenant}");
        let secret = token_refusal(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
            "",
        );
        assert!(secret.contains("client_secret_file"), "{secret}");
    }
}
