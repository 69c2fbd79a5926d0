//! The app misbehaves: a fault-injecting proxy (`common::proxy`) between idsync and the real
//! scim2-server throttles, fails, resets, hangs, slows down, shifts list pages and lies about
//! totals. Each time idsync ends with every account exactly once, or fails the run clearly
//! with nothing half-written, and a repeated run with no change upstream writes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::proxy::{Fault, HttpFaults, Rule};
use common::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The standard config (plus `target` lines) with the app reached through `proxy`.
fn through(tb: &Testbed, proxy: &HttpFaults, target: &str, extra: &str) -> PathBuf {
    let cfg = tb.write_config(&tb.base_source(), target, extra);
    retarget(&cfg, &tb.scim_url(), &proxy.scim_url());
    cfg
}

fn proxy(tb: &Testbed) -> HttpFaults {
    HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port))
}

/// Every userName in the app, sorted, duplicates kept.
fn user_names(tb: &Testbed) -> Vec<String> {
    let mut names: Vec<String> = tb
        .scim_users()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// A run with no upstream change writes nothing (through the proxy, faults used up).
fn assert_quiet(tb: &Testbed, cfg: &Path) {
    let writes = tb.scim_writes();
    let out = tb.ok(cfg, &["sync"]);
    assert!(out.contains("no changes"), "{out}");
    assert_eq!(tb.scim_writes(), writes, "a repeated run wrote");
}

/// The gap between the faulted request for `who` and the next request for it.
fn retry_gap(proxy: &HttpFaults, method: &str, who: &str) -> Duration {
    let tries: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == method && s.body.contains(who))
        .collect();
    assert!(tries.len() >= 2, "{who} was not retried: {tries:?}");
    assert!(tries[0].fault.is_some(), "{tries:?}");
    tries[1].at - tries[0].at
}

#[test]
fn throttling_is_waited_out_whether_retry_after_is_seconds_a_date_or_missing() {
    let tb = Testbed::start(&trio());
    let p = proxy(&tb);
    let cfg = through(&tb, &p, "", "");
    let in_three_seconds =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    for (who, retry_after) in [
        ("ada@", Some("1".to_string())),
        ("alan@", Some(in_three_seconds)),
        ("grace@", None),
    ] {
        let throttled = Fault::Status {
            code: 429,
            retry_after,
        };
        p.add(Rule::new("POST", "/Users", throttled).body(who));
    }
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        user_names(&tb),
        ["ada@example.org", "alan@example.org", "grace@example.org"]
    );
    assert_eq!(tb.scim_requests("POST /v2/Users"), 3, "one create each");
    assert!(retry_gap(&p, "POST", "ada@") >= Duration::from_millis(950));
    assert!(retry_gap(&p, "POST", "alan@") >= Duration::from_millis(950));
    assert!(retry_gap(&p, "POST", "grace@") >= Duration::from_millis(200));
    assert_quiet(&tb, &cfg);
}

#[test]
fn server_errors_and_resets_are_retried_and_an_outage_fails_the_run_with_nothing_lost() {
    let tb = Testbed::start(&trio());
    let p = proxy(&tb);
    let cfg = through(&tb, &p, "  max_retries: 3\n", "");
    p.add(Rule::new(
        "GET",
        "/Users?",
        Fault::Status {
            code: 503,
            retry_after: None,
        },
    ));
    p.add(Rule::new("GET", "/Users?", Fault::Reset));
    // A 500 on a create may hide a created account: idsync looks before sending it again.
    p.add(Rule::new(
        "POST",
        "/Users",
        Fault::Status {
            code: 500,
            retry_after: None,
        },
    ));
    p.add(Rule::new("POST", "/Users", Fault::Reset));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(p.pending(), 0, "every fault was met");
    assert_eq!(user_names(&tb).len(), 3);
    assert_eq!(tb.scim_requests("POST /v2/Users"), 3);
    assert!(
        p.count("GET", "filter=userName") >= 2,
        "looked before re-sending"
    );

    // An update through a reset and a 502.
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Countess\n");
    p.add(Rule::new("PATCH", "/Users/", Fault::Reset));
    p.add(Rule::new(
        "PATCH",
        "/Users/",
        Fault::Status {
            code: 502,
            retry_after: None,
        },
    ));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("ada@example.org").unwrap()["title"],
        "Countess"
    );

    // The app goes down for good: the run fails, says why, journals it, writes nothing.
    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Codebreaker\n");
    p.add(
        Rule::new(
            "",
            "/",
            Fault::Status {
                code: 503,
                retry_after: None,
            },
        )
        .times(1000),
    );
    tb.fails(&cfg, &["sync"], &["gave up after 4 attempts", "503"]);
    // Back up: the next run makes the change, once.
    p.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("alan@example.org").unwrap()["title"],
        "Codebreaker"
    );
    assert_eq!(user_names(&tb).len(), 3);
    assert_quiet(&tb, &cfg);
}

#[test]
fn a_create_that_times_out_after_the_app_made_it_is_never_made_twice() {
    let groups = "dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\ndn: cn=eng,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: eng\nmember: uid=ada,ou=people,dc=example,dc=org\nmember: uid=alan,ou=people,dc=example,dc=org\n\n";
    let tb = Testbed::start(&format!("{}{groups}", trio()));
    let p = proxy(&tb);
    let cfg = through(
        &tb,
        &p,
        "  timeout: 2s\n",
        "groups:\n  base_dn: ou=groups,dc=example,dc=org\n",
    );
    // The app makes the account (and the group), then the reply never comes.
    p.add(
        Rule::new(
            "POST",
            "/Users",
            Fault::ForwardThenHang(Duration::from_secs(5)),
        )
        .times(2),
    );
    p.add(Rule::new(
        "POST",
        "/Groups",
        Fault::ForwardThenHang(Duration::from_secs(5)),
    ));
    let out = tb.ok(&cfg, &["sync"]);
    assert_eq!(
        user_names(&tb),
        ["ada@example.org", "alan@example.org", "grace@example.org"],
        "{out}"
    );
    assert_eq!(
        tb.scim_requests("POST /v2/Users"),
        3,
        "no create was sent twice"
    );
    assert_eq!(tb.scim_requests("POST /v2/Groups"), 1);
    let eng = tb.scim_group("eng").unwrap();
    assert_eq!(
        tb.member_names(&eng),
        ["ada@example.org", "alan@example.org"]
    );
    assert_eq!(tb.scim_groups().len(), 1);
    // Every account is linked: the next run is quiet.
    assert_quiet(&tb, &cfg);
}

#[test]
fn a_slow_app_is_retried_past_the_timeout_and_one_that_stays_slow_fails_clearly() {
    let tb = Testbed::start(&trio());
    let p = proxy(&tb);
    let cfg = through(&tb, &p, "  timeout: 1s\n  max_retries: 2\n", "");
    p.add(Rule::new(
        "GET",
        "/Users?",
        Fault::Slow(Duration::from_secs(3)),
    ));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(user_names(&tb).len(), 3);
    assert_eq!(p.pending(), 0);

    p.add(Rule::new("", "/", Fault::Slow(Duration::from_secs(3))).times(100));
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Countess\n");
    tb.fails(&cfg, &["sync"], &["gave up after 3 attempts", "timed out"]);
    p.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("ada@example.org").unwrap()["title"],
        "Countess"
    );
}

#[test]
fn shifted_pages_and_wrong_totals_still_list_every_account_exactly_once() {
    let tb = Testbed::start(&people(230));
    let p = proxy(&tb);
    // Every cycle lists the app whole (the list is what this is about).
    let cfg = through(&tb, &p, "  page_size: 50\n  full_every: 0s\n", "");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(user_names(&tb).len(), 230);

    // Page 2 starts with the last two of page 1 (the list grew while it was read): two
    // accounts are missing from that read. idsync notices and reads the list again.
    p.add(Rule::new("GET", "/Users?startIndex", Fault::Shifted(2)).skip(1));
    let out = tb.idsync(&cfg, &["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reading it again"),
        "{}",
        stderr(&out)
    );
    assert_eq!(p.pending(), 0);
    assert_quiet(&tb, &cfg);

    // totalResults too small on every page, then too large: the read still goes to the end,
    // and stops there.
    for total in [40, 100_000] {
        p.add(Rule::new("GET", "/Users?startIndex", Fault::TotalResults(total)).times(5));
        assert_quiet(&tb, &cfg);
        p.clear();
    }

    // A list that keeps moving fails the run before any write.
    tb.ldapmodify("dn: uid=user0007,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Lead\n");
    p.add(Rule::new("GET", "/Users?startIndex", Fault::Shifted(2)).times(1000));
    tb.fails(&cfg, &["sync"], &["repeated"]);
    p.clear();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_user("user0007@example.org").unwrap()["title"],
        "Lead"
    );
    assert_eq!(user_names(&tb).len(), 230);
}
