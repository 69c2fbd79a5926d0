//! On-disk YAML -> a validated `Config` of real types.
//!
//! `raw` mirrors the file (strict: unknown keys are errors); `resolve` checks everything,
//! reports every problem at once with its key path, loads secrets into `Secret` (whose
//! `Debug` and `Display` redact), and returns URLs, durations, schedules and parsed
//! templates, never strings.

mod app;
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

pub use crate::app::settings::{PhotoUpload, ScimConfig, DEFAULT_MAX_ITEMS};
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

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub schedule: Option<cron::Schedule>,
    pub state_dir: PathBuf,
    pub source: SourceConfig,
    pub target: ScimConfig,
    pub policy: Policy,
    pub safety: SafetyConfig,
    /// Group sync, if configured.
    pub groups: Option<GroupsConfig>,
    /// Where the daemon serves `/metrics` and `/healthz`, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// A run still going after this is stopped and journaled failed (a hung server).
    pub run_deadline: std::time::Duration,
    /// Not errors, but worth an operator's attention (`idsync check` prints them).
    pub warnings: Vec<String>,
    /// Show progress on the terminal (set by the CLI for an interactive stderr; never
    /// read from the file).
    pub progress: bool,
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
                .chain([&self.target.token])
                .map(Secret::expose),
        )
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
    let mut raw: RawConfig = serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: syntax_message(&e),
    })?;
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
        Some(c) if r.problems.is_empty() => Ok(Config {
            warnings: r.warnings,
            ..c
        }),
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
    ) -> Option<Config> {
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
        let metrics_listen = raw.metrics.and_then(|m| match m.listen.parse::<std::net::SocketAddr>() {
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
                self.problem("metrics.listen", format!("`{}` is not an address:port such as 127.0.0.1:9464", m.listen));
                None
            }
        });
        let run_deadline = self.duration(
            "run_deadline",
            raw.run_deadline.as_deref(),
            DEFAULT_RUN_DEADLINE,
        );
        let groups = raw.groups.and_then(|g| self.groups(g, &source));
        let (mut source, target, mapping, match_rule) = (source?, target?, mapping?, match_rule?);
        if let (SourceConfig::Ldap(ldap), Some(g)) = (&mut source, &groups) {
            // posixGroup members are named by this attribute of the people.
            ldap.attributes.push(g.member_uid.clone());
        }
        match &mut source {
            SourceConfig::Ldap(ldap) => {
                ldap.attributes
                    .extend(match_rule.source.attributes().map(str::to_string));
                ldap.attributes.sort();
                ldap.attributes.dedup();
            }
            SourceConfig::Graph(graph) => {
                graph.photo_max_bytes = target.photo_max_bytes;
                let read = mapping
                    .attributes()
                    .into_iter()
                    .chain(match_rule.source.attributes().map(str::to_string));
                graph.select = crate::source::graph::select_list(read);
            }
        }
        let photos = photos_policy(&source, &target);
        Some(Config {
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
            metrics_listen,
            run_deadline,
            warnings: Vec::new(),
            progress: false,
        })
    }
}

#[cfg(test)]
mod tests;
