//! The YAML file as written: strict (`deny_unknown_fields`), strings where the user wrote
//! strings. `super::resolve` turns it into real types.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub schedule: Option<String>,
    pub state_dir: Option<String>,
    /// `RawSource::from_value`: by `kind`, errors naming the key path.
    pub source: serde_yaml::Value,
    /// `RawTarget::from_value`.
    pub target: serde_yaml::Value,
    #[serde(rename = "match")]
    pub match_rule: Option<RawMatch>,
    pub mapping: serde_yaml::Mapping,
    #[serde(default)]
    pub lifecycle: RawLifecycle,
    #[serde(default)]
    pub protected: Vec<String>,
    #[serde(default)]
    pub safety: RawSafety,
    #[serde(default)]
    pub approvals: BTreeMap<String, String>,
    pub metrics: Option<RawMetrics>,
    pub groups: Option<RawGroups>,
    /// A run taking longer than this is stopped and journaled failed.
    #[serde(default, deserialize_with = "text_or_seconds")]
    pub run_deadline: Option<String>,
    /// Who gets an account in the app (`apps.NAME.scope`, or a default for every app).
    pub scope: Option<RawScope>,
    /// Calls around actions (`apps.NAME.hooks`, or a default for every app).
    #[serde(default)]
    pub hooks: Vec<super::hooks::RawHook>,
    /// The operator console (`idsync serve`): shared by every app.
    pub console: Option<super::console::RawConsole>,
}

/// `scope:`: who gets an account in an app.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScope {
    /// Directory groups (by name, DN or id) whose members get an account.
    pub groups: Option<Vec<String>>,
    /// Membership through nested groups counts (default true).
    pub nested: Option<bool>,
    /// An LDAP-style filter on the person's attributes.
    pub filter: Option<String>,
}

/// `groups:`: which directory groups become app groups, and how.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroups {
    pub base_dn: Option<String>,
    pub filter: Option<String>,
    pub scope: Option<String>,
    pub only: Option<Vec<String>>,
    pub name: Option<String>,
    pub anchor: Option<String>,
    pub nested: Option<bool>,
    pub member_uid: Option<String>,
    pub vanished: Option<String>,
    pub batch: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: String,
    /// Serve on a non-loopback address (the counts are served without authentication).
    #[serde(default)]
    pub allow_remote: bool,
}

#[derive(Debug)]
pub enum RawSource {
    Ldap(RawLdap),
    Graph(RawGraph),
}

impl RawSource {
    pub fn from_value(v: serde_yaml::Value) -> Result<RawSource, String> {
        match split_kind("source", v, &["ldap", "graph"])? {
            ("ldap", rest) => typed("source", rest).map(RawSource::Ldap),
            (_, rest) => typed("source", rest).map(RawSource::Graph),
        }
    }
}

impl RawTarget {
    pub fn from_value(v: serde_yaml::Value) -> Result<RawTarget, String> {
        let (_, mut rest) = split_kind("target", v, &["scim"])?;
        if let serde_yaml::Value::Mapping(m) = &mut rest {
            crate::app::profiles::lay_under(m)?;
        }
        typed("target", rest).map(RawTarget::Scim)
    }
}

/// A section chosen by its `kind` (one of `kinds`), and the section without it. (Serde's
/// internally tagged enums would do this, but lose the key path and line of every error
/// inside the section.)
fn split_kind(
    at: &str,
    v: serde_yaml::Value,
    kinds: &[&'static str],
) -> Result<(&'static str, serde_yaml::Value), String> {
    let choices = kinds.join(" or ");
    let serde_yaml::Value::Mapping(mut m) = v else {
        return Err(format!("{at}: must be a mapping with `kind: {choices}`"));
    };
    match m.remove("kind") {
        None => Err(format!("{at}.kind: missing; say `kind: {choices}`")),
        Some(k) => match kinds.iter().find(|c| k.as_str() == Some(**c)) {
            Some(kind) => Ok((kind, serde_yaml::Value::Mapping(m))),
            None => Err(format!(
                "{at}.kind: unknown kind `{}`; use {choices}",
                serde_yaml::to_string(&k).unwrap_or_default().trim()
            )),
        },
    }
}

/// A duration as people write it: text (`30s`, `15m`) or a bare number of seconds.
pub(super) fn text_or_seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Text(String),
        Seconds(u64),
    }
    Ok(match Option::<Given>::deserialize(d)? {
        None => None,
        Some(Given::Text(t)) => Some(t),
        Some(Given::Seconds(n)) => Some(format!("{n}s")),
    })
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest known key, if
/// one is close, else the generic advice.
pub fn unknown_field_hint(message: &str) -> String {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let best = quoted.split_first().and_then(|(given, known)| {
        known
            .iter()
            .map(|k| (strsim::damerau_levenshtein(given, k), *k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 4))
            .min()
    });
    match best {
        Some((_, k)) => format!(" (did you mean `{k}`?)"),
        None => " (remove it or fix its spelling)".to_string(),
    }
}

/// Deserializes a section, naming the key path of an error (`source.page_size: ...`).
fn typed<T: serde::de::DeserializeOwned>(at: &str, v: serde_yaml::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let key = if path == "." {
            at.to_string()
        } else {
            format!("{at}.{path}")
        };
        let hint = if inner.contains("unknown field") {
            unknown_field_hint(&inner)
        } else {
            String::new()
        };
        format!("{key}: {inner}{hint}")
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGraph {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
    pub scope: Option<String>,
    pub ca_file: Option<String>,
    pub incremental: Option<String>,
    pub full_every: Option<String>,
    pub page_size: Option<u32>,
    #[serde(default, deserialize_with = "text_or_seconds")]
    pub timeout: Option<String>,
    pub max_retries: Option<u32>,
    /// Read each user's photo (`/users/{id}/photo/$value`).
    pub photo: Option<bool>,
    pub proxy: Option<String>,
    pub max_response_bytes: Option<serde_yaml::Value>,
    pub max_users: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLdap {
    pub url: String,
    #[serde(default)]
    pub start_tls: bool,
    pub ca_file: Option<String>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    pub bind_password_file: Option<String>,
    pub base_dn: String,
    pub filter: Option<String>,
    pub scope: Option<String>,
    pub anchor: Option<String>,
    pub disabled: Option<String>,
    pub page_size: Option<u32>,
    #[serde(default, deserialize_with = "text_or_seconds")]
    pub timeout: Option<String>,
    /// The attribute holding the photo (`jpegPhoto`, AD `thumbnailPhoto`).
    pub photo: Option<String>,
    pub incremental: Option<String>,
    pub full_every: Option<String>,
    /// Values longer than this are left out of the person, with a notice.
    pub max_value_bytes: Option<serde_yaml::Value>,
    /// Chase search continuation references with the same credentials.
    #[serde(default)]
    pub follow_referrals: bool,
}

#[derive(Debug)]
pub enum RawTarget {
    Scim(RawScim),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScim {
    pub url: String,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub ca_file: Option<String>,
    pub concurrency: Option<usize>,
    pub rate_limit: Option<String>,
    #[serde(default, deserialize_with = "text_or_seconds")]
    pub timeout: Option<String>,
    pub page_size: Option<u32>,
    pub max_retries: Option<u32>,
    pub photo: Option<RawPhotoUpload>,
    pub photo_max_bytes: Option<serde_yaml::Value>,
    pub proxy: Option<String>,
    pub max_response_bytes: Option<serde_yaml::Value>,
    pub max_accounts: Option<u64>,
    /// A provider profile (`config/profiles/NAME.yaml`), already laid under these keys.
    pub profile: Option<String>,
    /// Caps `page_size` (an app's own page limit).
    pub max_page: Option<u32>,
    /// `patch-active`, `delete` or `none`: how the app deprovisions a leaver.
    pub deprovision: Option<String>,
    /// False: the app has no (or no undoable) DELETE; idsync never hard-deletes there.
    pub deletes: Option<bool>,
    /// Caps the members one group PATCH adds or removes.
    pub group_patch_max_members: Option<usize>,
    /// Send `$ref` with group members (default: when the app's Group schema has it).
    pub member_ref: Option<bool>,
    /// Request rates by method (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`), `writes` or `all`.
    pub rate_limits: Option<std::collections::BTreeMap<String, String>>,
    /// `full`, `active-only` or `filter-only`: how the app's accounts are read.
    pub list: Option<String>,
    /// How often the app is listed whole (`24h`; `0s`: every cycle).
    #[serde(default, deserialize_with = "text_or_seconds")]
    pub full_every: Option<String>,
    /// False: never send `If-Match` (an app that announces ETags but refuses its own).
    pub etags: Option<bool>,
}

/// `target.photo`: `scim`, `none`, or `{ put: URL }` / `{ post: URL }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPhotoUpload {
    Named(String),
    Http(RawPhotoHttp),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhotoHttp {
    pub put: Option<String>,
    pub post: Option<String>,
    /// Send photos (and the bearer token) to an origin other than `target.url`.
    #[serde(default)]
    pub allow_other_origin: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub target: String,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMappingValue {
    Template(String),
    Full(RawMappingFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMappingFull {
    pub value: String,
    pub set: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLifecycle {
    pub reactivation_window: Option<String>,
    pub after_window: Option<String>,
    pub delete_after: Option<String>,
    #[serde(default)]
    pub leaver: BTreeMap<String, String>,
    pub unmanaged: Option<String>,
    pub pending: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSafety {
    pub min_source_users: Option<u64>,
    pub min_source_ratio: Option<f64>,
    pub max_deprovisions: Option<serde_yaml::Value>,
    pub max_member_removals: Option<serde_yaml::Value>,
    pub max_field_clears: Option<serde_yaml::Value>,
}
