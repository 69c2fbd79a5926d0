//! Plan -> text for people (table, markdown) and machines (json). Pure.

use std::fmt::Write;

use crate::plan::{Change, Field, Plan};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

pub fn render(plan: &Plan, format: Format) -> String {
    match format {
        Format::Table => table(plan),
        Format::Json => json(plan),
        Format::Markdown => markdown(plan),
    }
}

/// One line: "2 create, 1 suspend (held: 1)".
pub fn summary(plan: &Plan) -> String {
    if plan.actions.is_empty() {
        return "no changes".to_string();
    }
    let mut parts: Vec<String> = plan
        .counts()
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let held = plan.actions.iter().filter(|a| a.held.is_some()).count();
    if held > 0 {
        parts.push(format!("{held} held"));
    }
    parts.join(", ")
}

fn value(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "(none)".to_string(),
    }
}

/// `field: "before" -> "after"`; a membership change as `members: +alice -bob`.
pub fn change_line(c: &Change) -> String {
    if c.field == Field::Members {
        // `members: +alice +dave -bob`
        let side = |v: &Option<String>, sign: char| -> Vec<String> {
            v.as_deref()
                .map(|s| s.split(", ").map(|n| format!("{sign}{n}")).collect())
                .unwrap_or_default()
        };
        let mut parts = side(&c.after, '+');
        parts.extend(side(&c.before, '-'));
        return format!("{}: {}", c.field, parts.join(" "));
    }
    if c.field == Field::Active {
        // A boolean, shown as one: `active: true -> false`.
        let b = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        return format!("{}: {} -> {}", c.field, b(&c.before), b(&c.after));
    }
    format!("{}: {} -> {}", c.field, value(&c.before), value(&c.after))
}

fn header(plan: &Plan) -> String {
    let s = &plan.stats;
    format!(
        "{} ({} people read, {} disabled; {} accounts in the app; {} links)",
        summary(plan),
        s.source_users,
        s.source_disabled,
        s.accounts,
        s.links
    )
}

fn table(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plan: {}", header(plan));
    if !plan.actions.is_empty() {
        let width = plan
            .actions
            .iter()
            .map(|a| a.user_name.len())
            .max()
            .unwrap_or(4)
            .clamp(4, 48);
        let _ = writeln!(out, "\n{:<12}  {:<width$}  REASON", "ACTION", "USER");
        for a in &plan.actions {
            let _ = writeln!(
                out,
                "{:<12}  {:<width$}  {}",
                a.kind.as_str(),
                a.user_name,
                a.reason
            );
            if let Some(h) = &a.held {
                let _ = writeln!(out, "{:<12}  {:<width$}  HELD: {h}", "", "");
            }
            if !a.hooks.is_empty() {
                let hooks = a.hooks.join(", ");
                let _ = writeln!(out, "{:<12}  {:<width$}  hooks: {hooks}", "", "");
            }
            for c in &a.changes {
                let _ = writeln!(out, "{:<12}  {:<width$}    {}", "", "", change_line(c));
            }
        }
    }
    if !plan.notices.is_empty() {
        let _ = writeln!(out, "\nNotices:");
        for n in &plan.notices {
            let who = n
                .user_name
                .as_deref()
                .or(n.anchor.as_ref().map(|a| a.as_str()))
                .unwrap_or("-");
            let _ = writeln!(out, "  {who}: {}", n.message);
        }
    }
    out
}

fn json(plan: &Plan) -> String {
    let doc = serde_json::json!({
        "summary": summary(plan),
        "counts": plan.counts().iter().map(|(k, n)| (k.as_str().to_string(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
        "stats": plan.stats,
        "actions": plan.actions,
        "notices": plan.notices,
    });
    let mut s =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## idsync plan\n\n{}\n", md_escape(&header(plan)));
    if !plan.actions.is_empty() {
        let _ = writeln!(
            out,
            "| action | user | changes | reason |\n|---|---|---|---|"
        );
        for a in &plan.actions {
            let changes: Vec<String> = a
                .changes
                .iter()
                .map(|c| format!("`{}`", md_escape(&change_line(c))))
                .collect();
            let mut reason = md_escape(&a.reason);
            if let Some(h) = &a.held {
                reason.push_str(&format!(" **HELD:** {}", md_escape(h)));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                a.kind,
                md_escape(&a.user_name),
                changes.join("<br>"),
                reason
            );
        }
    }
    if !plan.notices.is_empty() {
        let _ = writeln!(out, "\n### Notices\n");
        for n in &plan.notices {
            let who = n
                .user_name
                .as_deref()
                .or(n.anchor.as_ref().map(|a| a.as_str()))
                .unwrap_or("-");
            let _ = writeln!(out, "- **{}**: {}", md_escape(who), md_escape(&n.message));
        }
    }
    out
}

/// A table report coloured for a terminal: what waits for a decision yellow, what takes an
/// account away red, what gives one green. Callers colour only a terminal's output, and
/// never when `NO_COLOR` is set.
pub fn colour(text: &str) -> String {
    const RED: &str = "\x1b[31m";
    const GREEN: &str = "\x1b[32m";
    const YELLOW: &str = "\x1b[33m";
    const RESET: &str = "\x1b[0m";
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        let paint = if line.contains("HELD:") || line.trim_start().starts_with("held:") {
            Some(YELLOW)
        } else if matches!(first, "suspend" | "delete" | "group-delete") {
            Some(RED)
        } else if matches!(first, "create" | "reactivate" | "group-create") {
            Some(GREEN)
        } else {
            None
        };
        match paint {
            Some(c) => {
                out.push_str(c);
                out.push_str(line);
                out.push_str(RESET);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset (no-color.org).
pub fn colour_stdout() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
