//! A Graph-shaped HTTP directory for the tests (no real Microsoft Graph is reachable here).
//!
//! It behaves as Graph documents itself, not as is convenient: an OAuth2 client-credentials
//! token endpoint with Entra's refusals (AADSTS codes), bearer tokens that expire, `/users`
//! with `$select` honoured (case-insensitively) and a server-driven page size under `$top`,
//! opaque `@odata.nextLink` / `@odata.deltaLink` tokens, `/users/delta` (initial round,
//! `$deltatoken=latest`, changes with only the changed properties, `@removed` with reason
//! `changed` or `deleted`), 410 `resyncRequired` with a `Location` or 400
//! `syncStateNotFound` for a dead delta token, and 429 + `Retry-After` on a chosen share of
//! calls. Tests change the directory through `GraphServer` and read its counters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Map, Value};

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const CLIENT_SECRET: &str = "graph-secret-Canary~7Q";

/// Graph's default user properties (what `/users` returns without `$select`).
const DEFAULT_SELECT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

/// How a dead delta token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// 410 Gone, `resyncRequired`, with a `Location` to start again.
    Gone,
    /// 400 Bad Request, `syncStateNotFound`.
    NotFound,
}

#[derive(Clone, Debug)]
enum Change {
    Created,
    Props(BTreeSet<String>),
    Removed(&'static str),
}

#[derive(Clone, Debug)]
enum Session {
    /// A walk over precomputed items; `delta_seq` set for a delta round (ends in a deltaLink).
    Walk {
        path: String,
        items: Vec<Value>,
        offset: usize,
        top: usize,
        delta: Option<(Vec<String>, u64)>,
    },
    /// A delta token: changes after `seq`, selecting `select`.
    Delta {
        select: Vec<String>,
        seq: u64,
        epoch: u64,
    },
}

/// A group member's id, and whether it is a group (nesting) rather than a user.
type GroupMember = (String, bool);

/// The directory and its behaviour knobs.
pub struct Fixture {
    users: BTreeMap<String, Map<String, Value>>,
    /// Groups by id: their properties, and member ids with whether each is a group.
    groups: BTreeMap<String, (Map<String, Value>, Vec<GroupMember>)>,
    /// Group changes for `/groups/delta`: (seq, group id).
    group_changes: Vec<(u64, String)>,
    group_seq: u64,
    changes: Vec<(u64, String, Change)>,
    seq: u64,
    epoch: u64,
    sessions: HashMap<String, Session>,
    tokens: HashMap<String, (std::time::Instant, Option<usize>)>,
    next_id: u64,
    /// Photos by user id: (bytes, ETag).
    photos: BTreeMap<String, (Vec<u8>, String)>,
    /// The server's own port, for the links it hands out.
    port: u16,
    /// Largest page the server serves, whatever `$top` asks.
    pub page_size: usize,
    /// Serve an empty page (with a nextLink) before every n-th page.
    pub empty_page_every: Option<usize>,
    /// Answer every n-th API call with 429 + Retry-After: 1.
    pub throttle_every: Option<usize>,
    /// After this many pages, every API call fails with 503.
    pub fail_after_pages: Option<usize>,
    /// Tokens stop working after this many API calls (a revoked / early-expired token).
    pub token_calls: Option<usize>,
    pub stale: Stale,
    pub token_lifetime_secs: u64,
    // Counters.
    pub api_calls: usize,
    pub pages: usize,
    pub throttled: usize,
    pub token_requests: usize,
    pub users_served: usize,
    /// Photo reads answered with the bytes, and with 304 Not Modified.
    pub photo_downloads: usize,
    pub photo_not_modified: usize,
    /// `GET /users/{id}` requests (one user read by id).
    pub requests_by_id: usize,
    /// Request lines, `GET /v1.0/users?...`.
    pub log: Vec<String>,
}

pub struct GraphServer {
    pub port: u16,
    state: Arc<Mutex<Fixture>>,
    _served: super::Served,
}

impl GraphServer {
    /// Starts the server on a free loopback port with `users` in the directory.
    pub fn start(users: Vec<Value>) -> GraphServer {
        let mut f = Fixture {
            port: 0,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            group_changes: Vec::new(),
            group_seq: 0,
            changes: Vec::new(),
            seq: 0,
            epoch: 0,
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            next_id: 0,
            photos: BTreeMap::new(),
            page_size: 100,
            empty_page_every: None,
            throttle_every: None,
            fail_after_pages: None,
            token_calls: None,
            stale: Stale::Gone,
            token_lifetime_secs: 3599,
            api_calls: 0,
            pages: 0,
            throttled: 0,
            token_requests: 0,
            users_served: 0,
            photo_downloads: 0,
            photo_not_modified: 0,
            requests_by_id: 0,
            log: Vec::new(),
        };
        for u in users {
            f.put(u);
        }
        let state = Arc::new(Mutex::new(f));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let served = super::serve(app);
        state.lock().unwrap().port = served.port;
        GraphServer {
            port: served.port,
            state,
            _served: served,
        }
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1.0", self.port)
    }
    pub fn token_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/{{tenant}}/oauth2/v2.0/token",
            self.port
        )
    }

    /// Locks the fixture to change knobs or read counters.
    pub fn with<T>(&self, f: impl FnOnce(&mut Fixture) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn add(&self, user: Value) {
        self.with(|f| f.put(user));
    }

    /// Changes some properties of a user (a null clears one).
    pub fn update(&self, id: &str, props: Value) {
        self.with(|f| {
            let user = f.users.get_mut(id).expect("update of an unknown user");
            let mut keys = BTreeSet::new();
            for (k, v) in props.as_object().unwrap() {
                keys.insert(k.clone());
                user.insert(k.clone(), v.clone());
            }
            f.seq += 1;
            let seq = f.seq;
            f.changes.push((seq, id.to_string(), Change::Props(keys)));
        });
    }

    /// Removes a user: `changed` = soft-deleted (restorable), `deleted` = gone for good.
    pub fn remove(&self, id: &str, reason: &'static str) {
        self.with(|f| {
            f.users.remove(id).expect("removal of an unknown user");
            f.seq += 1;
            let seq = f.seq;
            f.changes
                .push((seq, id.to_string(), Change::Removed(reason)));
        });
    }

    /// Reports a user removed in the delta while they are still there (what a delta says
    /// of a user soft-deleted and restored between two rounds, reason `changed`).
    pub fn report_removed(&self, id: &str) {
        self.with(|f| {
            assert!(f.users.contains_key(id), "an unknown user");
            f.seq += 1;
            let seq = f.seq;
            f.changes
                .push((seq, id.to_string(), Change::Removed("changed")));
        });
    }

    /// Sets (or removes) a user's photo; each new photo gets a new ETag. As in Graph, a photo
    /// change is not a user change: delta queries do not report it.
    pub fn set_photo(&self, id: &str, photo: Option<Vec<u8>>) {
        self.with(|f| match photo {
            Some(bytes) => {
                f.next_id += 1;
                let etag = format!("W/\"{:x}\"", f.next_id.wrapping_mul(0x9e37_79b9));
                f.photos.insert(id.to_string(), (bytes, etag));
            }
            None => {
                f.photos.remove(id);
            }
        });
    }

    /// Adds (or replaces) a group: `members` are (id, is a group) pairs, as
    /// `/groups/{id}/members` lists users and nested groups.
    pub fn set_group(&self, id: &str, display_name: &str, members: &[(&str, bool)]) {
        self.with(|f| {
            let mut props = Map::new();
            props.insert("id".into(), json!(id));
            props.insert("displayName".into(), json!(display_name));
            props.insert("securityEnabled".into(), json!(true));
            let members = members.iter().map(|(m, g)| (m.to_string(), *g)).collect();
            f.groups.insert(id.to_string(), (props, members));
            f.group_seq += 1;
            let seq = f.group_seq;
            f.group_changes.push((seq, id.to_string()));
        });
    }

    /// Deletes a group.
    pub fn remove_group(&self, id: &str) {
        self.with(|f| {
            f.groups.remove(id).expect("removal of an unknown group");
            f.group_seq += 1;
            let seq = f.group_seq;
            f.group_changes.push((seq, id.to_string()));
        });
    }

    /// Makes every delta token issued so far dead.
    pub fn expire_delta_tokens(&self, how: Stale) {
        self.with(|f| {
            f.epoch += 1;
            f.stale = how;
        });
    }

    /// Clears the request log and counters.
    pub fn reset_counters(&self) {
        self.with(|f| {
            f.api_calls = 0;
            f.pages = 0;
            f.throttled = 0;
            f.token_requests = 0;
            f.users_served = 0;
            f.photo_downloads = 0;
            f.photo_not_modified = 0;
            f.log.clear();
        });
    }
}

/// A Graph user with the usual profile, `i` making it unique.
pub fn user(i: usize) -> Value {
    json!({
        "id": format!("{:08x}-1a2b-4c3d-8e4f-{:012x}", 0x5eed_0000u64 + i as u64, i),
        "userPrincipalName": format!("user{i:04}@contoso.example"),
        "mail": format!("user{i:04}@contoso.example"),
        "displayName": format!("Test Person{i}"),
        "givenName": "Test",
        "surname": format!("Person{i}"),
        "jobTitle": "Engineer",
        "department": "R&D",
        "officeLocation": "Building 1",
        "businessPhones": [format!("+1 555 {:04}", i % 10_000)],
        "mobilePhone": null,
        "preferredLanguage": "en-US",
        "accountEnabled": true,
    })
}

impl Fixture {
    fn put(&mut self, user: Value) {
        let map = user.as_object().unwrap().clone();
        let id = map["id"].as_str().unwrap().to_string();
        self.users.insert(id.clone(), map);
        self.seq += 1;
        self.changes.push((self.seq, id, Change::Created));
    }

    fn opaque(&mut self, session: Session) -> String {
        self.next_id += 1;
        // Opaque to clients: not a number they could guess or edit.
        let token = format!(
            "{:x}{:016x}",
            self.next_id,
            self.next_id.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        self.sessions.insert(token.clone(), session);
        token
    }

    fn project(user: &Map<String, Value>, select: &[String]) -> Value {
        let mut out = Map::new();
        for s in select {
            if let Some((k, v)) = user.iter().find(|(k, _)| k.eq_ignore_ascii_case(s)) {
                out.insert(k.clone(), v.clone());
            }
        }
        Value::Object(out)
    }

    /// What a delta token `seq` reports now, one item per changed user.
    fn changes_since(&self, seq: u64, select: &[String]) -> Vec<Value> {
        let mut per_user: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
        for (s, id, c) in &self.changes {
            if *s > seq {
                per_user.entry(id.as_str()).or_default().push(c);
            }
        }
        let mut out = Vec::new();
        for (id, cs) in per_user {
            match (self.users.get(id), cs.last()) {
                (None, Some(Change::Removed(reason))) => {
                    out.push(json!({"id": id, "@removed": {"reason": reason}}))
                }
                (None, _) => {}
                // `report_removed`: the delta's last word on a user still there.
                (Some(_), Some(Change::Removed(reason))) => {
                    out.push(json!({"id": id, "@removed": {"reason": reason}}))
                }
                (Some(u), _) if cs.iter().any(|c| matches!(c, Change::Created)) => {
                    out.push(Self::project(u, select))
                }
                (Some(u), _) => {
                    // Only the changed properties (and id), as Graph may answer.
                    let mut item = Map::new();
                    item.insert("id".into(), json!(id));
                    for c in cs {
                        if let Change::Props(keys) = c {
                            for k in keys {
                                if select.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                                    item.insert(
                                        k.clone(),
                                        u.get(k).cloned().unwrap_or(Value::Null),
                                    );
                                }
                            }
                        }
                    }
                    out.push(Value::Object(item));
                }
            }
        }
        out
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    reply(status, json!({"error": {"code": code, "message": message}}))
}

async fn handle(State(state): State<Arc<Mutex<Fixture>>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let header = |req: &Request, name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let auth = header(&req, "authorization");
    let if_none_match = header(&req, "if-none-match");
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let mut f = state.lock().unwrap();
    f.log.push(format!(
        "{method} {path}?{}",
        query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    ));
    if method == "POST" && path.ends_with("/oauth2/v2.0/token") {
        return token(&mut f, &path, &body);
    }
    if method != "GET" || !path.starts_with("/v1.0/") {
        return graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            "no such resource",
        );
    }
    f.api_calls += 1;
    let now = std::time::Instant::now();
    let bearer = auth.and_then(|a| a.strip_prefix("Bearer ").map(str::to_string));
    let valid = match bearer.as_ref().and_then(|b| f.tokens.get_mut(b)) {
        Some((expires, calls)) if *expires > now => match calls {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => true,
        },
        _ => false,
    };
    if !valid {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        );
    }
    if f.throttle_every
        .is_some_and(|n| f.api_calls.is_multiple_of(n))
    {
        f.throttled += 1;
        let mut r = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests, retry after the time in Retry-After.",
        );
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return r;
    }
    if f.fail_after_pages.is_some_and(|n| f.pages >= n) {
        return graph_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
            "The service is temporarily unavailable.",
        );
    }
    let get = |k: &str| {
        query
            .iter()
            .find(|(q, _)| q.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let select: Vec<String> = match get("$select") {
        Some(s) => s.split(',').map(|s| s.trim().to_string()).collect(),
        None => DEFAULT_SELECT.iter().map(|s| s.to_string()).collect(),
    };
    let top = match get("$top").map(|t| t.parse::<usize>()) {
        None => 100,
        Some(Ok(t)) if (1..=999).contains(&t) => t,
        Some(_) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Invalid page size specified: the $top value must be between 1 and 999.",
            )
        }
    };
    if let Some(id) = path.strip_prefix("/v1.0/users/").and_then(|p| {
        p.strip_suffix("/photo/$value")
            .or_else(|| p.strip_suffix("/photo/%24value"))
    }) {
        if !f.users.contains_key(id) {
            return graph_error(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                "no such user",
            );
        }
        let Some((bytes, etag)) = f.photos.get(id).cloned() else {
            return graph_error(StatusCode::NOT_FOUND, "ImageNotFound", "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.");
        };
        if if_none_match.as_deref() == Some(etag.as_str()) {
            f.photo_not_modified += 1;
            return Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header("etag", etag)
                .body(Body::empty())
                .unwrap();
        }
        f.photo_downloads += 1;
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "image/jpeg")
            .header("etag", etag)
            .body(Body::from(bytes))
            .unwrap();
    }
    // One user by id (`GET /users/{id}`), as Graph answers it: the `$select`ed
    // properties (with `@odata.context`), or 404 `Request_ResourceNotFound`.
    if let Some(id) = path
        .strip_prefix("/v1.0/users/")
        .filter(|id| !id.contains('/') && *id != "delta")
    {
        f.requests_by_id += 1;
        let Some(user) = f.users.get(id) else {
            return graph_error(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
            );
        };
        let mut body = Fixture::project(user, &select);
        body["@odata.context"] = json!(format!(
            "https://graph.microsoft.com/v1.0/$metadata#users({})/$entity",
            select.join(",")
        ));
        return reply(StatusCode::OK, body);
    }
    if let Some(group) = path
        .strip_prefix("/v1.0/groups/")
        .and_then(|p| p.strip_suffix("/members"))
    {
        if let Some(skip) = get("$skiptoken") {
            return walk(&mut f, &skip);
        }
        let Some((_, members)) = f.groups.get(group).cloned() else {
            return graph_error(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                "no such group",
            );
        };
        let items: Vec<Value> = members
            .iter()
            .map(|(id, is_group)| {
                let kind = if *is_group {
                    "#microsoft.graph.group"
                } else {
                    "#microsoft.graph.user"
                };
                json!({"@odata.type": kind, "id": id})
            })
            .collect();
        let token = f.opaque(Session::Walk {
            path: format!("groups/{group}/members"),
            items,
            offset: 0,
            top,
            delta: None,
        });
        return walk(&mut f, &token);
    }
    match path.as_str() {
        "/v1.0/groups/delta" => {
            if let Some(skip) = get("$skiptoken") {
                return walk(&mut f, &skip);
            }
            match get("$deltatoken").as_deref() {
                Some("latest") => {
                    let (seq, epoch) = (f.group_seq, f.epoch);
                    let token = f.opaque(Session::Delta { select, seq, epoch });
                    reply(
                        StatusCode::OK,
                        json!({"value": [], "@odata.deltaLink": link(f.port, "groups/delta", "$deltatoken", &token)}),
                    )
                }
                Some(t) => match f.sessions.get(t).cloned() {
                    Some(Session::Delta { select, seq, epoch }) if epoch == f.epoch => {
                        // Each group changed since, as it is now (members@delta listing its
                        // members), or removed.
                        let ids: BTreeSet<String> = f
                            .group_changes
                            .iter()
                            .filter(|(s, _)| *s > seq)
                            .map(|(_, id)| id.clone())
                            .collect();
                        let items: Vec<Value> = ids
                            .iter()
                            .map(|id| match f.groups.get(id) {
                                Some((props, members)) => {
                                    let mut item = Fixture::project(props, &["displayName".into()]);
                                    item["id"] = json!(id);
                                    item["members@delta"] = members
                                        .iter()
                                        .map(|(m, _)| json!({"id": m}))
                                        .collect();
                                    item
                                }
                                None => json!({"id": id, "@removed": {"reason": "deleted"}}),
                            })
                            .collect();
                        let now_seq = f.group_seq;
                        let token = f.opaque(Session::Walk {
                            path: "groups/delta".into(),
                            items,
                            offset: 0,
                            top: 999,
                            delta: Some((select, now_seq)),
                        });
                        walk(&mut f, &token)
                    }
                    _ => graph_error(
                        StatusCode::GONE,
                        "resyncRequired",
                        "Resync required. Replace any local cached data with data from the new delta token.",
                    ),
                },
                None => graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_UnsupportedQuery",
                    "this fixture serves group delta rounds from $deltatoken=latest only",
                ),
            }
        }
        "/v1.0/groups" => {
            if let Some(skip) = get("$skiptoken") {
                return walk(&mut f, &skip);
            }
            let items: Vec<Value> = f
                .groups
                .values()
                .map(|(g, _)| Fixture::project(g, &select))
                .collect();
            let token = f.opaque(Session::Walk {
                path: "groups".into(),
                items,
                offset: 0,
                top,
                delta: None,
            });
            walk(&mut f, &token)
        }
        "/v1.0/users" => {
            if let Some(skip) = get("$skiptoken") {
                return walk(&mut f, &skip);
            }
            let items: Vec<Value> = f
                .users
                .values()
                .map(|u| Fixture::project(u, &select))
                .collect();
            let token = f.opaque(Session::Walk {
                path: "users".into(),
                items,
                offset: 0,
                top,
                delta: None,
            });
            walk(&mut f, &token)
        }
        "/v1.0/users/delta" => {
            if let Some(skip) = get("$skiptoken") {
                return walk(&mut f, &skip);
            }
            match get("$deltatoken").as_deref() {
                None => {
                    let items: Vec<Value> = f
                        .users
                        .values()
                        .map(|u| Fixture::project(u, &select))
                        .collect();
                    let seq = f.seq;
                    let token = f.opaque(Session::Walk {
                        path: "users/delta".into(),
                        items,
                        offset: 0,
                        top,
                        delta: Some((select, seq)),
                    });
                    walk(&mut f, &token)
                }
                Some("latest") => {
                    let (seq, epoch) = (f.seq, f.epoch);
                    let token = f.opaque(Session::Delta { select, seq, epoch });
                    f.pages += 1;
                    reply(
                        StatusCode::OK,
                        json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": [], "@odata.deltaLink": link(f.port, "users/delta", "$deltatoken", &token)}),
                    )
                }
                Some(t) => {
                    let session = f.sessions.get(t).cloned();
                    match session {
                        Some(Session::Delta { select, seq, epoch }) if epoch == f.epoch => {
                            let items = f.changes_since(seq, &select);
                            let now_seq = f.seq;
                            let token = f.opaque(Session::Walk {
                                path: "users/delta".into(),
                                items,
                                offset: 0,
                                top: 999,
                                delta: Some((select, now_seq)),
                            });
                            walk(&mut f, &token)
                        }
                        _ => match f.stale {
                            Stale::Gone => {
                                let mut r = graph_error(
                                    StatusCode::GONE,
                                    "resyncRequired",
                                    "Resync required. Replace any local cached data with data from the new delta token.",
                                );
                                let loc = format!("http://127.0.0.1:{}/v1.0/users/delta", f.port);
                                r.headers_mut()
                                    .insert("location", HeaderValue::from_str(&loc).unwrap());
                                r
                            }
                            Stale::NotFound => graph_error(
                                StatusCode::BAD_REQUEST,
                                "syncStateNotFound",
                                "The sync state generation is not found.",
                            ),
                        },
                    }
                }
            }
        }
        _ => graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            "no such resource",
        ),
    }
}

fn link(port: u16, path: &str, key: &str, token: &str) -> String {
    format!("http://127.0.0.1:{port}/v1.0/{path}?{key}={token}")
}

/// Serves the next page of a walk.
fn walk(f: &mut Fixture, token: &str) -> Response {
    let Some(Session::Walk {
        path,
        items,
        offset,
        top,
        delta,
    }) = f.sessions.get(token).cloned()
    else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "The specified page token value has expired and can no longer be included in your request.",
        );
    };
    f.pages += 1;
    let port = f.port;
    // Now and then a page with nothing on it, that still has a nextLink.
    if f.empty_page_every
        .is_some_and(|n| f.pages.is_multiple_of(n))
        && offset < items.len()
    {
        let next = f.opaque(Session::Walk {
            path: path.clone(),
            items,
            offset,
            top,
            delta,
        });
        return reply(
            StatusCode::OK,
            json!({"value": [], "@odata.nextLink": link(port, &path, "$skiptoken", &next)}),
        );
    }
    let size = top.min(f.page_size);
    let end = (offset + size).min(items.len());
    let page: Vec<Value> = items[offset..end].to_vec();
    f.users_served += page.iter().filter(|i| i.get("@removed").is_none()).count();
    let mut body = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": page});
    if end < items.len() {
        let next = f.opaque(Session::Walk {
            path: path.clone(),
            items,
            offset: end,
            top,
            delta,
        });
        body["@odata.nextLink"] = json!(link(port, &path, "$skiptoken", &next));
    } else if let Some((select, seq)) = delta {
        let epoch = f.epoch;
        let next = f.opaque(Session::Delta { select, seq, epoch });
        body["@odata.deltaLink"] = json!(link(port, &path, "$deltatoken", &next));
    }
    reply(StatusCode::OK, body)
}

fn token(f: &mut Fixture, path: &str, body: &[u8]) -> Response {
    f.token_requests += 1;
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let tenant = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let refuse = |status: StatusCode, error: &str, description: &str| {
        reply(
            status,
            json!({"error": error, "error_description": description, "error_codes": [], "timestamp": "2026-11-23 10:00:00Z"}),
        )
    };
    if tenant != TENANT {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016: Application with identifier was not found in the directory.",
        );
    }
    if !form.get("scope").is_some_and(|s| s.ends_with("/.default")) {
        return refuse(StatusCode::BAD_REQUEST, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.");
    }
    if form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    f.next_id += 1;
    let value = format!(
        "eyJ0eXAiOiJKV1Qi.{:x}.sig",
        f.next_id.wrapping_mul(0x2545_f491_4f6c_dd1d)
    );
    let expires = std::time::Instant::now() + std::time::Duration::from_secs(f.token_lifetime_secs);
    f.tokens.insert(value.clone(), (expires, f.token_calls));
    reply(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": f.token_lifetime_secs, "ext_expires_in": f.token_lifetime_secs, "access_token": value}),
    )
}
