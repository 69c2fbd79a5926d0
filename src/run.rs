//! One run, end to end: read both sides, plan, gate, (apply), journal. `plan` and `sync`
//! share everything up to the gated plan; only `sync` is handed a writer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::Instrument;

use crate::apply::{self, Outcomes};
use crate::config::{Config, GroupsConfig, SourceConfig};
use crate::journal::{Journal, JournalError, Mode, Outcome};
use crate::model::{
    Account, Anchor, AppGroup, DirectoryGroup, DirectoryUser, GroupLink, Link, UserName,
};
use crate::plan::{self, Plan};
use crate::safety::{self, ReadRefused};
use crate::source::graph::GraphReader;
use crate::source::ldap::LdapReader;
use crate::source::{DirectoryReader, Read, ReadKind, ReadRequest, Remember, SourceError};
use crate::target::scim::ScimClient;
use crate::target::{AccountReader, GroupWriter, TargetError};

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
    #[error("run {run} stopped: {reason}")]
    Stopped { run: i64, reason: String },
}

/// The state dir's run lock: one apply run at a time, daemon or manual. Released on drop.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub fn acquire(state_dir: &std::path::Path) -> Result<RunLock, RunError> {
        let path = state_dir.join("idsync.lock");
        let err = |detail: String| RunError::Lock {
            path: path.display().to_string(),
            detail,
        };
        crate::files::private_dir(state_dir).map_err(|e| err(e.to_string()))?;
        let file = crate::files::private_file(&path).map_err(|e| err(e.to_string()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(RunError::Busy {
                path: path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(err(e.to_string())),
        }
    }
}

/// What a finished run reports.
#[derive(Debug)]
pub struct RunSummary {
    pub run: i64,
    pub plan: Plan,
    pub outcomes: Option<Outcomes>,
    pub outcome: Outcome,
}

/// What both sides look like now.
struct Snapshot {
    users: Vec<DirectoryUser>,
    accounts: Vec<Account>,
    links: BTreeMap<Anchor, Link>,
    read_kind: ReadKind,
    /// An incremental source's state to commit with the run, if the run applies everything.
    remember: Option<Remember>,
    /// How long the directory read took (the app's read not included).
    source_ms: u64,
    /// Both sides' groups, when group sync is configured.
    groups: Option<Groups>,
}

/// What group sync plans from.
struct Groups {
    directory: Vec<DirectoryGroup>,
    app: Vec<AppGroup>,
    links: BTreeMap<Anchor, GroupLink>,
    /// The groups' incremental state to commit with the run (Graph delta).
    cursor: Option<String>,
}

/// The journal's key for what an incremental source remembers of the groups.
fn groups_key(cfg: &Config) -> String {
    format!("{} groups", source_key(cfg))
}

/// The configured directory groups, members resolved to the people just read, and the
/// groups' incremental state to remember (Graph delta).
async fn read_groups(
    cfg: &Config,
    journal: Option<&Journal>,
    groups: &GroupsConfig,
    users: &[DirectoryUser],
    force_full: bool,
) -> Result<(Vec<DirectoryGroup>, Option<String>), RunError> {
    Ok(match &cfg.source {
        SourceConfig::Ldap(l) => (
            LdapReader::new(l.clone())
                .read_groups(groups, users)
                .await?,
            None,
        ),
        SourceConfig::Graph(g) => {
            let remembered = match journal {
                Some(j) => j.cursor(&groups_key(cfg))?,
                None => None,
            };
            let read = GraphReader::new(g.clone())?
                .read_groups(groups, users, remembered.as_deref(), force_full, Utc::now())
                .await?;
            tracing::info!(members_read = read.members_read, "graph group members read");
            (read.groups, read.cursor)
        }
    })
}

/// The app client, with the group PATCH size configured.
fn client(cfg: &Config) -> Result<ScimClient, TargetError> {
    let c = ScimClient::new(cfg.target.clone())?.keeping(cfg.policy.account_attributes());
    Ok(match &cfg.groups {
        Some(g) => c.with_group_batch(g.batch),
        None => c,
    })
}

/// The journal's key for what an incremental source remembers.
fn source_key(cfg: &Config) -> String {
    cfg.source.describe()
}

async fn read_source(
    cfg: &Config,
    journal: &Journal,
    links: &BTreeMap<Anchor, Link>,
    force_full: bool,
    now: DateTime<Utc>,
) -> Result<Read, RunError> {
    let photo_hashes: BTreeMap<Anchor, String> = links
        .values()
        .filter_map(|l| Some((l.anchor.clone(), l.photo_hash.clone()?)))
        .collect();
    // What was remembered is needed by an incremental read, and by a forced full read of
    // Graph photos (their ETags); otherwise by nothing.
    let wanted = match &cfg.source {
        SourceConfig::Ldap(l) => {
            l.incremental != crate::config::LdapIncremental::None && !force_full
        }
        SourceConfig::Graph(g) => {
            g.incremental == crate::config::Incremental::Delta && (!force_full || g.photo)
        }
    };
    let remembered = if wanted {
        Some(journal.remembered(&source_key(cfg))?)
    } else {
        None
    };
    let request = ReadRequest {
        remembered: remembered.as_ref(),
        force_full,
        now,
        photo_hashes: &photo_hashes,
    };
    Ok(match &cfg.source {
        SourceConfig::Ldap(l) => LdapReader::new(l.clone()).read(&request).await?,
        SourceConfig::Graph(g) => GraphReader::new(g.clone())?.read(&request).await?,
    })
}

async fn snapshot<R: AccountReader + GroupWriter>(
    cfg: &Config,
    journal: &Journal,
    reader: &R,
    force_full: bool,
    now: DateTime<Utc>,
) -> Result<Snapshot, RunError> {
    let links = journal.links()?;
    let started = std::time::Instant::now();
    let spin = crate::progress::spinner("reading the directory");
    let read = read_source(cfg, journal, &links, force_full, now).await;
    spin.finish_and_clear();
    let Read {
        users,
        kind: read_kind,
        remember,
    } = read?;
    let source_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        people = users.len(),
        read = %read_kind,
        ms = source_ms,
        "directory read"
    );
    safety::check_read(users.len(), journal.last_good_source_count()?, &cfg.safety)?;
    let started = std::time::Instant::now();
    let spin = crate::progress::spinner("reading the app's accounts");
    let accounts = reader.list_accounts().await;
    spin.finish_and_clear();
    let accounts = accounts?;
    tracing::info!(
        accounts = accounts.len(),
        ms = started.elapsed().as_millis() as u64,
        "app accounts read"
    );
    let groups = match &cfg.groups {
        None => None,
        Some(g) => {
            let spin = crate::progress::spinner("reading groups");
            let directory = read_groups(cfg, Some(journal), g, &users, force_full).await;
            let app = match &directory {
                Ok(_) => reader.list_groups().await.map_err(RunError::from),
                Err(_) => Ok(Vec::new()),
            };
            spin.finish_and_clear();
            let ((directory, cursor), app) = (directory?, app?);
            let links = journal.group_links()?;
            safety::check_groups(directory.len(), links.len())?;
            tracing::info!(directory = directory.len(), app = app.len(), "groups read");
            Some(Groups {
                directory,
                app,
                links,
                cursor,
            })
        }
    };
    Ok(Snapshot {
        users,
        accounts,
        links,
        read_kind,
        remember,
        source_ms,
        groups,
    })
}

/// What a sync leaves undone and why (a person whose data is unusable, an ambiguous match)
/// goes to the log too, the first few in full.
fn warn_notices(notices: &[crate::plan::Notice]) {
    const SHOWN: usize = 20;
    for n in notices.iter().take(SHOWN) {
        let who = n.user_name.as_deref().unwrap_or("-");
        tracing::warn!(user = who, "{}", n.message);
    }
    if notices.len() > SHOWN {
        tracing::warn!(
            "{} more notice(s): `idsync show last` lists them all",
            notices.len() - SHOWN
        );
    }
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
    cfg: &Config,
    journal: &Journal,
    client: &ScimClient,
    run: i64,
    snap: &mut Snapshot,
    actions: &[crate::plan::Action],
    now: DateTime<Utc>,
) -> Result<Outcomes, RunError> {
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
    };
    let bar = crate::progress::bar(
        actions.iter().filter(|a| a.held.is_none()).count() as u64,
        "applying",
    );
    let outcomes = apply::apply(client, journal, run, actions, &ctx, &bar).await;
    bar.finish_and_clear();
    Ok(outcomes?)
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
    cfg: &Config,
    journal: &Journal,
    client: &ScimClient,
    run: i64,
    mut snap: Snapshot,
    subset: Subset,
    now: DateTime<Utc>,
) -> Result<Outcomes, RunError> {
    let people = snap.users.len();
    let outcomes =
        apply_actions(cfg, journal, client, run, &mut snap, &subset.actions, now).await?;
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
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncOptions<'a> {
    /// Apply only this person's actions (userName).
    pub only_user: Option<&'a str>,
    /// Read the whole directory even when an incremental read is possible.
    pub full: bool,
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
    let journal_before = journal.busy();
    let client = client(cfg).map_err(|e| fail(journal, run, e.into()))?;
    let read_started = std::time::Instant::now();
    let mut snap = snapshot(cfg, journal, &client, opts.full, now)
        .await
        .map_err(|e| fail(journal, run, e))?;
    let read_ms = read_started.elapsed().as_millis() as u64;
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
    let outcomes = apply_actions(cfg, journal, &client, run, &mut snap, &plan.actions, now).await?;
    let (outcome, reason) = if let Some(f) = &outcomes.fatal {
        (Outcome::Failed, Some(format!("stopped applying: {f}")))
    } else if outcomes.failed > 0 {
        (
            Outcome::Failed,
            Some(format!(
                "{} action(s) failed; the next run retries them",
                outcomes.failed
            )),
        )
    } else if outcomes.skipped > 0 {
        (
            Outcome::Ok,
            Some(format!(
                "stopped early (shutdown): {} action(s) left planned for the next run",
                outcomes.skipped
            )),
        )
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
    };
    let mut c = timed(
        counts(&plan, Some(&outcomes)),
        read_ms,
        apply_started.elapsed().as_millis() as u64,
    );
    c["read"] = json!(snap.read_kind.to_string());
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

/// Which held actions an `approve`/`reject` names: `RUN` (all of that run's) or `RUN:SEQ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selector {
    pub run: i64,
    pub seq: Option<i64>,
}

impl std::str::FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}`: name a run (`12`) or one action (`12:3`), as `idsync approvals` lists them"
            )
        };
        match s.split_once(':') {
            Some((r, q)) => Ok(Selector {
                run: r.parse().map_err(|_| bad())?,
                seq: Some(q.parse().map_err(|_| bad())?),
            }),
            None => Ok(Selector {
                run: s.parse().map_err(|_| bad())?,
                seq: None,
            }),
        }
    }
}

/// The outcome of an `approve` or `reject`.
#[derive(Debug, Default)]
pub struct Decision {
    /// The run that applied approved actions, if one was needed.
    pub run: Option<i64>,
    pub applied: usize,
    pub failed: usize,
    /// Approved actions no longer in the current plan (the state changed since).
    pub stale: usize,
    pub rejected: usize,
}

/// Rejects held actions: they are dropped, nothing is written to the app.
pub fn reject(journal: &Journal, sel: Selector) -> Result<Decision, RunError> {
    let rows = selected(journal, sel)?;
    for r in &rows {
        journal.decide(r.run, r.seq, false, "rejected by an admin", Utc::now())?;
    }
    Ok(Decision {
        rejected: rows.len(),
        ..Decision::default()
    })
}

fn selected(journal: &Journal, sel: Selector) -> Result<Vec<crate::journal::ActionRow>, RunError> {
    let rows: Vec<_> = journal
        .held_actions()?
        .into_iter()
        .filter(|r| r.run == sel.run && sel.seq.is_none_or(|q| q == r.seq))
        .collect();
    if rows.is_empty() {
        let what = match sel.seq {
            Some(q) => format!("{}:{q}", sel.run),
            None => sel.run.to_string(),
        };
        return Err(RunError::Stopped {
            run: sel.run,
            reason: format!("no held action matches {what}; see `idsync approvals`"),
        });
    }
    Ok(rows)
}

/// Approves held actions: re-reads both sides, re-plans, and applies each approved action
/// only if the current plan still contains it (same kind, person and account).
pub async fn approve(cfg: &Config, journal: &Journal, sel: Selector) -> Result<Decision, RunError> {
    let _lock = RunLock::acquire(&cfg.state_dir)?;
    let rows = selected(journal, sel)?;
    let now = Utc::now();
    let run = journal.begin_run(Mode::Apply, "approve", now)?;
    let span = tracing::info_span!("run", run_id = run, mode = "approve");
    approve_inner(cfg, journal, run, rows, now)
        .instrument(span)
        .await
}

async fn approve_inner(
    cfg: &Config,
    journal: &Journal,
    run: i64,
    rows: Vec<crate::journal::ActionRow>,
    now: DateTime<Utc>,
) -> Result<Decision, RunError> {
    let client = client(cfg).map_err(|e| fail(journal, run, e.into()))?;
    let snap = snapshot(cfg, journal, &client, false, now)
        .await
        .map_err(|e| fail(journal, run, e))?;
    let plan = make_plan(cfg, &snap, None, now);
    let mut chosen = Vec::new();
    let mut decision = Decision {
        run: Some(run),
        ..Decision::default()
    };
    for r in &rows {
        let found = plan.actions.iter().find(|a| {
            a.kind.as_str() == r.kind
                && a.anchor.as_ref().map(|x| x.as_str()) == r.anchor.as_deref()
                && a.account_id == r.account
        });
        match found {
            Some(a) => {
                let mut a = a.clone();
                a.held = None;
                a.reason = format!("{} (approved from run {}:{})", a.reason, r.run, r.seq);
                chosen.push(a);
                journal.decide(
                    r.run,
                    r.seq,
                    true,
                    &format!("approved: applied by run {run}"),
                    Utc::now(),
                )?;
            }
            None => {
                decision.stale += 1;
                let note = "approved, but no longer planned: the person or account changed since; nothing written";
                journal.decide(r.run, r.seq, true, note, Utc::now())?;
            }
        }
    }
    let subset = Subset {
        actions: chosen,
        refused: None,
        note: None,
    };
    let outcomes = apply_subset(cfg, journal, &client, run, snap, subset, now).await?;
    decision.applied = outcomes.applied;
    decision.failed = outcomes.failed;
    Ok(decision)
}

/// A plan saved for review (`plan --save`), applied later with `apply`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SavedPlan {
    pub format: u32,
    pub created: DateTime<Utc>,
    pub source: String,
    pub target: String,
    pub plan: Plan,
}

pub const SAVED_PLAN_FORMAT: u32 = 1;

fn endpoints(cfg: &Config) -> (String, String) {
    (cfg.source.describe(), cfg.target.url.to_string())
}

impl SavedPlan {
    pub fn new(cfg: &Config, plan: Plan) -> SavedPlan {
        let (source, target) = endpoints(cfg);
        SavedPlan {
            format: SAVED_PLAN_FORMAT,
            created: Utc::now(),
            source,
            target,
            plan,
        }
    }
}

/// What `apply FILE` did with each reviewed action.
#[derive(Debug, Default)]
pub struct Applied {
    pub run: i64,
    pub applied: usize,
    pub failed: usize,
    /// (userName, why) of reviewed actions not applied.
    pub refused: Vec<(String, String)>,
}

/// Applies exactly a reviewed plan: re-reads both sides and re-plans; a reviewed action is
/// applied only if the current plan has the identical action (same kind, person, account
/// and field changes). Anything that changed since the review is refused and reported.
pub async fn apply_saved(
    cfg: &Config,
    journal: &Journal,
    saved: SavedPlan,
) -> Result<Applied, RunError> {
    let _lock = RunLock::acquire(&cfg.state_dir)?;
    let now = Utc::now();
    let run = journal.begin_run(Mode::Apply, "apply-plan", now)?;
    let (source, target) = endpoints(cfg);
    if saved.format != SAVED_PLAN_FORMAT || saved.source != source || saved.target != target {
        let reason = format!(
            "the saved plan was made for {} -> {} (format {}), this config reads {source} -> {target}; make a new plan",
            saved.source, saved.target, saved.format
        );
        journal.finish_run(
            run,
            Outcome::Aborted,
            None,
            &json!({}),
            Some(&reason),
            Utc::now(),
        )?;
        return Err(RunError::Stopped { run, reason });
    }
    let span = tracing::info_span!("run", run_id = run, mode = "apply-plan");
    apply_saved_inner(cfg, journal, run, saved, now)
        .instrument(span)
        .await
}

async fn apply_saved_inner(
    cfg: &Config,
    journal: &Journal,
    run: i64,
    saved: SavedPlan,
    now: DateTime<Utc>,
) -> Result<Applied, RunError> {
    let client = client(cfg).map_err(|e| fail(journal, run, e.into()))?;
    let snap = snapshot(cfg, journal, &client, false, now)
        .await
        .map_err(|e| fail(journal, run, e))?;
    let current = make_plan(cfg, &snap, None, now);
    let mut out = Applied {
        run,
        ..Applied::default()
    };
    let mut chosen = Vec::new();
    for reviewed in saved.plan.actions {
        if let Some(why) = &reviewed.held {
            out.refused.push((
                reviewed.user_name.clone(),
                format!("held when reviewed ({why}); use `idsync approve`"),
            ));
            continue;
        }
        let same = current.actions.iter().find(|a| {
            a.kind == reviewed.kind
                && a.anchor == reviewed.anchor
                && a.account_id == reviewed.account_id
                && a.changes == reviewed.changes
        });
        match same {
            Some(a) if a.held.is_some() => {
                out.refused.push((reviewed.user_name.clone(), format!("held now: {}", a.held.as_deref().unwrap_or_default())))
            }
            Some(_) => chosen.push(reviewed),
            None => out.refused.push((
                reviewed.user_name.clone(),
                format!("{} refused: the person or the account changed since the plan was reviewed (or it was already applied)", reviewed.kind),
            )),
        }
    }
    let refused = out.refused.len();
    let note = (refused > 0).then(|| format!("{refused} reviewed action(s) refused as stale"));
    let outcomes = apply_subset(
        cfg,
        journal,
        &client,
        run,
        snap,
        Subset {
            actions: chosen,
            refused: Some(refused),
            note,
        },
        now,
    )
    .await?;
    out.applied = outcomes.applied;
    out.failed = outcomes.failed;
    Ok(out)
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

    #[test]
    fn a_second_run_cannot_take_the_lock_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            RunLock::acquire(dir.path()),
            Err(RunError::Busy { .. })
        ));
        drop(first);
        assert!(RunLock::acquire(dir.path()).is_ok());
    }
}
