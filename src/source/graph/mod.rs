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

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::settings::{GraphConfig, Incremental};
mod by_id;
mod groups;
mod photos;
mod transport;

pub use groups::GroupRead;
use transport::{GetError, Pages, Token};

use super::{
    CacheChange, DirectoryReader, Patch, Read, ReadKind, ReadRequest, Remember, Remembered, Since,
    SourceError,
};
use crate::http::snippet;
use crate::model::{Anchor, Attrs, DirectoryUser};
use crate::photo::Photo;
use crate::redact::Redactor;

pub const DEFAULT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
pub const DEFAULT_API_URL: &str = "https://graph.microsoft.com/v1.0";

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

pub struct GraphReader {
    cfg: GraphConfig,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
    /// Scrubs the client secret (and anything credential-shaped) out of server replies.
    redact: Redactor,
}

impl GraphReader {
    /// The settings this reader was made with.
    pub fn settings(&self) -> &GraphConfig {
        &self.cfg
    }

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

    fn users_url(&self) -> Url {
        let mut u = self.api("users");
        u.query_pairs_mut()
            .append_pair("$select", &self.select())
            .append_pair("$top", &self.cfg.page_size.to_string());
        u
    }

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
            (Some(c), _) => self.full_read_reason(c, now),
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

    /// Why a read cannot go on from delta link `c` (it tracks other attributes than the
    /// mapping reads, or `full_every` is due), if it cannot: what a read and the quiet
    /// question both ask.
    fn full_read_reason(&self, c: &Cursor, now: DateTime<Utc>) -> Option<String> {
        if c.select != self.cfg.select {
            return Some("the mapping reads other attributes than the delta link tracks".into());
        }
        super::full_every_reason(c.last_full, self.cfg.full_every, now)
    }

    /// What changed since `cursor`, where the delta can tell: `Some` (with the next delta
    /// link, the people it reports changed as patches and those it reports removed) when
    /// it reports at most `Since::LIMIT`; `None` when it reports more (read no further than
    /// the page past that: the cycle plans and reads them from the same link), the link is
    /// dead, an item has no usable id (the read says so), a full read is due, or photos are
    /// synced (a photo changes outside the delta). A quiet cycle's first question
    /// (`run::quiet`).
    pub async fn quiet_since(
        &self,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Since>, SourceError> {
        let Ok(c) = serde_json::from_str::<Cursor>(cursor) else {
            return Ok(None);
        };
        if self.cfg.photo
            || self.cfg.incremental == Incremental::None
            || self.full_read_reason(&c, now).is_some()
        {
            return Ok(None);
        }
        let pages = match self.link(&c.delta_link) {
            Ok(first) => self.pages_until(first, Some(Since::LIMIT)).await,
            Err(e) => Err(e),
        };
        let pages = match pages {
            Ok(pages) => pages,
            Err(GetError::Stale(_)) => return Ok(None),
            Err(GetError::Failed(e)) => return Err(e),
        };
        let Some(delta_link) = pages.delta_link else {
            return Ok(None);
        };
        let mut since = Since {
            cursor: cursor_text(&Cursor {
                delta_link,
                select: c.select,
                last_full: c.last_full,
            }),
            ..Since::default()
        };
        for item in pages.items {
            let Ok(anchor) = anchor_of(&item) else {
                return Ok(None);
            };
            if item.get("@removed").is_some() {
                since.touched.insert(anchor);
            } else {
                since.patched.push(Patch {
                    anchor,
                    item,
                    apply: merge,
                });
            }
        }
        Ok(Some(since))
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
        sync_id: None,
    };
    merge(&mut user, item);
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::transport::token_refusal;
    use super::*;
    use reqwest::StatusCode;
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
