//! `hooks:` (top level, or per app): a list of hooks, each resolved with every problem
//! named at its key path (`hooks[0].http.url`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Resolver;
use crate::hooks::{Call, HeaderValue, Hook, Moment};
use crate::plan::ActionKind;

/// One hook as written, in either form: `when: after` with `http:` or `command:`, or (as
/// SPEC.md writes it) `after: { post: URL, headers: ... }` / `before: { command: [...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    /// How the journal, plans and metrics name it (default: `hook-N`).
    pub name: Option<String>,
    /// Action kinds (`suspend`, `delete`, `group-update`, ...; `group-*` for every group
    /// kind): one, or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub on: Vec<String>,
    /// `before`, `after` or `held`.
    pub when: Option<String>,
    pub http: Option<RawHttpHook>,
    /// argv, no shell; the action as JSON on stdin.
    pub command: Option<Vec<String>>,
    pub before: Option<RawCall>,
    pub after: Option<RawCall>,
    pub held: Option<RawCall>,
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

/// The call of SPEC.md's form: `{ post: URL, headers, header_files, body }` (or get, put,
/// patch, delete), or `{ command: [...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCall {
    pub get: Option<String>,
    pub post: Option<String>,
    pub put: Option<String>,
    pub patch: Option<String>,
    pub delete: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub header_files: BTreeMap<String, String>,
    pub body: Option<String>,
    pub command: Option<Vec<String>>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl RawCall {
    /// The `http:` / `command:` this call says.
    fn split(self) -> (Option<RawHttpHook>, Option<Vec<String>>) {
        let methods = [
            ("GET", self.get),
            ("POST", self.post),
            ("PUT", self.put),
            ("PATCH", self.patch),
            ("DELETE", self.delete),
        ];
        let http = methods
            .into_iter()
            .find_map(|(m, url)| Some((m, url?)))
            .map(|(method, url)| RawHttpHook {
                method: Some(method.to_string()),
                url,
                headers: self.headers,
                header_files: self.header_files,
                body: self.body,
            });
        (http, self.command)
    }
}

/// A hook's moment and its call, from either form.
type Form = (Option<Moment>, Option<RawHttpHook>, Option<Vec<String>>);

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
        let calls = [h.before, h.after, h.held];
        let (moment, http, command) = self.hook_form(at, h.when, h.http, h.command, calls);
        let kinds = self.hook_kinds(at, &h.on);
        let call = match (http, command) {
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

    /// The moment and the call, from either form; a problem when neither or both are given.
    fn hook_form(
        &mut self,
        at: &str,
        when: Option<String>,
        http: Option<RawHttpHook>,
        command: Option<Vec<String>>,
        calls: [Option<RawCall>; 3],
    ) -> Form {
        let [before, after, held] = calls;
        let given: Vec<(Moment, RawCall)> = [
            (Moment::Before, before),
            (Moment::After, after),
            (Moment::Held, held),
        ]
        .into_iter()
        .filter_map(|(m, c)| Some((m, c?)))
        .collect();
        let other_form = when.is_some() || http.is_some() || command.is_some();
        if given.len() > 1 || (!given.is_empty() && other_form) {
            self.problem(at, "one moment per hook: either `when:` with `http:` or `command:`, or one of `before:`, `after:`, `held:`");
            return (None, None, None);
        }
        if let Some((moment, call)) = given.into_iter().next() {
            let (http, command) = call.split();
            return (Some(moment), http, command);
        }
        let Some(when) = when else {
            self.problem(
                at,
                "say when it runs: `when: before|after|held` (or `after: { post: URL }`)",
            );
            return (None, http, command);
        };
        let moment = Moment::parse(when.trim());
        if moment.is_none() {
            self.problem(
                &format!("{at}.when"),
                format!(
                    "`{when}`: use `before` (a failure can hold the action), `after` or `held`"
                ),
            );
        }
        (moment, http, command)
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
        let mut headers = Vec::new();
        for (k, v) in http.headers {
            // `${VAR}` in a header is a secret from the environment: redacted everywhere.
            let value = if v.contains("${") {
                let key = format!("{at}.http.headers.{k}");
                let secret = self.expand(&key, &v).map(crate::redact::Secret::new);
                secret.map(HeaderValue::Secret)
            } else {
                Some(HeaderValue::Text(v))
            };
            headers.extend(value.map(|v| (k, v)));
        }
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
