//! Listing: paged by `startIndex` to the first short or empty page, read again when the
//! list moved while it was read, bounded by what the app announced and `max_accounts`; and
//! `eq` filter lookups.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::{HasId, ScimClient};
use crate::app::TargetError;
use crate::mapping::FieldPath;
use crate::model::{Account, AccountId, UserName};

impl ScimClient {
    /// The resources of `endpoint` whose `attr` equals `value` (a SCIM `eq` filter), with the
    /// URL asked.
    pub(super) async fn filter_eq(
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
        Ok((url, take_resources(reply.body)))
    }

    pub(super) async fn find_by_user_name(
        &self,
        user_name: &str,
    ) -> Result<Option<Account>, TargetError> {
        let wanted = UserName::new(user_name);
        if !self.discovery().await?.filter {
            // The app does not filter (its ServiceProviderConfig says so): a filtered GET
            // would answer with everyone, or a first page of anyone.
            return Ok(self
                .list()
                .await?
                .into_iter()
                .find(|a| a.user_name == wanted));
        }
        let path = FieldPath::verbatim("userName");
        Ok(self
            .find_accounts(&path, user_name)
            .await?
            .into_iter()
            .next())
    }

    /// The account that holds `user_name`, after the app answered a create with 409: the
    /// name is taken, so the account is there. Some apps compare `userName eq` case-exactly
    /// although their schema says `caseExact: false`, and find nothing for a name that
    /// differs only in case: then the lower-cased name, and last the whole list (compared
    /// without case), are asked. A 409 is resolved by a lookup, never by a second account.
    pub(super) async fn find_taken(&self, user_name: &str) -> Result<Option<Account>, TargetError> {
        if let Some(found) = self.find_by_user_name(user_name).await? {
            return Ok(Some(found));
        }
        if !self.discovery().await?.filter {
            // find_by_user_name listed the app already.
            return Ok(None);
        }
        let lower = user_name.to_lowercase();
        if lower != user_name {
            if let Some(found) = self.find_by_user_name(&lower).await? {
                return Ok(Some(found));
            }
        }
        let wanted = UserName::new(user_name);
        let found = self
            .list()
            .await?
            .into_iter()
            .find(|a| a.user_name == wanted);
        if let Some(a) = &found {
            tracing::warn!(user = %user_name, held_as = %a.user_name, "the app's `userName eq` filter missed an account that differs only in case (it compares case-exactly): found by listing, adopted");
        }
        Ok(found)
    }

    /// The account with this id, or `None` when the app says it is gone (404).
    pub async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, TargetError> {
        let url = self.url(&format!("Users/{}", crate::http::path_segment(id.as_str())));
        let reply = self.send(Method::GET, url.clone(), None).await?;
        if reply.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.status.is_success() {
            return Err(Self::http_error("GET", &url, &reply));
        }
        self.account(&url, reply.body).map(Some)
    }

    /// The accounts whose `path` (the match rule's, e.g. `userName` or `externalId`) equals
    /// `value` (without case, as `UserName` compares), by a SCIM `eq` filter; what the app
    /// sends that does not match is dropped.
    pub async fn find_accounts(
        &self,
        path: &FieldPath,
        value: &str,
    ) -> Result<Vec<Account>, TargetError> {
        let (url, resources) = self.filter_eq("Users", &path.to_string(), value).await?;
        let mut out = Vec::new();
        for r in resources {
            let same = path
                .get(&r)
                .is_some_and(|v| v.to_lowercase() == value.to_lowercase());
            if same {
                out.push(self.account(&url, r)?);
            }
        }
        Ok(out)
    }

    /// The accounts the app changed since `since` (its own `meta.lastModified`, as it
    /// wrote it): what an admin edited in the app's UI. Where the app sorts, first one page
    /// of its accounts newest first (servers that scan every account for a filter sort them
    /// for less); where that page does not tell, or the app does not sort, a `ge` filter,
    /// paged.
    pub async fn changed_since(&self, since: &str) -> Result<Vec<Account>, TargetError> {
        if self.discovery().await?.sort {
            let newest = self
                .newest_since(
                    "Users",
                    since,
                    |url, r| self.account(url, r),
                    |a| stamp_of(a.resource.value()["meta"]["lastModified"].as_str()),
                )
                .await?;
            if let Some(newest) = newest {
                return Ok(newest);
            }
        }
        let literal = serde_json::to_string(since).unwrap_or_default();
        let changed = self
            .list_filtered(&format!("meta.lastModified ge {literal}"))
            .await;
        if let Err(TargetError::Http { status, .. }) = &changed {
            if (400..500).contains(status) {
                self.changes_refused
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        changed
    }

    /// The resources of `endpoint` (which may carry a query of its own) changed since
    /// `since`, from one page of them sorted by `meta.lastModified` newest first, each read
    /// by `parse` and stamped by `stamp`; `None` when that page does not tell (see
    /// `newest_first`), holds a resource that cannot be read (left to the filter, which
    /// may not show it), `since` is no timestamp, or the app refused the sort (an HTTP
    /// error): the filter is asked then.
    pub(super) async fn newest_since<T>(
        &self,
        endpoint: &str,
        since: &str,
        parse: impl Fn(&Url, Value) -> Result<T, TargetError>,
        stamp: impl Fn(&T) -> Option<DateTime<FixedOffset>>,
    ) -> Result<Option<Vec<T>>, TargetError> {
        let Ok(since) = DateTime::parse_from_rfc3339(since) else {
            return Ok(None);
        };
        let mut url = self.url(endpoint);
        url.query_pairs_mut()
            .append_pair("sortBy", "meta.lastModified")
            .append_pair("sortOrder", "descending")
            .append_pair("startIndex", "1")
            .append_pair("count", &NEWEST_PAGE.to_string());
        let reply = self.send(Method::GET, url.clone(), None).await?;
        if !reply.status.is_success() {
            tracing::debug!(%url, status = %reply.status, "the app refused to sort: asking the filter");
            return Ok(None);
        }
        let total = reply.body.get("totalResults").and_then(Value::as_u64);
        let Ok(page) = take_resources(reply.body)
            .into_iter()
            .map(|r| parse(&url, r))
            .collect::<Result<Vec<_>, _>>()
        else {
            return Ok(None);
        };
        Ok(newest_first(page, stamp, since, total))
    }

    /// False once the app refused a `changed_since` query (a 4xx) in this cycle.
    pub fn answers_changes(&self) -> bool {
        !self
            .changes_refused
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The accounts with these ids the app has now (those it does not have are gone), one
    /// GET each, `width` at a time. (Not `or` filters: RFC 7644 servers evaluate them
    /// against every account - 6 s for 50 ids over 10,000 accounts on scim2-server, against
    /// 0.5 s for 50 GETs - and many apps take none; a GET by id every app has.)
    pub async fn get_accounts(
        &self,
        ids: &[AccountId],
        width: usize,
    ) -> Result<Vec<Account>, TargetError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let by_id: Vec<Option<Account>> = stream::iter(ids)
            .map(|id| self.get_account(id))
            .buffer_unordered(width.max(1))
            .try_collect()
            .await?;
        Ok(by_id.into_iter().flatten().collect())
    }

    /// Every account a SCIM filter selects, paged.
    async fn list_filtered(&self, filter: &str) -> Result<Vec<Account>, TargetError> {
        self.list_all(&filtered("Users", filter), |url, r| self.account(url, r))
            .await
    }

    pub(super) async fn list(&self) -> Result<Vec<Account>, TargetError> {
        self.list_all("Users", |url, r| self.account(url, r)).await
    }

    /// Every resource of an endpoint, paged by startIndex, to the first short or empty page
    /// (a wrong `totalResults` neither stops the read early nor makes it run on). A page that
    /// repeats items already seen means the list moved while it was read (index paging over a
    /// changing list skips as many items as it repeats), so the whole list is read again; a
    /// list that keeps moving fails the read rather than hand the planner a list with holes.
    pub(super) async fn list_all<T, F>(
        &self,
        endpoint: &str,
        parse: F,
    ) -> Result<Vec<T>, TargetError>
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
    pub(super) async fn list_once<T, F>(
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
                .append_pair("startIndex", &start.to_string());
            if self.cfg.page_size > 0 {
                url.query_pairs_mut()
                    .append_pair("count", &self.cfg.page_size.to_string());
            }
            let first = start == 1 && self.cfg.page_size > 0;
            let reply = self
                .send(Method::GET, url.clone(), None)
                .await
                .map_err(|e| if first { count_hint(e) } else { e })?;
            if reply.status == reqwest::StatusCode::NOT_FOUND {
                return Err(no_endpoint(endpoint, &url));
            }
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
            // With no `count` asked (page_size 0) only totalResults or an empty page ends it.
            let short = count < self.cfg.page_size as usize || self.cfg.page_size == 0;
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
    pub(super) fn within_bounds(
        &self,
        url: &Url,
        read: u64,
        announced: Option<u64>,
    ) -> Result<(), TargetError> {
        let page = u64::from(self.cfg.page_size.max(100));
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
}

/// A list endpoint that is not there: `target.url` is not the app's SCIM base.
fn no_endpoint(endpoint: &str, url: &url::Url) -> TargetError {
    TargetError::Http {
        method: "GET".into(),
        url: url.to_string(),
        status: 404,
        scim_type: None,
        detail: format!("no `{endpoint}` here: target.url must be the app's SCIM base, the URL that `/{endpoint}` follows (e.g. https://app.example.com/scim/v2)"),
    }
}

/// A first page that kept failing: the app may fail on `count` itself (Canaille does).
fn count_hint(e: TargetError) -> TargetError {
    match e {
        TargetError::Exhausted {
            method,
            url,
            attempts,
            detail,
            status,
        } => TargetError::Exhausted {
            method,
            url,
            attempts,
            status,
            detail: format!("{detail} (`idsync check --connect` tells whether the app fails on the page size asked, `count`; target.page_size: 0 asks for none)"),
        },
        other => other,
    }
}

/// `endpoint` with a SCIM `filter` query (`endpoint` may carry a query of its own).
pub(super) fn filtered(endpoint: &str, filter: &str) -> String {
    let query: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}filter={query}")
}

/// The `Resources` of a list response (none when it has none).
fn take_resources(mut body: Value) -> Vec<Value> {
    match body.get_mut("Resources").map(Value::take) {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    }
}

/// How many resources the changes question asks for newest first.
const NEWEST_PAGE: usize = 100;

/// A `meta.lastModified` read as a time; `None` when missing or unreadable.
pub(super) fn stamp_of(text: Option<&str>) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text?).ok()
}

/// The resources changed since `since` in a page of the app's resources that claims to be
/// newest first (`stamp`: a resource's `meta.lastModified`; `total`: the app's
/// `totalResults`). It tells only when it is newest first indeed (every stamp there, none
/// later than the one before), it starts at or after `since` (the resource the watermark
/// was taken from, or a later one: an app that ignored the order starts anywhere) and it
/// reaches back before `since` or holds the whole list; otherwise `None`.
pub(super) fn newest_first<T>(
    page: Vec<T>,
    stamp: impl Fn(&T) -> Option<DateTime<FixedOffset>>,
    since: DateTime<FixedOffset>,
    total: Option<u64>,
) -> Option<Vec<T>> {
    let stamps: Vec<DateTime<FixedOffset>> = page.iter().map(stamp).collect::<Option<_>>()?;
    let ordered = stamps.windows(2).all(|w| w[0] >= w[1]);
    let starts_at_mark = stamps.first().is_some_and(|t| *t >= since);
    let reaches_back = stamps.last().is_some_and(|t| *t < since)
        || total.is_some_and(|t| t as usize <= page.len());
    if !(ordered && starts_at_mark && reaches_back) {
        return None;
    }
    let changed = stamps.iter().take_while(|t| **t >= since).count();
    Some(page.into_iter().take(changed).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resource;

    fn account(id: &str, modified: &str) -> Account {
        Account {
            id: AccountId::new(id),
            user_name: UserName::new(format!("{id}@example.org")),
            active: true,
            resource: Resource::new(&serde_json::json!({
                "id": id,
                "meta": { "lastModified": modified },
            })),
        }
    }

    fn modified(a: &Account) -> Option<DateTime<FixedOffset>> {
        stamp_of(a.resource.value()["meta"]["lastModified"].as_str())
    }

    fn at(t: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(t).unwrap()
    }

    fn ids(found: Option<Vec<Account>>) -> Option<Vec<String>> {
        found.map(|list| list.into_iter().map(|a| a.id.to_string()).collect())
    }

    #[test]
    fn a_page_newest_first_that_reaches_back_past_the_mark_tells_what_changed() {
        let page = vec![
            account("new", "2026-12-02T10:05:00Z"),
            account("mark", "2026-12-02T10:00:00+00:00"),
            account("old", "2026-12-01T09:00:00Z"),
        ];
        let since = at("2026-12-02T10:00:00Z");
        assert_eq!(
            ids(newest_first(page.clone(), modified, since, Some(500))),
            Some(vec!["new".into(), "mark".into()])
        );
        // Nothing but the account the mark was taken from: nothing changed.
        let quiet = page[1..].to_vec();
        assert_eq!(
            ids(newest_first(quiet, modified, since, None)),
            Some(vec!["mark".into()])
        );
        // The whole list on one page.
        let all = page[..2].to_vec();
        assert_eq!(
            ids(newest_first(all, modified, since, Some(2)))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_page_that_cannot_tell_leaves_the_question_to_the_filter() {
        let since = at("2026-12-02T10:00:00Z");
        // Every account on it changed: more may follow.
        let busy = vec![
            account("a", "2026-12-02T10:07:00Z"),
            account("b", "2026-12-02T10:06:00Z"),
        ];
        assert!(newest_first(busy, modified, since, Some(900)).is_none());
        // Not in order: the app ignored sortBy.
        let unordered = vec![
            account("a", "2026-12-02T10:01:00Z"),
            account("b", "2026-12-01T10:00:00Z"),
            account("c", "2026-12-02T10:09:00Z"),
        ];
        assert!(newest_first(unordered, modified, since, Some(900)).is_none());
        // Starting before the mark: the order was ignored, or that account is gone.
        let late = vec![account("old", "2026-12-01T09:00:00Z")];
        assert!(newest_first(late, modified, since, Some(900)).is_none());
        // A stamp missing or unreadable.
        let mut odd = account("odd", "yesterday");
        assert!(newest_first(vec![odd.clone()], modified, since, Some(1)).is_none());
        odd.resource = Resource::new(&serde_json::json!({ "id": "odd" }));
        assert!(newest_first(vec![odd], modified, since, Some(1)).is_none());
    }
}
