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
    // Rates are written for people: one decimal (`7.6/s`, not `7.5648/s`).
    for (i, _) in drawn.match_indices("/s") {
        let number: String = drawn[..i]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if let Some((_, decimals)) = number.split_once('.') {
            assert_eq!(decimals.len(), 1, "a rate of {number}/s in {drawn}");
        }
    }
}

#[test]
fn a_terminal_plan_is_coloured_unless_no_color_is_set() {
    let tb = Testbed::start(&trio());
    let cfg = tb.config("");
    tb.ok(&cfg, &["sync"]);
    tb.ldapmodify("dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n");
    let on_terminal = |no_color: bool| {
        let cmd = format!(
            "{} --config {} plan",
            env!("CARGO_BIN_EXE_idsync"),
            cfg.display()
        );
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]);
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&c.output().expect("script").stdout).to_string()
    };
    let coloured = on_terminal(false);
    assert!(
        coloured.contains("\x1b[31msuspend"),
        "a suspension is red: {coloured:?}"
    );
    let plain = on_terminal(true);
    assert!(
        plain.contains("suspend") && !plain.contains("\x1b[31m"),
        "{plain:?}"
    );
    let piped = tb.ok(&cfg, &["plan"]);
    assert!(!piped.contains('\x1b'), "never into a pipe");
}
