//! Graph's transport: the OAuth2 client-credentials token (cached, fetched again once on a
//! 401), GETs with bounded retries (429/5xx honouring `Retry-After`), bodies read against
//! their cap and scrubbed of secrets, no redirect followed, and paging by
//! `@odata.nextLink` (only to `api_url`'s origin), bounded by `source.max_users`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use super::GraphReader;
use crate::http::{
    backoff, read_body, redirect_text, retry_after, snippet, transport_text, Body, MAX_RETRY_WAIT,
};
use crate::source::SourceError;

pub(super) fn get_failed(e: GetError) -> SourceError {
    match e {
        GetError::Failed(e) => e,
        GetError::Stale(why) => SourceError::Api {
            url: String::new(),
            detail: why,
        },
    }
}

pub(super) struct Token {
    pub(super) value: String,
    pub(super) refresh_at: Instant,
}

/// Why one GET did not return a page.
pub(super) enum GetError {
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
/// Why a reply was not taken: worth trying again, or not.
pub(super) enum Step {
    Again(String),
    Fail(GetError),
}

pub(super) struct Raw {
    pub(super) status: StatusCode,
    pub(super) etag: Option<String>,
    pub(super) location: Option<String>,
    pub(super) bytes: Vec<u8>,
    /// The body was longer than the cap asked: its size (announced, or read so far);
    /// `bytes` holds at most the cap plus one.
    pub(super) over: Option<u64>,
}

/// One walk over a paged collection.
pub(super) struct Pages {
    pub(super) items: Vec<Value>,
    pub(super) delta_link: Option<String>,
}

impl GraphReader {
    /// A bearer token, fetched when there is none or it is about to expire.
    pub(super) async fn bearer(&self, fresh: bool) -> Result<String, SourceError> {
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

    pub(super) async fn fetch_token(&self) -> Result<Token, SourceError> {
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
                    pause(attempt, self.cfg.max_retries + 1).await;
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
                    pause(attempt, self.cfg.max_retries + 1).await;
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
            return token_from(&json).map_err(err);
        }
        Err(SourceError::Api {
            url: url.to_string(),
            detail: format!("no token after {} attempts: {last}; check source.token_url and that the server is up", self.cfg.max_retries + 1),
        })
    }

    /// One GET with bounded retries on 429/5xx/transport errors (honouring Retry-After) and
    /// a fresh token once on 401; any other reply is returned as it is.
    pub(super) async fn send_get(
        &self,
        url: &Url,
        if_none_match: Option<&str>,
        cap: usize,
    ) -> Result<Raw, GetError> {
        let attempts = self.cfg.max_retries + 1;
        let (mut refreshed, mut unreachable) = (false, false);
        let (mut last, mut attempt) = (String::new(), 0);
        while attempt < attempts {
            attempt += 1;
            let token = self.bearer(false).await?;
            let redact = self.redact.with(&token);
            let req = self.http.get(url.clone()).bearer_auth(token);
            let req = match if_none_match {
                Some(tag) => req.header(reqwest::header::IF_NONE_MATCH, tag),
                None => req,
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = redact.clean(&transport_text(&e));
                    if crate::http::is_tls(&e) {
                        let (url, detail) = (url.to_string(), last);
                        return Err(GetError::Failed(SourceError::Tls { url, detail }));
                    }
                    unreachable = e.is_connect();
                    tracing::debug!(%url, attempt, error = %last, "Graph request failed, retrying");
                    pause(attempt, attempts).await;
                    continue;
                }
            };
            unreachable = false;
            let wait = retry_after(&resp);
            let raw = match self.read_reply(url, resp, cap, &redact).await {
                Ok(raw) => raw,
                Err(Step::Fail(e)) => return Err(e),
                Err(Step::Again(why)) => {
                    last = why;
                    pause(attempt, attempts).await;
                    continue;
                }
            };
            let status = raw.status;
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                // The token may have been revoked or expired early: one fresh token, once.
                refreshed = true;
                attempt -= 1;
                self.bearer(true).await?;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                let wait = wait.unwrap_or(backoff(attempt));
                match busy(&raw, wait) {
                    Err(why) => {
                        last = why;
                        break;
                    }
                    Ok(why) => last = why,
                }
                if attempt < attempts {
                    tracing::info!(%url, %status, wait_ms = wait.as_millis() as u64, attempt, "directory busy, waiting before retry");
                    tokio::time::sleep(wait).await;
                }
                continue;
            }
            return Ok(raw);
        }
        let detail = if unreachable {
            format!("cannot connect: {last}; check source.api_url and that the server is up")
        } else {
            format!("gave up after {attempts} attempts: {last}; the read is incomplete, so nothing is changed")
        };
        Err(GetError::Failed(SourceError::Api {
            url: url.to_string(),
            detail,
        }))
    }

    /// A reply read to `cap`, scrubbed where it is an error (it may echo the request); a
    /// redirect fails (idsync follows none), a cut body is worth trying again.
    async fn read_reply(
        &self,
        url: &Url,
        resp: reqwest::Response,
        cap: usize,
        redact: &crate::redact::Redactor,
    ) -> Result<Raw, Step> {
        let status = resp.status();
        let location = header_text(&resp, reqwest::header::LOCATION).map(|l| redact.clean(&l));
        let etag = header_text(&resp, reqwest::header::ETAG);
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            return Err(Step::Fail(GetError::Failed(SourceError::Api {
                url: url.to_string(),
                detail: redirect_text(status, location.as_deref(), "source.api_url"),
            })));
        }
        let (bytes, over) = match read_body(resp, cap).await {
            Ok(Body::Whole(b)) => (b, None),
            Ok(Body::Over { head, announced }) => {
                let size = announced.unwrap_or(head.len() as u64);
                (head, Some(size))
            }
            Err(e) => return Err(Step::Again(redact.clean(&transport_text(&e)))),
        };
        let bytes = if over.is_none() && !status.is_success() {
            redact.clean(&String::from_utf8_lossy(&bytes)).into_bytes()
        } else {
            bytes
        };
        Ok(Raw {
            status,
            etag,
            location,
            bytes,
            over,
        })
    }

    /// GETs one JSON page; a dead delta link is `Stale`, other refusals fail the read.
    pub(super) async fn get(&self, url: &Url) -> Result<Value, GetError> {
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
    pub(super) async fn pages(&self, first: Url) -> Result<Pages, GetError> {
        self.pages_until(first, None).await
    }

    /// `pages`; with `stop_after`, stops at the first page past that many items (with no
    /// delta link then): enough to know that many changed.
    pub(super) async fn pages_until(
        &self,
        first: Url,
        stop_after: Option<usize>,
    ) -> Result<Pages, GetError> {
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
            if stop_after.is_some_and(|n| out.items.len() > n) {
                return Ok(out);
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
    pub(super) fn link(&self, text: &str) -> Result<Url, GetError> {
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
    /// Every item of a collection that is not a delta (a 410 there is just an error).
    pub(super) async fn all_pages(&self, first: Url) -> Result<Vec<Value>, SourceError> {
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
    /// The delta link a `$deltatoken=latest` request ends with.
    pub(super) async fn all_delta_link(&self, u: Url) -> Result<String, SourceError> {
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
}

/// What a token endpoint's refusal means, in the words of the key to fix.
pub(super) fn token_refusal(status: StatusCode, json: &Value, text: &str) -> String {
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
pub(super) fn header_text(
    resp: &reqwest::Response,
    name: reqwest::header::HeaderName,
) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A token endpoint's successful reply as a `Token`, refreshed shortly before it expires
/// (5 minutes early, or halfway for short lives).
fn token_from(json: &Value) -> Result<Token, String> {
    let value = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the reply has no access_token".to_string())?;
    let lifetime = json
        .get("expires_in")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(3600);
    let early = (lifetime / 2).min(300);
    Ok(Token {
        value: value.to_string(),
        refresh_at: Instant::now() + Duration::from_secs(lifetime - early),
    })
}

/// A 429/5xx reply: why, to retry after `wait` (`Ok`), or to give up on because the server
/// asks for a longer wait than idsync takes (`Err`).
fn busy(raw: &Raw, wait: Duration) -> Result<String, String> {
    let status = raw.status;
    if wait > MAX_RETRY_WAIT {
        return Err(format!(
            "{status}: Retry-After asks for {}s, more than idsync waits ({}s)",
            wait.as_secs(),
            MAX_RETRY_WAIT.as_secs()
        ));
    }
    Ok(format!(
        "{status} {}",
        snippet(&String::from_utf8_lossy(&raw.bytes))
    ))
}

/// The back-off before attempt `attempt + 1` of `attempts` (none after the last).
async fn pause(attempt: u32, attempts: u32) {
    if attempt < attempts {
        tokio::time::sleep(backoff(attempt)).await;
    }
}
