//! An app's accounts, read as `target.list` says the app allows: listed whole (`full`);
//! listed, then each linked account the list left out read by id (`active-only`: apps whose
//! list hides deactivated accounts); or never listed (`filter-only`): linked accounts read
//! by id, people without a link looked up by the match rule. An account read by id that
//! the app answers 404 for is gone; nothing is inferred from a list that cannot be read.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::app::scim::ScimClient;
use crate::app::settings::ListMode;
use crate::app::{AccountReader, TargetError};
use crate::config::AppConfig;
use crate::model::{Account, AccountId, Anchor, DirectoryUser, Link};

pub(super) async fn read_accounts(
    app: &AppConfig,
    client: &ScimClient,
    links: &BTreeMap<Anchor, Link>,
    users: &[DirectoryUser],
    out_of_scope: &BTreeMap<Anchor, String>,
) -> Result<Vec<Account>, TargetError> {
    let mode = app.target.list;
    let mut accounts = match mode {
        ListMode::Full | ListMode::ActiveOnly => client.list_accounts().await?,
        ListMode::FilterOnly => Vec::new(),
    };
    if mode == ListMode::Full {
        return Ok(accounts);
    }
    let width = app.target.concurrency.max(1);
    let listed: BTreeSet<&AccountId> = accounts.iter().map(|a| &a.id).collect();
    let unlisted: BTreeSet<&AccountId> = links
        .values()
        .map(|l| &l.account_id)
        .filter(|id| !listed.contains(id))
        .collect();
    let unlisted: Vec<AccountId> = unlisted.into_iter().cloned().collect();
    accounts.extend(client.get_accounts(&unlisted, width).await?);
    if mode == ListMode::FilterOnly {
        // Only people who may get an account: in scope, enabled, without a link.
        let rule = &app.policy.match_rule;
        let wanted: BTreeSet<String> = users
            .iter()
            .filter(|u| !u.disabled && !links.contains_key(&u.anchor))
            .filter(|u| !out_of_scope.contains_key(&u.anchor))
            .filter_map(|u| rule.source.render(u))
            .map(|v| v.to_lowercase())
            .collect();
        let found = find_by_match_rule(app, client, wanted).await?;
        let mut seen: BTreeSet<AccountId> = accounts.iter().map(|a| a.id.clone()).collect();
        for a in found {
            if seen.insert(a.id.clone()) {
                accounts.push(a);
            }
        }
    }
    Ok(accounts)
}

/// The accounts the match rule's target finds for these values (one `eq` lookup each,
/// `target.concurrency` at a time).
pub(super) async fn find_by_match_rule(
    app: &AppConfig,
    client: &ScimClient,
    values: BTreeSet<String>,
) -> Result<Vec<Account>, TargetError> {
    let rule = &app.policy.match_rule;
    let found: Vec<Vec<Account>> = stream::iter(values)
        .map(|v| async move { client.find_accounts(&rule.target, &v).await })
        .buffer_unordered(app.target.concurrency.max(1))
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}
