//! CLI entry: parse, tracing, runtime, error -> exit code. The only place `anyhow` is used.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use idsync::cli::{Cli, Command, LogFormat};
use idsync::config::{self, Config, ConfigError};
use idsync::journal::{Journal, Outcome};
use idsync::report;
use idsync::run::{self, RunError};

/// Exit codes: 0 done, 1 failed, 2 invalid config (or changes pending with
/// --detailed-exitcode), 3 aborted by a safety gate before any write.
mod views;

const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_PENDING: u8 = 2;
const EXIT_ABORTED: u8 = 3;

/// A line on stdout that a reader gone away cannot turn into a panic. The commands that may
/// run hooks ignore SIGPIPE (a hook may exit without reading its stdin), so when whoever
/// read idsync's own stdout has gone (`idsync sync | head -0`) a write fails instead of
/// ending the process; by then the run is journaled, and the line is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `say!` for stderr.
macro_rules! complain {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

fn init_tracing(cli: &Cli) {
    let level = match cli.verbose {
        // The daemon says what each run did at its default level (journalctl -u idsync);
        // the CLI prints its own report and logs only what needs attention.
        0 if matches!(cli.command, Command::Run) => "info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        // The libraries' own warnings ("unmatched id: 2") mean nothing to an admin; idsync
        // reports what failed itself. RUST_LOG shows them when wanted.
        .unwrap_or_else(|_| {
            EnvFilter::new(format!(
                "{level},ldap3=error,reqwest=error,hyper=error,hyper_util=error,rustls=error"
            ))
        });
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
    if !cli.command.runs_hooks() {
        // A report piped into `head` ends quietly when the pipe closes (the default SIGPIPE
        // action), instead of a panic on the failed write. A command that may run hooks
        // keeps ignoring it: a hook that exits without reading its stdin would kill it.
        // SAFETY: called first, before any thread; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_tracing(&cli);
    if let Command::Passwd = &cli.command {
        return match passwd() {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("idsync: error: {e}");
                ExitCode::from(EXIT_FAILED)
            }
        };
    }
    if let Command::Generate { what } = &cli.command {
        return match idsync::cli::generate(what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("idsync: error: {e}");
                ExitCode::from(EXIT_FAILED)
            }
        };
    }
    if views::is_journal_only(&cli.command) {
        let result = config::state_dir_of(&cli.config)
            .map_err(anyhow::Error::from)
            .and_then(|dir| views::journal_command(cli.command, &dir, cli.app.as_deref()));
        return match result {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("idsync: error: {e:#}");
                ExitCode::from(EXIT_FAILED)
            }
        };
    }
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
    let mut config = config;
    config.progress = interactive;
    match runtime.block_on(dispatch(cli.command, config, cli.app)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => failed(&e, &redactor),
    }
}

/// Says what failed (secrets scrubbed) and picks the exit code.
fn failed(e: &anyhow::Error, redactor: &idsync::redact::Redactor) -> ExitCode {
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
    complain!("idsync: error: {}", redactor.clean(&text));
    let code = match e.downcast_ref::<RunError>() {
        Some(RunError::Refused(_)) => EXIT_ABORTED,
        _ => EXIT_FAILED,
    };
    ExitCode::from(code)
}

async fn dispatch(command: Command, config: Config, app: Option<String>) -> anyhow::Result<u8> {
    match command {
        Command::Check { connect } => check(&config, connect).await,
        Command::Plan {
            format,
            output,
            detailed_exitcode,
            save,
            full,
        } => {
            let args = PlanArgs {
                format,
                output,
                detailed_exitcode,
                save,
                full,
            };
            plan_command(&config, app.as_deref(), args).await
        }
        Command::Sync {
            user,
            full,
            allow_shrink,
            allow_deprovisions,
        } => {
            let args = SyncArgs {
                user,
                full,
                allow_shrink,
                allow_deprovisions,
            };
            sync_command(config, app.as_deref(), args).await
        }
        Command::Apply { file } => apply_command(&config, &file).await,
        Command::Run => {
            let path = config.path.clone();
            idsync::daemon::run(path, config).await?;
            Ok(0)
        }
        Command::Serve => {
            let journal = Journal::open(&config.state_dir)?;
            idsync::console::serve(config, journal).await?;
            Ok(0)
        }
        Command::Approve { selector, comment } => {
            let journal = Journal::open(&config.state_dir)?;
            let by = idsync::journal::Decider::cli(comment.as_deref());
            let d = run::approve(&config, &journal, selector, &by).await?;
            say!(
                "approved: {} applied, {} failed, {} no longer planned (state changed){}",
                d.applied,
                d.failed,
                d.stale,
                d.run.map(|r| format!("; run {r}")).unwrap_or_default()
            );
            Ok(if d.failed > 0 { EXIT_FAILED } else { 0 })
        }
        journal_only => views::journal_command(journal_only, &config.state_dir, app.as_deref()),
    }
}

/// `idsync apply FILE`: a reviewed plan, applied where it still holds.
async fn apply_command(config: &Config, file: &std::path::Path) -> anyhow::Result<u8> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let saved: run::SavedPlan = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan saved by `idsync plan --save`",
            file.display()
        )
    })?;
    let journal = Journal::open(&config.state_dir)?;
    let a = run::apply_saved(config, &journal, saved).await?;
    say!(
        "run {}: applied {}, failed {}, refused {}",
        a.run,
        a.applied,
        a.failed,
        a.refused.len()
    );
    for (user, why) in &a.refused {
        say!("  refused {user}: {why}");
    }
    Ok(if a.failed > 0 { EXIT_FAILED } else { 0 })
}

/// `plan`'s options.
struct PlanArgs {
    format: report::Format,
    output: Option<std::path::PathBuf>,
    detailed_exitcode: bool,
    save: Option<std::path::PathBuf>,
    full: bool,
}

/// `plan`: every app's dry run (or `--app`'s), one report.
async fn plan_command(config: &Config, app: Option<&str>, args: PlanArgs) -> anyhow::Result<u8> {
    let journal = Journal::open(&config.state_dir)?;
    if args.save.is_some() && app.is_none() && config.apps.len() > 1 {
        anyhow::bail!("plan --save saves one app's plan: add --app NAME");
    }
    let apps = run::dry_run(config, &journal, "cli", args.full, app).await?;
    let several = apps.len() > 1;
    let mut text = String::new();
    let mut pending = false;
    let mut failed = None;
    for a in apps {
        let summary = match a.result {
            Ok(s) => s,
            Err(e) if !several => return Err(e.into()),
            Err(e) => {
                text.push_str(&format!("== app {}: failed: {e}\n\n", a.app));
                failed = Some(e);
                continue;
            }
        };
        if let Some(path) = &args.save {
            let saved = run::SavedPlan::new(
                config,
                config.app(&a.app).map_err(anyhow::Error::msg)?,
                summary.plan.clone(),
            );
            write_atomically(path, &serde_json::to_string_pretty(&saved)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if several {
            text.push_str(&format!("== app {} ==\n", a.app));
        }
        text.push_str(&report::render(&summary.plan, args.format));
        if several {
            text.push('\n');
        }
        pending |= !summary.plan.is_empty();
    }
    match args.output {
        Some(path) => write_atomically(&path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None if args.format == report::Format::Table && report::colour_stdout() => {
            std::io::stdout().write_all(report::colour(&text).as_bytes())?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    if failed.is_some() {
        return Ok(EXIT_FAILED);
    }
    Ok(if args.detailed_exitcode && pending {
        EXIT_PENDING
    } else {
        0
    })
}

/// `sync`'s options.
struct SyncArgs {
    user: Option<String>,
    full: bool,
    allow_shrink: bool,
    allow_deprovisions: Option<u64>,
}

/// `sync`: one cycle, a line per app.
async fn sync_command(config: Config, app: Option<&str>, args: SyncArgs) -> anyhow::Result<u8> {
    let journal = Journal::open(&config.state_dir)?;
    // One-shot overrides of the gates: this run's config only, journaled with it.
    let mut config = config;
    let mut overrides = Vec::new();
    if args.allow_shrink {
        config.safety.min_source_ratio = None;
        overrides.push("--allow-shrink".to_string());
    }
    if let Some(n) = args.allow_deprovisions {
        for a in &mut config.apps {
            a.safety.max_deprovisions = Some(idsync::safety::DeprovisionLimit::Count(n));
        }
        overrides.push(format!("--allow-deprovisions {n}"));
    }
    let opts = run::SyncOptions {
        only_user: args.user.as_deref(),
        app,
        full: args.full,
        overrides,
        ..run::SyncOptions::default()
    };
    let apps = run::sync(&config, &journal, "cli", opts).await?;
    let several = apps.len() > 1;
    let mut code = 0;
    for a in apps {
        let prefix = if several {
            format!("app {}: ", a.app)
        } else {
            String::new()
        };
        match a.result {
            Ok(summary) => {
                code = code.max(print_sync(&prefix, &summary));
            }
            Err(e) if !several => return Err(e.into()),
            Err(e) => {
                complain!("idsync: error: {prefix}{e}");
                code = EXIT_FAILED;
            }
        }
    }
    Ok(code)
}

/// A sync's lines for one app; its exit code.
fn print_sync(prefix: &str, summary: &run::RunSummary) -> u8 {
    let o = summary.outcomes.clone().unwrap_or_default();
    say!(
        "{prefix}run {}: {} ({}; applied {}, failed {}, held {}, skipped {})",
        summary.run,
        summary.outcome.as_str(),
        report::summary(&summary.plan),
        o.applied,
        o.failed,
        o.held,
        o.skipped
    );
    if let Some(f) = &o.fatal {
        complain!("idsync: error: {prefix}{f}");
    }
    if o.held > 0 {
        say!(
            "{prefix}{} action(s) held: review them with `idsync approvals`, then `idsync approve {}` (or one of them: `idsync approve {}:SEQ`) or `idsync reject {}`",
            o.held, summary.run, summary.run, summary.run
        );
    }
    if summary.outcome == Outcome::Failed {
        EXIT_FAILED
    } else {
        0
    }
}

async fn check(config: &Config, connect: bool) -> anyhow::Result<u8> {
    for w in &config.warnings {
        println!("warning: {w}");
    }
    println!("config {} is valid", config.path.display());
    if let Some(schedule) = &config.schedule {
        let next: Vec<String> = schedule
            .upcoming(chrono::Local)
            .take(3)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
            .collect();
        println!("next runs: {}", next.join(", "));
    }
    if connect {
        let probe = idsync::run::probe(config).await?;
        println!("{}", probe.text);
        for f in &probe.findings {
            println!("{f}");
        }
        let errors = probe
            .findings
            .iter()
            .filter(|f| f.level == idsync::app::discovery::Level::Error)
            .count();
        if errors > 0 {
            println!("{errors} problem(s) with the app: fix them before a sync (each line names its key and the fix)");
            return Ok(2);
        }
    }
    Ok(0)
}

/// `idsync passwd`: a password from stdin (not echoed on a terminal), its argon2id hash.
fn passwd() -> Result<String, String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("password: ").map_err(|e| e.to_string())?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err(
            "an empty password: give one on stdin (`printf %s 'PASSWORD' | idsync passwd`)".into(),
        );
    }
    idsync::console::auth::hash(&password)
}

/// Writes a report or saved plan (personal data): 0600, via a random temporary file and a
/// rename, so a reader never sees half of it.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    idsync::files::write_private(path, text)
}
