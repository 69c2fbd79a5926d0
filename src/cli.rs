//! Command-line interface (clap): the commands of SPEC.md section 4.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::report::Format;

#[derive(Debug, Parser)]
#[command(
    name = "idsync",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("IDSYNC_COMMIT"), ")"),
    about = "Keeps an app's accounts (SCIM 2.0) true to your directory (LDAP / AD / Entra ID), safely."
)]
pub struct Cli {
    /// Config file.
    #[arg(long, global = true, env = "IDSYNC_CONFIG", default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Only this app (a name under `apps:`): `plan`, `sync`, `runs`, `approvals`, `show`.
    #[arg(long, global = true, value_name = "NAME")]
    pub app: Option<String>,
    /// More log detail (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config (exit 2 when invalid); --connect also reaches both ends.
    Check {
        #[arg(long)]
        connect: bool,
    },
    /// Dry run: read both sides and print what a sync would do. Writes nothing to the app.
    Plan {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Write the report to FILE instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Exit 2 when changes are pending (0 when none).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Also save the plan to FILE for `idsync apply FILE` after review.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Read the whole directory even where an incremental read is possible.
        #[arg(long)]
        full: bool,
    },
    /// Apply a plan saved with `plan --save`, refusing actions that went stale since.
    Apply { file: PathBuf },
    /// One run: plan, safety gates, apply, journal.
    Sync {
        /// Apply only the actions of this person (userName); the whole directory is still read.
        #[arg(long)]
        user: Option<String>,
        /// Read the whole directory even where an incremental read (Graph delta) is possible.
        #[arg(long)]
        full: bool,
        /// For this run only: plan from a read smaller than safety.min_source_ratio allows
        /// (an intended shrink; an empty read still aborts). Journaled with the run.
        #[arg(long)]
        allow_shrink: bool,
        /// For this run only: allow up to N suspensions and deletions before they are held
        /// (instead of safety.max_deprovisions). Journaled with the run.
        #[arg(long, value_name = "N")]
        allow_deprovisions: Option<u64>,
    },
    /// The daemon: a sync on every `schedule` tick until SIGTERM (systemd Type=notify).
    Run,
    /// List recent runs from the journal.
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Show dry runs (`plan`) too.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// List held actions waiting for approval.
    Approvals {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Apply held actions (`RUN` or `RUN:SEQ`) after re-checking them against the current state.
    Approve {
        selector: crate::run::Selector,
        /// Why, journaled with the decision and your login name.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Drop held actions (`RUN` or `RUN:SEQ`); nothing is written to the app.
    Reject {
        selector: crate::run::Selector,
        /// Why, journaled with the decision and your login name.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Show one run's actions: a run id or `last`.
    Show {
        run: String,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// The operator console (`console:` in the config): runs, diffs and held actions in the
    /// browser.
    Serve,
    /// Read a password on stdin and print its argon2 hash (for `console.users`).
    Passwd,
    /// Man pages and shell completions from this CLI (for packagers).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

impl Command {
    /// Whether the command may apply actions, and so run hooks: a command hook that exits
    /// without reading its stdin must not take the run down with a SIGPIPE.
    pub fn runs_hooks(&self) -> bool {
        matches!(
            self,
            Command::Sync { .. }
                | Command::Apply { .. }
                | Command::Approve { .. }
                | Command::Run
                | Command::Serve
        )
    }
}

/// What `idsync generate` writes.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// idsync(1) and one page per command (idsync-sync(1), ...) into DIR.
    Man { dir: PathBuf },
    /// The completion script for SHELL on stdout.
    Completions { shell: clap_complete::Shell },
}

/// Writes what `idsync generate` asks for.
pub fn generate(what: &Generate) -> std::io::Result<()> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    match what {
        Generate::Man { dir } => {
            std::fs::create_dir_all(dir)?;
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
            std::fs::write(dir.join("idsync.1"), page)?;
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let name = format!("idsync-{}", sub.get_name());
                let sub = sub.clone().name(name.clone());
                let mut page = Vec::new();
                clap_mangen::Man::new(sub).render(&mut page)?;
                std::fs::write(dir.join(format!("{name}.1")), page)?;
            }
            Ok(())
        }
        Generate::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd, "idsync", &mut std::io::stdout());
            Ok(())
        }
    }
}
