//! `hooks:` (top level, or per app): a list of hooks, each resolved with every problem
//! named at its key path (`hooks[0].http.url`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Resolver;
use crate::hooks::{Call, HeaderValue, Hook, Moment};
use crate::plan::ActionKind;

/// One hook as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    /// How the journal, plans and metrics name it (default: `hook-N`).
    pub name: Option<String>,
    /// Action kinds (`suspend`, `delete`, `group-update`, ...; `group-*` for every group kind).
    pub on: Vec<String>,
    /// `before`, `after` or `held`.
    pub when: String,
    pub http: Option<RawHttpHook>,
    /// argv, no shell; the action as JSON on stdin.
    pub command: Option<Vec<String>>,
    #[serde(default, deserialize_with = "super::raw::text_or_seconds")]
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpHook {
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Header values read from files (secrets: tokens, keys), never written in the config.
    #[serde(default)]
    pub header_files: BTreeMap<String, String>,
    pub body: Option<String>,
}

impl Resolver<'_> {
    pub(super) fn hooks(&mut self, raw: Vec<RawHook>) -> Vec<Hook> {
        let mut names = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (i, h) in raw.into_iter().enumerate() {
            let at = format!("hooks[{i}]");
            let name = h.name.clone().unwrap_or_else(|| format!("hook-{}", i + 1));
            if !names.insert(name.clone()) {
                self.problem(
                    &format!("{at}.name"),
                    format!("`{name}` names two hooks; give each its own name"),
                );
            }
            if let Some(hook) = self.hook(&at, name, h) {
                out.push(hook);
            }
        }
        out
    }

    fn hook(&mut self, at: &str, name: String, h: RawHook) -> Option<Hook> {
        let moment = Moment::parse(h.when.trim());
        if moment.is_none() {
            self.problem(
                &format!("{at}.when"),
                format!(
                    "`{}`: use `before` (a failure can hold the action), `after` or `held`",
                    h.when
                ),
            );
        }
        let kinds = self.hook_kinds(at, &h.on);
        let call = match (h.http, h.command) {
            (Some(http), None) => self.http_hook(at, http),
            (None, Some(argv)) if !argv.is_empty() && !argv[0].trim().is_empty() => {
                Some(Call::Command { argv })
            }
            (None, Some(_)) => {
                self.problem(
                    &format!("{at}.command"),
                    "an argv list such as [\"/usr/local/bin/offboard\", \"{user_name}\"]",
                );
                None
            }
            _ => {
                self.problem(
                    at,
                    "give either `http:` (a request) or `command:` (an argv), one of them",
                );
                None
            }
        };
        let timeout = self.duration(
            &format!("{at}.timeout"),
            h.timeout.as_deref(),
            std::time::Duration::from_secs(10),
        );
        if h.required && moment != Some(Moment::Before) {
            self.problem(&format!("{at}.required"), "only a `before` hook can hold its action; an `after` or `held` hook's failure is a notice");
        }
        Some(Hook {
            name,
            kinds,
            moment: moment?,
            call: call?,
            timeout,
            retries: h.retries.unwrap_or(2),
            required: h.required,
        })
    }

    fn hook_kinds(&mut self, at: &str, on: &[String]) -> Vec<ActionKind> {
        let mut kinds = Vec::new();
        for k in on {
            match k.trim() {
                "group-*" => kinds.extend(ActionKind::ALL.into_iter().filter(|k| k.is_group())),
                text => match ActionKind::parse(text) {
                    Some(kind) => kinds.push(kind),
                    None => {
                        let known: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
                        self.problem(
                            &format!("{at}.on"),
                            format!(
                                "`{text}` is no action kind; use {} or group-*",
                                known.join(", ")
                            ),
                        );
                    }
                },
            }
        }
        if on.is_empty() {
            self.problem(
                &format!("{at}.on"),
                "name the action kinds it runs for, e.g. [suspend, delete]",
            );
        }
        kinds.sort();
        kinds.dedup();
        kinds
    }

    fn http_hook(&mut self, at: &str, http: RawHttpHook) -> Option<Call> {
        let method = http
            .method
            .as_deref()
            .unwrap_or("POST")
            .to_ascii_uppercase();
        let method = match reqwest::Method::from_bytes(method.as_bytes()) {
            Ok(m) => Some(m),
            Err(_) => {
                self.problem(
                    &format!("{at}.http.method"),
                    format!("`{method}` is no HTTP method"),
                );
                None
            }
        };
        // The URL's fixed part must be a URL; its placeholders are filled per action.
        let probe = http.url.replace(['{', '}'], "");
        match url::Url::parse(&probe) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => self.problem(
                &format!("{at}.http.url"),
                format!("`{}` is not an http(s) URL", http.url),
            ),
        }
        let mut headers: Vec<(String, HeaderValue)> = http
            .headers
            .into_iter()
            .map(|(k, v)| (k, HeaderValue::Text(v)))
            .collect();
        for (k, file) in http.header_files {
            let key = format!("{at}.http.header_files.{k}");
            if let Some(secret) = self.secret(&key, None, Some(&file)) {
                headers.push((k, HeaderValue::Secret(secret)));
            }
        }
        Some(Call::Http {
            method: method?,
            url: http.url,
            headers,
            body: http.body,
        })
    }
}
