use super::*;

const BASE: &str = r#"
state_dir: /tmp/idsync-test
source:
  kind: ldap
  url: ldaps://dc1.example.org
  bind_dn: cn=idsync,dc=example,dc=org
  bind_password: "${LDAP_PW}"
  base_dn: ou=people,dc=example,dc=org
  disabled: "(userAccountControl:1.2.840.113556.1.4.803:=2)"
target:
  kind: scim
  url: https://app.example.com/scim/v2
  token: "${SCIM_TOKEN}"
  rate_limit: 20/s
match: { target: userName, source: "{mail}" }
mapping:
  userName: "{mail}"
  name.givenName: "{givenName}"
  preferredLanguage: { value: "{preferredLanguage}", set: once }
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "LDAP_PW" => Some("Canary-Ldap-Pw".into()),
        "SCIM_TOKEN" => Some("Canary-Token".into()),
        _ => None,
    }
}

fn parse_text(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("/etc/idsync/idsync.yaml"), &env)
}

fn problems(text: &str) -> Vec<String> {
    match parse_text(text) {
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => vec![e.to_string()],
        Ok(_) => vec![],
    }
}

#[test]
fn a_valid_config_resolves_to_real_types() {
    let c = parse_text(&format!(
        "{BASE}schedule: \"*/15 * * * *\"\nsafety: {{ max_deprovisions: \"5%\" }}\n"
    ))
    .unwrap();
    assert!(c.schedule.is_some());
    let SourceConfig::Ldap(l) = &c.source;
    assert_eq!(l.bind_password.as_ref().unwrap().expose(), "Canary-Ldap-Pw");
    assert!(l.attributes.contains(&"useraccountcontrol".to_string()));
    assert!(l.attributes.contains(&"entryuuid".to_string()));
    assert_eq!(c.target.rate_limit, Some(20.0));
    assert_eq!(
        c.safety.max_deprovisions,
        Some(DeprovisionLimit::Percent(5.0))
    );
    assert_eq!(c.policy.mapping.fields.len(), 3);
    assert!(c.policy.mapping.fields[2].set_once);
}

#[test]
fn secrets_never_show_in_debug_output() {
    let c = parse_text(BASE).unwrap();
    let dump = format!("{c:?}");
    assert!(!dump.contains("Canary"), "{dump}");
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let errs = problems(&BASE.replace("  rate_limit: 20/s", "  rate_limt: 20/s"));
    assert!(errs[0].contains("unknown field `rate_limt`"), "{errs:?}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_key_path() {
    let text = BASE
        .replace("ldaps://dc1.example.org", "http://dc1")
        .replace("20/s", "fast")
        .replace("\"{givenName}\"", "\"{givenName\"")
        + "schedule: \"61 * * * *\"\nlifecycle: { reactivation_window: soon, unmanaged: delete }\napprovals: { suspend: maybe }\n";
    let errs = problems(&text);
    for key in [
        "source.url:",
        "target.rate_limit:",
        "mapping.name.givenName:",
        "schedule:",
        "lifecycle.reactivation_window:",
        "lifecycle.unmanaged:",
        "approvals.suspend:",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(key)),
            "no problem at {key}: {errs:#?}"
        );
    }
}

#[test]
fn literal_secrets_and_missing_variables_are_refused() {
    let errs = problems(&BASE.replace("\"${LDAP_PW}\"", "hunter2"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("source.bind_password:")
                && e.contains("not written in the config")),
        "{errs:?}"
    );
    assert!(errs.iter().all(|e| !e.contains("hunter2")));
    let errs = problems(&BASE.replace("${SCIM_TOKEN}", "${NOPE}"));
    assert!(
        errs.iter().any(|e| e.contains("NOPE is not set")),
        "{errs:?}"
    );
}

#[test]
fn a_missing_secret_file_names_the_key_and_the_file() {
    let errs = problems(&BASE.replace(
        "token: \"${SCIM_TOKEN}\"",
        "token_file: /nonexistent/scim-token",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("target.token_file:") && e.contains("/nonexistent/scim-token")),
        "{errs:?}"
    );
}

#[test]
fn conflicting_options_are_refused() {
    let errs = problems(&BASE.replace("  base_dn:", "  start_tls: true\n  base_dn:"));
    assert!(
        errs.iter().any(|e| e.starts_with("source.start_tls:")),
        "{errs:?}"
    );
}

#[test]
fn mapping_must_name_user_name_and_cannot_map_active() {
    let errs = problems(&BASE.replace("  userName: \"{mail}\"\n", "  active: \"{x}\"\n"));
    assert!(
        errs.iter().any(|e| e.starts_with("mapping.active:")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("`userName` must be mapped")),
        "{errs:?}"
    );
}

#[test]
fn five_and_six_field_cron_are_both_accepted() {
    assert!(parse_text(&format!("{BASE}schedule: \"0 3 * * *\"\n")).is_ok());
    assert!(parse_text(&format!("{BASE}schedule: \"30 0 3 * * *\"\n")).is_ok());
}

#[test]
fn plain_ldap_off_loopback_with_a_bind_warns() {
    let c = parse_text(&BASE.replace("ldaps://dc1.example.org", "ldap://dc1.example.org")).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("clear text")));
}

#[test]
fn secret_files_readable_by_others_are_refused_except_systemd_credentials() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("scim");
    std::fs::write(&token, "Canary-Token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = BASE.replace(
        "token: \"${SCIM_TOKEN}\"",
        &format!("token_file: {}", token.display()),
    );
    let errs = problems(&text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("target.token_file:") && e.contains("chmod 600")),
        "{errs:?}"
    );

    let creds = dir.path().to_str().unwrap().to_string();
    let env = move |name: &str| {
        (name == "CREDENTIALS_DIRECTORY")
            .then(|| creds.clone())
            .or_else(|| super::tests::env(name))
    };
    assert!(parse(&text, Path::new("/etc/idsync/idsync.yaml"), &env).is_ok());

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(problems(&text).is_empty());
}
