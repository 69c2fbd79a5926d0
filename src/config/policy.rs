//! The lifecycle policy: `mapping`, `match`, `lifecycle`, `protected`, `safety` and
//! `approvals`.

use super::*;

impl Resolver<'_> {
    pub(super) fn mapping(&mut self, raw: &serde_yaml::Mapping) -> Option<Mapping> {
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

    pub(super) fn match_rule(&mut self, raw: Option<raw::RawMatch>) -> Option<MatchRule> {
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

    pub(super) fn lifecycle(&mut self, raw: raw::RawLifecycle) -> Lifecycle {
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

    pub(super) fn protected(&mut self, raw: &[String]) -> Protected {
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

    pub(super) fn safety(
        &mut self,
        raw: raw::RawSafety,
        approvals: BTreeMap<String, String>,
    ) -> SafetyConfig {
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
        if let Some(v) = raw.max_field_clears {
            match limit_value(&v) {
                Some(l) => out.max_field_clears = Some(l),
                None => self.problem(
                    "safety.max_field_clears",
                    "write a count such as 20, a share of linked accounts such as \"10%\", or \"100%\" to turn the gate off",
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
pub(super) fn limit_value(v: &serde_yaml::Value) -> Option<DeprovisionLimit> {
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
