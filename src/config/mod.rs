//! On-disk YAML -> a validated `Config` of real types.
//!
//! `raw` mirrors the file (strict: unknown keys are errors); `resolve` checks everything,
//! reports every problem at once with its key path, loads secrets into `Secret` (whose
//! `Debug` and `Display` redact), and returns URLs, durations, schedules and parsed
//! templates, never strings.

mod raw;

use std::collections::{BTreeMap, BTreeSet};
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

/// The default config location.
pub const DEFAULT_PATH: &str = "/etc/idsync/idsync.yaml";

/// A secret value: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

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
pub struct LdapConfig {
    pub url: Url,
    pub start_tls: bool,
    pub ca_file: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    pub base_dn: String,
    pub filter: String,
    pub one_level: bool,
    /// Attribute carrying the anchor (`entryUUID`, `objectGUID`, ...).
    pub anchor: String,
    pub disabled: Option<Filter>,
    pub page_size: i32,
    pub timeout: std::time::Duration,
    /// Every attribute the read must fetch (mapping, match rule, disabled rule, anchor).
    pub attributes: Vec<String>,
    /// The attribute holding the photo (lower-cased), when photos are synced.
    pub photo: Option<String>,
    pub incremental: LdapIncremental,
    /// A full read at least this often, as a backstop for incremental reads.
    pub full_every: std::time::Duration,
    /// Attribute values longer than this (the photo aside) are left out, with a notice.
    pub max_value_bytes: usize,
    /// Chase search continuation references (same bind, same TLS settings).
    pub follow_referrals: bool,
}

/// Default `source.max_value_bytes`.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024;

/// How an LDAP source reads between full reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LdapIncremental {
    /// Every run reads every entry (paged).
    None,
    /// RFC 4533 refreshOnly: only the entries changed since the last run's cookie.
    Syncrepl,
    /// Active Directory: only the entries whose uSNChanged is above the last run's mark.
    Usn,
}

/// How a Graph source reads between full reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incremental {
    /// Every run reads every user.
    None,
    /// `/users/delta`: only the changes since the last run's delta link.
    Delta,
}

#[derive(Clone, Debug)]
pub struct GraphConfig {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The OAuth2 token endpoint, `{tenant}` already filled in.
    pub token_url: Url,
    /// The API root, e.g. `https://graph.microsoft.com/v1.0` (no trailing slash).
    pub api_url: Url,
    /// The client-credentials scope, e.g. `https://graph.microsoft.com/.default`.
    pub scope: String,
    pub ca_file: Option<PathBuf>,
    pub incremental: Incremental,
    /// A full read at least this often, as a backstop for incremental reads.
    pub full_every: std::time::Duration,
    /// `$top` asked of `/users` (the server may serve fewer per page).
    pub page_size: u32,
    pub timeout: std::time::Duration,
    pub max_retries: u32,
    /// Graph user properties to `$select` (always `id` and `accountEnabled` among them).
    pub select: Vec<String>,
    /// Read each enabled user's photo.
    pub photo: bool,
    /// A photo longer than this is not downloaded past it (`target.photo_max_bytes`).
    pub photo_max_bytes: usize,
    /// The only proxy used (the environment's `HTTP_PROXY` and friends are ignored).
    pub proxy: Option<Url>,
    /// No reply body is read past this.
    pub max_response_bytes: usize,
    /// A read of more users or groups than this fails (a server paging forever).
    pub max_users: u64,
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

#[derive(Clone, Debug)]
pub struct ScimConfig {
    pub url: Url,
    pub token: Secret,
    pub ca_file: Option<PathBuf>,
    pub concurrency: usize,
    /// Writes per second, if limited.
    pub rate_limit: Option<f64>,
    pub timeout: std::time::Duration,
    pub page_size: u32,
    pub max_retries: u32,
    pub photo: PhotoUpload,
    /// Photos larger than this are not uploaded (a warning for that person).
    pub photo_max_bytes: usize,
    /// The only proxy used (the environment's `HTTP_PROXY` and friends are ignored).
    pub proxy: Option<Url>,
    /// No reply body is read past this.
    pub max_response_bytes: usize,
    /// A list of accounts longer than this fails the read (an app paging forever).
    pub max_accounts: u64,
}

/// Default ceiling on the items one list may hold (`target.max_accounts`, `source.max_users`).
pub const DEFAULT_MAX_ITEMS: u64 = 1_000_000;

/// How photos reach the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhotoUpload {
    /// PATCH the SCIM `photos` attribute with a `data:` URI.
    Scim,
    /// Send the bytes to a URL template (`{url}` = target.url, `{id}` = the account id);
    /// a removed photo is a DELETE of the same URL.
    Http {
        method: reqwest::Method,
        url: String,
    },
    /// Photos are not synced.
    None,
}

/// `groups:`: group sync, when configured.
#[derive(Clone, Debug)]
pub struct GroupsConfig {
    /// LDAP: where groups live (`None` for Graph).
    pub base_dn: Option<String>,
    /// LDAP: the groups' filter; Graph: an optional `$filter` on `/groups`.
    pub filter: Option<String>,
    pub one_level: bool,
    /// Only groups with these names (lower-cased), if given.
    pub only: Option<BTreeSet<String>>,
    /// The app group's `displayName`.
    pub name: Template,
    /// LDAP: the group's anchor attribute.
    pub anchor: String,
    /// Flatten nested groups into their parents.
    pub nested: bool,
    /// LDAP `posixGroup`: the people attribute `memberUid` values name (lower-cased).
    pub member_uid: String,
    pub policy: crate::groups::GroupPolicy,
    /// Members added or removed per PATCH request.
    pub batch: usize,
}

/// The default filter of LDAP groups: the three standard group classes.
pub const LDAP_GROUP_FILTER: &str =
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup)(objectClass=group))";

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
        msg.push_str(" (remove it or fix its spelling)");
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
        })
    }

    fn groups(&mut self, g: raw::RawGroups, source: &Option<SourceConfig>) -> Option<GroupsConfig> {
        let ldap = match source {
            Some(SourceConfig::Ldap(l)) => Some(l),
            Some(SourceConfig::Graph(_)) => None,
            None => return None,
        };
        let base_dn = match (ldap, g.base_dn) {
            (Some(_), Some(b)) if !b.trim().is_empty() => Some(b.trim().to_string()),
            (Some(_), _) => {
                self.problem(
                    "groups.base_dn",
                    "required with an LDAP source: where the groups live, e.g. ou=groups,dc=example,dc=org",
                );
                None
            }
            (None, Some(_)) => {
                self.problem(
                    "groups.base_dn",
                    "only for LDAP sources; Graph reads /groups",
                );
                None
            }
            (None, None) => None,
        };
        let filter = match (ldap, g.filter) {
            (Some(_), f) => {
                let f = f.unwrap_or_else(|| LDAP_GROUP_FILTER.to_string());
                if !(f.starts_with('(') && f.ends_with(')')) {
                    self.problem(
                        "groups.filter",
                        format!("`{f}` must be a parenthesised LDAP filter such as (objectClass=groupOfNames)"),
                    );
                }
                Some(f)
            }
            (None, f) => f,
        };
        let one_level = match g.scope.as_deref() {
            None | Some("sub") => false,
            Some("one") => true,
            Some(s) => {
                self.problem(
                    "groups.scope",
                    format!("`{s}`: use `sub` (the default) or `one`"),
                );
                false
            }
        };
        let default_name = if ldap.is_some() {
            "{cn}"
        } else {
            "{displayName}"
        };
        let name_text = g.name.unwrap_or_else(|| default_name.to_string());
        let name = match Template::parse(&name_text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem("groups.name", e.to_string());
                None
            }
        };
        let anchor = match (ldap, g.anchor) {
            (Some(l), a) => a.unwrap_or_else(|| l.anchor.clone()),
            (None, Some(_)) => {
                self.problem(
                    "groups.anchor",
                    "only for LDAP sources; Graph groups are anchored by their id",
                );
                String::new()
            }
            (None, None) => "id".to_string(),
        };
        if ldap.is_none() && g.member_uid.is_some() {
            self.problem(
                "groups.member_uid",
                "only for LDAP posixGroup; remove it for Graph",
            );
        }
        let vanished = match g.vanished.as_deref() {
            None | Some("leave") => crate::groups::Vanished::Leave,
            Some("delete") => crate::groups::Vanished::Delete,
            Some(o) => {
                self.problem(
                    "groups.vanished",
                    format!("`{o}`: use `leave` (keep the app group, report it) or `delete`"),
                );
                crate::groups::Vanished::Leave
            }
        };
        let batch = g.batch.unwrap_or(100);
        if !(1..=1000).contains(&batch) {
            self.problem(
                "groups.batch",
                "members per PATCH request: between 1 and 1000 (default 100)",
            );
        }
        let only = g.only.map(|names| {
            if names.is_empty() {
                self.problem("groups.only", "an empty list selects no group; remove `only` to sync every group the filter finds");
            }
            names.iter().map(|n| n.trim().to_lowercase()).collect()
        });
        Some(GroupsConfig {
            base_dn,
            filter,
            one_level,
            only,
            name: name?,
            anchor,
            nested: g.nested.unwrap_or(false),
            member_uid: g
                .member_uid
                .unwrap_or_else(|| "uid".to_string())
                .trim()
                .to_ascii_lowercase(),
            policy: crate::groups::GroupPolicy { vanished },
            batch,
        })
    }

    fn schedule(&mut self, text: &str) -> Option<cron::Schedule> {
        let fields = text.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {text}"),
            6 | 7 => text.to_string(),
            _ => {
                self.problem("schedule", format!("`{text}` has {fields} fields; write standard 5-field cron such as \"*/15 * * * *\""));
                return None;
            }
        };
        match cron::Schedule::from_str(&full) {
            Ok(s) => Some(s),
            Err(e) => {
                self.problem(
                    "schedule",
                    format!("`{text}` is not a cron expression ({e}); example: \"*/15 * * * *\""),
                );
                None
            }
        }
    }

    fn url(&mut self, key: &str, text: &str, schemes: &[&str]) -> Option<Url> {
        match Url::parse(text) {
            Ok(u) if schemes.contains(&u.scheme()) && u.host_str().is_some() => Some(u),
            Ok(u) => {
                self.problem(
                    key,
                    format!(
                        "`{text}`: the scheme must be {} with a host (got `{}`)",
                        schemes.join(" or "),
                        u.scheme()
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(key, format!("`{text}` is not a URL ({e})"));
                None
            }
        }
    }

    fn duration(
        &mut self,
        key: &str,
        text: Option<&str>,
        default: std::time::Duration,
    ) -> std::time::Duration {
        match text {
            None => default,
            Some(t) => match humantime::parse_duration(t) {
                Ok(d) => d,
                Err(e) => {
                    self.problem(
                        key,
                        format!("`{t}` is not a duration ({e}); write e.g. `30s`, `15m`, `7d`"),
                    );
                    default
                }
            },
        }
    }

    fn chrono_duration(
        &mut self,
        key: &str,
        text: Option<&str>,
        default: Option<Duration>,
    ) -> Option<Duration> {
        match text {
            None => default,
            Some("never") => None,
            Some(t) => {
                let d = self.duration(key, Some(t), std::time::Duration::ZERO);
                Duration::from_std(d).ok().or(default)
            }
        }
    }

    /// A path relative to the config file's folder, `${NAME}` expanded.
    fn file_path(&mut self, key: &str, text: &str) -> Option<PathBuf> {
        let expanded = self.expand(key, text)?;
        let p = PathBuf::from(expanded);
        Some(match (&self.base, p.is_relative()) {
            (Some(base), true) => base.join(p),
            _ => p,
        })
    }

    fn expand(&mut self, key: &str, text: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                self.problem(key, "`${` without its closing `}`");
                return None;
            };
            let name = &rest[start + 2..start + end];
            match (self.env)(name) {
                Some(v) => out.push_str(&v),
                None => {
                    self.problem(key, format!("environment variable {name} is not set"));
                    return None;
                }
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// A secret given inline as `${ENV}` or as a `*_file`; literal secrets are refused.
    fn secret(&mut self, key: &str, inline: Option<&str>, file: Option<&str>) -> Option<Secret> {
        let file_key = format!("{key}_file");
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    key,
                    format!("give either `{key}` or `{file_key}`, not both"),
                );
                None
            }
            (Some(v), None) => {
                let trimmed = v.trim();
                if !(trimmed.starts_with("${")
                    && trimmed.ends_with('}')
                    && trimmed.matches("${").count() == 1)
                {
                    self.problem(key, format!("secrets are not written in the config: use `{file_key}: /path` or `{key}: \"${{ENV_VAR}}\""));
                    return None;
                }
                let v = self.expand(key, trimmed)?;
                if v.is_empty() {
                    self.problem(key, "the environment variable it names is empty");
                    return None;
                }
                Some(Secret::new(v))
            }
            (None, Some(f)) => {
                let path = self.file_path(&file_key, f)?;
                if let Some(mode) = self.exposed_mode(&path) {
                    self.problem(
                        &file_key,
                        format!(
                            "{} can be read by other users (mode {mode:o}); run `chmod 600 {}`",
                            path.display(),
                            path.display()
                        ),
                    );
                    return None;
                }
                match std::fs::read_to_string(&path) {
                    Ok(s) => {
                        let s = s.trim_end_matches(['\n', '\r']).to_string();
                        if s.is_empty() {
                            self.problem(&file_key, format!("{} is empty", path.display()));
                            return None;
                        }
                        Some(Secret::new(s))
                    }
                    Err(e) => {
                        self.problem(&file_key, format!("cannot read {}: {e}", path.display()));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    /// Like `secret`, and a problem at `<key>_file` when neither form is given.
    fn required_secret(
        &mut self,
        key: &str,
        inline: Option<&str>,
        file: Option<&str>,
        missing: &str,
    ) -> Option<Secret> {
        let secret = self.secret(key, inline, file);
        if secret.is_none() && !self.problems.iter().any(|p| p.path.starts_with(key)) {
            self.problem(&format!("{key}_file"), missing);
        }
        secret
    }

    /// An extra CA file, relative to the config's folder; it must exist.
    fn ca_file(&mut self, key: &str, text: Option<&str>) -> Option<PathBuf> {
        let ca = self.file_path(key, text?)?;
        if !ca.is_file() {
            self.problem(key, format!("{} does not exist", ca.display()));
        }
        Some(ca)
    }

    /// The mode of a secret file that group or others may read (like libpq's .pgpass rule);
    /// systemd credentials (under $CREDENTIALS_DIRECTORY) are exempt: systemd guards them.
    fn exposed_mode(&self, path: &Path) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(creds) = (self.env)("CREDENTIALS_DIRECTORY").filter(|c| !c.trim().is_empty()) {
            if path.starts_with(&creds) {
                return None;
            }
        }
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }

    fn ldap(&mut self, l: raw::RawLdap, mapping: Option<&Mapping>) -> Option<SourceConfig> {
        let url = self.url("source.url", &l.url, &["ldap", "ldaps"]);
        let bind_password = self.secret(
            "source.bind_password",
            l.bind_password.as_deref(),
            l.bind_password_file.as_deref(),
        );
        if l.bind_dn.is_some()
            && bind_password.is_none()
            && !self
                .problems
                .iter()
                .any(|p| p.path.starts_with("source.bind_password"))
        {
            self.problem(
                "source.bind_dn",
                "a bind_dn needs `bind_password_file` (or `bind_password: \"${ENV}\"`)",
            );
        }
        for f in mapping.map(|m| m.fields.as_slice()).unwrap_or_default() {
            for attr in f.template.attributes() {
                if crate::source::ldap::is_unrenderable(attr) {
                    self.problem(
                        &format!("mapping.{}", f.path),
                        format!("`{{{attr}}}` is a binary attribute (a photo, certificate or password) that idsync cannot write as text; map a text attribute (photos go through source.photo)"),
                    );
                }
            }
        }
        if l.bind_dn.is_none() && bind_password.is_none() {
            self.warnings.push("source.bind_dn: not set, so idsync binds anonymously; a directory that hides people from anonymous reads looks empty (the safety gates stop the run), so give the read-only account idsync should use".into());
        }
        if l.bind_dn.is_none() && bind_password.is_some() {
            self.problem(
                "source.bind_password",
                "a password without `bind_dn`; add the bind DN",
            );
        }
        if let Some(u) = &url {
            if u.scheme() == "ldaps" && l.start_tls {
                self.problem(
                    "source.start_tls",
                    "ldaps:// is already TLS; use ldap:// with start_tls: true, or drop start_tls",
                );
            }
            let loopback = matches!(
                u.host_str(),
                Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
            );
            if u.scheme() == "ldap" && !l.start_tls && !loopback && l.bind_dn.is_some() {
                self.warnings.push(format!("source.url: {u} is plain LDAP off loopback: the bind password travels in clear text; use ldaps:// or start_tls: true"));
            }
        }
        let ca_file = self.ca_file("source.ca_file", l.ca_file.as_deref());
        let filter = l
            .filter
            .unwrap_or_else(|| "(objectClass=inetOrgPerson)".to_string());
        if !(filter.starts_with('(') && filter.ends_with(')')) {
            self.problem("source.filter", format!("`{filter}` must be a parenthesised LDAP filter such as (objectClass=inetOrgPerson)"));
        }
        let one_level = match l.scope.as_deref() {
            None | Some("sub") => false,
            Some("one") => true,
            Some(s) => {
                self.problem(
                    "source.scope",
                    format!("`{s}`: use `sub` (the default) or `one`"),
                );
                false
            }
        };
        let disabled = l.disabled.as_deref().and_then(|d| match Filter::parse(d) {
            Ok(f) => Some(f),
            Err(e) => {
                self.problem("source.disabled", e.to_string());
                None
            }
        });
        let page_size = l.page_size.unwrap_or(500);
        if !(1..=10_000).contains(&page_size) {
            self.problem("source.page_size", "must be between 1 and 10000");
        }
        let timeout = self.duration(
            "source.timeout",
            l.timeout.as_deref(),
            std::time::Duration::from_secs(120),
        );
        let anchor = l.anchor.unwrap_or_else(|| "entryUUID".to_string());
        let mut attributes: Vec<String> = mapping.map(Mapping::attributes).unwrap_or_default();
        if let Some(d) = &disabled {
            d.attributes(&mut attributes);
        }
        attributes.push(anchor.to_ascii_lowercase());
        let photo = l.photo.map(|p| p.trim().to_ascii_lowercase());
        if let Some(p) = &photo {
            let ok = p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';');
            if !ok {
                self.problem(
                    "source.photo",
                    format!(
                        "`{p}` is not an attribute name; use jpegPhoto, or thumbnailPhoto on AD"
                    ),
                );
            }
            attributes.push(p.clone());
        }
        let incremental = match l.incremental.as_deref() {
            None | Some("none") => LdapIncremental::None,
            Some("syncrepl") => LdapIncremental::Syncrepl,
            Some("usn") => LdapIncremental::Usn,
            Some(o) => {
                self.problem(
                    "source.incremental",
                    format!("`{o}`: use `syncrepl` (OpenLDAP / 389-ds, RFC 4533), `usn` (Active Directory) or `none`"),
                );
                LdapIncremental::None
            }
        };
        let full_every = self.duration(
            "source.full_every",
            l.full_every.as_deref(),
            std::time::Duration::from_secs(24 * 3600),
        );
        let max_value_bytes = self.size(
            "source.max_value_bytes",
            l.max_value_bytes,
            DEFAULT_MAX_VALUE_BYTES,
            64 << 20,
        );
        if incremental == LdapIncremental::Usn && !anchor.eq_ignore_ascii_case("objectGUID") {
            self.problem(
                "source.anchor",
                "usn reads identify deleted entries by objectGUID: set anchor: objectGUID (or incremental: none)",
            );
        }
        if incremental == LdapIncremental::Syncrepl && !anchor.eq_ignore_ascii_case("entryUUID") {
            self.problem(
                "source.anchor",
                "syncrepl identifies entries by entryUUID: set anchor: entryUUID (or incremental: none)",
            );
        }
        Some(SourceConfig::Ldap(LdapConfig {
            url: url?,
            start_tls: l.start_tls,
            ca_file,
            bind_dn: l.bind_dn,
            bind_password,
            base_dn: l.base_dn,
            filter,
            one_level,
            anchor,
            disabled,
            page_size: page_size as i32,
            timeout,
            attributes,
            photo,
            incremental,
            full_every,
            max_value_bytes,
            follow_referrals: l.follow_referrals,
        }))
    }

    fn graph(&mut self, g: raw::RawGraph) -> Option<SourceConfig> {
        let tenant = g.tenant.trim().to_string();
        let tenant_ok = !tenant.is_empty()
            && tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !tenant_ok {
            self.problem("source.tenant", format!("`{tenant}`: write the directory (tenant) id, a GUID, or its domain such as contoso.onmicrosoft.com"));
        }
        if g.client_id.trim().is_empty() {
            self.problem(
                "source.client_id",
                "the application (client) id of idsync's app registration is required",
            );
        }
        let client_secret = self.required_secret(
            "source.client_secret",
            g.client_secret.as_deref(),
            g.client_secret_file.as_deref(),
            "the app registration's client secret is required: `client_secret_file: /path` or `client_secret: \"${ENV}\"`",
        );
        let token_text = g
            .token_url
            .unwrap_or_else(|| crate::source::graph::DEFAULT_TOKEN_URL.to_string())
            .replace("{tenant}", &tenant);
        let token_url = self.url("source.token_url", &token_text, &["https", "http"]);
        let api_text = g
            .api_url
            .unwrap_or_else(|| crate::source::graph::DEFAULT_API_URL.to_string());
        let api_url = self.url(
            "source.api_url",
            api_text.trim_end_matches('/'),
            &["https", "http"],
        );
        for (key, u) in [
            ("source.token_url", &token_url),
            ("source.api_url", &api_url),
        ] {
            if let Some(u) = u {
                let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                if u.scheme() == "http" && !loopback {
                    self.warnings.push(format!("{key}: {u} is plain HTTP off loopback: the client secret or token travels in clear text"));
                }
            }
        }
        let scope = g.scope.unwrap_or_else(|| {
            api_url
                .as_ref()
                .map(|u| format!("{}/.default", u.origin().ascii_serialization()))
                .unwrap_or_default()
        });
        let ca_file = self.ca_file("source.ca_file", g.ca_file.as_deref());
        let incremental = match g.incremental.as_deref() {
            None | Some("delta") => Incremental::Delta,
            Some("none") => Incremental::None,
            Some(o) => {
                self.problem(
                    "source.incremental",
                    format!(
                        "`{o}`: use `delta` (read only changes) or `none` (read all every run)"
                    ),
                );
                Incremental::Delta
            }
        };
        let full_every = self.duration(
            "source.full_every",
            g.full_every.as_deref(),
            std::time::Duration::from_secs(24 * 3600),
        );
        let page_size = g.page_size.unwrap_or(999);
        if !(1..=999).contains(&page_size) {
            self.problem(
                "source.page_size",
                "must be between 1 and 999 (Graph's largest page of users)",
            );
        }
        let timeout = self.duration(
            "source.timeout",
            g.timeout.as_deref(),
            std::time::Duration::from_secs(30),
        );
        let proxy = self.proxy("source.proxy", g.proxy.as_deref());
        let max_response_bytes = self.size(
            "source.max_response_bytes",
            g.max_response_bytes,
            crate::http::DEFAULT_MAX_RESPONSE,
            1 << 30,
        );
        let max_users = g.max_users.unwrap_or(DEFAULT_MAX_ITEMS);
        if max_users == 0 {
            self.problem("source.max_users", "must be at least 1");
        }
        Some(SourceConfig::Graph(GraphConfig {
            tenant,
            client_id: g.client_id.trim().to_string(),
            client_secret: client_secret?,
            token_url: token_url?,
            api_url: api_url?,
            scope,
            ca_file,
            incremental,
            full_every,
            page_size,
            timeout,
            max_retries: g.max_retries.unwrap_or(5),
            select: Vec::new(),
            photo: g.photo.unwrap_or(false),
            photo_max_bytes: crate::photo::DEFAULT_MAX_BYTES,
            proxy,
            max_response_bytes,
            max_users,
        }))
    }

    fn scim(&mut self, s: raw::RawScim) -> Option<ScimConfig> {
        let url = self.url("target.url", &s.url, &["http", "https"]);
        let token = self.required_secret(
            "target.token",
            s.token.as_deref(),
            s.token_file.as_deref(),
            "the SCIM bearer token is required: `token_file: /path` or `token: \"${ENV}\"`",
        );
        if let Some(u) = &url {
            let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            if u.scheme() == "http" && !loopback {
                self.warnings.push(format!("target.url: {u} is plain HTTP off loopback: the bearer token travels in clear text"));
            }
        }
        let ca_file = self.ca_file("target.ca_file", s.ca_file.as_deref());
        let concurrency = s.concurrency.unwrap_or(4);
        if !(1..=64).contains(&concurrency) {
            self.problem("target.concurrency", "must be between 1 and 64");
        }
        let rate_limit = s.rate_limit.as_deref().and_then(|r| self.rate(r));
        let timeout = self.duration(
            "target.timeout",
            s.timeout.as_deref(),
            std::time::Duration::from_secs(30),
        );
        let page_size = s.page_size.unwrap_or(500);
        if !(1..=10_000).contains(&page_size) {
            self.problem("target.page_size", "must be between 1 and 10000");
        }
        let photo = self.photo_upload(s.photo, url.as_ref());
        let photo_max_bytes = self.photo_max_bytes(s.photo_max_bytes);
        let proxy = self.proxy("target.proxy", s.proxy.as_deref());
        let max_response_bytes = self.size(
            "target.max_response_bytes",
            s.max_response_bytes,
            crate::http::DEFAULT_MAX_RESPONSE,
            1 << 30,
        );
        let max_accounts = s.max_accounts.unwrap_or(DEFAULT_MAX_ITEMS);
        if max_accounts == 0 {
            self.problem("target.max_accounts", "must be at least 1");
        }
        Some(ScimConfig {
            url: url?,
            token: token?,
            ca_file,
            concurrency,
            rate_limit,
            timeout,
            page_size,
            max_retries: s.max_retries.unwrap_or(5),
            photo,
            photo_max_bytes,
            proxy,
            max_response_bytes,
            max_accounts,
        })
    }

    fn photo_upload(&mut self, raw: Option<raw::RawPhotoUpload>, app: Option<&Url>) -> PhotoUpload {
        use raw::RawPhotoUpload as R;
        let http = |method: reqwest::Method, url: String| PhotoUpload::Http { method, url };
        match raw {
            None => PhotoUpload::Scim,
            Some(R::Named(n)) if n == "scim" => PhotoUpload::Scim,
            Some(R::Named(n)) if n == "none" => PhotoUpload::None,
            Some(R::Http(h)) => match (h.put, h.post) {
                (Some(url), None) => self
                    .photo_url(url, app.filter(|_| !h.allow_other_origin))
                    .map_or(PhotoUpload::None, |u| http(reqwest::Method::PUT, u)),
                (None, Some(url)) => self
                    .photo_url(url, app.filter(|_| !h.allow_other_origin))
                    .map_or(PhotoUpload::None, |u| http(reqwest::Method::POST, u)),
                _ => {
                    self.problem("target.photo", "give one of `put:` or `post:` with a URL template such as \"{url}/Users/{id}/photo\"");
                    PhotoUpload::None
                }
            },
            Some(R::Named(other)) => {
                self.problem(
                    "target.photo",
                    format!("`{other}`: use `scim`, `none`, or `{{ put: \"{{url}}/Users/{{id}}/photo\" }}`"),
                );
                PhotoUpload::None
            }
        }
    }

    /// A photo URL template: it must name `{id}`, be a URL once filled in, and stay on the
    /// app's origin (`target.url`): photos and the token go nowhere else.
    fn photo_url(&mut self, template: String, app: Option<&Url>) -> Option<String> {
        if !template.contains("{id}") {
            self.problem(
                "target.photo",
                format!("`{template}` must contain `{{id}}` (the account id)"),
            );
            return None;
        }
        let base = app.map_or("https://app.example".to_string(), |u| {
            u.as_str().trim_end_matches('/').to_string()
        });
        let sample = template.replace("{url}", &base).replace("{id}", "x");
        match Url::parse(&sample) {
            Ok(u) if app.is_some_and(|a| a.origin() != u.origin()) => {
                self.problem("target.photo", format!("`{template}` points to {}, not the app's origin (target.url); idsync sends photos and its token only to target.url: write the template as \"{{url}}/...\", or add allow_other_origin: true if the app really takes photos there", u.origin().ascii_serialization()));
                None
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(template),
            _ => {
                self.problem("target.photo", format!("`{template}` is not an http(s) URL template such as \"{{url}}/Users/{{id}}/photo\""));
                None
            }
        }
    }

    fn photo_max_bytes(&mut self, raw: Option<serde_yaml::Value>) -> usize {
        self.size(
            "target.photo_max_bytes",
            raw,
            crate::photo::DEFAULT_MAX_BYTES,
            64 * 1024 * 1024,
        )
    }

    /// A size in bytes: a number, or "512KiB" / "64MiB", at most `max`.
    fn size(
        &mut self,
        key: &str,
        raw: Option<serde_yaml::Value>,
        default: usize,
        max: usize,
    ) -> usize {
        let Some(v) = raw else {
            return default;
        };
        let parsed = match &v {
            serde_yaml::Value::Number(n) => n.as_u64(),
            serde_yaml::Value::String(s) => {
                let t = s.trim();
                let (num, mult) = if let Some(n) = t.strip_suffix("GiB") {
                    (n, 1024 * 1024 * 1024)
                } else if let Some(n) = t.strip_suffix("MiB") {
                    (n, 1024 * 1024)
                } else if let Some(n) = t.strip_suffix("KiB") {
                    (n, 1024)
                } else {
                    (t, 1)
                };
                num.trim().parse::<u64>().ok().map(|n| n * mult)
            }
            _ => None,
        };
        match parsed.filter(|n| *n > 0 && *n <= max as u64) {
            Some(n) => n as usize,
            None => {
                let most = if max >= 1 << 30 {
                    format!("{}GiB", max >> 30)
                } else {
                    format!("{}MiB", max >> 20)
                };
                self.problem(
                    key,
                    format!("write a size up to {most}, such as 1048576, \"512KiB\" or \"1MiB\""),
                );
                default
            }
        }
    }

    /// `proxy:` of an HTTP connector: the only proxy it uses (the environment's are ignored).
    fn proxy(&mut self, key: &str, text: Option<&str>) -> Option<Url> {
        self.url(key, text?, &["http", "https", "socks5"])
    }

    fn rate(&mut self, text: &str) -> Option<f64> {
        let parsed = text.split_once('/').and_then(|(n, unit)| {
            let n: f64 = n.trim().parse().ok()?;
            let per = match unit.trim() {
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
            (n > 0.0).then_some(n / per)
        });
        if parsed.is_none() {
            self.problem(
                "target.rate_limit",
                format!("`{text}`: write requests per time unit, e.g. `20/s` or `600/m`"),
            );
        }
        parsed
    }

    fn mapping(&mut self, raw: &serde_yaml::Mapping) -> Option<Mapping> {
        let mut fields = Vec::new();
        for (k, v) in raw {
            let Some(key) = k.as_str() else {
                self.problem(
                    "mapping",
                    format!("keys are SCIM attribute paths (strings), got {k:?}"),
                );
                continue;
            };
            let at = format!("mapping.{key}");
            let path = match FieldPath::parse(key) {
                Ok(p) => p,
                Err(e) => {
                    self.problem(&at, e.to_string());
                    continue;
                }
            };
            if v.is_sequence() {
                self.problem(&at, "a list is not a template: write one string such as \"{givenName} {sn}\", or { value: \"...\", set: once }");
                continue;
            }
            let value: RawMappingValue = match serde_yaml::from_value(v.clone()) {
                Ok(v) => v,
                Err(_) => {
                    self.problem(&at, "write a template string such as \"{mail}\", or { value: \"{mail}\", set: once }");
                    continue;
                }
            };
            let (text, set_once) = match value {
                RawMappingValue::Template(t) => (t, false),
                RawMappingValue::Full(f) => {
                    let once = match f.set.as_deref() {
                        None | Some("always") => false,
                        Some("once") => true,
                        Some(other) => {
                            self.problem(
                                &format!("{at}.set"),
                                format!("`{other}`: use `once` or `always`"),
                            );
                            false
                        }
                    };
                    (f.value, once)
                }
            };
            match Template::parse(&text) {
                Ok(template) => fields.push(FieldMapping {
                    path,
                    template,
                    set_once,
                }),
                Err(e) => self.problem(&at, e.to_string()),
            }
        }
        match Mapping::new(fields) {
            Ok(m) => Some(m),
            Err(e) => {
                self.problem("mapping", e.to_string());
                None
            }
        }
    }

    fn match_rule(&mut self, raw: Option<raw::RawMatch>) -> Option<MatchRule> {
        let (target, source) = match raw {
            Some(m) => (m.target, m.source),
            None => ("userName".to_string(), String::new()),
        };
        let target = FieldPath::parse(&target)
            .map_err(|e| self.problem("match.target", e.to_string()))
            .ok();
        if source.is_empty() {
            self.problem("match.source", "say how a person is matched to an existing account, e.g. `match: { target: userName, source: \"{mail}\" }`");
            return None;
        }
        let source = Template::parse(&source)
            .map_err(|e| self.problem("match.source", e.to_string()))
            .ok();
        Some(MatchRule {
            target: target?,
            source: source?,
        })
    }

    fn lifecycle(&mut self, raw: raw::RawLifecycle) -> Lifecycle {
        let d = Lifecycle::default();
        let reactivation_window = self
            .chrono_duration(
                "lifecycle.reactivation_window",
                raw.reactivation_window.as_deref(),
                Some(d.reactivation_window),
            )
            .unwrap_or(d.reactivation_window);
        let after_window = match raw.after_window.as_deref() {
            None | Some("reinvite") => AfterWindow::Reinvite,
            Some("hold") => AfterWindow::Hold,
            Some(o) => {
                self.problem(
                    "lifecycle.after_window",
                    format!("`{o}`: use `reinvite` or `hold`"),
                );
                AfterWindow::Reinvite
            }
        };
        let delete_after =
            self.chrono_duration("lifecycle.delete_after", raw.delete_after.as_deref(), None);
        let unmanaged = match raw.unmanaged.as_deref() {
            None | Some("ignore") => Unmanaged::Ignore,
            Some("report") => Unmanaged::Report,
            Some("suspend") => Unmanaged::Suspend,
            Some(o) => {
                self.problem(
                    "lifecycle.unmanaged",
                    format!("`{o}`: use `ignore`, `report` or `suspend`"),
                );
                Unmanaged::Ignore
            }
        };
        let mut leaver = Vec::new();
        for (k, v) in raw.leaver {
            match FieldPath::parse(&k) {
                Ok(p) if p.is_user_name() => self.problem(
                    &format!("lifecycle.leaver.{k}"),
                    "userName cannot be rewritten on suspension",
                ),
                Ok(p) => leaver.push((p, v)),
                Err(e) => self.problem(&format!("lifecycle.leaver.{k}"), e.to_string()),
            }
        }
        let pending = raw
            .pending
            .as_deref()
            .and_then(|p| match FieldPath::parse(p) {
                Ok(path) => Some(path),
                Err(e) => {
                    self.problem("lifecycle.pending", e.to_string());
                    None
                }
            });
        Lifecycle {
            reactivation_window,
            after_window,
            delete_after,
            leaver,
            unmanaged,
            pending,
        }
    }

    fn protected(&mut self, raw: &[String]) -> Protected {
        let mut out = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            match glob::Pattern::new(p) {
                Ok(g) => out.push(g),
                Err(e) => self.problem(
                    &format!("protected[{i}]"),
                    format!("`{p}` is not a pattern ({e}); use `*` and `?`"),
                ),
            }
        }
        Protected::new(out)
    }

    fn safety(&mut self, raw: raw::RawSafety, approvals: BTreeMap<String, String>) -> SafetyConfig {
        let mut out = SafetyConfig::default();
        if let Some(n) = raw.min_source_users {
            out.min_source_users = n;
        }
        if let Some(r) = raw.min_source_ratio {
            if !(0.0..=1.0).contains(&r) {
                self.problem(
                    "safety.min_source_ratio",
                    "must be between 0 and 1, e.g. 0.8",
                );
            }
            out.min_source_ratio = Some(r);
        }
        if let Some(v) = raw.max_member_removals {
            match limit_value(&v) {
                Some(l) => out.max_member_removals = Some(l),
                None => self.problem(
                    "safety.max_member_removals",
                    "write a count such as 50 or a share of the memberships idsync manages such as \"10%\"",
                ),
            }
        }
        if let Some(v) = raw.max_deprovisions {
            let limit = limit_value(&v);
            match limit {
                Some(l) => out.max_deprovisions = Some(l),
                None => self.problem(
                    "safety.max_deprovisions",
                    "write a count such as 25 or a share of linked accounts such as \"5%\"",
                ),
            }
        }
        for (kind, mode) in approvals {
            let at = format!("approvals.{kind}");
            let Some(k) = ActionKind::parse(&kind) else {
                let kinds: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
                self.problem(
                    &at,
                    format!("unknown action kind; use one of {}", kinds.join(", ")),
                );
                continue;
            };
            match mode.as_str() {
                "auto" => {
                    out.approvals.insert(k, Approval::Auto);
                }
                "manual" => {
                    out.approvals.insert(k, Approval::Manual);
                }
                o => self.problem(&at, format!("`{o}`: use `auto` or `manual`")),
            }
        }
        out
    }
}

/// A cap written as a count (`25`) or a share (`"5%"`).
fn limit_value(v: &serde_yaml::Value) -> Option<DeprovisionLimit> {
    match v {
        serde_yaml::Value::Number(n) => n.as_u64().map(DeprovisionLimit::Count),
        serde_yaml::Value::String(s) => match s.trim().strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .map(DeprovisionLimit::Percent),
            None => s.trim().parse::<u64>().ok().map(DeprovisionLimit::Count),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests;
