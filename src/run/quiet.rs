//! A cycle in which nothing changed plans nothing. When every app's last apply run was a
//! whole sync, today, with this configuration, that planned nothing and left nothing in
//! escrow, and since then the directory reports no change to what idsync reads (a syncrepl
//! refresh from the remembered cookie, Active Directory's changes above the remembered
//! USN, a Graph delta that reports nobody: a person changed only in attributes idsync does
//! not read, or an object that is not a remembered person, is no change), no app changed
//! an account (its `meta.lastModified` query), no account is unsettled and no
//! `delete_after` ran out, then a plan made now would be that empty plan again: the cycle
//! records it (with that run's notices) without loading the population, the links or the
//! accounts. Anything else, or any doubt, plans as usual.
//!
//! What a plan reads, and why each is covered: the people (the directory's changes, each
//! compared with the remembered person), the accounts (the changes query, and no account
//! written since read), the links (changed only by apply runs: the previous apply run is
//! the quiet one), the configuration (`inputs`), the clock (`delete_after`, escrow
//! retries, `full_every`, the day a link was last seen), groups (not covered: a cycle with
//! `groups:` always plans).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::apply::Outcomes;
use crate::config::Config;
use crate::journal::{Outcome, RunCounts, RunRow, Tally, Watermark};
use crate::model::AccountId;
use crate::plan::Plan;
use crate::source::{CacheChange, ReadKind, Remember};

use super::begin::{AppRun, Opened};
use super::remembered::{full_reason, latest, AppSide};
use super::snapshot::{discover, source_key};
use super::{AppSummary, RunError, RunSummary, SyncOptions};

/// What a sync is planned with, as one fingerprint: the configuration (as loaded, less
/// how progress is shown) and idsync's version.
pub(super) fn inputs(cfg: &Config) -> String {
    let mut cfg = cfg.clone();
    cfg.progress = false;
    let mut hash = Sha256::new();
    hash.update(env!("CARGO_PKG_VERSION").as_bytes());
    hash.update(format!("{cfg:?}").as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What asking both sides found.
pub(super) enum Probe {
    /// Nothing changed anywhere: the directory's new cursor, each app's last apply run.
    Quiet {
        cursor: String,
        previous: Vec<RunRow>,
    },
    /// Plan as usual; these apps' changes were already read and remembered (the ids of
    /// the accounts that differed), and these apps were asked (answering or not).
    Changed {
        probed: BTreeMap<String, BTreeSet<AccountId>>,
        asked: BTreeSet<String>,
    },
}

/// Asks the journal, then the directory, then each app, whether anything changed since
/// the last plan, stopping at the first that did.
pub(super) async fn probe(
    cfg: &Config,
    journal: &crate::journal::Journal,
    o: &Opened<'_>,
    opts: &SyncOptions<'_>,
    inputs: &str,
) -> Result<Probe, RunError> {
    let usual = Probe::Changed {
        probed: BTreeMap::new(),
        asked: BTreeSet::new(),
    };
    if opts.full || opts.only_user.is_some() || !opts.overrides.is_empty() || cfg.groups.is_some() {
        return Ok(usual);
    }
    let mut previous = Vec::new();
    for r in &o.runs {
        match settled(r, inputs, o.now)? {
            Some(prev) => previous.push(prev),
            None => return Ok(usual),
        }
    }
    let key = source_key(cfg);
    let Some(cursor) = journal.cursor(&key)? else {
        return Ok(usual);
    };
    let Some(since) = o.connectors.directory.quiet_since(&cursor, o.now).await? else {
        return Ok(usual);
    };
    let remembered = journal.remembered_people_with(&key, since.anchors())?;
    if !since.changes_nothing(&remembered) {
        return Ok(usual);
    }
    let cursor = since.cursor;
    let mut probed = BTreeMap::new();
    let mut asked = BTreeSet::new();
    let mut quiet = true;
    for r in &o.runs {
        let client = o.connectors.app(&r.app.name);
        let side = AppSide {
            app: r.app,
            journal: &r.journal,
            client,
        };
        // An app that cannot answer fails its own run in the plan that follows (which asks
        // it again), not the cycle here.
        asked.insert(r.app.name.clone());
        match side.unchanged().await {
            Ok(Some(differ)) => {
                quiet &= differ.is_empty();
                probed.insert(r.app.name.clone(), differ);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(app = %r.app.name, error = %e, "the app could not say what changed: planning as usual");
                quiet = false;
            }
        }
    }
    Ok(match quiet {
        true => Probe::Quiet { cursor, previous },
        false => Probe::Changed { probed, asked },
    })
}

/// Asks each app not `asked` yet whose accounts this cycle plans against the remembered
/// ones what it changed since (remembered at once): the ids of the accounts that differ,
/// by app. An app that cannot answer is left to its run, which asks again (and fails).
pub(super) async fn ask_changes(
    o: &Opened<'_>,
    asked: &BTreeSet<String>,
    force_full: bool,
) -> BTreeMap<String, BTreeSet<AccountId>> {
    let each = o
        .runs
        .iter()
        .filter(|r| !asked.contains(&r.app.name))
        .map(|r| async move {
            let side = AppSide {
                app: r.app,
                journal: &r.journal,
                client: o.connectors.app(&r.app.name),
            };
            let marks = r.journal.app_read_marks().ok()?;
            full_reason(marks.as_ref(), force_full, r.app.target.full_every, o.now)
                .is_none()
                .then_some(())?;
            match side.unchanged().await {
                Ok(differ) => Some((r.app.name.clone(), differ?)),
                Err(e) => {
                    tracing::debug!(app = %r.app.name, error = %e, "the app could not say what changed: its run asks again");
                    None
                }
            }
        });
    futures::future::join_all(each)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The app's last apply run, when it was a whole sync today with these inputs that
/// planned nothing, and nothing in the app's state can have come due since.
fn settled(r: &AppRun<'_>, inputs: &str, now: DateTime<Utc>) -> Result<Option<RunRow>, RunError> {
    let j = &r.journal;
    let Some(prev) = j.previous_apply_run(r.run)? else {
        return Ok(None);
    };
    let c = &prev.counts;
    let today = DateTime::parse_from_rfc3339(&prev.started)
        .is_ok_and(|t| t.with_timezone(&Utc).date_naive() == now.date_naive());
    // It planned (and so applied) nothing.
    let whole = super::focus::stands(&prev, inputs)
        && c.planned.values().all(|n| *n == 0)
        && c.tally.is_some_and(|t| t == Tally::default());
    if !whole || !today {
        return Ok(None);
    }
    let marks = j.app_read_marks()?;
    if full_reason(marks.as_ref(), false, r.app.target.full_every, now).is_some()
        || !crate::escrow::only_waiting_parts(j.escrowed()?.values(), now)
        || j.accounts_unsettled()?
    {
        return Ok(None);
    }
    if let Some(keep) = r.app.policy.lifecycle.delete_after {
        if j.suspended_since(now - keep)? {
            return Ok(None);
        }
    }
    Ok(Some(prev))
}

impl AppSide<'_> {
    /// The ids of the accounts the app changed since the watermark that differ from what
    /// was remembered (empty: nothing changed), or `None` where the app cannot say (its
    /// own edits are repaired at the next full read); what it changed is remembered either
    /// way (the cycle's plan then needs no second query).
    async fn unchanged(&self) -> Result<Option<BTreeSet<AccountId>>, RunError> {
        discover(self.journal, self.client).await?;
        let watermark = self.journal.app_read_marks()?.and_then(|m| m.watermark);
        let Some(changed) = self.changed_since(watermark.as_deref()).await? else {
            return Ok(None);
        };
        let ids: Vec<_> = changed.iter().map(|a| &a.id).collect();
        let known = self.journal.remembered_accounts_with(&ids)?;
        let known: std::collections::BTreeMap<_, _> = known.iter().map(|k| (&k.id, k)).collect();
        let differ: BTreeSet<AccountId> = changed
            .iter()
            .filter(|a| known.get(&a.id) != Some(a))
            .map(|a| a.id.clone())
            .collect();
        let moved = latest(&changed, watermark.as_deref());
        self.journal
            .remember_accounts(&changed, &[], moved.as_deref().map(Watermark::Moved))?;
        Ok(Some(differ))
    }
}

/// Closes each app's run as its last apply run planned: nothing, with its notices; and
/// keeps the directory's new cursor when every app took part.
pub(super) fn finish(
    cfg: &Config,
    journal: &crate::journal::Journal,
    o: &Opened<'_>,
    opts: &SyncOptions<'_>,
    (cursor, previous): (String, Vec<RunRow>),
    inputs: &str,
    read_ms: u64,
) -> Result<Vec<AppSummary>, RunError> {
    let mut out = Vec::new();
    for (r, prev) in o.runs.iter().zip(previous) {
        let notices = r.journal.notices(prev.id)?;
        r.journal.record_notices(r.run, &notices)?;
        let people = prev.source_users.map(|n| n as usize);
        let nothing = ReadKind::Incremental {
            changed: 0,
            removed: 0,
        };
        let c = RunCounts {
            tally: Some(Tally::default()),
            read: Some(nothing.to_string()),
            app_read: Some(format!(
                "nothing changed on either side since run {}, which planned nothing: no plan made",
                prev.id
            )),
            read_ms: Some(read_ms),
            source_ms: Some(read_ms),
            apply_ms: Some(0),
            inputs: Some(inputs.to_string()),
            read_to: Some(super::snapshot::cursor_mark(&cursor)),
            ..RunCounts::default()
        };
        r.journal
            .finish_run(r.run, Outcome::Ok, people, &c, None, Utc::now())?;
        let mut plan = Plan {
            notices,
            ..Plan::default()
        };
        plan.stats.source_users = people.unwrap_or_default();
        out.push(AppSummary {
            app: r.app.name.clone(),
            result: Ok(RunSummary {
                run: r.run,
                plan,
                outcomes: Some(Outcomes::default()),
                outcome: Outcome::Ok,
            }),
        });
    }
    if opts.app.is_none() {
        let remember = Remember {
            cursor,
            cache: CacheChange::none(),
        };
        let key = source_key(cfg);
        journal.remember_read(Some((key.as_str(), &remember, &[])), None, Utc::now())?;
    }
    tracing::info!(
        apps = out.len(),
        "nothing changed on either side: no plan made"
    );
    Ok(out)
}
