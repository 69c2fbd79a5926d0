//! The SCIM transport: one request with bounded retries (429/5xx honouring `Retry-After`),
//! creates that are looked up before they are sent again, bodies read against their cap
//! and scrubbed of secrets, no redirect followed.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use super::{ScimClient, SCIM_JSON};
use crate::app::TargetError;
use crate::http::{
    backoff, is_tls, read_body, redirect_text, retry_after, snippet, transport_text, Body,
    MAX_RETRY_WAIT,
};

/// What one attempt at a request came to.
pub(super) enum Attempt {
    /// A reply for the caller to judge (any status but 429 / 5xx).
    Reply(Reply),
    /// Worth sending again, after `wait` (or the backoff); `why` says what happened.
    Again {
        wait: Option<std::time::Duration>,
        why: String,
        /// The app's answer, when it answered (429, 5xx).
        status: Option<u16>,
    },
    /// Not worth waiting for (a Retry-After beyond what idsync waits).
    GiveUp(String),
    Fail(TargetError),
}

pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

/// Whether an attempt that failed without a clear answer may simply be sent again.
#[derive(Clone, Copy)]
pub(super) enum Replay {
    /// Reads, PATCHes, PUTs and DELETEs: sending them twice ends in the same state.
    Safe,
    /// A POST: sending it twice could create two resources.
    Create,
}

/// A request body: SCIM JSON, or raw bytes of a type (a photo).
#[derive(Clone, Copy)]
pub(super) enum Payload<'a> {
    Json(&'a Value),
    /// JSON sent only if the resource is still at this version (`If-Match`).
    JsonIfMatch {
        body: &'a Value,
        version: &'a str,
    },
    Bytes {
        bytes: &'a [u8],
        mime: &'static str,
    },
    /// No body, only if the resource is still at this version (a DELETE's `If-Match`).
    IfMatch(&'a str),
}

impl<'a> Payload<'a> {
    /// JSON, sent only if the resource is still at `version` when there is one.
    pub(super) fn json_if(body: &'a Value, version: Option<&'a str>) -> Payload<'a> {
        match version {
            Some(version) => Payload::JsonIfMatch { body, version },
            None => Payload::Json(body),
        }
    }
}

impl ScimClient {
    /// Sends one request with bounded retries on 429/5xx/transport errors.
    pub(super) async fn send(
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
    pub(super) async fn send_create<T, F, Fut>(
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
                Err(TargetError::Uncertain { detail, status }) => {
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
                            status,
                        });
                    }
                    tokio::time::sleep(backoff(looked)).await;
                }
                other => return other.map(Ok),
            }
        }
    }

    pub(super) async fn send_payload(
        &self,
        method: Method,
        url: Url,
        body: Option<Payload<'_>>,
        replay: Replay,
    ) -> Result<Reply, TargetError> {
        let attempts = self.cfg.max_retries + 1;
        let mut last = String::new();
        let mut last_status = None;
        for attempt in 1..=attempts {
            if let Some(l) = &self.limiter {
                l.until_ready().await;
            }
            for (scope, l) in &self.method_limiters {
                if scope.covers(&method) {
                    l.until_ready().await;
                }
            }
            let outcome = match self.request(&method, &url, body).send().await {
                Err(e) => self.transport_failure(e, &url, replay, attempt == attempts),
                Ok(resp) => self.judge(&method, &url, resp, replay).await,
            };
            let (wait, why) = match outcome {
                Attempt::Reply(r) => return Ok(r),
                Attempt::Fail(e) => return Err(e),
                Attempt::GiveUp(why) => {
                    last = why;
                    break;
                }
                Attempt::Again { wait, why, status } => {
                    last_status = status;
                    (wait.unwrap_or(backoff(attempt)), why)
                }
            };
            last = why;
            if attempt == attempts {
                break;
            }
            tracing::info!(%method, %url, wait_ms = wait.as_millis() as u64, attempt, error = %last, "the app did not answer clearly; trying again");
            tokio::time::sleep(wait).await;
        }
        Err(TargetError::Exhausted {
            method: method.to_string(),
            url: url.to_string(),
            attempts,
            detail: last,
            status: last_status,
        })
    }

    /// One request, with the token and SCIM's content types.
    fn request(
        &self,
        method: &Method,
        url: &Url,
        body: Option<Payload<'_>>,
    ) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(self.cfg.token.expose())
            .header(reqwest::header::ACCEPT, SCIM_JSON);
        match body {
            Some(Payload::Json(b)) => req
                .header(reqwest::header::CONTENT_TYPE, SCIM_JSON)
                .body(b.to_string()),
            Some(Payload::JsonIfMatch { body, version }) => req
                .header(reqwest::header::CONTENT_TYPE, SCIM_JSON)
                .header(reqwest::header::IF_MATCH, version)
                .body(body.to_string()),
            Some(Payload::Bytes { bytes, mime }) => req
                .header(reqwest::header::CONTENT_TYPE, mime)
                .body(bytes.to_vec()),
            Some(Payload::IfMatch(version)) => req.header(reqwest::header::IF_MATCH, version),
            None => req,
        }
    }

    /// A request that got no reply: TLS never passes by itself; a refused connection did
    /// not reach the app; anything else may have, so a create is looked up, not re-sent.
    fn transport_failure(
        &self,
        e: reqwest::Error,
        url: &Url,
        replay: Replay,
        last: bool,
    ) -> Attempt {
        let detail = self.redact.clean(&transport_text(&e));
        let url = url.to_string();
        if is_tls(&e) {
            Attempt::Fail(TargetError::Tls { url, detail })
        } else if e.is_connect() && last {
            Attempt::Fail(TargetError::Connect { url, detail })
        } else if !e.is_connect() && matches!(replay, Replay::Create) {
            Attempt::Fail(TargetError::Uncertain {
                detail,
                status: None,
            })
        } else {
            Attempt::Again {
                wait: None,
                why: detail,
                status: None,
            }
        }
    }

    /// What a reply comes to: a redirect or an oversized body fails; 429 and 5xx are tried
    /// again (a create's 5xx is looked up first); the rest is the caller's to judge.
    async fn judge(
        &self,
        method: &Method,
        url: &Url,
        resp: reqwest::Response,
        replay: Replay,
    ) -> Attempt {
        let status = resp.status();
        let retry_after = retry_after(&resp);
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| self.redact.clean(l));
            return Attempt::Fail(TargetError::Redirect {
                method: method.to_string(),
                url: url.to_string(),
                detail: redirect_text(status, location.as_deref(), "target.url"),
            });
        }
        let text = match self.read_text(url, resp, replay).await {
            Ok(t) => t,
            Err(attempt) => return attempt,
        };
        // An error may echo the request: scrubbed whole. Data keeps its words, less any
        // secret value.
        let text = if status.is_success() {
            self.redact.values(&text)
        } else {
            self.redact.clean(&text)
        };
        if status.is_server_error() && matches!(replay, Replay::Create) {
            return Attempt::Fail(TargetError::Uncertain {
                detail: format!("{status} {}", snippet(&text)),
                status: Some(status.as_u16()),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return match retry_after {
                Some(wait) if wait > MAX_RETRY_WAIT => Attempt::GiveUp(format!(
                    "{status}: Retry-After asks for {}s, more than idsync waits ({}s)",
                    wait.as_secs(),
                    MAX_RETRY_WAIT.as_secs()
                )),
                wait => Attempt::Again {
                    wait,
                    why: format!("{status} {}", snippet(&text)),
                    status: Some(status.as_u16()),
                },
            };
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Attempt::Fail(TargetError::Auth {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(snippet(&text)))
        };
        Attempt::Reply(Reply { status, body })
    }

    /// A reply's body as text, read against the cap; a cut body is tried again (a create
    /// is looked up first), never taken as empty.
    async fn read_text(
        &self,
        url: &Url,
        resp: reqwest::Response,
        replay: Replay,
    ) -> Result<String, Attempt> {
        match read_body(resp, self.cfg.max_response_bytes).await {
            Ok(Body::Whole(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(Body::Over { .. }) => Err(Attempt::Fail(TargetError::BadReply {
                url: url.to_string(),
                detail: crate::http::over_cap(
                    self.cfg.max_response_bytes,
                    "target.max_response_bytes",
                ),
            })),
            Err(e) => {
                let detail = self.redact.clean(&transport_text(&e));
                Err(match replay {
                    Replay::Create => Attempt::Fail(TargetError::Uncertain {
                        detail,
                        status: None,
                    }),
                    Replay::Safe => Attempt::Again {
                        wait: None,
                        why: detail,
                        status: None,
                    },
                })
            }
        }
    }

    pub(super) fn http_error(method: &str, url: &Url, reply: &Reply) -> TargetError {
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
            scim_type: reply
                .body
                .get("scimType")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}
