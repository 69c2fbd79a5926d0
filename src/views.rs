//! The journal-only commands (`runs`, `approvals`, `reject`, `show`) and their tables.
//! They need the state dir and nothing else: no secret is resolved, no server reached, and
//! a journal that is not there is an error, never created.

use std::path::Path;

use anyhow::Context;

use idsync::cli::{Command, ListFormat};
use idsync::journal::{Journal, Mode, RunCounts, RunRow, Status};
use idsync::plan::ActionKind;
use idsync::report;
use idsync::run;

/// True for the commands `journal_command` runs.
pub fn is_journal_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Runs { .. }
            | Command::Approvals { .. }
            | Command::Reject { .. }
            | Command::Show { .. }
    )
}

/// Runs a journal-only command against the journal in `state_dir`.
pub fn journal_command(
    command: Command,
    state_dir: &Path,
    app: Option<&str>,
) -> anyhow::Result<u8> {
    let open = || -> anyhow::Result<Journal> {
        let journal = Journal::open_existing(state_dir)?;
        Ok(match app {
            Some(name) => journal.for_app(name),
            None => journal,
        })
    };
    match command {
        Command::Runs { limit, format, all } => {
            let journal = open()?;
            match format {
                // Machines get every run, dry runs included, with all their counts.
                ListFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&journal.runs(limit)?)?)
                }
                // People see the syncs; dry runs only when asked for.
                ListFormat::Table => {
                    let fetch = if all { limit } else { limit.saturating_mul(5) };
                    let runs: Vec<RunRow> = journal
                        .runs(fetch)?
                        .into_iter()
                        .filter(|r| all || r.mode == Mode::Apply)
                        .take(limit)
                        .collect();
                    print_runs(&runs)
                }
            }
            Ok(0)
        }
        Command::Approvals { format } => {
            let journal = open()?;
            let rows = journal.held_actions()?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                ListFormat::Table if rows.is_empty() => println!("no held actions"),
                ListFormat::Table => print_held(rows),
            }
            Ok(0)
        }
        Command::Reject { selector, comment } => {
            let journal = open()?;
            let by = idsync::journal::Decider::cli(comment.as_deref());
            let d = run::reject(&journal, selector, &by)?;
            println!(
                "rejected {} held action(s); nothing was written to the app",
                d.rejected
            );
            Ok(0)
        }
        Command::Show { run, format } => show(&open()?, &run, format),
        _ => anyhow::bail!("this command needs the whole config, not only the journal"),
    }
}

/// `show RUN|last|last-plan`.
fn show(journal: &Journal, run: &str, format: ListFormat) -> anyhow::Result<u8> {
    let id = match run {
        "last" => journal.last_run_of(Mode::Apply)?.context(
            "the journal has no apply run yet (`show last-plan` shows the last dry run)",
        )?,
        "last-plan" => journal
            .last_run_of(Mode::DryRun)?
            .context("the journal has no dry run yet")?,
        _ => run.parse::<i64>().with_context(|| {
            format!("`{run}` is not a run id; give a number, `last` (the last sync) or `last-plan`")
        })?,
    };
    let row = journal
        .run(id)?
        .with_context(|| format!("no run {id} in the journal"))?;
    let actions = journal.actions(id)?;
    let notices = journal.notices(id)?;
    let hooks = journal.hook_results(id)?;
    match format {
        ListFormat::Json => {
            let hooks: Vec<serde_json::Value> = hooks
                .iter()
                .map(|(seq, h)| {
                    serde_json::json!({
                        "seq": seq, "hook": h.hook, "moment": h.moment.as_str(), "ok": h.ok,
                        "status": h.status, "duration_ms": h.duration_ms, "output": h.output,
                        "idempotency_key": h.key,
                    })
                })
                .collect();
            let doc = serde_json::json!({"run": row, "actions": actions, "notices": notices, "hooks": hooks});
            println!("{}", serde_json::to_string_pretty(&doc)?)
        }
        ListFormat::Table => print_show(row, actions, notices, &hooks),
    }
    Ok(0)
}

/// One run as `show` prints it: the run, each action with its field changes, the notices.
fn print_show(
    row: RunRow,
    actions: Vec<idsync::journal::ActionRow>,
    notices: Vec<idsync::plan::Notice>,
    hooks: &[(i64, idsync::hooks::HookResult)],
) {
    let app = if row.app == idsync::journal::DEFAULT_APP {
        String::new()
    } else {
        format!(", app {}", row.app)
    };
    println!(
        "run {} ({}, {}{app}): {} at {}{}",
        row.id,
        row.mode,
        row.trigger,
        row.outcome,
        row.finished.as_deref().unwrap_or(&row.started),
        row.reason.map(|r| format!(": {r}")).unwrap_or_default()
    );
    for a in actions {
        println!(
            "{:>4}  {:<12}  {:<8}  {:<32}  {}",
            a.seq, a.kind, a.status, a.user_name, a.reason
        );
        if let (Some(b), Some(af)) = (a.before.as_object(), a.after.as_object()) {
            for (field, after) in a.fields.iter().filter_map(|f| Some((f, af.get(f)?))) {
                let change = idsync::plan::Change {
                    field: idsync::plan::Field::parse(field),
                    before: b.get(field).and_then(|v| v.as_str()).map(str::to_string),
                    after: after.as_str().map(str::to_string),
                };
                println!(
                    "{:>4}  {:<12}  {:<8}    {}",
                    "",
                    "",
                    "",
                    report::change_line(&change)
                );
            }
        }
        for (_, h) in hooks.iter().filter(|(seq, _)| *seq == a.seq) {
            let result = if h.ok { "ok" } else { "failed" };
            let out = h.output.lines().next().unwrap_or("");
            let out = if out.is_empty() {
                String::new()
            } else {
                format!(": {out}")
            };
            println!(
                "{:>4}  {:<12}  {:<8}    hook {} ({}): {result}, {} in {} ms{out}",
                "",
                "",
                "",
                h.hook,
                h.moment.as_str(),
                h.status,
                h.duration_ms
            );
        }
        if let Some(e) = a.error {
            let label = match a.status {
                Status::Held => "held",
                Status::Applied => "notice",
                Status::Refused => "refused",
                Status::Approved | Status::Rejected => "decision",
                _ => "error",
            };
            println!("{:>4}  {:<12}  {:<8}    {label}: {e}", "", "", "");
        }
    }
    for n in notices {
        let who = n
            .user_name
            .or(n.anchor.map(|a| a.to_string()))
            .unwrap_or_else(|| "-".into());
        println!("notice  {who}: {}", n.message);
    }
}

/// The APP column's width: none unless the rows are of more than one app (a single-app
/// journal's tables stay as they were).
fn app_width<'a>(apps: impl Iterator<Item = &'a str>) -> usize {
    let apps: std::collections::BTreeSet<&str> = apps.collect();
    if apps.len() > 1 {
        apps.iter().map(|a| a.len()).max().unwrap_or(3).max(3)
    } else {
        0
    }
}

/// One APP cell, padded (empty when the column is not shown).
fn app_cell(width: usize, name: &str) -> String {
    if width == 0 {
        String::new()
    } else {
        format!("{name:<width$}  ")
    }
}

/// Widest row of `runs`, so a terminal of 160 columns shows each on one line.
const RUNS_WIDTH: usize = 160;

/// `runs` as kubectl-like columns: one line per run, the full detail in `show` and JSON.
fn print_runs(runs: &[RunRow]) {
    let width = app_width(runs.iter().map(|r| r.app.as_str()));
    let app_cell = |name: &str| app_cell(width, name);
    let head = format!(
        "{:>5}  {}{:<16}  {:<10}  {:>8}  {:<7}  {:<16}  REASON",
        "RUN",
        app_cell("APP"),
        "STARTED",
        "TRIGGER",
        "DURATION",
        "OUTCOME",
        "CHANGES"
    );
    println!("{head}");
    for r in runs {
        let trigger = if r.mode == Mode::Apply {
            r.trigger.clone()
        } else {
            format!("{} plan", r.trigger)
        };
        let row = format!(
            "{:>5}  {}{:<16}  {:<10}  {:>8}  {:<7}  {:<16}  ",
            r.id,
            app_cell(&r.app),
            minute(&r.started),
            trigger,
            duration(r),
            r.outcome,
            changes(&r.counts)
        );
        let room = RUNS_WIDTH.saturating_sub(row.chars().count());
        let escrow = r
            .counts
            .escrowed
            .map(|n| format!("{n} action(s) wait in escrow (`idsync plan` says why)"));
        let reason = r
            .reason
            .as_deref()
            .and_then(|t| t.lines().next())
            .or(escrow.as_deref())
            .unwrap_or("");
        println!("{row}{}", cut(reason, room));
    }
}

/// `2026-12-01T07:20:13.1+00:00` as `2026-12-01 07:20`.
fn minute(rfc3339: &str) -> String {
    rfc3339.get(..16).unwrap_or(rfc3339).replace('T', " ")
}

fn duration(r: &RunRow) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let (Some(a), Some(b)) = (parse(&r.started), r.finished.as_deref().and_then(parse)) else {
        return "-".into();
    };
    let secs = (b - a).num_milliseconds().max(0) as f64 / 1000.0;
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = secs as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// `+created ~updated -deprovisioned` from a run's counts (`-` when nothing).
fn changes(counts: &RunCounts) -> String {
    use ActionKind::*;
    let (add, change, remove) = (
        counts.of(&[Create, Adopt, Reactivate, Reinvite, GroupCreate, GroupAdopt]),
        counts.of(&[Update, GroupUpdate]),
        counts.of(&[Suspend, Delete, GroupDelete]),
    );
    if add + change + remove == 0 {
        return "-".into();
    }
    format!("+{add} ~{change} -{remove}")
}

/// At most `room` characters of `text`, with `...` when cut.
fn cut(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_string();
    }
    let keep: String = text.chars().take(room.saturating_sub(3)).collect();
    format!("{keep}...")
}

/// Held actions grouped by why they are held: each reason once, then its actions, then the
/// commands that decide them, with their ids.
fn print_held(rows: Vec<idsync::journal::ActionRow>) {
    let width = app_width(rows.iter().map(|r| r.app.as_str()));
    let app_cell = |name: &str| app_cell(width, name);
    let mut groups: Vec<(String, Vec<idsync::journal::ActionRow>)> = Vec::new();
    for r in rows {
        let why = r.error.clone().unwrap_or_default();
        match groups.iter_mut().find(|(w, _)| *w == why) {
            Some((_, list)) => list.push(r),
            None => groups.push((why, vec![r])),
        }
    }
    for (why, list) in groups {
        println!("held: {why}");
        println!(
            "  {:<8}  {}{:<12}  {:<32}  REASON",
            "ID",
            app_cell("APP"),
            "ACTION",
            "USER"
        );
        for r in &list {
            let id = format!("{}:{}", r.run, r.seq);
            println!(
                "  {id:<8}  {}{:<12}  {:<32}  {}",
                app_cell(&r.app),
                r.kind,
                r.user_name,
                r.reason.lines().next().unwrap_or("")
            );
        }
        let runs: std::collections::BTreeSet<i64> = list.iter().map(|r| r.run).collect();
        for run in runs {
            println!(
                "  decide: `idsync approve {run}` (all of run {run}), `idsync approve {run}:SEQ` (one), or `idsync reject {run}`"
            );
        }
        println!();
    }
}
