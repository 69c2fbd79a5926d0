//! After a plan was looked at: `approve` / `reject` held actions, and `apply` a saved plan.
//! Each re-reads both sides and applies only what the current plan still has.

use super::*;
use crate::journal::Decider;

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
pub fn reject(journal: &Journal, sel: Selector, by: &Decider) -> Result<Decision, RunError> {
    let rows = selected(journal, sel)?;
    for r in &rows {
        journal.decide(r.run, r.seq, false, "nothing written", by, Utc::now())?;
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
        let decided = journal.decisions(sel.run, sel.seq)?;
        let reason = match decided.first() {
            Some((decision, at)) => format!(
                "{what} was already {decision} at {at}; nothing is left to decide (`idsync runs` shows what it did)"
            ),
            None => format!("no held action matches {what}; see `idsync approvals`"),
        };
        return Err(RunError::Stopped {
            run: sel.run,
            reason,
        });
    }
    Ok(rows)
}

/// Approves held actions: re-reads both sides, re-plans, and applies each approved action
/// only if the current plan still contains it (same kind, person and account).
pub async fn approve(
    cfg: &Config,
    journal: &Journal,
    sel: Selector,
    by: &Decider,
) -> Result<Decision, RunError> {
    let rows = selected(journal, sel)?;
    // The held actions are the app's whose run held them.
    let app = journal.run(sel.run)?.map(|r| r.app).unwrap_or_default();
    let app = cfg
        .app(&app)
        .map_err(|detail| RunError::NoSuchApp { detail })?;
    begin(cfg, journal, RunKind::Approve, "approve", vec![app], |o| {
        approve_opened(cfg, journal, o, rows, by)
    })
    .await
}

/// The app as a review reads it: listed whole (a decision is made on what the app has).
async fn listed<'d>(
    cfg: &Config,
    r: &AppRun<'_>,
    o: &Opened<'_>,
    read: &'d DirectoryRead,
) -> Result<Snapshot<'d>, RunError> {
    let client = o.connectors.app(&r.app.name);
    read_app(
        r.app,
        &r.journal,
        client,
        read,
        cfg.progress,
        AppSource::List,
    )
    .await
}

/// Both sides as a review cycle's one app sees them: the directory, then the app.
async fn review_read<'o, 'c>(
    cfg: &Config,
    journal: &Journal,
    o: &'o Opened<'c>,
) -> Result<(&'o AppRun<'c>, DirectoryRead), RunError> {
    let r = &o.runs[0];
    let links = r.journal.links()?;
    let read = read_directory(cfg, journal, &o.connectors.directory, &links, false, o.now).await?;
    Ok((r, read))
}

async fn approve_opened(
    cfg: &Config,
    journal: &Journal,
    o: Opened<'_>,
    rows: Vec<crate::journal::ActionRow>,
    by: &Decider,
) -> Result<Decision, RunError> {
    let now = o.now;
    let (r, read) = review_read(cfg, journal, &o).await?;
    let snap = listed(cfg, r, &o, &read).await?;
    let (run, journal) = (r.run, &r.journal);
    let plan = make_plan(r.app, &snap, None, now);
    let mut chosen = Vec::new();
    let mut decision = Decision {
        run: Some(run),
        ..Decision::default()
    };
    for r in &rows {
        let found = plan.actions.iter().find(|a| {
            a.kind == r.kind
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
                    &format!("applied by run {run}"),
                    by,
                    Utc::now(),
                )?;
            }
            None => {
                decision.stale += 1;
                let note =
                    "no longer planned: the person or account changed since; nothing written";
                journal.decide(r.run, r.seq, true, note, by, Utc::now())?;
            }
        }
    }
    let subset = Subset {
        actions: chosen,
        refused: None,
        note: None,
    };
    let writing = Writing::new(cfg, r, &o.connectors);
    let outcomes = apply_subset(&writing, snap, subset, now).await?;
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
    /// The app the plan is for (plans saved before apps had names: `default`).
    #[serde(default = "default_app")]
    pub app: String,
    pub plan: Plan,
}

fn default_app() -> String {
    crate::journal::DEFAULT_APP.to_string()
}

pub const SAVED_PLAN_FORMAT: u32 = 1;

fn endpoints(cfg: &Config, app: &AppConfig) -> (String, String) {
    (cfg.source.describe(), app.target.url.to_string())
}

impl SavedPlan {
    pub fn new(cfg: &Config, app: &AppConfig, plan: Plan) -> SavedPlan {
        let (source, target) = endpoints(cfg, app);
        SavedPlan {
            format: SAVED_PLAN_FORMAT,
            created: Utc::now(),
            source,
            target,
            app: app.name.clone(),
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
    let app = cfg
        .app(&saved.app)
        .map_err(|detail| RunError::NoSuchApp { detail })?;
    begin(
        cfg,
        journal,
        RunKind::ApplyPlan,
        "apply-plan",
        vec![app],
        |o| apply_saved_opened(cfg, journal, o, saved),
    )
    .await
}

async fn apply_saved_opened(
    cfg: &Config,
    journal: &Journal,
    o: Opened<'_>,
    saved: SavedPlan,
) -> Result<Applied, RunError> {
    let (run, now) = (o.runs[0].run, o.now);
    let (source, target) = endpoints(cfg, o.runs[0].app);
    if saved.format != SAVED_PLAN_FORMAT || saved.source != source || saved.target != target {
        let reason = format!(
            "the saved plan was made for {} -> {} (format {}), this config reads {source} -> {target}; make a new plan",
            saved.source, saved.target, saved.format
        );
        let none = RunCounts::default();
        let j = &o.runs[0].journal;
        j.finish_run(
            run,
            Outcome::Aborted,
            None,
            &none,
            Some(&reason),
            Utc::now(),
        )?;
        return Err(RunError::Stopped { run, reason });
    }
    let (r, read) = review_read(cfg, journal, &o).await?;
    let snap = listed(cfg, r, &o, &read).await?;
    let current = make_plan(r.app, &snap, None, now);
    let mut out = Applied {
        run,
        ..Applied::default()
    };
    let chosen = still_current(saved.plan.actions, &current, &mut out.refused);
    let refused = out.refused.len();
    let note = (refused > 0).then(|| format!("{refused} reviewed action(s) refused as stale"));
    let writing = Writing::new(cfg, r, &o.connectors);
    let outcomes = apply_subset(
        &writing,
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

/// The reviewed actions the current plan still makes, as reviewed; the others refused,
/// each with why.
fn still_current(
    reviewed_actions: Vec<crate::plan::Action>,
    current: &Plan,
    refused: &mut Vec<(String, String)>,
) -> Vec<crate::plan::Action> {
    let mut chosen = Vec::new();
    for reviewed in reviewed_actions {
        if let Some(why) = &reviewed.held {
            refused.push((
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
                refused.push((reviewed.user_name.clone(), format!("held now: {}", a.held.as_deref().unwrap_or_default())))
            }
            Some(_) => chosen.push(reviewed),
            None => refused.push((
                reviewed.user_name.clone(),
                format!("{} refused: the person or the account changed since the plan was reviewed (or it was already applied)", reviewed.kind),
            )),
        }
    }
    chosen
}
