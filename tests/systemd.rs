//! The shipped units: `systemd-analyze security` exposure must stay at or below 2.0.

mod common;

use std::process::Command;

fn exposure(unit: &str) -> f64 {
    let path = common::repo().join("systemd").join(unit);
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/testbed.sh install provides it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in `{line}`"));
    println!("{unit}: systemd-analyze security exposure {score}");
    score
}

#[test]
fn the_daemon_unit_is_hardened() {
    assert!(exposure("idsync.service") <= 2.0);
}

#[test]
fn the_dry_run_report_unit_is_hardened() {
    assert!(exposure("idsync-plan.service") <= 2.0);
}

#[test]
fn the_console_unit_is_hardened() {
    assert!(exposure("idsync-console.service") <= 2.0);
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for unit in [
        "idsync.service",
        "idsync-plan.service",
        "idsync-plan.timer",
        "idsync-console.service",
    ] {
        let text = std::fs::read_to_string(common::repo().join("systemd").join(unit)).unwrap();
        // Point ExecStart at the binary under test: verify checks that it is executable.
        let text = text.replace("/usr/local/bin/idsync", env!("CARGO_BIN_EXE_idsync"));
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn the_daemon_and_the_nightly_plan_share_one_dynamic_user() {
    for unit in [
        "idsync.service",
        "idsync-plan.service",
        "idsync-console.service",
    ] {
        let text = std::fs::read_to_string(common::repo().join("systemd").join(unit)).unwrap();
        assert!(text.contains("\nDynamicUser=yes\n"), "{unit}");
        assert!(text.contains("\nUser=idsync\n"), "{unit}");
        assert!(text.contains("\nStateDirectory=idsync\n"), "{unit}");
    }
}
