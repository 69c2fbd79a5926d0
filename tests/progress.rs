//! Progress shows on a terminal, and nowhere else.

mod common;

use std::process::Command;

use common::*;

#[test]
fn progress_is_drawn_on_a_terminal_and_never_into_redirected_output() {
    let tb = Testbed::start(&people(100));
    let cfg = tb.config_rate_limited("", "50/s");
    let plain = tb.idsync(&cfg, &["plan"]);
    assert!(plain.status.success());
    assert!(
        plain.stderr.is_empty(),
        "nothing on a redirected stderr: {}",
        String::from_utf8_lossy(&plain.stderr)
    );

    // `script` gives the command a pseudo-terminal and records what it drew.
    let cmd = format!(
        "{} --config {} sync",
        env!("CARGO_BIN_EXE_idsync"),
        cfg.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script (bsdutils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(
        drawn.contains("applying") && drawn.contains("/100"),
        "no progress bar drawn: {drawn}"
    );
    assert_eq!(tb.scim_users().len(), 100);
}
