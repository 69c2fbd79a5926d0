//! The console's pages, rendered on the server (maud escapes every value). No script: links
//! and forms work from the keyboard; one stylesheet, embedded, reads at 1280 px and at
//! phone width. Nothing here reads a secret: pages show what the journal holds.

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use maud::{html, Markup, DOCTYPE};

use super::auth::Viewer;
use crate::config::Role;
use crate::journal::{ActionRow, RunRow};
use crate::plan::ActionKind;

const STYLE: &str = r#"
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}
header a{color:#fff}
header .who{margin-left:auto}
main{max-width:1200px;margin:0 auto;padding:1rem}
a{color:#1d4ed8}
a:focus,button:focus,input:focus,textarea:focus{outline:3px solid #f59e0b;outline-offset:2px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:1rem}
.card{background:#fff;border:1px solid #d6dbe1;border-radius:6px;padding:1rem}
.scroll{overflow-x:auto;background:#fff;border:1px solid #d6dbe1;border-radius:6px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e5e8ec;vertical-align:top}
th{background:#eef1f5;font-weight:600}
.ok{color:#166534}.failed,.aborted{color:#b91c1c}.held{color:#92400e}
.diff{font-family:ui-monospace,monospace;font-size:13px;white-space:pre-wrap;word-break:break-word}
.bars{display:flex;gap:2px;align-items:flex-end;height:48px;margin:.5rem 0}
.bars>span{display:flex;flex-direction:column-reverse;width:10px;min-height:2px;background:#cbd5e1}
.bars>span.bad{outline:2px solid #dc2626}
.bars i{display:block;width:100%}
.k-new{background:#16a34a}.k-change{background:#2563eb}.k-leave{background:#ea580c}.k-group{background:#7c3aed}
.bars.time>span{background:#64748b}
.legend{font-size:.8rem;color:#475569}
.legend i{display:inline-block;width:.7rem;height:.7rem;margin:0 .2rem 0 .6rem;vertical-align:middle}
form.inline{display:inline}
textarea{width:100%;min-height:3rem}
button{font:inherit;padding:.3rem .8rem;border-radius:4px;border:1px solid #1d3557;background:#fff;cursor:pointer}
button.approve{background:#166534;color:#fff;border-color:#166534}
button.reject{background:#b91c1c;color:#fff;border-color:#b91c1c}
.msg{background:#fff;border-left:4px solid #1d4ed8;padding:.6rem 1rem;margin-bottom:1rem}
@media (max-width:600px){main{padding:.5rem}th,td{padding:.3rem}header{font-size:14px}}
"#;

/// The stylesheet, from the binary.
pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css")], STYLE)
}

fn page(title: &str, user: Option<(&Viewer, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - idsync" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header {
                    strong { "idsync" }
                    @if let Some((u, csrf)) = user {
                        nav {
                            a href="/" { "Apps" } " · "
                            a href="/runs" { "Runs" } " · "
                            a href="/approvals" { "Held actions" } " · "
                            a href="/links" { "Accounts" } " · "
                            a href="/plan" { "Plan" }
                        }
                        span.who {
                            (u.name) " (" (u.role().as_str()) ") "
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="authenticity_token" value=(csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// An error or notice page.
pub fn message(code: StatusCode, text: &str) -> Markup {
    page(
        code.canonical_reason().unwrap_or("Error"),
        None,
        html! { p.msg { (text) } p { a href="/" { "Back" } } },
    )
}

/// The login page: the provider's button when OIDC is set up (`provider`: its name), and
/// the local login form when there are local logins.
pub fn login(csrf: &str, problem: Option<&str>, provider: Option<&str>, local: bool) -> Markup {
    page(
        "Log in",
        None,
        html! {
            @if let Some(p) = problem { p.msg role="alert" { (p) } }
            @if let Some(name) = provider {
                p.card { a.button href="/oidc/login" { "Log in with " (name) } }
            }
            @if local { form.card method="post" action="/login" {
                input type="hidden" name="authenticity_token" value=(csrf);
                p { label { "Name" br; input name="name" autocomplete="username" required autofocus; } }
                p { label { "Password" br; input name="password" type="password" autocomplete="current-password" required; } }
                button type="submit" { "Log in" }
            } }
        },
    )
}

/// One app on the overview: its recent runs (newest first) and held actions.
pub struct AppCard {
    pub name: String,
    pub runs: Vec<RunRow>,
    pub held: usize,
    /// The daemon's next scheduled run, if it has a schedule.
    pub next: Option<String>,
}

fn outcome_class(r: &RunRow) -> &'static str {
    match r.outcome.to_string().as_str() {
        "ok" => "ok",
        "held" => "held",
        "failed" => "failed",
        _ => "aborted",
    }
}

fn actions_of(r: &RunRow) -> usize {
    r.counts.planned.values().sum()
}

/// The chart's groups of action kinds: (css class, label, kinds).
const KIND_GROUPS: [(&str, &str, &[ActionKind]); 4] = [
    ("k-new", "new", &[ActionKind::Create, ActionKind::Adopt]),
    (
        "k-change",
        "changed",
        &[
            ActionKind::Update,
            ActionKind::Reactivate,
            ActionKind::Reinvite,
        ],
    ),
    (
        "k-leave",
        "leavers",
        &[ActionKind::Suspend, ActionKind::Delete],
    ),
    (
        "k-group",
        "groups",
        &[
            ActionKind::GroupCreate,
            ActionKind::GroupAdopt,
            ActionKind::GroupUpdate,
            ActionKind::GroupDelete,
        ],
    ),
];

/// A run's duration in ms (reading both sides and applying), if it says.
fn duration_of(r: &RunRow) -> u64 {
    r.counts.read_ms.unwrap_or(0) + r.counts.apply_ms.unwrap_or(0)
}

/// What a run's bar says when hovered (and to a screen reader).
fn run_title(r: &RunRow) -> String {
    let kinds: Vec<String> = r
        .counts
        .planned
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect();
    let what = if kinds.is_empty() {
        "no action".to_string()
    } else {
        kinds.join(", ")
    };
    format!(
        "run {}: {what}; {:.1} s; {}",
        r.id,
        duration_of(r) as f64 / 1000.0,
        r.outcome
    )
}

/// Recent runs, oldest left: one column per run, stacked by kind of action (a red outline:
/// the run did not end ok), and under it one per run by duration.
fn run_chart(runs: &[RunRow]) -> Markup {
    let most = runs.iter().map(actions_of).max().unwrap_or(0).max(1);
    let longest = runs.iter().map(duration_of).max().unwrap_or(0).max(1);
    html! {
        div.bars role="img" aria-label="recent runs: actions per run, by kind" {
            @for r in runs.iter().rev() {
                span class=(if outcome_class(r) == "ok" { "" } else { "bad" }) title=(run_title(r)) {
                    @for (class, _, kinds) in KIND_GROUPS {
                        @let n: usize = kinds.iter().map(|k| r.counts.planned.get(k).copied().unwrap_or(0)).sum();
                        @if n > 0 {
                            i class=(class) style={ "height:" (1 + 46 * n / most) "px" } {}
                        }
                    }
                }
            }
        }
        div.bars.time role="img" aria-label="recent runs: duration" style="height:24px" {
            @for r in runs.iter().rev() {
                span title=(run_title(r)) style={ "height:" (2 + 22 * duration_of(r) / longest) "px" } {}
            }
        }
        p.legend {
            @for (class, label, _) in KIND_GROUPS { i class=(class) {} (label) }
            " · lower row: duration"
        }
    }
}

pub fn overview(user: &Viewer, csrf: &str, apps: &[AppCard]) -> Markup {
    page(
        "Apps",
        Some((user, csrf)),
        html! {
            @if apps.is_empty() { p.msg { "This login sees no app." } }
            div.cards {
                @for a in apps {
                    section.card aria-label=(a.name) {
                        h2 { (a.name) }
                        @if let Some(last) = a.runs.first() {
                            p {
                                "Last run " a href={ "/runs/" (last.id) } { (last.id) }
                                ", " (last.started.get(..16).unwrap_or(&last.started).replace('T', " "))
                                ": " span class=(outcome_class(last)) { (last.outcome.to_string()) }
                            }
                        } @else { p { "No run yet." } }
                        @if let Some(next) = &a.next { p { "Next run " (next) } }
                        p {
                            a href="/approvals" { (a.held) " held action(s)" }
                            " · " a href={ "/runs?app=" (a.name) } { "runs" }
                            " · " a href={ "/plan?app=" (a.name) } { "dry-run plan" }
                        }
                        (run_chart(&a.runs))
                    }
                }
            }
        },
    )
}

pub fn runs(user: &Viewer, csrf: &str, rows: &[RunRow]) -> Markup {
    page(
        "Runs",
        Some((user, csrf)),
        html! {
            div.scroll { table {
                thead { tr { th { "Run" } th { "App" } th { "Started" } th { "Mode" } th { "Outcome" } th { "Actions" } th { "Reason" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { a href={ "/runs/" (r.id) } { (r.id) } }
                            td { (r.app) }
                            td { (r.started.get(..16).unwrap_or(&r.started).replace('T', " ")) }
                            td { (r.mode.to_string()) }
                            td class=(outcome_class(r)) { (r.outcome.to_string()) }
                            td { (actions_of(r)) }
                            td { (r.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
        },
    )
}

/// True when an action's user, kind, reason, status or fields contain `needle` (any case).
pub fn matches(a: &ActionRow, needle: &str) -> bool {
    let n = needle.trim().to_lowercase();
    n.is_empty()
        || [
            a.user_name.as_str(),
            a.kind.as_str(),
            a.reason.as_str(),
            &a.status.to_string(),
            &a.before.to_string(),
            &a.after.to_string(),
        ]
        .iter()
        .any(|t| t.to_lowercase().contains(&n))
}

fn diff(a: &ActionRow) -> Markup {
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "(none)".to_string(),
        Some(serde_json::Value::String(s)) => format!("\"{s}\""),
        Some(v) => v.to_string(),
    };
    html! {
        div.diff {
            @for f in &a.fields {
                (f) ": " (show(a.before.get(f))) " -> " (show(a.after.get(f))) "\n"
            }
        }
    }
}

pub fn run(user: &Viewer, csrf: &str, r: &RunRow, actions: &[ActionRow], needle: &str) -> Markup {
    page(
        &format!("Run {}", r.id),
        Some((user, csrf)),
        html! {
            p {
                "App " strong { (r.app) } ", " (r.mode.to_string()) " run started "
                (r.started.get(..19).unwrap_or(&r.started).replace('T', " "))
                ", " span class=(outcome_class(r)) { (r.outcome.to_string()) }
                @if let Some(reason) = &r.reason { ": " (reason) }
            }
            form method="get" {
                label { "Filter " input name="q" value=(needle) placeholder="user, kind, field..."; }
                " " button type="submit" { "Filter" }
            }
            div.scroll { table {
                thead { tr { th { "#" } th { "Action" } th { "User" } th { "Status" } th { "Why" } th { "Changes" } } }
                tbody {
                    @for a in actions {
                        tr {
                            td { (a.seq) }
                            td { (a.kind.as_str()) }
                            td { a href={ "/people/" (a.user_name) } { (a.user_name) } }
                            td class=(a.status.to_string()) { (a.status.to_string()) }
                            td { (a.reason) @if let Some(e) = &a.error { br; em { (e) } } }
                            td { (diff(a)) }
                        }
                    }
                }
            } }
        },
    )
}

/// One app's dry-run plan, or why it could not be made.
pub struct AppPlan {
    pub app: String,
    pub plan: Result<crate::plan::Plan, String>,
}

/// The form that asks for a dry-run plan (a POST: each plan reads both sides in full).
pub fn plan_form(
    user: &Viewer,
    csrf: &str,
    apps: &[String],
    chosen: Option<&str>,
    every: bool,
) -> Markup {
    page(
        "Dry-run plan",
        Some((user, csrf)),
        html! {
            p { "A plan reads the directory and the app now and shows what a sync would do; nothing is written to any app. One plan every 30 seconds." }
            form.card method="post" action="/plan" {
                input type="hidden" name="authenticity_token" value=(csrf);
                p { label { "App" br;
                    select name="app" {
                        @if every { option value="" { "every app" } }
                        @for a in apps {
                            option value=(a) selected[chosen == Some(a.as_str())] { (a) }
                        }
                    }
                } }
                button.make type="submit" { "Make the plan" }
            }
        },
    )
}

pub fn plan(user: &Viewer, csrf: &str, plans: &[AppPlan]) -> Markup {
    page(
        "Dry-run plan",
        Some((user, csrf)),
        html! {
            p { "Both sides read now; nothing was written to any app." }
            @for p in plans {
                section.card aria-label={ "plan of " (p.app) } {
                    h2 { (p.app) }
                    @match &p.plan {
                        Err(e) => { p.failed { (e) } }
                        Ok(plan) => {
                            p { (crate::report::summary(plan)) }
                            @if !plan.actions.is_empty() {
                                div.scroll { table {
                                    thead { tr { th { "Action" } th { "User" } th { "Why" } th { "Changes" } } }
                                    tbody {
                                        @for a in &plan.actions {
                                            tr {
                                                td { (a.kind.as_str()) }
                                                td { (a.user_name) }
                                                td { (a.reason) @if let Some(h) = &a.held { br; span.held { "HELD: " (h) } } }
                                                td { div.diff { @for c in &a.changes { (crate::report::change_line(c)) "\n" } } }
                                            }
                                        }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One link for the accounts page: who, where, in what state, and what comes next.
pub struct LinkRow {
    pub app: String,
    pub user_name: String,
    pub account: String,
    pub state: &'static str,
    pub suspended_since: Option<String>,
    /// Until when a return reactivates the same account.
    pub window_left: Option<String>,
    /// When the suspended account is deleted (`delete_after`).
    pub retention: Option<String>,
}

impl LinkRow {
    pub fn new(
        app: &str,
        l: crate::model::Link,
        lifecycle: &crate::plan::Lifecycle,
        now: chrono::DateTime<chrono::Utc>,
    ) -> LinkRow {
        let day = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d").to_string();
        let since = l
            .suspended_at
            .filter(|_| l.state == crate::model::LinkState::Suspended);
        LinkRow {
            app: app.to_string(),
            user_name: l.user_name,
            account: l.account_id.as_str().to_string(),
            state: l.state.as_str(),
            suspended_since: since.map(day),
            window_left: since.map(|s| {
                let end = s + lifecycle.reactivation_window;
                match (end - now).num_days() {
                    _ if end <= now => "over".to_string(),
                    d => format!("{d} day(s), until {}", day(end)),
                }
            }),
            retention: since.and_then(|s| lifecycle.delete_after.map(|keep| day(s + keep))),
        }
    }
}

pub fn links(user: &Viewer, csrf: &str, rows: &[LinkRow]) -> Markup {
    page(
        "Accounts",
        Some((user, csrf)),
        html! {
            form method="get" {
                label { "Person " input name="q" placeholder="userName"; }
                " " button type="submit" { "Find" }
            }
            div.scroll { table {
                thead { tr { th { "App" } th { "Person" } th { "Account" } th { "State" } th { "Suspended since" } th { "Reactivation window" } th { "Deleted on" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { (r.app) }
                            td { a href={ "/people/" (r.user_name) } { (r.user_name) } }
                            td { (r.account) }
                            td class=(if r.state == "active" { "ok" } else { "held" }) { (r.state) }
                            td { (r.suspended_since.as_deref().unwrap_or("")) }
                            td { (r.window_left.as_deref().unwrap_or("")) }
                            td { (r.retention.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
        },
    )
}

/// One person's timeline across apps, newest first.
pub fn person(user: &Viewer, csrf: &str, name: &str, rows: &[ActionRow]) -> Markup {
    page(
        name,
        Some((user, csrf)),
        html! {
            @if rows.is_empty() { p.msg { "No action on this person in any app this login sees." } }
            ol {
                @for a in rows {
                    li {
                        (a.at.get(..16).unwrap_or(&a.at).replace('T', " ")) " · " strong { (a.app) } " · "
                        (a.kind.as_str()) " (" (a.status.to_string()) "), run "
                        a href={ "/runs/" (a.run) } { (a.run) } ": " (a.reason)
                        @if let Some(e) = &a.error { " — " em { (e) } }
                        (diff(a))
                    }
                }
            }
        },
    )
}

/// The runs holding more than one action, every one of which this login may decide:
/// those can be decided at once.
fn whole_runs(user: &Viewer, held: &[ActionRow]) -> Vec<(i64, usize)> {
    let mut runs: std::collections::BTreeMap<i64, (usize, bool)> = Default::default();
    for h in held {
        let e = runs.entry(h.run).or_insert((0, true));
        e.0 += 1;
        e.1 &= user.may_decide(&h.app, &h.user_name, h.anchor.as_deref());
    }
    runs.into_iter()
        .filter(|(_, (n, all))| *n > 1 && *all)
        .map(|(run, (n, _))| (run, n))
        .collect()
}

pub fn approvals(user: &Viewer, csrf: &str, held: &[ActionRow], said: Option<&str>) -> Markup {
    page(
        "Held actions",
        Some((user, csrf)),
        html! {
            @if let Some(s) = said { p.msg.said role="status" { (s) } }
            @if held.is_empty() { p.msg { "Nothing waits for a decision." } }
            @for (run, n) in whole_runs(user, held) {
                section.card aria-label={ "all held actions of run " (run) } {
                    h2 { "Run " a href={ "/runs/" (run) } { (run) } ": " (n) " held actions" }
                    form method="post" action={ "/approvals/" (run) } {
                        input type="hidden" name="authenticity_token" value=(csrf);
                        p { label { "Comment (journaled with your name, on each)" br; textarea name="comment" {} } }
                        button.approve-all type="submit" name="decision" value="approve" { "Approve all " (n) }
                        " "
                        button.reject-all type="submit" name="decision" value="reject" { "Reject all " (n) }
                    }
                }
            }
            @for h in held {
                section.card aria-label={ "held action " (h.run) ":" (h.seq) } {
                    h2 { (h.kind.as_str()) " " a href={ "/people/" (h.user_name) } { (h.user_name) } }
                    p { "App " strong { (h.app) } ", run " a href={ "/runs/" (h.run) } { (h.run) } ":" (h.seq) }
                    p { (h.reason) }
                    @if let Some(why) = &h.error { p.held { "Held: " (why) } }
                    (diff(h))
                    @if user.may_decide(&h.app, &h.user_name, h.anchor.as_deref()) {
                        form method="post" action={ "/approvals/" (h.run) "/" (h.seq) } {
                            input type="hidden" name="authenticity_token" value=(csrf);
                            p { label { "Comment (journaled with your name)" br; textarea name="comment" {} } }
                            button.approve type="submit" name="decision" value="approve" { "Approve" } " "
                            button.reject type="submit" name="decision" value="reject" { "Reject" }
                        }
                    } @else if user.role() == Role::Viewer {
                        p { em { "Viewers see held actions; an approver decides them." } }
                    }
                }
            }
        },
    )
}
