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

use crate::journal::{Journal, MetricsData, RunRow};

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
    for (key, name, help) in [
        (
            "read_ms",
            "idsync_last_read_duration_seconds",
            "Reading both sides in the last apply run.",
        ),
        (
            "apply_ms",
            "idsync_last_apply_duration_seconds",
            "Applying the last apply run's actions.",
        ),
    ] {
        if let Some(ms) = last
            .and_then(|r| r.counts.get(key))
            .and_then(serde_json::Value::as_u64)
        {
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
pub fn health(
    last_apply: Option<&RunRow>,
    period: Duration,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let Some(run) = last_apply else {
        return Err("no apply run yet".into());
    };
    if run.outcome == "failed" {
        return Err(format!(
            "last run {} failed: {}",
            run.id,
            run.reason.as_deref().unwrap_or("")
        ));
    }
    let finished = run
        .finished
        .as_deref()
        .and_then(ts)
        .ok_or_else(|| format!("run {} is still running", run.id))?;
    if now - finished > period * 2 {
        return Err(format!(
            "last run {} finished at {finished}, more than two schedule periods ago",
            run.id
        ));
    }
    Ok(format!(
        "ok: last run {} {} at {finished}",
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
        .find(|r| r.mode == "apply" && r.outcome != "running")
}

/// Serves `/metrics` and `/healthz` until the process ends.
pub async fn serve(addr: SocketAddr, journal: Journal, period: Duration) -> std::io::Result<()> {
    let ctx = Arc::new(Ctx { journal, period });
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(c): State<Arc<Ctx>>| async move {
                match c.journal.metrics() {
                    Ok(data) => (
                        StatusCode::OK,
                        render(&data, last_apply(&c.journal).as_ref()),
                    ),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("journal: {e}\n")),
                }
            }),
        )
        .route(
            "/healthz",
            get(|State(c): State<Arc<Ctx>>| async move {
                match health(last_apply(&c.journal).as_ref(), c.period, Utc::now()) {
                    Ok(t) => (StatusCode::OK, t + "\n"),
                    Err(t) => (StatusCode::SERVICE_UNAVAILABLE, t + "\n"),
                }
            }),
        )
        .with_state(ctx);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(outcome: &str, finished_mins_ago: i64, now: DateTime<Utc>) -> RunRow {
        RunRow {
            id: 7,
            started: (now - Duration::minutes(finished_mins_ago + 1)).to_rfc3339(),
            finished: Some((now - Duration::minutes(finished_mins_ago)).to_rfc3339()),
            mode: "apply".into(),
            trigger: "schedule".into(),
            source_users: Some(1),
            counts: serde_json::json!({}),
            outcome: outcome.into(),
            reason: None,
        }
    }

    #[test]
    fn healthy_only_when_the_last_run_is_recent_and_did_not_fail() {
        let now = Utc::now();
        let period = Duration::minutes(15);
        assert!(health(Some(&run("ok", 29, now)), period, now).is_ok());
        assert!(health(Some(&run("held", 5, now)), period, now).is_ok());
        assert!(health(Some(&run("ok", 31, now)), period, now).is_err());
        assert!(health(Some(&run("failed", 1, now)), period, now).is_err());
        assert!(health(None, period, now).is_err());
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
