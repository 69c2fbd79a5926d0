//! Action hooks: offboarding steps SCIM cannot do (revoke sessions, hand over ownership,
//! notify), as one more planned, journaled, guarded step of an action. A hook is an HTTP
//! request or a command (argv, no shell; the action as JSON on stdin), run `before` an
//! action's write, `after` it, or when the action is `held`. A failed required `before`
//! hook holds the action (the app sees no write); any other failure is a notice.
//!
//! Every call carries an idempotency key that is the same for the same action planned again
//! the same day (after a crash, say): `Idempotency-Key` for HTTP, `IDSYNC_IDEMPOTENCY_KEY`
//! for commands, `idempotency_key` in the JSON. A receiver that answers 409 Conflict
//! already has that key: the call counts as done.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::plan::{Action, ActionKind};
use crate::redact::{Redactor, Secret};

/// When a hook runs, relative to its action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Moment {
    Before,
    After,
    /// When a run holds the action (a notification: nothing waits on it).
    Held,
}

impl Moment {
    pub fn as_str(self) -> &'static str {
        match self {
            Moment::Before => "before",
            Moment::After => "after",
            Moment::Held => "held",
        }
    }
    pub fn parse(s: &str) -> Option<Moment> {
        [Moment::Before, Moment::After, Moment::Held]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// What a hook calls.
#[derive(Clone, Debug)]
pub enum Call {
    Http {
        method: reqwest::Method,
        /// A template: `{account_id}`, `{user_name}`, ... (see `fill`).
        url: String,
        /// Header values: plain text (templates) or secrets read from files.
        headers: Vec<(String, HeaderValue)>,
        /// A JSON body template; the action's JSON document when absent.
        body: Option<String>,
    },
    /// argv (templates); the action's JSON document on stdin.
    Command { argv: Vec<String> },
}

#[derive(Clone, Debug)]
pub enum HeaderValue {
    Text(String),
    Secret(Secret),
}

/// One configured hook.
#[derive(Clone, Debug)]
pub struct Hook {
    pub name: String,
    pub kinds: Vec<ActionKind>,
    pub moment: Moment,
    pub call: Call,
    pub timeout: Duration,
    pub retries: u32,
    pub required: bool,
}

impl Hook {
    pub fn applies(&self, kind: ActionKind, moment: Moment) -> bool {
        self.moment == moment && self.kinds.contains(&kind)
    }

    /// How a plan names it: `revoke-sessions (after)`.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.moment.as_str())
    }

    fn secrets(&self) -> impl Iterator<Item = &str> {
        let headers = match &self.call {
            Call::Http { headers, .. } => headers.as_slice(),
            Call::Command { .. } => &[],
        };
        headers.iter().filter_map(|(_, v)| match v {
            HeaderValue::Secret(s) => Some(s.expose()),
            HeaderValue::Text(_) => None,
        })
    }
}

/// How one hook call ended, as the journal keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookResult {
    pub hook: String,
    pub moment: Moment,
    pub ok: bool,
    /// `HTTP 204`, `exit 0`, `timed out after 10s`, ...
    pub status: String,
    pub duration_ms: u64,
    /// The first lines of what the receiver or command said, secrets scrubbed.
    pub output: String,
    pub key: String,
}

/// How a plan names the hooks an action will run: `revoke-sessions (after)`.
pub fn labels(hooks: &[Hook], action: &Action) -> Vec<String> {
    let moments: &[Moment] = if action.held.is_some() {
        &[Moment::Held]
    } else {
        &[Moment::Before, Moment::After]
    };
    moments
        .iter()
        .flat_map(|m| hooks.iter().filter(move |h| h.applies(action.kind, *m)))
        .map(Hook::label)
        .collect()
}

/// One action a hook is called for, in its run.
pub struct Occasion<'a> {
    pub app: &'a str,
    pub run: i64,
    pub seq: usize,
    pub action: &'a Action,
    pub now: DateTime<Utc>,
}

/// Runs an app's hooks.
pub struct Runner {
    hooks: Vec<Hook>,
    /// idsync's HTTP client (no redirects, no environment proxies), or why it could not
    /// be made (HTTP hooks then fail, never with a laxer client).
    http: Result<reqwest::Client, String>,
    redact: Redactor,
}

impl Runner {
    /// `redact` scrubs the app's own secrets; the hooks' header secrets are added.
    pub fn new(hooks: Vec<Hook>, redact: &Redactor) -> Runner {
        let secrets: Vec<String> = hooks
            .iter()
            .flat_map(|h| h.secrets().map(str::to_string).collect::<Vec<_>>())
            .collect();
        let mut redact = redact.clone();
        for s in &secrets {
            redact = redact.with(s);
        }
        // Each hook bounds its own call; the client's timeout is only a backstop.
        let http = crate::http::client(crate::http::ClientSettings {
            timeout: Duration::from_secs(600),
            ca_file: None,
            ca_key: "hooks",
            proxy: None,
        });
        Runner {
            hooks,
            http,
            redact,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// The hooks that run for an action of `kind` at `moment`.
    pub fn for_action(&self, kind: ActionKind, moment: Moment) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.applies(kind, moment))
    }

    /// Calls one hook for one action, with its retries; never fails the run.
    pub async fn call(&self, hook: &Hook, at: &Occasion<'_>) -> HookResult {
        let key = idempotency_key(at.app, hook, at.action, at.now);
        let doc = document(at, hook, &key);
        let started = Instant::now();
        let mut attempt = 0;
        let (ok, status, output) = loop {
            attempt += 1;
            let (ok, status, output, again) = match &hook.call {
                Call::Http { .. } => self.http_once(hook, &doc, &key).await,
                Call::Command { argv } => command_once(hook, argv, &doc, &key).await,
            };
            if ok || !again || attempt > hook.retries {
                break (ok, status, output);
            }
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        };
        HookResult {
            hook: hook.name.clone(),
            moment: hook.moment,
            ok,
            status,
            duration_ms: started.elapsed().as_millis() as u64,
            output: self.redact.clean(&first_lines(&output)),
            key,
        }
    }

    /// One HTTP attempt: (ok, status, output, worth retrying).
    async fn http_once(&self, hook: &Hook, doc: &Value, key: &str) -> (bool, String, String, bool) {
        let Call::Http {
            method,
            url,
            headers,
            body,
        } = &hook.call
        else {
            unreachable!("an HTTP hook")
        };
        let url = fill(url, doc, Escape::Url);
        let body = match body {
            Some(t) => fill(t, doc, Escape::Json),
            None => doc.to_string(),
        };
        let http = match &self.http {
            Ok(c) => c,
            Err(e) => return (false, format!("no HTTP client: {e}"), String::new(), false),
        };
        let mut req = http
            .request(method.clone(), &url)
            .timeout(hook.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .body(body);
        for (name, value) in headers {
            let value = match value {
                HeaderValue::Text(t) => fill(t, doc, Escape::None),
                HeaderValue::Secret(s) => s.expose().to_string(),
            };
            req = req.header(name.as_str(), value);
        }
        match req.send().await {
            Err(e) if e.is_timeout() => (false, timed_out(hook), String::new(), true),
            Err(e) => (
                false,
                "unreachable".into(),
                crate::http::transport_text(&e),
                true,
            ),
            Ok(resp) => {
                let status = resp.status();
                let text = match crate::http::read_body(resp, 64 << 10).await {
                    Ok(crate::http::Body::Whole(b)) => String::from_utf8_lossy(&b).into_owned(),
                    _ => String::new(),
                };
                // 409: the receiver already has this idempotency key: done before.
                let ok = status.is_success() || status == reqwest::StatusCode::CONFLICT;
                let again =
                    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                (ok, format!("HTTP {}", status.as_u16()), text, again)
            }
        }
    }
}

/// One command attempt: (ok, status, output, worth retrying).
async fn command_once(
    hook: &Hook,
    argv: &[String],
    doc: &Value,
    key: &str,
) -> (bool, String, String, bool) {
    use tokio::io::AsyncWriteExt;
    let args: Vec<String> = argv.iter().map(|a| fill(a, doc, Escape::None)).collect();
    let mut cmd = tokio::process::Command::new(&args[0]);
    cmd.args(&args[1..])
        .env("IDSYNC_IDEMPOTENCY_KEY", key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                false,
                format!("cannot run {}: {e}", args[0]),
                String::new(),
                false,
            )
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(doc.to_string().as_bytes()).await;
    }
    match tokio::time::timeout(hook.timeout, child.wait_with_output()).await {
        Err(_) => (false, timed_out(hook), String::new(), true),
        Ok(Err(e)) => (false, format!("failed: {e}"), String::new(), false),
        Ok(Ok(out)) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let status = match out.status.code() {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".into(),
            };
            (out.status.success(), status, text, false)
        }
    }
}

fn timed_out(hook: &Hook) -> String {
    format!(
        "timed out after {}",
        humantime::format_duration(hook.timeout)
    )
}

/// The same for the same action planned again the same day (a run interrupted and re-run):
/// app, hook, kind, person, account and the field changes.
pub fn idempotency_key(app: &str, hook: &Hook, action: &Action, now: DateTime<Utc>) -> String {
    let mut h = Sha256::new();
    let changes = serde_json::to_string(&action.changes).unwrap_or_default();
    for part in [
        app,
        &hook.name,
        action.kind.as_str(),
        action
            .anchor
            .as_ref()
            .map(|a| a.as_str())
            .unwrap_or_default(),
        action
            .account_id
            .as_ref()
            .map(|a| a.as_str())
            .unwrap_or_default(),
        &changes,
        &now.format("%Y-%m-%d").to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The action as a hook sees it.
fn document(at: &Occasion<'_>, hook: &Hook, key: &str) -> Value {
    let a = at.action;
    json!({
        "idempotency_key": key,
        "app": at.app,
        "run": at.run,
        "seq": at.seq,
        "hook": hook.name,
        "moment": hook.moment.as_str(),
        "kind": a.kind.as_str(),
        "user_name": a.user_name,
        // SPEC.md's short names for the two a hook needs most.
        "user": a.user_name,
        "anchor": a.anchor,
        "account_id": a.account_id,
        "account": a.account_id,
        "reason": a.reason,
        "held": a.held,
        "changes": a.changes,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// A value inside a URL: percent-encoded.
    Url,
    /// A value inside a JSON string: escaped, without the quotes.
    Json,
}

/// `{name}` placeholders (a name of the action document's top-level keys: `user_name`,
/// `account_id`, `kind`, `reason`, `run`, ...) filled from the action (text as is, other
/// values as JSON), escaped for where they land. Every other brace is kept as written, so a
/// JSON body template keeps its own braces.
fn fill(template: &str, doc: &Value, escape: Escape) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let name_len = tail[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len() - 1);
        let name = &tail[1..1 + name_len];
        let closed = tail[1 + name_len..].starts_with('}');
        match doc.get(name).filter(|_| closed && !name.is_empty()) {
            Some(v) => {
                out.push_str(&escaped(v, escape));
                rest = &tail[name_len + 2..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn escaped(v: &Value, escape: Escape) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match escape {
        Escape::None => text,
        Escape::Url => url::form_urlencoded::byte_serialize(text.as_bytes())
            .collect::<String>()
            .replace('+', "%20"),
        Escape::Json => {
            let quoted = Value::String(text).to_string();
            quoted[1..quoted.len() - 1].to_string()
        }
    }
}

/// The first lines of a reply or a command's output: enough to see why, little to store.
fn first_lines(text: &str) -> String {
    let mut out: String = text.lines().take(5).collect::<Vec<_>>().join("\n");
    if out.len() > 500 {
        let cut = (0..=500)
            .rev()
            .find(|i| out.is_char_boundary(*i))
            .unwrap_or(0);
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_from_the_action_and_escape_where_they_land() {
        let doc = json!({"user_name": "ada \"x\"@example.org", "account_id": "a/1", "run": 7});
        assert_eq!(
            fill("{user_name} run {run} {unknown} {", &doc, Escape::None),
            "ada \"x\"@example.org run 7 {unknown} {"
        );
        assert_eq!(
            fill("/users/{account_id}/sessions", &doc, Escape::Url),
            "/users/a%2F1/sessions"
        );
        assert_eq!(
            fill(
                "{\"who\": \"{user_name}\", \"n\": {\"run\": {run}}}",
                &doc,
                Escape::Json
            ),
            "{\"who\": \"ada \\\"x\\\"@example.org\", \"n\": {\"run\": 7}}"
        );
    }
}
