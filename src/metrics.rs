//! `/metrics` (Prometheus text) and `/healthz` for the daemon, computed from the journal on
//! each request, so the numbers survive restarts and agree with `idsync runs`.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, Utc};

use crate::journal::{Journal, MetricsData, Mode, Outcome, RunRow};

/// Renders the Prometheus text exposition. Pure.
pub fn render(data: &MetricsData, last: Option<&RunRow>) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP idsync_runs_total Runs by mode and outcome.\n# TYPE idsync_runs_total counter\n",
    );
    for (mode, outcome, n) in &data.runs {
        let _ = writeln!(
            out,
            "idsync_runs_total{{mode=\"{mode}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    out.push_str("# HELP idsync_actions_total Actions of apply runs by kind and status.\n# TYPE idsync_actions_total counter\n");
    for (kind, status, n) in &data.actions {
        let _ = writeln!(
            out,
            "idsync_actions_total{{kind=\"{kind}\",status=\"{status}\"}} {n}"
        );
    }
    let held: i64 = data
        .actions
        .iter()
        .filter(|(_, s, _)| s == "held")
        .map(|(_, _, n)| n)
        .sum();
    let _ = writeln!(out, "# HELP idsync_held_actions Actions waiting for approval.\n# TYPE idsync_held_actions gauge\nidsync_held_actions {held}");
    if let Some(t) = data.last_success {
        let _ = writeln!(
            out,
            "# HELP idsync_last_success_timestamp_seconds When the last apply run ended ok or held.\n# TYPE idsync_last_success_timestamp_seconds gauge\nidsync_last_success_timestamp_seconds {}",
            t.timestamp()
        );
    }
    if let Some(secs) = last.and_then(run_seconds) {
        let _ = writeln!(
            out,
            "# HELP idsync_last_run_duration_seconds Wall time of the last apply run (read, plan, apply).\n# TYPE idsync_last_run_duration_seconds gauge\nidsync_last_run_duration_seconds {secs:.3}"
        );
    }
    for (ms, name, help) in [
        (
            last.and_then(|r| r.counts.read_ms),
            "idsync_last_read_duration_seconds",
            "Reading both sides in the last apply run.",
        ),
        (
            last.and_then(|r| r.counts.apply_ms),
            "idsync_last_apply_duration_seconds",
            "Applying the last apply run's actions.",
        ),
    ] {
        if let Some(ms) = ms {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {:.3}",
                ms as f64 / 1000.0
            );
        }
    }
    out
}

fn ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn run_seconds(r: &RunRow) -> Option<f64> {
    let d = ts(r.finished.as_deref()?)? - ts(&r.started)?;
    Some(d.num_milliseconds() as f64 / 1000.0)
}

/// Healthy when the last apply run did not fail and finished within two schedule periods.
/// The text names the outcome, the run and its age, never a run's error text (`/healthz`
/// answers without authentication; `idsync show RUN` has the detail).
pub fn health(
    last_apply: Option<&RunRow>,
    period: Duration,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let Some(run) = last_apply else {
        return Err("no apply run yet".into());
    };
    let finished = run
        .finished
        .as_deref()
        .and_then(ts)
        .ok_or_else(|| format!("run {} is still running", run.id))?;
    let age = (now - finished).num_seconds().max(0);
    if run.outcome == Outcome::Failed {
        return Err(format!(
            "last run {} failed {age}s ago; see `idsync show {}`",
            run.id, run.id
        ));
    }
    if now - finished > period * 2 {
        return Err(format!(
            "last run {} ({}) finished {age}s ago, more than two schedule periods",
            run.id, run.outcome
        ));
    }
    Ok(format!(
        "ok: last run {} {} {age}s ago",
        run.id, run.outcome
    ))
}

struct Ctx {
    journal: Journal,
    period: Duration,
}

fn last_apply(journal: &Journal) -> Option<RunRow> {
    journal
        .runs(50)
        .ok()?
        .into_iter()
        .find(|r| r.mode == Mode::Apply && r.outcome != Outcome::Running)
}

/// Connections served at once; more wait in the kernel's backlog, using no file of ours.
const MAX_CONNECTIONS: usize = 32;
/// A client must have sent its request's headers by then (slowloris).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// No connection lives longer (an idle or trickling client).
const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs a journal query on the blocking pool, off the async threads that run syncs.
async fn query<T: Send + 'static>(
    ctx: &Arc<Ctx>,
    f: impl FnOnce(&Ctx) -> T + Send + 'static,
) -> Option<T> {
    let ctx = Arc::clone(ctx);
    tokio::task::spawn_blocking(move || f(&ctx)).await.ok()
}

fn router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(c): State<Arc<Ctx>>| async move {
                let out = query(&c, |c| {
                    c.journal
                        .metrics()
                        .map(|data| render(&data, last_apply(&c.journal).as_ref()))
                })
                .await;
                match out {
                    Some(Ok(text)) => (StatusCode::OK, text),
                    Some(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("journal: {e}\n")),
                    None => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "journal query failed\n".into(),
                    ),
                }
            }),
        )
        .route(
            "/healthz",
            get(|State(c): State<Arc<Ctx>>| async move {
                let out = query(&c, |c| {
                    health(last_apply(&c.journal).as_ref(), c.period, Utc::now())
                })
                .await;
                match out {
                    Some(Ok(t)) => (StatusCode::OK, t + "\n"),
                    Some(Err(t)) => (StatusCode::SERVICE_UNAVAILABLE, t + "\n"),
                    None => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "journal query failed\n".into(),
                    ),
                }
            }),
        )
        .with_state(ctx)
}

/// Serves `/metrics` and `/healthz` until the process ends: at most `MAX_CONNECTIONS` at
/// once, each closed after `HEADER_TIMEOUT` without a full request head and after
/// `CONNECTION_LIFETIME` in any case, so idle and slowloris clients cannot hold the
/// daemon's file descriptors (a scheduled run needs some).
pub async fn serve(addr: SocketAddr, journal: Journal, period: Duration) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let app = router(Arc::new(Ctx { journal, period }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tracing::info!(%addr, "serving /metrics and /healthz");
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was taken:
                // wait a little rather than spin.
                tracing::warn!(error = %e, "metrics: cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(outcome: Outcome, finished_mins_ago: i64, now: DateTime<Utc>) -> RunRow {
        RunRow {
            id: 7,
            started: (now - Duration::minutes(finished_mins_ago + 1)).to_rfc3339(),
            finished: Some((now - Duration::minutes(finished_mins_ago)).to_rfc3339()),
            mode: Mode::Apply,
            trigger: "schedule".into(),
            source_users: Some(1),
            counts: Default::default(),
            outcome,
            reason: None,
        }
    }

    #[test]
    fn healthy_only_when_the_last_run_is_recent_and_did_not_fail() {
        let now = Utc::now();
        let period = Duration::minutes(15);
        assert!(health(Some(&run(Outcome::Ok, 29, now)), period, now).is_ok());
        assert!(health(Some(&run(Outcome::Held, 5, now)), period, now).is_ok());
        assert!(health(Some(&run(Outcome::Ok, 31, now)), period, now).is_err());
        assert!(health(Some(&run(Outcome::Failed, 1, now)), period, now).is_err());
        assert!(health(None, period, now).is_err());
    }

    #[test]
    fn health_names_the_run_and_its_age_never_its_error_text() {
        let now = Utc::now();
        let mut failed = run(Outcome::Failed, 2, now);
        failed.reason = Some("401 echo: Bearer Canary-Token client_secret=Canary".into());
        let text = health(Some(&failed), Duration::minutes(15), now).unwrap_err();
        assert_eq!(text, "last run 7 failed 120s ago; see `idsync show 7`");
    }

    #[test]
    fn metrics_render_as_prometheus_text() {
        let data = MetricsData {
            runs: vec![("apply".into(), "ok".into(), 3)],
            actions: vec![("suspend".into(), "held".into(), 2)],
            last_success: None,
        };
        let text = render(&data, None);
        assert!(text.contains("idsync_runs_total{mode=\"apply\",outcome=\"ok\"} 3\n"));
        assert!(text.contains("idsync_held_actions 2\n"));
    }
}
