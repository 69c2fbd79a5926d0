//! `idsync run`: the long-running service. Runs a sync on each `schedule` tick, one run at a
//! time (the state dir lock), tells systemd READY / STATUS / WATCHDOG / STOPPING, re-reads the
//! config on SIGHUP (keeping the old one if the new one is invalid), and on SIGTERM/SIGINT
//! lets the current run finish its in-flight actions, then exits. With `metrics.listen`
//! set it also serves `/metrics` and `/healthz` (see `metrics`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{self, Config};
use crate::journal::Journal;
use crate::run;
use tokio_util::sync::CancellationToken;

/// The daemon cannot start. Exit non-zero: systemd's restart policy decides what follows.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("`schedule` is not set; `idsync run` needs one, e.g. schedule: \"*/15 * * * *\"")]
    NoSchedule,
    #[error("the schedule has no future time")]
    ScheduleEnded,
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

fn notify(states: &[NotifyState<'_>]) {
    // Not under systemd (no NOTIFY_SOCKET) is fine: nothing to tell.
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// One line per scheduled run: what it did, how long it took, and what to do next when
/// something waits for a decision.
fn log_cycle(result: &Result<Vec<run::AppSummary>, run::RunError>, took: Duration) {
    let secs = took.as_secs_f64();
    match result {
        Ok(apps) => {
            for a in apps {
                log_run(&a.app, &a.result, secs);
            }
        }
        Err(e) => tracing::warn!(seconds = secs, error = %e, "scheduled run did not complete"),
    }
}

/// One app's line of a cycle.
fn log_run(app: &str, result: &Result<run::RunSummary, run::RunError>, secs: f64) {
    match result {
        Ok(s) => {
            let o = s.outcomes.clone().unwrap_or_default();
            let summary = crate::report::summary(&s.plan);
            if o.held > 0 {
                tracing::warn!(run = s.run, outcome = s.outcome.as_str(), applied = o.applied, failed = o.failed, held = o.held, seconds = secs,
                    "run {} {}: {summary}; {} action(s) held: review with `idsync approvals`, then `idsync approve {}` or `idsync reject {}`",
                    s.run, s.outcome.as_str(), o.held, s.run, s.run);
            } else {
                tracing::info!(
                    run = s.run,
                    outcome = s.outcome.as_str(),
                    applied = o.applied,
                    failed = o.failed,
                    held = o.held,
                    seconds = secs,
                    "run {} {}: {summary}; applied {}, failed {} in {secs:.1}s",
                    s.run,
                    s.outcome.as_str(),
                    o.applied,
                    o.failed
                );
            }
        }
        Err(e) => {
            tracing::warn!(app, seconds = secs, error = %e, "scheduled run of {app} did not complete")
        }
    }
}

/// Serves `/metrics` and `/healthz` in the background when the config asks for it.
fn serve_metrics(cfg: &Config) -> Result<(), DaemonError> {
    let (Some(addr), Some(schedule)) = (cfg.metrics_listen, cfg.schedule.as_ref()) else {
        return Ok(());
    };
    let period = schedule_period(schedule);
    let reader = Journal::open(&cfg.state_dir)?;
    let apps = cfg.apps.iter().map(|a| a.name.clone()).collect();
    tokio::spawn(async move {
        if let Err(e) = crate::metrics::serve(addr, reader, period, apps).await {
            tracing::error!(%addr, error = %e, "cannot serve metrics");
        }
    });
    Ok(())
}

/// What systemd hears of a cycle (`systemctl status idsync`).
fn status_of(result: &Result<Vec<run::AppSummary>, run::RunError>) -> String {
    let at = Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
    let apps = match result {
        Ok(apps) => apps,
        Err(e) => return format!("last run failed at {at}: {e}"),
    };
    match apps.as_slice() {
        [one] => match &one.result {
            Ok(s) => format!("last run {}: {} at {at}", s.run, s.outcome.as_str()),
            Err(e) => format!("last run failed at {at}: {e}"),
        },
        _ => {
            let each: Vec<String> = apps
                .iter()
                .map(|a| match &a.result {
                    Ok(s) => format!("{} run {}: {}", a.app, s.run, s.outcome.as_str()),
                    Err(_) => format!("{}: failed", a.app),
                })
                .collect();
            format!("last runs at {at}: {}", each.join(", "))
        }
    }
}

/// SIGHUP: the config read again; an invalid one is logged and the running one kept.
fn reload(
    path: &std::path::Path,
    cfg: &mut Config,
    journal: &mut Journal,
) -> Result<(), DaemonError> {
    match config::load(path) {
        Ok(new) => {
            for w in &new.warnings {
                tracing::warn!("config: {w}");
            }
            let state_changed = new.state_dir != cfg.state_dir;
            *cfg = new;
            if state_changed {
                *journal = Journal::open(&cfg.state_dir)?;
            }
            tracing::info!("config reloaded");
            notify(&[NotifyState::Status("config reloaded")]);
        }
        Err(e) => tracing::error!(error = %e, "the new config is invalid; keeping the running one"),
    }
    Ok(())
}

/// The time between the schedule's next two runs (a day when it has no two).
fn schedule_period(schedule: &cron::Schedule) -> chrono::Duration {
    let mut ticks = schedule.upcoming(Utc);
    match (ticks.next(), ticks.next()) {
        (Some(a), Some(b)) => b - a,
        _ => chrono::Duration::hours(24),
    }
}

/// The apps whose scheduled runs rest now, after runs that all failed (each logged with
/// until when and why).
fn resting_apps(cfg: &Config, journal: &Journal) -> std::collections::BTreeSet<String> {
    let Some(schedule) = cfg.schedule.as_ref() else {
        return Default::default();
    };
    let period = schedule_period(schedule);
    let names: Vec<String> = cfg.apps.iter().map(|a| a.name.clone()).collect();
    let resting = journal
        .resting_apps(&names, period, Utc::now())
        .unwrap_or_default();
    for (app, why) in &resting {
        tracing::warn!(app = %app, "app resting: {why}");
    }
    resting.into_iter().map(|(app, _)| app).collect()
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf, mut cfg: Config) -> Result<(), DaemonError> {
    if cfg.schedule.is_none() {
        return Err(DaemonError::NoSchedule);
    }
    let mut journal = Journal::open(&cfg.state_dir)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    // The watchdog is fed by this loop alone, never by a task of its own: a daemon whose
    // loop stops turning (a stuck runtime) is restarted by systemd. A run stuck on a server
    // is ended by run_deadline, so the loop turns again.
    let mut watchdog = tokio::time::interval(
        sd_notify::watchdog_enabled()
            .map(|every| every / 2)
            .unwrap_or(Duration::from_secs(3600)),
    );
    let feeds_watchdog = sd_notify::watchdog_enabled().is_some();
    // Cancelled by SIGTERM/SIGINT during a run: its in-flight writes finish, then we exit.
    let shutdown = CancellationToken::new();
    serve_metrics(&cfg)?;
    notify(&[
        NotifyState::Ready,
        NotifyState::Status("waiting for the first scheduled run"),
    ]);
    tracing::info!(config = %config_path.display(), "idsync daemon started");
    loop {
        let Some(schedule) = cfg.schedule.as_ref() else {
            return Err(DaemonError::NoSchedule);
        };
        let next = schedule
            .upcoming(Utc)
            .next()
            .ok_or(DaemonError::ScheduleEnded)?;
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = watchdog.tick() => {
                if feeds_watchdog {
                    notify(&[NotifyState::Watchdog]);
                }
                continue;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                reload(&config_path, &mut cfg, &mut journal)?;
                continue;
            }
        }
        let opts = run::SyncOptions {
            shutdown: shutdown.clone(),
            resting: resting_apps(&cfg, &journal),
            ..run::SyncOptions::default()
        };
        let started = std::time::Instant::now();
        let sync = run::sync(&cfg, &journal, "schedule", opts);
        tokio::pin!(sync);
        let result = loop {
            tokio::select! {
                r = &mut sync => break r,
                _ = watchdog.tick() => {
                    if feeds_watchdog {
                        notify(&[NotifyState::Watchdog]);
                    }
                }
                _ = term.recv() => { shutdown.cancel(); break sync.await }
                _ = int.recv() => { shutdown.cancel(); break sync.await }
            }
        };
        log_cycle(&result, started.elapsed());
        notify(&[NotifyState::Status(&status_of(&result))]);
        if shutdown.is_cancelled() {
            break;
        }
    }
    notify(&[NotifyState::Stopping]);
    tracing::info!("idsync daemon stopped");
    Ok(())
}
