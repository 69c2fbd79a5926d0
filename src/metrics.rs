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
pub fn render(data: &MetricsData, lasts: &[RunRow]) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP idsync_runs_total Runs by app, mode and outcome.\n# TYPE idsync_runs_total counter\n",
    );
    for (app, mode, outcome, n) in &data.runs {
        let _ = writeln!(
            out,
            "idsync_runs_total{{app=\"{app}\",mode=\"{mode}\",outcome=\"{outcome}\"}} {n}"
        );
    }
    out.push_str("# HELP idsync_actions_total Actions of apply runs by app, kind and status.\n# TYPE idsync_actions_total counter\n");
    let mut held: std::collections::BTreeMap<&str, i64> = Default::default();
    for (app, kind, status, n) in &data.actions {
        let _ = writeln!(
            out,
            "idsync_actions_total{{app=\"{app}\",kind=\"{kind}\",status=\"{status}\"}} {n}"
        );
        *held.entry(app).or_default() += if status == "held" { *n } else { 0 };
    }
    out.push_str("# HELP idsync_held_actions Actions waiting for approval, by app.\n# TYPE idsync_held_actions gauge\n");
    for (app, n) in held {
        let _ = writeln!(out, "idsync_held_actions{{app=\"{app}\"}} {n}");
    }
    if let Some(t) = data.last_success {
        let _ = writeln!(
            out,
            "# HELP idsync_last_success_timestamp_seconds When the last apply run ended ok or held.\n# TYPE idsync_last_success_timestamp_seconds gauge\nidsync_last_success_timestamp_seconds {}",
            t.timestamp()
        );
    }
    type Gauge = (&'static str, &'static str, fn(&RunRow) -> Option<f64>);
    let gauges: [Gauge; 3] = [
        (
            "idsync_last_run_duration_seconds",
            "Wall time of each app's last apply run (read, plan, apply).",
            run_seconds,
        ),
        (
            "idsync_last_read_duration_seconds",
            "Reading both sides in each app's last apply run.",
            |r| r.counts.read_ms.map(|ms| ms as f64 / 1000.0),
        ),
        (
            "idsync_last_apply_duration_seconds",
            "Applying each app's last apply run's actions.",
            |r| r.counts.apply_ms.map(|ms| ms as f64 / 1000.0),
        ),
    ];
    for (name, help, value) in gauges {
        let values: Vec<(&str, f64)> = lasts
            .iter()
            .filter_map(|r| Some((r.app.as_str(), value(r)?)))
            .collect();
        if values.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (app, v) in values {
            let _ = writeln!(out, "{name}{{app=\"{app}\"}} {v:.3}");
        }
    }
    out
}

/// `idsync_escrowed_actions{app,state}`: actions in escrow, waiting for their next try or
/// quarantined (held for an operator).
pub fn render_escrow(counts: &[(String, i64, i64)]) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# HELP idsync_escrowed_actions Actions that failed for a lasting reason, waiting or quarantined, by app.\n# TYPE idsync_escrowed_actions gauge\n",
    );
    for (app, waiting, quarantined) in counts {
        let _ = writeln!(
            out,
            "idsync_escrowed_actions{{app=\"{app}\",state=\"waiting\"}} {waiting}"
        );
        let _ = writeln!(
            out,
            "idsync_escrowed_actions{{app=\"{app}\",state=\"quarantined\"}} {quarantined}"
        );
    }
    out
}

/// `idsync_app_resting{app}`: 1 while an app's scheduled runs rest after failed runs.
fn render_resting(c: &Ctx) -> String {
    let period = c.period;
    let resting = c
        .journal
        .resting_apps(&c.apps, period, Utc::now())
        .unwrap_or_default();
    let mut out = String::from(
        "# HELP idsync_app_resting 1 while an app's scheduled runs rest after runs that all failed.\n# TYPE idsync_app_resting gauge\n",
    );
    for app in &c.apps {
        let on = resting.iter().any(|(a, _)| a == app);
        let _ = writeln!(out, "idsync_app_resting{{app=\"{app}\"}} {}", u8::from(on));
    }
    out
}

/// `idsync_hooks_total{app,hook,result}`: hook calls, ok or failed.
pub fn render_hooks(counts: &[(String, String, bool, i64)]) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# HELP idsync_hooks_total Hook calls by app, hook and result.\n# TYPE idsync_hooks_total counter\n",
    );
    for (app, hook, ok, n) in counts {
        let result = if *ok { "ok" } else { "failed" };
        let _ = writeln!(
            out,
            "idsync_hooks_total{{app=\"{app}\",hook=\"{hook}\",result=\"{result}\"}} {n}"
        );
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
    /// The apps the daemon syncs.
    apps: Vec<String>,
}

fn last_apply(journal: &Journal) -> Option<RunRow> {
    journal
        .runs(50)
        .ok()?
        .into_iter()
        .find(|r| r.mode == Mode::Apply && r.outcome != Outcome::Running)
}

/// Each app's last finished apply run.
fn last_applies(c: &Ctx) -> Vec<RunRow> {
    c.apps
        .iter()
        .filter_map(|a| last_apply(&c.journal.for_app(a)))
        .collect()
}

/// `/healthz`: every app healthy (see `health`); one line per app when there are several.
fn health_of_apps(c: &Ctx, now: DateTime<Utc>) -> Result<String, String> {
    let each: Vec<(&String, Result<String, String>)> = c
        .apps
        .iter()
        .map(|a| {
            (
                a,
                health(last_apply(&c.journal.for_app(a)).as_ref(), c.period, now),
            )
        })
        .collect();
    if let [(_, only)] = each.as_slice() {
        return only.clone();
    }
    let text = each
        .iter()
        .map(|(a, r)| match r {
            Ok(t) | Err(t) => format!("{a}: {t}"),
        })
        .collect::<Vec<_>>()
        .join("\n");
    if each.iter().all(|(_, r)| r.is_ok()) {
        Ok(text)
    } else {
        Err(text)
    }
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
                    c.journal.metrics().map(|data| {
                        let mut text = render(&data, &last_applies(c));
                        text.push_str(&render_hooks(&c.journal.hook_counts().unwrap_or_default()));
                        text.push_str(&render_escrow(
                            &c.journal.escrow_counts().unwrap_or_default(),
                        ));
                        text.push_str(&render_resting(c));
                        text
                    })
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
                let out = query(&c, |c| health_of_apps(c, Utc::now())).await;
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
pub async fn serve(
    addr: SocketAddr,
    journal: Journal,
    period: Duration,
    apps: Vec<String>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let app = router(Arc::new(Ctx {
        journal,
        period,
        apps,
    }));
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
            app: "default".into(),
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
            runs: vec![("default".into(), "apply".into(), "ok".into(), 3)],
            actions: vec![("default".into(), "suspend".into(), "held".into(), 2)],
            last_success: None,
        };
        let text = render(&data, &[]);
        assert!(
            text.contains("idsync_runs_total{app=\"default\",mode=\"apply\",outcome=\"ok\"} 3\n")
        );
        assert!(text.contains("idsync_held_actions{app=\"default\"} 2\n"));
    }

    #[test]
    fn healthz_names_each_app_and_fails_when_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let now = Utc::now();
        for (app, outcome) in [("miro", Outcome::Ok), ("slack", Outcome::Failed)] {
            let j = journal.for_app(app);
            let run = j.begin_run(Mode::Apply, "schedule", now).unwrap();
            let counts = crate::journal::RunCounts {
                read_ms: Some(1500),
                ..Default::default()
            };
            j.finish_run(run, outcome, Some(3), &counts, None, now)
                .unwrap();
        }
        let ctx = Ctx {
            journal,
            period: Duration::minutes(15),
            apps: vec!["miro".into(), "slack".into()],
        };
        let text = health_of_apps(&ctx, now).unwrap_err();
        assert!(text.starts_with("miro: ok: last run 1 ok"), "{text}");
        assert!(text.contains("\nslack: last run 2 failed"), "{text}");
        let metrics = render(&MetricsData::default(), &last_applies(&ctx));
        assert!(
            metrics.contains("idsync_last_read_duration_seconds{app=\"slack\"} 1.500"),
            "{metrics}"
        );
    }

    #[test]
    fn escrowed_actions_are_a_gauge_by_app_and_state() {
        let text = render_escrow(&[("miro".into(), 2, 1)]);
        assert!(text.contains("idsync_escrowed_actions{app=\"miro\",state=\"waiting\"} 2\n"));
        assert!(text.contains("idsync_escrowed_actions{app=\"miro\",state=\"quarantined\"} 1\n"));
        assert!(render_escrow(&[]).is_empty());
    }

    #[test]
    fn hook_calls_are_counted_by_app_hook_and_result() {
        let text = render_hooks(&[
            ("miro".into(), "revoke".into(), true, 3),
            ("miro".into(), "revoke".into(), false, 1),
        ]);
        assert!(text.contains("idsync_hooks_total{app=\"miro\",hook=\"revoke\",result=\"ok\"} 3\n"));
        assert!(
            text.contains("idsync_hooks_total{app=\"miro\",hook=\"revoke\",result=\"failed\"} 1\n")
        );
        assert_eq!(render_hooks(&[]), "");
    }
}
