//! `idsync run`: syncs on its cron schedule and stops cleanly on SIGTERM.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
fn the_daemon_syncs_on_schedule_and_exits_cleanly_on_sigterm() {
    let tb = Testbed::start(&people(5));
    let port = free_port();
    let cfg = tb.config(&format!(
        "schedule: \"* * * * * *\"\nmetrics: {{ listen: \"127.0.0.1:{port}\" }}\n"
    ));
    // Stand in for systemd's notify socket.
    let notify_path = tb.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(["--config", cfg.to_str().unwrap(), "-v", "run"])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("a READY notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));

    let deadline = Instant::now() + Duration::from_secs(30);
    let scheduled = loop {
        let runs: Value = serde_json::from_str(&tb.ok(&cfg, &["runs", "--format", "json"]))
            .unwrap_or(Value::Null);
        let n = runs
            .as_array()
            .map(|r| {
                r.iter()
                    .filter(|r| r["trigger"] == "schedule" && r["outcome"] == "ok")
                    .count()
            })
            .unwrap_or(0);
        if n >= 2 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        scheduled >= 2,
        "expected two scheduled runs, saw {scheduled}"
    );
    assert_eq!(tb.scim_users().len(), 5);

    let get =
        |path: &str| reqwest::blocking::get(format!("http://127.0.0.1:{port}{path}")).unwrap();
    let health = get("/healthz");
    assert_eq!(health.status().as_u16(), 200);
    let metrics = get("/metrics").text().unwrap();
    assert!(
        metrics
            .contains("idsync_actions_total{app=\"default\",kind=\"create\",status=\"applied\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("idsync_runs_total{app=\"default\",mode=\"apply\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("idsync_last_success_timestamp_seconds "),
        "{metrics}"
    );

    let status_msg = (0..10)
        .filter_map(|_| {
            notify
                .recv(&mut buf)
                .ok()
                .map(|n| String::from_utf8_lossy(&buf[..n]).to_string())
        })
        .find(|m| m.contains("STATUS=last run"));
    assert!(
        status_msg.is_some_and(|m| m.contains(": ok at")),
        "systemd hears the last run's outcome"
    );

    // SIGHUP with a broken config: logged, the running config kept, runs go on.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("schedule:", "schedul:")).unwrap();
    signal(&daemon, "-HUP");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "a bad reload must not stop the daemon"
    );
    std::fs::write(&cfg, &good).unwrap();

    signal(&daemon, "-TERM");
    let status = wait_exit(&mut daemon, 15);
    let mut err = String::new();
    std::io::Read::read_to_string(daemon.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("idsync daemon stopped"), "{err}");
    assert!(
        err.contains("keeping the running one"),
        "the bad reload is logged: {err}"
    );
    let runs: Value = serde_json::from_str(&tb.ok(&cfg, &["runs", "--format", "json"])).unwrap();
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] != "running"),
        "no run left half-open"
    );
}

#[test]
fn the_daemon_refuses_to_start_without_a_schedule() {
    let tb = Testbed::start("");
    let cfg = tb.config("");
    let out = tb.idsync(&cfg, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`schedule` is not set"));
}

#[test]
fn two_concurrent_syncs_never_both_write() {
    let tb = Testbed::start(&people(60));
    let cfg = tb.config("");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_idsync"))
            .args(["--config", cfg.to_str().unwrap(), "sync"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    for out in &outs {
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("another idsync run holds"),
                "a refused run says why: {err}"
            );
        }
    }
    assert!(outs.iter().any(|o| o.status.success()));
    let users = tb.scim_users();
    assert_eq!(users.len(), 60, "no duplicate accounts");
    let runs: Value = serde_json::from_str(&tb.ok(&cfg, &["runs", "--format", "json"])).unwrap();
    let created: i64 = runs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["counts"]["create"].as_i64())
        .sum();
    assert_eq!(created, 60, "the creates were planned by one run only");
}

#[test]
fn sigterm_mid_run_finishes_in_flight_writes_and_the_next_run_converges() {
    let tb = Testbed::start(&people(200));
    // 20 writes/s: the first run takes ~10 s, long enough to stop it in the middle.
    let cfg = tb.config_rate_limited("schedule: \"* * * * * *\"\n", "20/s");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tb.scim_writes() < 20 {
        assert!(
            Instant::now() < deadline,
            "the first run never started writing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(&daemon, "-TERM");
    let status = wait_exit(&mut daemon, 15);
    assert!(status.success());
    let created = tb.scim_users().len();
    assert!(
        created > 0 && created < 200,
        "stopped mid-run, created {created}"
    );
    let last = tb.last_run(&cfg);
    assert_eq!(last["run"]["outcome"], "ok");
    assert!(
        last["run"]["reason"]
            .as_str()
            .unwrap()
            .contains("stopped early"),
        "{last}"
    );
    let applied = last["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "applied")
        .count();
    assert_eq!(
        applied, created,
        "every write that happened is journaled as applied"
    );

    // The next run picks up the rest, with no duplicates.
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_users().len(), 200);
    assert!(tb.ok(&cfg, &["sync"]).contains("no changes"));
}

#[test]
fn idle_and_slow_metrics_clients_cannot_starve_the_scheduled_run() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let tb = Testbed::start(&people(3));
    let port = free_port();
    let cfg = tb.config(&format!(
        "schedule: \"*/2 * * * * *\"\nmetrics: {{ listen: \"127.0.0.1:{port}\" }}\n"
    ));
    // The daemon gets the default 1,024 open files; this test needs more than that itself.
    let lim = libc::rlimit {
        rlim_cur: 4096,
        rlim_max: 4096,
    };
    // SAFETY: setrlimit with a valid struct; lowering our own limit is always allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    let mut daemon = Command::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -n 1024 && exec {} --config {} run",
                env!("CARGO_BIN_EXE_idsync"),
                cfg.display()
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = Instant::now();
    while TcpStream::connect(addr).is_err() && up.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let flood_at = chrono::Utc::now();
    // 1,100 attempts; those past the daemon's connection limit wait in (or are dropped from)
    // the kernel's accept queue, holding none of the daemon's files.
    let idle: Vec<TcpStream> = (0..1100)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(50)).ok())
        .collect();
    assert!(idle.len() >= 200, "only {} connections opened", idle.len());

    // A scheduled run that starts after the flood completes and is journaled.
    let deadline = Instant::now() + Duration::from_secs(40);
    let ran = loop {
        let runs: Value = serde_json::from_str(&tb.ok(&cfg, &["runs", "--format", "json"]))
            .unwrap_or(Value::Null);
        let ok = runs.as_array().is_some_and(|r| {
            r.iter().any(|r| {
                r["trigger"] == "schedule"
                    && r["outcome"] == "ok"
                    && r["started"]
                        .as_str()
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .is_some_and(|t| t > flood_at)
            })
        });
        if ok || Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(ran, "no scheduled run completed during the flood");
    drop(idle);

    // A slowloris client (a header byte a second) is cut off within 15 s.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let started = Instant::now();
    let _ = slow.write_all(b"GET /healthz HTTP/1.1\r\n");
    let closed = loop {
        let _ = slow.write_all(b"X");
        let mut b = [0u8; 64];
        match slow.read(&mut b) {
            Ok(0) => break true,
            Ok(_) => break true,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break true,
        }
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
    };
    assert!(
        closed && started.elapsed() < Duration::from_secs(15),
        "slowloris held {:?}",
        started.elapsed()
    );
    // And /healthz answers again once the idle ones are gone.
    let health = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
        .get(format!("http://{addr}/healthz"))
        .send()
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    signal(&daemon, "-TERM");
    assert!(wait_exit(&mut daemon, 30).success());
}

#[test]
fn an_app_whose_runs_keep_failing_rests_between_scheduled_runs_and_says_so() {
    let mut tb = Testbed::start(&people(3));
    let port = free_port();
    // Every 2 s, failing fast (no retry) against an app that is down.
    let cfg = tb.write_config(
        &tb.base_source(),
        "  max_retries: 0\n",
        &format!("schedule: \"*/2 * * * * *\"\nmetrics: {{ listen: \"127.0.0.1:{port}\" }}\n"),
    );
    tb.stop_scim();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // (No journal yet while the daemon starts: no run.)
    let failed = || -> usize {
        let out = tb.idsync(&cfg, &["runs", "--format", "json"]);
        let runs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        runs.as_array()
            .map(|r| r.iter().filter(|r| r["outcome"] == "failed").count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(failed(), 3, "three failed runs first");
    // Resting: two periods (4 s) after the third failure before the next try.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(failed(), 3, "a resting app ran");
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("idsync_app_resting{app=\"default\"} 1"),
        "{metrics}"
    );
    signal(&daemon, "-TERM");
    assert!(wait_exit(&mut daemon, 20).success());
    let mut err = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("app resting: its last 3 runs failed"), "{err}");
}
