//! Many apps from one directory read: `apps:` maps an app's name to its block (`target`,
//! `mapping`, `match`, `lifecycle`, `protected`, `safety`, `approvals`, `groups`, `scope`).
//! Each block is laid over the top-level keys, which are defaults every app inherits (a
//! mapping key by key; `null` drops an inherited key), and resolved as one document; the
//! problems of what an app sets itself are named `apps.NAME.<key>`. A config with a single
//! `target:` is the one app `default`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::raw::RawConfig;
use super::{
    resolve_raw, ConfigError, GroupsConfig, Problem, Resolved, Resolver, SourceConfig,
    LDAP_GROUP_FILTER,
};
use crate::app::settings::ScimConfig;
use crate::mapping::Template;
use crate::plan::Policy;
use crate::safety::SafetyConfig;
use crate::scope::Scope;
use crate::source::filter::Filter;

/// Keys an app's block may set; the others are the shared read's and the daemon's.
const PER_APP: &[&str] = &[
    "target",
    "mapping",
    "match",
    "lifecycle",
    "protected",
    "safety",
    "approvals",
    "groups",
    "scope",
    "hooks",
];

/// Group keys that say how groups are read: shared by every app.
const SHARED_GROUP_KEYS: &[&str] = &[
    "base_dn",
    "filter",
    "scope",
    "anchor",
    "nested",
    "member_uid",
];

/// Safety keys that guard the shared read.
const SHARED_SAFETY_KEYS: &[&str] = &["min_source_users", "min_source_ratio"];

/// One app: where it is, how its accounts are filled, its lifecycle, caps and scope.
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub name: String,
    pub target: ScimConfig,
    pub policy: Policy,
    pub safety: SafetyConfig,
    /// Group sync for this app (which groups, how named, what a vanished one means).
    pub groups: Option<GroupsConfig>,
    pub scope: Scope,
    /// Calls around this app's actions.
    pub hooks: Vec<crate::hooks::Hook>,
}

impl Resolver<'_> {
    pub(super) fn scope(&mut self, raw: super::raw::RawScope) -> Scope {
        let filter = raw.filter.as_deref().and_then(|f| match Filter::parse(f) {
            Ok(f) => Some(f),
            Err(e) => {
                self.problem("scope.filter", e.to_string());
                None
            }
        });
        let groups: Vec<String> = raw
            .groups
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.trim().to_string())
            .collect();
        if groups.iter().any(String::is_empty) {
            self.problem(
                "scope.groups",
                "an empty group name; write a group's name, DN or id",
            );
        }
        Scope {
            groups,
            nested: raw.nested.unwrap_or(true),
            filter,
            filter_text: raw.filter.map(|f| f.trim().to_string()),
        }
    }
}

/// A config with `apps:`: each app resolved over the top-level defaults, then combined.
pub(super) fn parse_apps(
    doc: Value,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<super::Config, ConfigError> {
    let invalid = |problems: Vec<Problem>| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let problem = |path: &str, message: &str| Problem {
        path: path.to_string(),
        message: message.to_string(),
    };
    let Value::Mapping(mut top) = doc else {
        return Err(invalid(vec![problem(".", "expected a mapping of keys")]));
    };
    let apps = match top.remove("apps") {
        Some(Value::Mapping(m)) if !m.is_empty() => m,
        _ => {
            return Err(invalid(vec![problem(
                "apps",
                "a map from each app's name to its block, e.g. `apps: { miro: { target: {...} } }`",
            )]))
        }
    };
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut resolved = Vec::new();
    for (name, block) in apps {
        match resolve_app(&top, name, block, path, env)? {
            Ok((name, r, w)) => {
                warnings.extend(w);
                resolved.push((name, r));
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if let Some(console) = resolved.first().and_then(|(_, r)| r.console.as_ref()) {
        let names: Vec<&str> = resolved.iter().map(|(n, _)| n.as_str()).collect();
        problems.extend(super::console::unknown_apps(console, &names));
    }
    let mut seen = BTreeSet::new();
    problems.retain(|p| seen.insert(p.to_string()));
    warnings.sort();
    warnings.dedup();
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(combine(resolved, warnings))
}

/// An app resolved (its name, what it resolved to, its warnings), or its problems.
type AppResolved = Result<(String, Resolved, Vec<String>), Vec<Problem>>;

/// One app: its block checked, laid over the top level, resolved; its problems named under
/// it. The outer error is one that is no app's (the file could not be read).
fn resolve_app(
    top: &Mapping,
    name: Value,
    block: Value,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AppResolved, ConfigError> {
    let problem = |path: &str, message: &str| {
        Ok(Err(vec![Problem {
            path: path.to_string(),
            message: message.to_string(),
        }]))
    };
    let Some(name) = name.as_str().map(str::to_string) else {
        return problem("apps", "an app's name must be text");
    };
    let at = format!("apps.{name}");
    if !valid_name(&name) {
        return problem(&at, "an app's name is lower-case letters, digits, `-` and `_`, starting with a letter (it names the app in the journal, metrics and `--app`)");
    }
    let mut block = match block {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        _ => {
            return problem(
                &at,
                "expected the app's keys (target:, mapping:, scope:, ...)",
            )
        }
    };
    let own = match own_keys(&at, &block) {
        Ok(own) => own,
        Err(p) => return Ok(Err(p)),
    };
    // `groups: ~` turns this app's group sync off; where groups are read stays shared.
    let sync_groups = !block.get("groups").is_some_and(Value::is_null);
    if !sync_groups {
        block.remove("groups");
    }
    let merged = merge(Value::Mapping(top.clone()), Value::Mapping(block));
    let one = serde_yaml::from_value::<RawConfig>(merged)
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: super::syntax_message(&e),
        })
        .and_then(|raw| resolve_raw(raw, path, env));
    match one {
        Ok((r, w)) => Ok(Ok((name, Resolved { sync_groups, ..r }, w))),
        Err(ConfigError::Syntax { message, .. }) => Ok(Err(vec![Problem { path: at, message }])),
        Err(ConfigError::Invalid { problems, .. }) => Ok(Err(problems
            .into_iter()
            .map(|p| named(&at, &own, p))
            .collect())),
        Err(e) => Err(e),
    }
}

fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

/// The keys an app's block sets, checked against what an app may set.
fn own_keys(at: &str, block: &Mapping) -> Result<BTreeSet<String>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut own = BTreeSet::new();
    for (k, v) in block {
        let key = k.as_str().unwrap_or_default().to_string();
        if !PER_APP.contains(&key.as_str()) {
            problems.push(Problem {
                path: format!("{at}.{key}"),
                message: format!(
                    "not a per-app key (an app sets {}); set it at the top level, for every app",
                    PER_APP.join(", ")
                ),
            });
            continue;
        }
        let shared = match key.as_str() {
            "groups" => SHARED_GROUP_KEYS,
            "safety" => SHARED_SAFETY_KEYS,
            _ => &[][..],
        };
        for s in shared {
            if v.get(*s).is_some() {
                problems.push(Problem {
                    path: format!("{at}.{key}.{s}"),
                    message: format!("shared by every app (the directory is read once per cycle); set it in the top-level {key}:"),
                });
            }
        }
        own.insert(key);
    }
    if problems.is_empty() {
        Ok(own)
    } else {
        Err(problems)
    }
}

/// A problem found resolving an app: named under the app when the app set that key.
fn named(at: &str, own: &BTreeSet<String>, p: Problem) -> Problem {
    let top = p.path.split(['.', '[']).next().unwrap_or_default();
    if own.contains(top) {
        Problem {
            path: format!("{at}.{}", p.path),
            message: p.message,
        }
    } else {
        p
    }
}

/// `over` laid over `base`: mappings key by key (recursively), anything else replaced; a
/// `null` in `over` drops the key.
fn merge(base: Value, over: Value) -> Value {
    match (base, over) {
        (Value::Mapping(mut b), Value::Mapping(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(&k);
                    continue;
                }
                let merged = match b.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Mapping(b)
        }
        (_, o) => o,
    }
}

/// The `Config` of resolved apps: the shared parts from the first (every app inherits the
/// same), the directory read covering what every app needs.
pub(super) fn combine(apps: Vec<(String, Resolved)>, warnings: Vec<String>) -> super::Config {
    let first = apps[0].1.clone();
    let mut source = first.source.clone();
    for (_, r) in &apps[1..] {
        match (&mut source, &r.source) {
            (SourceConfig::Ldap(s), SourceConfig::Ldap(o)) => {
                s.attributes.extend(o.attributes.iter().cloned());
                s.attributes.sort();
                s.attributes.dedup();
            }
            (SourceConfig::Graph(s), SourceConfig::Graph(o)) => {
                s.select = crate::source::graph::select_list(
                    s.select.iter().chain(o.select.iter()).cloned(),
                );
                s.photo_max_bytes = s.photo_max_bytes.max(o.photo_max_bytes);
            }
            _ => {}
        }
    }
    let groups = groups_read(&source, &apps);
    super::Config {
        path: first.path,
        schedule: first.schedule,
        state_dir: first.state_dir,
        source,
        safety: first.safety,
        groups,
        apps: apps
            .into_iter()
            .map(|(name, r)| AppConfig {
                name,
                target: r.target,
                policy: r.policy,
                safety: r.safety,
                groups: r.groups.filter(|_| r.sync_groups),
                scope: r.scope,
                hooks: r.hooks,
            })
            .collect(),
        metrics_listen: first.metrics_listen,
        run_deadline: first.run_deadline,
        console: first.console,
        warnings,
        progress: false,
    }
}

/// How the cycle reads directory groups: as the apps' `groups:` say (where groups live is
/// shared), limited to the names the apps ask for when every one of them names its groups;
/// with defaults when only a scope needs groups.
fn groups_read(source: &SourceConfig, apps: &[(String, Resolved)]) -> Option<GroupsConfig> {
    let scoped = apps.iter().any(|(_, r)| !r.scope.groups.is_empty());
    let synced = apps
        .iter()
        .any(|(_, r)| r.sync_groups && r.groups.is_some());
    if !scoped && !synced {
        return None;
    }
    let mut read = apps
        .iter()
        .find_map(|(_, r)| r.groups.clone())
        .or_else(|| scoped.then(|| default_groups(source)))?;
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut every_named = true;
    for (_, r) in apps {
        match r.groups.as_ref().filter(|_| r.sync_groups).map(|g| &g.only) {
            Some(Some(only)) => names.extend(only.iter().cloned()),
            Some(None) => every_named = false,
            None => {}
        }
        for g in &r.scope.groups {
            // A DN or an id cannot be matched by name before the group is read.
            every_named &=
                !g.contains('=') && !g.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            names.insert(g.to_lowercase());
        }
    }
    read.only = every_named.then_some(names);
    if scoped {
        // Scope counts nested membership unless told not to: read the nesting.
        read.nested |= apps.iter().any(|(_, r)| r.scope.nested);
    }
    Some(read)
}

/// Groups read only for scopes: LDAP groups under the people's base DN, of the standard
/// classes; every Graph group.
fn default_groups(source: &SourceConfig) -> GroupsConfig {
    let (base_dn, filter, name, anchor) = match source {
        SourceConfig::Ldap(l) => (
            Some(l.base_dn.clone()),
            Some(LDAP_GROUP_FILTER.to_string()),
            "{cn}",
            l.anchor.clone(),
        ),
        SourceConfig::Graph(_) => (None, None, "{displayName}", "id".to_string()),
    };
    GroupsConfig {
        base_dn,
        filter,
        one_level: false,
        only: None,
        name: Template::parse(name).expect("a fixed template"),
        anchor,
        nested: true,
        member_uid: "uid".into(),
        policy: crate::groups::GroupPolicy {
            vanished: crate::groups::Vanished::Leave,
        },
        batch: 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_block_is_laid_over_the_defaults_key_by_key() {
        let top: Value = serde_yaml::from_str(
            "mapping: { userName: '{mail}', title: '{title}' }\nsafety: { max_deprovisions: 5 }",
        )
        .unwrap();
        let app: Value =
            serde_yaml::from_str("mapping: { title: ~, displayName: '{cn}' }").unwrap();
        let merged = merge(top, app);
        let mapping = merged["mapping"].as_mapping().unwrap();
        assert_eq!(mapping.len(), 2);
        assert_eq!(merged["mapping"]["displayName"], "{cn}");
        assert!(merged["mapping"].get("title").is_none());
        assert_eq!(merged["safety"]["max_deprovisions"], 5);
    }
}
