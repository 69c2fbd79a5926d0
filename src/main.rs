//! CLI entry: parse, tracing, runtime, error -> exit code. The only place `anyhow` is used.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use idsync::cli::{Cli, Command, ListFormat, LogFormat};
use idsync::config::{self, Config, ConfigError};
use idsync::journal::{Journal, Outcome};
use idsync::report;
use idsync::run::{self, RunError};

/// Exit codes: 0 done, 1 failed, 2 invalid config (or changes pending with
/// --detailed-exitcode), 3 aborted by a safety gate before any write.
const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_PENDING: u8 = 2;
const EXIT_ABORTED: u8 = 3;

fn init_tracing(cli: &Cli) {
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},ldap3=warn,reqwest=warn,hyper=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli);
    let config = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("idsync: {e}");
            return ExitCode::from(match e {
                ConfigError::Read { .. } => EXIT_FAILED,
                _ => EXIT_CONFIG,
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("idsync: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    if !matches!(cli.command, Command::Check { .. }) {
        // `check` prints them itself; every other start logs them (the daemon's too).
        for w in &config.warnings {
            tracing::warn!("config: {w}");
        }
    }
    let redactor = config.redactor();
    let interactive = !matches!(cli.command, Command::Run) && std::io::stderr().is_terminal();
    if interactive {
        idsync::progress::enable();
    }
    match runtime.block_on(dispatch(cli.command, config)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Our typed errors already carry their cause in their text; anyhow's chain would
            // repeat it. Plain anyhow contexts need the chain.
            let typed = e.is::<RunError>()
                || e.is::<idsync::journal::JournalError>()
                || e.is::<idsync::daemon::DaemonError>();
            let text = if typed {
                format!("{e}")
            } else {
                format!("{e:#}")
            };
            eprintln!("idsync: error: {}", redactor.clean(&text));
            let code = match e.downcast_ref::<RunError>() {
                Some(RunError::Refused(_)) => EXIT_ABORTED,
                _ => EXIT_FAILED,
            };
            ExitCode::from(code)
        }
    }
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<u8> {
    match command {
        Command::Check { connect } => check(&config, connect).await,
        Command::Plan {
            format,
            output,
            detailed_exitcode,
            save,
            full,
        } => {
            let journal = Journal::open(&config.state_dir)?;
            let summary = run::dry_run(&config, &journal, "cli", full).await?;
            if let Some(path) = save {
                let saved = run::SavedPlan::new(&config, summary.plan.clone());
                write_atomically(&path, &serde_json::to_string_pretty(&saved)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let text = report::render(&summary.plan, format);
            match output {
                Some(path) => write_atomically(&path, &text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            Ok(if detailed_exitcode && !summary.plan.is_empty() {
                EXIT_PENDING
            } else {
                0
            })
        }
        Command::Sync { user, full } => {
            let journal = Journal::open(&config.state_dir)?;
            let opts = run::SyncOptions {
                only_user: user.as_deref(),
                full,
            };
            let summary = run::sync(&config, &journal, "cli", opts).await?;
            let o = summary.outcomes.unwrap_or_default();
            println!(
                "run {}: {} ({}; applied {}, failed {}, held {}, skipped {})",
                summary.run,
                summary.outcome.as_str(),
                report::summary(&summary.plan),
                o.applied,
                o.failed,
                o.held,
                o.skipped
            );
            if let Some(f) = &o.fatal {
                eprintln!("idsync: error: {f}");
            }
            Ok(if summary.outcome == Outcome::Failed {
                EXIT_FAILED
            } else {
                0
            })
        }
        Command::Runs { limit, format } => {
            let journal = Journal::open(&config.state_dir)?;
            let runs = journal.runs(limit)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
                ListFormat::Table => {
                    println!(
                        "{:>5}  {:<24}  {:<8}  {:<8}  {:>7}  COUNTS / REASON",
                        "RUN", "STARTED", "MODE", "OUTCOME", "PEOPLE"
                    );
                    for r in runs {
                        let counts = r
                            .counts
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| format!("{k}={v}"))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            })
                            .unwrap_or_default();
                        let people = r
                            .source_users
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "-".into());
                        println!(
                            "{:>5}  {:<24}  {:<8}  {:<8}  {:>7}  {}{}",
                            r.id,
                            r.started,
                            r.mode,
                            r.outcome,
                            people,
                            counts,
                            r.reason.map(|x| format!("  ({x})")).unwrap_or_default()
                        );
                    }
                }
            }
            Ok(0)
        }
        Command::Apply { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let saved: run::SavedPlan = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a plan saved by `idsync plan --save`",
                    file.display()
                )
            })?;
            let journal = Journal::open(&config.state_dir)?;
            let a = run::apply_saved(&config, &journal, saved).await?;
            println!(
                "run {}: applied {}, failed {}, refused {}",
                a.run,
                a.applied,
                a.failed,
                a.refused.len()
            );
            for (user, why) in &a.refused {
                println!("  refused {user}: {why}");
            }
            Ok(if a.failed > 0 { EXIT_FAILED } else { 0 })
        }
        Command::Run => {
            let path = config.path.clone();
            idsync::daemon::run(path, config).await?;
            Ok(0)
        }
        Command::Approvals { format } => {
            let journal = Journal::open(&config.state_dir)?;
            let rows = journal.held_actions()?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                ListFormat::Table if rows.is_empty() => println!("no held actions"),
                ListFormat::Table => {
                    println!(
                        "{:<8}  {:<10}  {:<32}  WHY HELD / REASON",
                        "ID", "ACTION", "USER"
                    );
                    for r in rows {
                        let id = format!("{}:{}", r.run, r.seq);
                        println!(
                            "{id:<8}  {:<10}  {:<32}  {}",
                            r.kind,
                            r.user_name,
                            r.error.unwrap_or_default()
                        );
                        println!("{:<8}  {:<10}  {:<32}  {}", "", "", "", r.reason);
                    }
                }
            }
            Ok(0)
        }
        Command::Approve { selector } => {
            let journal = Journal::open(&config.state_dir)?;
            let d = run::approve(&config, &journal, selector).await?;
            println!(
                "approved: {} applied, {} failed, {} no longer planned (state changed){}",
                d.applied,
                d.failed,
                d.stale,
                d.run.map(|r| format!("; run {r}")).unwrap_or_default()
            );
            Ok(if d.failed > 0 { EXIT_FAILED } else { 0 })
        }
        Command::Reject { selector } => {
            let journal = Journal::open(&config.state_dir)?;
            let d = run::reject(&journal, selector)?;
            println!(
                "rejected {} held action(s); nothing was written to the app",
                d.rejected
            );
            Ok(0)
        }
        Command::Show { run, format } => {
            let journal = Journal::open(&config.state_dir)?;
            let id = if run == "last" {
                journal
                    .last_run_id()?
                    .context("the journal has no runs yet")?
            } else {
                run.parse::<i64>()
                    .with_context(|| format!("`{run}` is not a run id; give a number or `last`"))?
            };
            let row = journal
                .run(id)?
                .with_context(|| format!("no run {id} in the journal"))?;
            let actions = journal.actions(id)?;
            let notices = journal.notices(id)?;
            match format {
                ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"run": row, "actions": actions, "notices": notices})
                    )?
                ),
                ListFormat::Table => {
                    println!(
                        "run {} ({}, {}): {} at {}{}",
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
                            for (field, after) in af {
                                let change = idsync::plan::Change {
                                    field: field.clone(),
                                    before: b
                                        .get(field)
                                        .and_then(|v| v.as_str())
                                        .map(str::to_string),
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
                        if let Some(e) = a.error {
                            println!("{:>4}  {:<12}  {:<8}    error: {e}", "", "", "");
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
            }
            Ok(0)
        }
    }
}

async fn check(config: &Config, connect: bool) -> anyhow::Result<u8> {
    for w in &config.warnings {
        println!("warning: {w}");
    }
    println!("config {} is valid", config.path.display());
    if connect {
        let probe = idsync::run::probe(config).await?;
        println!("{probe}");
    }
    Ok(0)
}

/// Writes a report or saved plan (personal data): 0600, via a random temporary file and a
/// rename, so a reader never sees half of it.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    idsync::files::write_private(path, text)
}
