//! One run, end to end: read both sides (`snapshot`), plan, gate, (apply), journal. `plan`
//! and `sync` share everything up to the gated plan; only `sync` is handed a writer. The run
//! lock (`lock`) keeps apply runs apart; `review` holds what comes after a plan was looked
//! at (approve, reject, saved plans).

mod lock;
mod review;
mod snapshot;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::Instrument;

use crate::app::scim::ScimClient;
use crate::app::{AccountReader, GroupReader, TargetError};
use crate::apply::{self, Outcomes};
use crate::config::{Config, SourceConfig};
use crate::journal::{Journal, JournalError, Mode, Outcome};
use crate::model::{Account, Anchor, UserName};
use crate::plan::{self, Plan};
use crate::safety::{self, ReadRefused};
use crate::source::graph::GraphReader;
use crate::source::ldap::LdapReader;
use crate::source::{DirectoryReader, ReadRequest, SourceError};
use tokio_util::sync::CancellationToken;

pub use lock::RunLock;
pub use review::{apply_saved, approve, reject, Applied, Decision, SavedPlan, Selector};
use snapshot::{client, groups_key, read_groups, snapshot, source_key, warn_notices, Snapshot};

/// Why a run did not complete. Each is journaled with the run before it is returned.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("reading the directory failed, nothing was changed: {0}")]
    Source(#[from] SourceError),
    #[error("reading the app failed, nothing was changed: {0}")]
    Target(#[from] TargetError),
    #[error("run aborted before any write: {0}")]
    Refused(#[from] ReadRefused),
    #[error("another idsync run holds {path}; wait for it to finish (the daemon and manual runs never overlap)")]
    Busy { path: String },
    #[error("cannot take the run lock {path}: {detail}")]
    Lock { path: String, detail: String },
    #[error("no person or account named {name}: check the userName (as the mapping renders it, e.g. the mail)")]
    NoSuchUser { name: String },
    #[error("run {run} stopped: {reason}")]
    Stopped { run: i64, reason: String },
}

/// What a finished run reports.
#[derive(Debug)]
pub struct RunSummary {
    pub run: i64,
    pub plan: Plan,
    pub outcomes: Option<Outcomes>,
    pub outcome: Outcome,
}

fn make_plan(cfg: &Config, snap: &Snapshot, only_user: Option<&str>, now: DateTime<Utc>) -> Plan {
    let mut plan = plan::plan(&plan::Inputs {
        users: &snap.users,
        accounts: &snap.accounts,
        links: &snap.links,
        policy: &cfg.policy,
        now,
    });
    safety::gate(&mut plan, &cfg.safety);
    if let (Some(groups), Some(gcfg)) = (&snap.groups, &cfg.groups) {
        let mut g = crate::groups::plan(&crate::groups::Inputs {
            groups: &groups.directory,
            app_groups: &groups.app,
            group_links: &groups.links,
            users: &snap.users,
            accounts: &snap.accounts,
            links: &snap.links,
            people: &plan,
            policy: &cfg.policy,
            groups_policy: &gcfg.policy,
        });
        safety::gate_groups(&mut g.actions, &g.managed, &cfg.safety);
        plan.actions.extend(g.actions);
        plan.notices.extend(g.notices);
    }
    if let Some(name) = only_user {
        let wanted = UserName::new(name);
        for a in plan.actions.iter_mut().filter(|a| a.kind.is_group()) {
            only_member(a, &wanted);
        }
        plan.actions.retain(|a| {
            UserName::new(a.user_name.as_str()) == wanted
                || (a.kind.is_group() && !a.members.is_empty())
        });
        plan.notices.retain(|n| {
            n.user_name
                .as_deref()
                .is_some_and(|u| UserName::new(u) == wanted)
        });
    }
    plan
}

/// True when `name` is a person's userName (as the mapping renders it) or an account's.
fn knows(cfg: &Config, snap: &Snapshot, name: &str) -> bool {
    let wanted = UserName::new(name);
    snap.accounts.iter().any(|a| a.user_name == wanted)
        || snap
            .users
            .iter()
            .filter_map(|u| cfg.policy.mapping.user_name(u))
            .any(|u| UserName::new(u.as_str()) == wanted)
}

/// `sync --user`: a group action cut down to that person's membership changes (a group
/// that does not exist yet is created by a full run, not for one person).
fn only_member(a: &mut crate::plan::Action, wanted: &UserName) {
    if a.kind == crate::plan::ActionKind::GroupCreate
        || a.kind == crate::plan::ActionKind::GroupDelete
    {
        a.members.clear();
        return;
    }
    a.members
        .retain(|m| UserName::new(m.user_name.as_str()) == *wanted);
    let kept: Vec<plan::Change> = std::mem::take(&mut a.changes)
        .into_iter()
        .filter(|c| c.field != "displayName" && c.field != plan::MEMBERS)
        .collect();
    a.changes = crate::groups::with_members(kept, &a.members);
}

fn counts(plan: &Plan, outcomes: Option<&Outcomes>) -> serde_json::Value {
    let mut c: serde_json::Map<String, serde_json::Value> = plan
        .counts()
        .into_iter()
        .map(|(k, n)| (k.as_str().to_string(), json!(n)))
        .collect();
    if let Some(o) = outcomes {
        c.insert("applied".into(), json!(o.applied));
        c.insert("failed".into(), json!(o.failed));
        c.insert("held".into(), json!(o.held));
        c.insert("skipped".into(), json!(o.skipped));
    }
    serde_json::Value::Object(c)
}

/// Journals `actions` as planned, then applies them against the accounts and links read
/// (the accounts are moved out of `snap`; the people stay).
async fn apply_actions(
    w: &Writing<'_>,
    snap: &mut Snapshot,
    actions: &[crate::plan::Action],
    now: DateTime<Utc>,
) -> Result<Outcomes, RunError> {
    let (cfg, journal, client, run, shutdown) = (w.cfg, w.journal, w.client, w.run, &w.shutdown);
    journal.record_plan(run, actions, now)?;
    let accounts: BTreeMap<String, Account> = std::mem::take(&mut snap.accounts)
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    // The photos this plan uploads (a few), not every photo read.
    let uploads: std::collections::BTreeSet<&Anchor> = actions
        .iter()
        .filter(|a| {
            a.changes
                .iter()
                .any(|c| c.field == plan::PHOTO && c.after.is_some())
        })
        .filter_map(|a| a.anchor.as_ref())
        .collect();
    let photos: BTreeMap<Anchor, crate::photo::Photo> = snap
        .users
        .iter()
        .filter(|u| uploads.contains(&u.anchor))
        .filter_map(|u| Some((u.anchor.clone(), u.photo.clone()?)))
        .collect();
    let ctx = apply::Context {
        accounts: &accounts,
        links: &snap.links,
        now,
        concurrency: cfg.target.concurrency,
        policy: &cfg.policy,
        photos: &photos,
        shutdown,
    };
    let bar = crate::progress::bar(
        cfg.progress,
        actions.iter().filter(|a| a.held.is_none()).count() as u64,
        "applying",
    );
    let outcomes = apply::apply(client, journal, run, actions, &ctx, &bar).await;
    bar.finish_and_clear();
    Ok(outcomes?)
}

/// What an apply run writes with.
struct Writing<'a> {
    cfg: &'a Config,
    journal: &'a Journal,
    client: &'a ScimClient,
    run: i64,
    /// Cancelled on shutdown; approvals and saved plans get one nobody cancels.
    shutdown: CancellationToken,
}

impl<'a> Writing<'a> {
    fn new(cfg: &'a Config, journal: &'a Journal, client: &'a ScimClient, run: i64) -> Self {
        Writing {
            cfg,
            journal,
            client,
            run,
            shutdown: CancellationToken::new(),
        }
    }
}

/// Actions hand-picked from a fresh plan (approved, or reviewed and still current).
struct Subset {
    actions: Vec<crate::plan::Action>,
    /// Reviewed actions refused as stale (counted in the run when reviewing).
    refused: Option<usize>,
    /// The run's reason when nothing fatal happened.
    note: Option<String>,
}

/// Applies a subset and closes its run: failed if any action failed, ok otherwise.
async fn apply_subset(
    w: &Writing<'_>,
    mut snap: Snapshot,
    subset: Subset,
    now: DateTime<Utc>,
) -> Result<Outcomes, RunError> {
    let (journal, run) = (w.journal, w.run);
    let people = snap.users.len();
    let outcomes = apply_actions(w, &mut snap, &subset.actions, now).await?;
    let outcome = if outcomes.failed > 0 {
        Outcome::Failed
    } else {
        Outcome::Ok
    };
    let mut c = counts(
        &Plan {
            actions: subset.actions,
            ..Plan::default()
        },
        Some(&outcomes),
    );
    if let Some(n) = subset.refused {
        c["refused"] = json!(n);
    }
    let reason = outcomes.fatal.clone().or(subset.note);
    journal.finish_run(
        run,
        outcome,
        Some(people),
        &c,
        reason.as_deref(),
        Utc::now(),
    )?;
    Ok(outcomes)
}

/// Adds the read and apply durations (ms) to a run's counts, for `/metrics`.
fn timed(mut counts: serde_json::Value, read_ms: u64, apply_ms: u64) -> serde_json::Value {
    counts["read_ms"] = json!(read_ms);
    counts["apply_ms"] = json!(apply_ms);
    counts
}

/// Journals a run that failed before it could plan, then returns the error.
fn fail(journal: &Journal, run: i64, e: RunError) -> RunError {
    let outcome = match e {
        RunError::Refused(_) => Outcome::Aborted,
        _ => Outcome::Failed,
    };
    if let Err(je) = journal.finish_run(
        run,
        outcome,
        None,
        &json!({}),
        Some(&e.to_string()),
        Utc::now(),
    ) {
        tracing::error!(error = %je, "could not journal the failed run");
    }
    e
}

/// A dry run: reads both sides and plans; writes nothing to the app.
pub async fn dry_run(
    cfg: &Config,
    journal: &Journal,
    trigger: &str,
    full: bool,
) -> Result<RunSummary, RunError> {
    let now = Utc::now();
    let run = journal.begin_run(Mode::DryRun, trigger, now)?;
    let span = tracing::info_span!("run", run_id = run, mode = "dry-run");
    dry_run_inner(cfg, journal, run, full, now)
        .instrument(span)
        .await
}

async fn dry_run_inner(
    cfg: &Config,
    journal: &Journal,
    run: i64,
    full: bool,
    now: DateTime<Utc>,
) -> Result<RunSummary, RunError> {
    let reader = client(cfg).map_err(|e| fail(journal, run, e.into()))?;
    let snap = snapshot(cfg, journal, &reader, full, now)
        .await
        .map_err(|e| fail(journal, run, e))?;
    let plan = make_plan(cfg, &snap, None, now);
    journal.record_plan(run, &plan.actions, now)?;
    journal.record_notices(run, &plan.notices)?;
    let mut c = counts(&plan, None);
    c["read"] = json!(snap.read_kind.to_string());
    c["source_ms"] = json!(snap.source_ms);
    journal.finish_run(
        run,
        Outcome::Ok,
        Some(snap.users.len()),
        &c,
        None,
        Utc::now(),
    )?;
    Ok(RunSummary {
        run,
        plan,
        outcomes: None,
        outcome: Outcome::Ok,
    })
}

/// What a sync is asked to do beyond the default.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions<'a> {
    /// Apply only this person's actions (userName).
    pub only_user: Option<&'a str>,
    /// Read the whole directory even when an incremental read is possible.
    pub full: bool,
    /// Cancelled on shutdown: writes in flight finish, the rest stay `planned`.
    pub shutdown: CancellationToken,
    /// One-shot gate overrides the operator gave (`--allow-shrink`, ...), journaled with
    /// the run.
    pub overrides: Vec<String>,
}

/// One sync: plan, gate, apply, journal.
pub async fn sync(
    cfg: &Config,
    journal: &Journal,
    trigger: &str,
    opts: SyncOptions<'_>,
) -> Result<RunSummary, RunError> {
    let _lock = RunLock::acquire(&cfg.state_dir)?;
    let now = Utc::now();
    let run = journal.begin_run(Mode::Apply, trigger, now)?;
    let span = tracing::info_span!("run", run_id = run, mode = "apply");
    let inner = sync_inner(cfg, journal, run, opts, now).instrument(span);
    match tokio::time::timeout(cfg.run_deadline, inner).await {
        Ok(result) => result,
        Err(_) => {
            let reason = format!(
                "stopped after run_deadline ({}): a server stopped answering or the run cannot finish; raise run_deadline if runs are this long",
                humantime::format_duration(cfg.run_deadline)
            );
            tracing::error!(run, %reason, "run stopped");
            journal.abandon_run(run, &reason, Utc::now())?;
            Err(RunError::Stopped { run, reason })
        }
    }
}

async fn sync_inner(
    cfg: &Config,
    journal: &Journal,
    run: i64,
    opts: SyncOptions<'_>,
    now: DateTime<Utc>,
) -> Result<RunSummary, RunError> {
    let only_user = opts.only_user;
    if !opts.overrides.is_empty() {
        tracing::warn!(overrides = %opts.overrides.join(" "), "safety gates overridden for this run");
    }
    let journal_before = journal.busy();
    let client = client(cfg).map_err(|e| fail(journal, run, e.into()))?;
    let read_started = std::time::Instant::now();
    let mut snap = snapshot(cfg, journal, &client, opts.full, now)
        .await
        .map_err(|e| fail(journal, run, e))?;
    let read_ms = read_started.elapsed().as_millis() as u64;
    if let Some(name) = only_user.filter(|n| !knows(cfg, &snap, n)) {
        return Err(fail(
            journal,
            run,
            RunError::NoSuchUser {
                name: name.to_string(),
            },
        ));
    }
    let plan = make_plan(cfg, &snap, only_user, now);
    if only_user.is_none() {
        journal.supersede_held(run, now)?;
    }
    let present: Vec<&Anchor> = snap
        .users
        .iter()
        .map(|u| &u.anchor)
        .filter(|a| snap.links.contains_key(*a))
        .collect();
    journal.touch_links(&present, now)?;
    journal.record_notices(run, &plan.notices)?;
    warn_notices(&plan.notices);
    let people = snap.users.len();
    let apply_started = std::time::Instant::now();
    let writing = Writing {
        shutdown: opts.shutdown.clone(),
        ..Writing::new(cfg, journal, &client, run)
    };
    let outcomes = apply_actions(&writing, &mut snap, &plan.actions, now).await?;
    let (outcome, reason) = outcome_of(&outcomes, &plan);
    let mut c = timed(
        counts(&plan, Some(&outcomes)),
        read_ms,
        apply_started.elapsed().as_millis() as u64,
    );
    c["read"] = json!(snap.read_kind.to_string());
    if !opts.overrides.is_empty() {
        c["override"] = json!(opts.overrides.join(" "));
    }
    if !opts.overrides.is_empty() {
        c["override"] = json!(opts.overrides.join(" "));
    }
    c["source_ms"] = json!(snap.source_ms);
    // Time in the journal so far (the run's closing commit below is not in it).
    c["journal_ms"] = json!((journal.busy() - journal_before).as_millis() as u64);
    // An incremental source's cursor moves only past work that was all applied (or held,
    // which the next plan holds again from the same remembered population): after a
    // failure or an early stop the next run reads the same changes again.
    let complete = only_user.is_none()
        && outcomes.failed == 0
        && outcomes.skipped == 0
        && outcomes.fatal.is_none();
    let key = source_key(cfg);
    let remember = snap
        .remember
        .as_ref()
        .filter(|_| complete)
        .map(|r| (key.as_str(), r, snap.users.as_slice()));
    let groups_key = groups_key(cfg);
    let group_cursor = snap
        .groups
        .as_ref()
        .and_then(|g| g.cursor.as_deref())
        .filter(|_| complete)
        .map(|c| (groups_key.as_str(), c));
    let end = crate::journal::RunEnd {
        outcome,
        source_users: Some(people),
        counts: &c,
        reason: reason.as_deref(),
        cursor: group_cursor,
    };
    journal.finish_run_remembering(run, &end, remember, Utc::now())?;
    if let (Outcome::Failed, Some(reason)) = (outcome, &reason) {
        tracing::warn!(reason = %reason, "run finished with failures");
    }
    Ok(RunSummary {
        run,
        plan,
        outcomes: Some(outcomes),
        outcome,
    })
}

/// How an apply run ends, and why, from what its actions came to. Pure.
fn outcome_of(outcomes: &Outcomes, plan: &Plan) -> (Outcome, Option<String>) {
    if let Some(f) = &outcomes.fatal {
        (Outcome::Failed, Some(format!("stopped applying: {f}")))
    } else if outcomes.failed > 0 {
        let why = format!(
            "{} action(s) failed; the next run retries them",
            outcomes.failed
        );
        (Outcome::Failed, Some(why))
    } else if outcomes.skipped > 0 {
        let why = format!(
            "stopped early (shutdown): {} action(s) left planned for the next run",
            outcomes.skipped
        );
        (Outcome::Ok, Some(why))
    } else if outcomes.held > 0 {
        let why = plan
            .actions
            .iter()
            .find_map(|a| a.held.clone())
            .unwrap_or_default();
        (
            Outcome::Held,
            Some(format!("{} action(s) held: {why}", outcomes.held)),
        )
    } else {
        (Outcome::Ok, None)
    }
}

/// `check --connect`: reaches both ends (LDAP: bind and read the people; Graph: a token and
/// the first page of `/users`), then lists the app's users.
pub async fn probe(cfg: &Config) -> Result<String, RunError> {
    let directory = match &cfg.source {
        SourceConfig::Ldap(l) => {
            let request = ReadRequest {
                remembered: None,
                force_full: true,
                now: Utc::now(),
                photo_hashes: &BTreeMap::new(),
            };
            let reader = LdapReader::new(l.clone());
            let users = reader.read(&request).await?.users;
            let mut text = format!(
                "directory: {} people in scope ({} disabled)",
                users.len(),
                users.iter().filter(|u| u.disabled).count()
            );
            if users.is_empty() {
                text.push_str("; warning: the read found no one: check source.base_dn, source.filter and the bind account's read rights (a sync would stop at min_source_users)");
            }
            let refs = reader.skipped_references();
            if !refs.is_empty() {
                let what = if l.follow_referrals {
                    "not followed further"
                } else {
                    "skipped; set source.follow_referrals: true to read them too"
                };
                text.push_str(&format!(
                    "; {} search reference(s) to other naming contexts or servers, {what}: {}",
                    refs.len(),
                    refs.join(", ")
                ));
            }
            if let Some(g) = &cfg.groups {
                let (groups, _) = read_groups(cfg, None, g, &users, true).await?;
                text.push_str(&format!(", {} groups", groups.len()));
            }
            text
        }
        SourceConfig::Graph(g) => GraphReader::new(g.clone())?.probe().await?,
    };
    let client = client(cfg)?;
    let accounts = client.list_accounts().await?;
    let mut text = format!("{directory}; app: {} accounts", accounts.len());
    if cfg.groups.is_some() {
        text.push_str(&format!(", {} groups", client.list_groups().await?.len()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_user_keeps_only_that_persons_membership_change() {
        let member = |name: &str, add: bool| plan::MemberChange {
            add,
            user_name: name.into(),
            anchor: Some(Anchor::new(name)),
            account_id: None,
            why: "member upstream".into(),
        };
        let members = vec![member("ada@x", true), member("bob@x", false)];
        let rename = plan::Change {
            field: "displayName".into(),
            before: Some("old".into()),
            after: Some("eng".into()),
        };
        let mut a = plan::Action {
            kind: plan::ActionKind::GroupUpdate,
            user_name: "eng".into(),
            anchor: Some(Anchor::new("g1")),
            account_id: Some("G1".into()),
            previous_anchor: None,
            changes: crate::groups::with_members(vec![rename], &members),
            reason: String::new(),
            held: None,
            members,
        };
        only_member(&mut a, &UserName::new("BOB@x"));
        assert_eq!(a.members.len(), 1);
        assert_eq!(
            a.changes,
            vec![plan::Change {
                field: plan::MEMBERS.into(),
                before: Some("bob@x".into()),
                after: None,
            }]
        );
        only_member(&mut a, &UserName::new("carol@x"));
        assert!(a.members.is_empty() && a.changes.is_empty());
    }
}
