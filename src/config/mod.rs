//! On-disk YAML -> a validated `Config` of real types.
//!
//! `raw` mirrors the file (strict: unknown keys are errors); `resolve` checks everything,
//! reports every problem at once with its key path, loads secrets into `Secret` (whose
//! `Debug` and `Display` redact), and returns URLs, durations, schedules and parsed
//! templates, never strings.

mod app;
mod apps;
mod console;
pub use console::{
    Access, ConsoleConfig, ConsoleTls, ConsoleUser, OidcBinding, OidcConfig, People, Role,
};
mod hooks;
mod policy;
mod raw;
mod source;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::Duration;
use url::Url;

use crate::mapping::{FieldMapping, FieldPath, Mapping, Template};
use crate::plan::{ActionKind, AfterWindow, Lifecycle, MatchRule, Policy, Protected, Unmanaged};
use crate::safety::{Approval, DeprovisionLimit, SafetyConfig};
use crate::source::filter::Filter;
use raw::{RawConfig, RawMappingValue, RawSource, RawTarget};

/// Default `run_deadline`.
pub const DEFAULT_RUN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

pub use crate::app::settings::{
    Deprovision, LimitScope, ListMode, PhotoUpload, RateLimit, ScimConfig, DEFAULT_MAX_ITEMS,
};
pub use crate::redact::Secret;
pub use crate::source::settings::{
    GraphConfig, GroupsConfig, Incremental, LdapConfig, LdapIncremental, DEFAULT_MAX_VALUE_BYTES,
    LDAP_GROUP_FILTER,
};

/// The default config location.
pub const DEFAULT_PATH: &str = "/etc/idsync/idsync.yaml";

/// One thing wrong with the config, at a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The config cannot be used. Abort: fix the file and run `idsync check`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}; pass the right file with --config")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config {path} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

#[derive(Clone, Debug)]
pub enum SourceConfig {
    Ldap(LdapConfig),
    Graph(GraphConfig),
}

impl SourceConfig {
    /// Where people are read from, for messages and saved plans.
    pub fn describe(&self) -> String {
        match self {
            SourceConfig::Ldap(l) => format!("{} {}", l.url, l.base_dn),
            SourceConfig::Graph(g) => format!("{} tenant {}", g.api_url, g.tenant),
        }
    }
}

pub use apps::AppConfig;

/// The validated configuration: one directory read, shared by every app.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub schedule: Option<cron::Schedule>,
    pub state_dir: PathBuf,
    /// Where people are read from, once per cycle, for every app (the attributes read are
    /// every app's together).
    pub source: SourceConfig,
    /// The shared read's guard (`min_source_users`, `min_source_ratio`) and, for a config
    /// with a single `target:`, its app's caps too.
    pub safety: SafetyConfig,
    /// How directory groups are read, once per cycle, when an app syncs groups or is scoped
    /// by them.
    pub groups: Option<GroupsConfig>,
    /// The apps, in the order the file names them; a single `target:` is the app `default`.
    pub apps: Vec<AppConfig>,
    /// Where the daemon serves `/metrics` and `/healthz`, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// A run still going after this is stopped and journaled failed (a hung server).
    pub run_deadline: std::time::Duration,
    /// Not errors, but worth an operator's attention (`idsync check` prints them).
    pub warnings: Vec<String>,
    /// Show progress on the terminal (set by the CLI for an interactive stderr; never
    /// read from the file).
    pub progress: bool,
    /// The operator console (`idsync serve`), if configured.
    pub console: Option<ConsoleConfig>,
}

/// One app's block resolved with what it inherits: what `resolve` makes of one YAML
/// document; `apps::combine` builds the `Config` from one per app.
#[derive(Clone, Debug)]
struct Resolved {
    path: PathBuf,
    schedule: Option<cron::Schedule>,
    state_dir: PathBuf,
    source: SourceConfig,
    target: ScimConfig,
    policy: Policy,
    safety: SafetyConfig,
    groups: Option<GroupsConfig>,
    hooks: Vec<crate::hooks::Hook>,
    /// False when the app's block says `groups: ~`: the groups are read (for scopes) but
    /// not synced to this app.
    sync_groups: bool,
    scope: crate::scope::Scope,
    metrics_listen: Option<std::net::SocketAddr>,
    run_deadline: std::time::Duration,
    console: Option<ConsoleConfig>,
}

/// What the directory read asks for: every attribute the mapping, `match` and the scope
/// filter read (LDAP `attributes`, Graph `$select`), posixGroup members' `uid` for scope
/// groups, and Graph photos up to the app's size.
fn read_what(
    source: &mut SourceConfig,
    mapping: &Mapping,
    match_rule: &MatchRule,
    scope: &crate::scope::Scope,
    photo_max_bytes: usize,
) {
    let mut scope_attributes = Vec::new();
    if let Some(f) = &scope.filter {
        f.attributes(&mut scope_attributes);
    }
    match source {
        SourceConfig::Ldap(ldap) => {
            ldap.attributes
                .extend(match_rule.source.attributes().map(str::to_string));
            ldap.attributes.extend(scope_attributes);
            if !scope.groups.is_empty() {
                // posixGroup members of a scope group are named by uid.
                ldap.attributes.push("uid".into());
            }
            ldap.attributes.sort();
            ldap.attributes.dedup();
        }
        SourceConfig::Graph(graph) => {
            graph.photo_max_bytes = photo_max_bytes;
            let read = mapping
                .attributes()
                .into_iter()
                .chain(match_rule.source.attributes().map(str::to_string))
                .chain(scope_attributes);
            graph.select = crate::source::graph::select_list(read);
        }
    }
}

/// Photos are planned when the source reads them and the app takes them.
fn photos_policy(source: &SourceConfig, target: &ScimConfig) -> Option<crate::plan::PhotoPolicy> {
    let reads = match source {
        SourceConfig::Ldap(l) => l.photo.is_some(),
        SourceConfig::Graph(g) => g.photo,
    };
    (reads && target.photo != PhotoUpload::None).then_some(crate::plan::PhotoPolicy {
        max_bytes: target.photo_max_bytes,
    })
}

impl Config {
    pub fn journal_path(&self) -> PathBuf {
        self.state_dir.join("journal.sqlite3")
    }

    /// Scrubs every secret this config loaded out of server-sent text.
    pub fn redactor(&self) -> crate::redact::Redactor {
        let source = match &self.source {
            SourceConfig::Ldap(l) => l.bind_password.as_ref(),
            SourceConfig::Graph(g) => Some(&g.client_secret),
        };
        crate::redact::Redactor::new(
            source
                .into_iter()
                .chain(self.apps.iter().map(|a| &a.target.token))
                .map(Secret::expose),
        )
    }

    /// The app named `name`, or an error listing the apps there are.
    pub fn app(&self, name: &str) -> Result<&AppConfig, String> {
        self.apps.iter().find(|a| a.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.apps.iter().map(|a| a.name.as_str()).collect();
            format!(
                "no app named `{name}` in {}; the apps are: {}",
                self.path.display(),
                names.join(", ")
            )
        })
    }

    /// The apps `--app` selects: that one, or every app.
    pub fn selected(&self, only: Option<&str>) -> Result<Vec<&AppConfig>, String> {
        match only {
            Some(name) => Ok(vec![self.app(name)?]),
            None => Ok(self.apps.iter().collect()),
        }
    }
}

/// The state dir a config names (or `$STATE_DIRECTORY`, or the default), without reading,
/// validating or resolving anything else: the journal-only commands need no secret.
pub fn state_dir_of(path: &Path) -> Result<PathBuf, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or(serde_yaml::Value::Null);
    Ok(doc
        .get("state_dir")
        .and_then(serde_yaml::Value::as_str)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/idsync")))
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Parses and validates config text; `env` looks up `${NAME}` references.
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if blank {
        return Err(ConfigError::Syntax {
            path: path.to_path_buf(),
            message: "the config is empty: it needs at least source:, target:, match: and mapping: (see config/idsync.example.yaml)".into(),
        });
    }
    let syntax = |e: serde_yaml::Error| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: syntax_message(&e),
    };
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(syntax)?;
    if doc.get("apps").is_some() {
        return apps::parse_apps(doc, path, env);
    }
    let raw: RawConfig = serde_yaml::from_str(text).map_err(syntax)?;
    let (one, warnings) = resolve_raw(raw, path, env)?;
    if let Some(console) = &one.console {
        let problems = console::unknown_apps(console, &[DEFAULT_APP]);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
    }
    Ok(apps::combine(
        vec![(DEFAULT_APP.to_string(), one)],
        warnings,
    ))
}

/// The app of a config with a single `target:`.
pub const DEFAULT_APP: &str = crate::journal::DEFAULT_APP;

/// Resolves one document (a single-target config, or one app with what it inherits).
fn resolve_raw(
    mut raw: RawConfig,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Resolved, Vec<String>), ConfigError> {
    let section = |message: String| ConfigError::Syntax {
        path: path.to_path_buf(),
        message,
    };
    let source = RawSource::from_value(std::mem::take(&mut raw.source)).map_err(section)?;
    let target = RawTarget::from_value(std::mem::take(&mut raw.target)).map_err(section)?;
    let mut r = Resolver {
        problems: Vec::new(),
        warnings: Vec::new(),
        env,
        base: path.parent().map(Path::to_path_buf),
    };
    let config = r.resolve(raw, source, target, path);
    match config {
        Some(c) if r.problems.is_empty() => Ok((c, r.warnings)),
        _ => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems: r.problems,
        }),
    }
}

fn syntax_message(e: &serde_yaml::Error) -> String {
    let mut msg = e.to_string();
    if msg.contains("expected struct RawConfig") {
        msg = msg.replace(
            "expected struct RawConfig",
            "expected a mapping of keys (source:, target:, match:, mapping:, ...)",
        );
    }
    if msg.contains("unknown field") {
        msg.push_str(&raw::unknown_field_hint(&msg));
    } else if msg.contains("unknown variant") {
        msg.push_str(" (use one of the listed kinds)");
    }
    msg
}

struct Resolver<'e> {
    problems: Vec<Problem>,
    warnings: Vec<String>,
    env: &'e dyn Fn(&str) -> Option<String>,
    base: Option<PathBuf>,
}

impl Resolver<'_> {
    /// `metrics.listen`: an address:port, on loopback unless `allow_remote`.
    fn metrics_listen(&mut self, m: raw::RawMetrics) -> Option<std::net::SocketAddr> {
        match m.listen.parse::<std::net::SocketAddr>() {
            Ok(a) => {
                if !a.ip().is_loopback() && !m.allow_remote {
                    self.problem("metrics.listen", format!("{a} is not loopback, and the journal's counts are served without authentication; listen on 127.0.0.1 behind a proxy, or set metrics.allow_remote: true"));
                    return None;
                }
                if !a.ip().is_loopback() {
                    self.warnings.push(format!("metrics.listen: {a} is not loopback; the journal's counts are served without authentication"));
                }
                Some(a)
            }
            Err(_) => {
                self.problem(
                    "metrics.listen",
                    format!(
                        "`{}` is not an address:port such as 127.0.0.1:9464",
                        m.listen
                    ),
                );
                None
            }
        }
    }

    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn resolve(
        &mut self,
        raw: RawConfig,
        source: RawSource,
        target: RawTarget,
        path: &Path,
    ) -> Option<Resolved> {
        let schedule = raw.schedule.as_deref().and_then(|s| self.schedule(s));
        let state_dir = raw
            .state_dir
            .map(PathBuf::from)
            .or_else(|| (self.env)("STATE_DIRECTORY").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/lib/idsync"));
        let mapping = self.mapping(&raw.mapping);
        let source = match source {
            RawSource::Ldap(l) => self.ldap(l, mapping.as_ref()),
            RawSource::Graph(g) => self.graph(g),
        };
        let target = match target {
            RawTarget::Scim(s) => self.scim(s),
        };
        let match_rule = self.match_rule(raw.match_rule);
        let lifecycle = self.lifecycle(raw.lifecycle);
        let protected = self.protected(&raw.protected);
        let safety = self.safety(raw.safety, raw.approvals);
        let metrics_listen = raw.metrics.and_then(|m| self.metrics_listen(m));
        let run_deadline = self.duration(
            "run_deadline",
            raw.run_deadline.as_deref(),
            DEFAULT_RUN_DEADLINE,
        );
        let groups = raw.groups.and_then(|g| self.groups(g, &source));
        let scope = self.scope(raw.scope.unwrap_or_default());
        let hooks = self.hooks(raw.hooks);
        let dir = console::Directory {
            groups: groups.is_some(),
            dns: matches!(source, Some(SourceConfig::Ldap(_))),
        };
        let console = raw.console.and_then(|c| self.console(c, dir));
        let (mut source, target, mapping, match_rule) = (source?, target?, mapping?, match_rule?);
        if target.list == ListMode::FilterOnly && lifecycle.unmanaged != Unmanaged::Ignore {
            self.problem("lifecycle.unmanaged", "an app read with target.list: filter-only shows idsync no account it has not linked or matched, so none can be judged unmanaged; set `unmanaged: ignore`");
        }
        if let (SourceConfig::Ldap(ldap), Some(g)) = (&mut source, &groups) {
            // posixGroup members are named by this attribute of the people.
            ldap.attributes.push(g.member_uid.clone());
        }
        read_what(
            &mut source,
            &mapping,
            &match_rule,
            &scope,
            target.photo_max_bytes,
        );
        let photos = photos_policy(&source, &target);
        Some(Resolved {
            path: path.to_path_buf(),
            schedule,
            state_dir,
            source,
            target,
            policy: Policy {
                photos,
                mapping,
                match_rule,
                lifecycle,
                protected,
            },
            safety,
            groups,
            hooks,
            sync_groups: true,
            scope,
            metrics_listen,
            run_deadline,
            console,
        })
    }
}

#[cfg(test)]
mod tests;
