//! Property tests (proptest) of what reads user input: the config loader, the mapping
//! template and attribute-path parsers, and the `disabled:` LDAP filter parser. Whatever the
//! input, they return a value or an error with a message; they never panic. Crashers found
//! are kept as plain regression tests at the bottom. `PROPTEST_CASES=50000` hunts longer.

use std::collections::BTreeMap;
use std::path::Path;

use idsync::mapping::{FieldPath, Template};
use idsync::model::{Anchor, DirectoryUser};
use idsync::source::filter::Filter;
use proptest::prelude::*;
use serde_yaml::Value;

const BASE: &str = r#"
state_dir: /nonexistent/idsync-fuzz
schedule: "*/15 * * * *"
source:
  kind: ldap
  url: ldap://127.0.0.1:3389
  bind_dn: cn=idsync,dc=example,dc=org
  bind_password: "${PW}"
  base_dn: ou=people,dc=example,dc=org
  disabled: "(employeeType=disabled)"
  page_size: 100
target:
  kind: scim
  url: http://127.0.0.1:8080/v2
  token: "${TOKEN}"
  rate_limit: 20/s
  timeout: 30s
match: { target: userName, source: "{mail}" }
mapping:
  userName: "{mail}"
  displayName: "{cn}"
  preferredLanguage: { value: "{preferredLanguage}", set: once }
lifecycle:
  reactivation_window: 30d
  delete_after: 90d
safety:
  max_deprovisions: "5%"
groups:
  base_dn: ou=groups,dc=example,dc=org
"#;

/// Key paths a mutation may hit (existing or not).
const PATHS: &[&str] = &[
    "schedule",
    "state_dir",
    "source",
    "source.kind",
    "source.url",
    "source.start_tls",
    "source.base_dn",
    "source.filter",
    "source.disabled",
    "source.page_size",
    "source.timeout",
    "source.incremental",
    "source.full_every",
    "source.anchor",
    "source.photo",
    "target",
    "target.kind",
    "target.url",
    "target.token",
    "target.token_file",
    "target.concurrency",
    "target.rate_limit",
    "target.timeout",
    "target.photo",
    "target.photo.put",
    "match",
    "match.source",
    "mapping",
    "mapping.userName",
    "mapping.displayName",
    "mapping.emails[type eq \"work\"].value",
    "mapping.preferredLanguage.set",
    "lifecycle.reactivation_window",
    "lifecycle.after_window",
    "lifecycle.leaver",
    "lifecycle.leaver.title",
    "protected",
    "safety.min_source_ratio",
    "safety.max_deprovisions",
    "approvals",
    "approvals.suspend",
    "metrics.listen",
    "groups",
    "groups.only",
    "groups.nested",
    "groups.vanished",
    "groups.batch",
    "colour",
];

fn env(name: &str) -> Option<String> {
    match name {
        "PW" => Some("Canary-Fuzz-Pw".into()),
        "TOKEN" => Some("Canary-Fuzz-Token".into()),
        _ => None,
    }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Value::Number(f.into())),
        ".{0,12}".prop_map(Value::String),
        "[{}()\\[\\]*=|&!:,. %$a-z0-9]{0,16}".prop_map(Value::String),
        prop_oneof![
            Just("ldap"),
            Just("graph"),
            Just("scim"),
            Just("30s"),
            Just("-1"),
            Just("100%"),
            Just("0/s"),
            Just("{mail"),
            Just("${UNSET}"),
            Just("*/0 * * * *"),
            Just("ldaps://[::1"),
        ]
        .prop_map(|s| Value::String(s.into())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            prop::collection::vec(("[a-z]{1,8}", inner), 0..4).prop_map(|kv| {
                Value::Mapping(kv.into_iter().map(|(k, v)| (Value::String(k), v)).collect())
            }),
        ]
    })
}

/// Sets (or with `None` removes) `path` in a YAML tree, making mappings on the way.
fn set(root: &mut Value, path: &str, v: Option<Value>) {
    // Mapping keys are attribute paths: their dots are not YAML nesting.
    let parts: Vec<&str> = match path.strip_prefix("mapping.") {
        Some(field) => match field.strip_suffix(".set") {
            Some(f) => vec!["mapping", f, "set"],
            None => vec!["mapping", field],
        },
        None => path.split('.').collect(),
    };
    let mut at = root;
    for (i, key) in parts.iter().enumerate() {
        if !at.is_mapping() {
            *at = Value::Mapping(Default::default());
        }
        let m = at.as_mapping_mut().unwrap();
        let k = Value::String(key.to_string());
        if i == parts.len() - 1 {
            match v {
                Some(v) => {
                    m.insert(k, v);
                }
                None => {
                    m.remove(&k);
                }
            }
            return;
        }
        at = m.entry(k).or_insert(Value::Null);
    }
}

fn parse(text: &str) {
    match idsync::config::parse(text, Path::new("/etc/idsync/idsync.yaml"), &env) {
        Ok(_) => {}
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("config "), "{msg}");
            assert!(!msg.contains("Canary-Fuzz"), "a secret in: {msg}");
        }
    }
}

/// Cases per property: 512, or `PROPTEST_CASES` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn person(attrs: Vec<(String, Vec<String>)>) -> DirectoryUser {
    DirectoryUser {
        anchor: Anchor::new("a"),
        locator: "uid=a".into(),
        attrs: attrs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect::<BTreeMap<_, _>>()
            .into(),
        disabled: false,
        problems: Vec::new(),
        photo: None,
        sync_id: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_config_loader_never_panics_on_a_mutated_config(
        edits in prop::collection::vec(
            (prop::sample::select(PATHS), prop::option::weighted(0.85, value())),
            1..5,
        )
    ) {
        let mut root: Value = serde_yaml::from_str(BASE).unwrap();
        for (path, v) in edits {
            set(&mut root, path, v);
        }
        parse(&serde_yaml::to_string(&root).unwrap());
    }

    #[test]
    fn the_config_loader_never_panics_on_any_text(text in "(.|\n){0,200}") {
        parse(&text);
    }

    #[test]
    fn the_config_loader_never_panics_on_a_cut_config(cut in 0..BASE.len()) {
        parse(&BASE[..BASE.floor_char_boundary(cut)]);
    }

    #[test]
    fn templates_parse_or_fail_and_render_without_panicking(
        text in "([{}a-zA-Z0-9 ;:|,.\\\\\"'=()-]|[^\n]){0,40}",
        values in prop::collection::vec(("[a-zA-Z]{1,6}", prop::collection::vec(".{0,8}", 0..3)), 0..4),
    ) {
        if let Ok(t) = Template::parse(&text) {
            let user = person(values);
            let _ = t.render(&user);
            let _ = t.attributes().count();
        }
    }

    #[test]
    fn attribute_paths_parse_or_fail(text in "([a-zA-Z.:\\[\\]\" ]|[^\n]){0,40}") {
        let _ = FieldPath::parse(&text);
    }

    #[test]
    fn ldap_filters_parse_or_fail_and_match_without_panicking(
        text in "([()&|!=*:\\\\a-z0-9.]|[^\n]){0,40}",
        values in prop::collection::vec(("[a-z]{1,4}", prop::collection::vec(".{0,6}", 0..3)), 0..3),
    ) {
        if let Ok(f) = Filter::parse(&text) {
            let _ = f.matches(&person(values));
        }
    }
}

// Regression inputs: crashers the properties above found, and other known tricky inputs.
#[test]
fn known_tricky_inputs_do_not_panic() {
    // Found by attribute_paths_parse_or_fail: a multi-byte character at byte 1..5 of a
    // mapping key made the `urn:` check slice inside it (idsync panicked loading the config).
    let _ = FieldPath::parse("a\u{10000}");
    parse("state_dir: /x\nsource: { kind: ldap, url: ldap://h, base_dn: dc=x }\ntarget: { kind: scim, url: http://h, token: \"${TOKEN}\" }\nmatch: { target: userName, source: \"{mail}\" }\nmapping:\n  userName: \"{mail}\"\n  \"a\u{10000}\": \"{cn}\"\n");
    for text in [
        "{", "}", "{}", "{{", "{a|", "{a|b|}", "\\", "{\u{0}}", "{é}",
    ] {
        let _ = Template::parse(text);
    }
    for text in [
        "(",
        "(a=\\",
        "(a=\\4",
        "(a:1.2.840.113556.1.4.803:=99999999999999999999)",
        "(!)",
        "(&)",
    ] {
        let _ = Filter::parse(text);
    }
    parse("source: !!binary aGVsbG8=\n");
    parse("source: &a [*a]\n");
}
