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
    let SourceConfig::Ldap(l) = &c.source else {
        panic!("an ldap source")
    };
    assert_eq!(l.bind_password.as_ref().unwrap().expose(), "Canary-Ldap-Pw");
    assert!(l.attributes.contains(&"useraccountcontrol".to_string()));
    assert!(l.attributes.contains(&"entryuuid".to_string()));
    assert_eq!(c.apps[0].target.rate_limit, Some(20.0));
    assert_eq!(
        c.safety.max_deprovisions,
        Some(DeprovisionLimit::Percent(5.0))
    );
    assert_eq!(c.apps[0].policy.mapping.fields.len(), 3);
    assert!(c.apps[0].policy.mapping.fields[2].set_once);
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
    assert!(errs[0].contains("did you mean `rate_limit`?"), "{errs:?}");
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
    // Set but empty, it exempts nothing.
    let empty = |name: &str| {
        (name == "CREDENTIALS_DIRECTORY")
            .then(String::new)
            .or_else(|| super::tests::env(name))
    };
    let err = parse(&text, Path::new("/etc/idsync/idsync.yaml"), &empty).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(problems(&text).is_empty());
}

#[test]
fn a_template_that_reads_a_binary_attribute_is_refused_by_its_key() {
    let errs = problems(&BASE.replace(
        "  name.givenName: \"{givenName}\"",
        "  name.givenName: \"{givenName}\"\n  nickName: \"{thumbnailPhoto}\"\n  externalId: \"{objectGUID}\"",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("mapping.nickName:") && errs[0].contains("binary"),
        "{errs:?}"
    );
}

#[test]
fn a_photo_url_on_another_origin_is_refused() {
    let errs = problems(&BASE.replace(
        "  rate_limit: 20/s",
        "  rate_limit: 20/s\n  photo: { put: \"https://collector.example.net/{id}\" }",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("target.photo:") && e.contains("not the app's origin")),
        "{errs:?}"
    );
    let ok = problems(&BASE.replace(
        "  rate_limit: 20/s",
        "  rate_limit: 20/s\n  photo: { put: \"{url}/Users/{id}/photo\" }",
    ));
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn metrics_off_loopback_need_an_explicit_allow_remote() {
    let errs = problems(&format!("{BASE}metrics: {{ listen: \"0.0.0.0:9464\" }}\n"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("metrics.listen:") && e.contains("allow_remote")),
        "{errs:?}"
    );
    let c = parse_text(&format!(
        "{BASE}metrics: {{ listen: \"0.0.0.0:9464\", allow_remote: true }}\n"
    ))
    .unwrap();
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("without authentication")));
}

#[test]
fn bounds_and_proxies_are_read_with_their_units() {
    let c = parse_text(&BASE.replace(
        "  rate_limit: 20/s",
        "  rate_limit: 20/s\n  max_response_bytes: 8MiB\n  max_accounts: 5000\n  proxy: http://proxy.example:3128",
    ))
    .unwrap();
    assert_eq!(c.apps[0].target.max_response_bytes, 8 << 20);
    assert_eq!(c.apps[0].target.max_accounts, 5000);
    assert_eq!(
        c.apps[0].target.proxy.clone().unwrap().as_str(),
        "http://proxy.example:3128/"
    );
    assert_eq!(c.run_deadline, DEFAULT_RUN_DEADLINE);
    let errs = problems(&BASE.replace(
        "  rate_limit: 20/s",
        "  rate_limit: 20/s\n  max_response_bytes: 2GiB",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("target.max_response_bytes:")),
        "{errs:?}"
    );
}

const GRAPH: &str = r#"
state_dir: /tmp/idsync-test
source:
  kind: graph
  tenant: 11111111-2222-3333-4444-555555555555
  client_id: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
  client_secret: "${GRAPH_SECRET}"
target:
  kind: scim
  url: https://app.example.com/scim/v2
  token: "${SCIM_TOKEN}"
match: { target: userName, source: "{mail}" }
mapping:
  userName: "{userPrincipalName}"
  title: "{jobTitle}"
  phoneNumbers[type eq "work"].value: "{businessPhones[0]}"
"#;

fn graph_env(name: &str) -> Option<String> {
    match name {
        "GRAPH_SECRET" => Some("Canary-Graph-Secret".into()),
        other => env(other),
    }
}

fn parse_graph(text: &str) -> Result<Config, ConfigError> {
    parse(text, Path::new("/etc/idsync/idsync.yaml"), &graph_env)
}

#[test]
fn a_graph_source_defaults_to_microsoft_endpoints_and_delta_reads() {
    let c = parse_graph(GRAPH).unwrap();
    let SourceConfig::Graph(g) = &c.source else {
        panic!("a graph source")
    };
    assert_eq!(
        g.token_url.as_str(),
        "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token"
    );
    assert_eq!(g.api_url.as_str(), "https://graph.microsoft.com/v1.0");
    assert_eq!(g.scope, "https://graph.microsoft.com/.default");
    assert_eq!(g.incremental, Incremental::Delta);
    assert_eq!(g.full_every, std::time::Duration::from_secs(86_400));
    assert_eq!(g.page_size, 999);
    assert_eq!(
        g.select,
        [
            "accountEnabled",
            "businessPhones",
            "id",
            "jobTitle",
            "mail",
            "userPrincipalName"
        ],
        "mapped and matched attributes, Graph's spelling, plus id and accountEnabled"
    );
    assert!(!format!("{c:?}").contains("Canary"));
}

#[test]
fn a_broken_graph_source_names_each_key() {
    let text = GRAPH
        .replace(
            "tenant: 11111111-2222-3333-4444-555555555555",
            "tenant: \"contoso/evil\"",
        )
        .replace(
            "  client_secret: \"${GRAPH_SECRET}\"\n",
            "  incremental: sometimes\n  page_size: 5000\n  api_url: ftp://graph\n",
        );
    let found = problems(&text).join("\n");
    for key in [
        "source.tenant",
        "source.client_secret_file",
        "source.incremental",
        "source.page_size",
        "source.api_url",
    ] {
        assert!(found.contains(key), "{key} missing from:\n{found}");
    }
}

#[test]
fn the_shipped_example_configs_are_valid() {
    let creds = tempfile::tempdir().unwrap();
    for name in ["ldap", "scim", "graph", "app-api", "chat"] {
        let path = creds.path().join(name);
        std::fs::write(&path, "Canary-Example-Secret\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let ca = creds.path().join("corp-ca.pem");
    std::fs::write(&ca, "").unwrap();
    let dir = creds.path().to_string_lossy().to_string();
    let env = |name: &str| (name == "CREDENTIALS_DIRECTORY").then(|| dir.clone());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for file in [
        "idsync.example.yaml",
        "graph.example.yaml",
        "ad.example.yaml",
        "apps.example.yaml",
        "hooks.example.yaml",
    ] {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/etc/idsync/corp-ca.pem", &ca.to_string_lossy())
            .replace("/etc/idsync/secrets/", &format!("{dir}/"));
        if let Err(e) = parse(&text, &path, &env) {
            panic!("{file}: {e}");
        }
    }
}

#[test]
fn syncrepl_takes_any_anchor_and_usn_needs_object_guid() {
    let c = parse_text(&BASE.replace(
        "  base_dn:",
        "  incremental: syncrepl\n  full_every: 12h\n  base_dn:",
    ))
    .unwrap();
    let SourceConfig::Ldap(l) = &c.source else {
        panic!("an ldap source")
    };
    assert_eq!(l.incremental, LdapIncremental::Syncrepl);
    assert_eq!(l.full_every, std::time::Duration::from_secs(12 * 3600));
    // Content sync names entries by its own UUID, which each person keeps beside the
    // anchor: FreeIPA's ipaUniqueID is as good an anchor as entryUUID.
    let found = problems(&BASE.replace(
        "  base_dn:",
        "  incremental: syncrepl\n  anchor: ipaUniqueID\n  base_dn:",
    ));
    assert!(found.is_empty(), "{found:?}");
    let found = problems(&BASE.replace("  base_dn:", "  incremental: usn\n  base_dn:")).join("\n");
    assert!(
        found.contains("source.anchor: usn reads identify deleted entries by objectGUID"),
        "{found}"
    );
    let c = parse_text(&BASE.replace(
        "  base_dn:",
        "  incremental: usn\n  anchor: objectGUID\n  base_dn:",
    ))
    .unwrap();
    let SourceConfig::Ldap(l) = &c.source else {
        panic!("an ldap source")
    };
    assert_eq!(l.incremental, LdapIncremental::Usn);
}

#[test]
fn groups_resolve_with_defaults_and_ask_the_people_for_member_uid() {
    let c = parse_text(&format!(
        "{BASE}groups: {{ base_dn: \"ou=groups,dc=example,dc=org\", only: [Eng] }}\nsafety: {{ max_member_removals: \"10%\" }}\n"
    ))
    .unwrap();
    let g = c.groups.as_ref().unwrap();
    assert_eq!(g.filter.as_deref(), Some(LDAP_GROUP_FILTER));
    assert_eq!(g.anchor, "entryUUID");
    assert_eq!(g.batch, 100);
    assert_eq!(g.policy.vanished, crate::groups::Vanished::Leave);
    assert!(g.only.as_ref().unwrap().contains("eng"));
    assert_eq!(
        c.safety.max_member_removals,
        Some(DeprovisionLimit::Percent(10.0))
    );
    let SourceConfig::Ldap(l) = &c.source else {
        panic!("an ldap source")
    };
    assert!(l.attributes.contains(&"uid".to_string()));
}

#[test]
fn broken_groups_name_each_key() {
    let p = problems(&format!(
        "{BASE}groups: {{ filter: \"objectClass=group\", vanished: purge, batch: 0, name: \"{{cn\", scope: deep, only: [] }}\nsafety: {{ max_member_removals: lots }}\n"
    ));
    for key in [
        "groups.base_dn",
        "groups.filter",
        "groups.vanished",
        "groups.batch",
        "groups.name",
        "groups.scope",
        "groups.only",
        "safety.max_member_removals",
    ] {
        assert!(p.iter().any(|m| m.starts_with(key)), "{key} in {p:?}");
    }
    let p = problems(&format!("{BASE}groups: {{ base_dn: x, members: all }}\n"));
    assert!(p[0].contains("unknown field `members`"), "{p:?}");
}

#[test]
fn graph_groups_refuse_ldap_only_keys() {
    let text = format!(
        "{}groups: {{ base_dn: ou=x, anchor: objectGUID, member_uid: uid, filter: \"securityEnabled eq true\" }}\n",
        GRAPH
    );
    let Err(ConfigError::Invalid { problems, .. }) = parse_graph(&text) else {
        panic!("invalid")
    };
    let p: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    for key in ["groups.base_dn", "groups.anchor", "groups.member_uid"] {
        assert!(p.iter().any(|m| m.starts_with(key)), "{key} in {p:?}");
    }
    let ok = parse_graph(&format!(
        "{GRAPH}groups: {{ filter: \"securityEnabled eq true\" }}\n"
    ))
    .unwrap();
    let g = ok.groups.unwrap();
    assert_eq!(g.filter.as_deref(), Some("securityEnabled eq true"));
    assert_eq!(g.name.attributes().collect::<Vec<_>>(), vec!["displayname"]);
}

const APPS: &str = r#"
state_dir: /tmp/idsync-test
source:
  kind: ldap
  url: ldaps://dc1.example.org
  bind_dn: cn=idsync,dc=example,dc=org
  bind_password: "${LDAP_PW}"
  base_dn: ou=people,dc=example,dc=org
groups:
  base_dn: ou=groups,dc=example,dc=org
match: { target: userName, source: "{mail}" }
mapping:
  userName: "{mail}"
  title: "{title}"
safety: { max_deprovisions: 5 }
apps:
  miro:
    target: { kind: scim, url: "https://miro.example.com/scim", token: "${SCIM_TOKEN}" }
    scope: { groups: [miro-users] }
    groups: ~
  slack:
    target: { kind: scim, url: "https://slack.example.com/scim", token: "${SCIM_TOKEN}" }
    mapping: { title: ~, displayName: "{cn}" }
    scope: { filter: "(department=eng)" }
    safety: { max_deprovisions: 20 }
"#;

#[test]
fn apps_inherit_the_top_level_and_override_key_by_key() {
    let c = parse_text(APPS).unwrap();
    let names: Vec<&str> = c.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["miro", "slack"]);
    let (miro, slack) = (&c.apps[0], &c.apps[1]);
    let paths = |a: &AppConfig| -> Vec<String> {
        a.policy
            .mapping
            .fields
            .iter()
            .map(|f| f.path.to_string())
            .collect()
    };
    assert_eq!(paths(miro), ["userName", "title"]);
    assert_eq!(paths(slack), ["userName", "displayName"]);
    assert_eq!(
        miro.safety.max_deprovisions,
        Some(DeprovisionLimit::Count(5))
    );
    assert_eq!(
        slack.safety.max_deprovisions,
        Some(DeprovisionLimit::Count(20))
    );
    assert!(
        miro.groups.is_none(),
        "groups: ~ turns miro's group sync off"
    );
    assert!(slack.groups.is_some(), "slack inherits group sync");
    assert_eq!(miro.scope.groups, ["miro-users"]);
    // One read covers every app: slack's scope filter and displayName are read too.
    let SourceConfig::Ldap(l) = &c.source else {
        panic!("ldap")
    };
    for attr in ["title", "cn", "department", "mail"] {
        assert!(
            l.attributes.iter().any(|a| a == attr),
            "{attr}: {:?}",
            l.attributes
        );
    }
    // Groups are read for miro's scope and slack's sync: every group (slack names none).
    assert!(c
        .groups
        .as_ref()
        .is_some_and(|g| g.only.is_none() && g.nested));
    let single = parse_text(BASE).unwrap();
    assert_eq!(single.apps.len(), 1);
    assert_eq!(single.apps[0].name, DEFAULT_APP);
}

#[test]
fn an_apps_problems_are_named_under_the_app() {
    let bad = APPS
        .replace(
            "    groups: ~\n",
            "    groups: { base_dn: ou=x }\n    schedule: \"* * * * *\"\n",
        )
        .replace("(department=eng)", "department=eng")
        .replace("https://slack.example.com/scim", "ftp://slack");
    let p = problems(&bad);
    assert!(
        p.iter()
            .any(|p| p.starts_with("apps.miro.schedule: not a per-app key")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p.starts_with("apps.miro.groups.base_dn: shared by every app")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|p| p.starts_with("apps.slack.scope.filter:")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|p| p.starts_with("apps.slack.target.url")),
        "{p:?}"
    );
    let p = problems(&APPS.replace("  miro:", "  Miro:"));
    assert!(
        p.iter().any(|p| p.starts_with("apps.Miro: an app's name")),
        "{p:?}"
    );
    let p = problems(&APPS.replace(
        "safety: { max_deprovisions: 20 }",
        "safety: { min_source_users: 3 }",
    ));
    assert!(
        p.iter()
            .any(|p| p.starts_with("apps.slack.safety.min_source_users: shared")),
        "{p:?}"
    );
}

#[test]
fn hooks_resolve_per_app_and_name_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, "Bearer Canary-Hook").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let hooks = format!(
        "hooks:\n  - name: revoke\n    on: [suspend, group-*]\n    when: after\n    http:\n      url: \"https://idp.example.com/users/{{account_id}}/sessions\"\n      method: delete\n      header_files: {{ Authorization: {} }}\n  - on: [delete]\n    when: before\n    required: true\n    timeout: 30s\n    command: [\"/usr/local/bin/handover\", \"{{user_name}}\"]\n",
        secret.display()
    );
    let c = parse_text(&format!("{BASE}{hooks}")).unwrap();
    let h = &c.apps[0].hooks;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].name, "revoke");
    assert_eq!(h[0].kinds.len(), 5, "suspend and the four group kinds");
    assert_eq!(h[1].name, "hook-2");
    assert!(h[1].required && h[1].timeout == std::time::Duration::from_secs(30));
    assert!(
        !format!("{:?}", h[0]).contains("Canary-Hook"),
        "the header secret is redacted"
    );
    let bad = "hooks:\n  - name: x\n    on: [suspendd]\n    when: later\n    required: true\n  - name: x\n    on: [create]\n    when: after\n    http: { url: \"ftp://x\" }\n";
    let p = problems(&format!("{BASE}{bad}"));
    for want in [
        "hooks[0].on: `suspendd` is no action kind",
        "hooks[0].when: `later`",
        "hooks[0]: give either `http:`",
        "hooks[1].name: `x` names two hooks",
        "hooks[1].http.url: `ftp://x` is not an http(s) URL",
    ] {
        assert!(p.iter().any(|l| l.starts_with(want)), "{want}: {p:?}");
    }
}

#[test]
fn hooks_in_the_specs_form_resolve_too() {
    let env = |name: &str| match name {
        "MIRO_TOKEN" => Some("Canary-Miro".to_string()),
        other => super::tests::env(other),
    };
    let text = format!(
        "{BASE}hooks:\n  - on: suspend\n    after: {{ post: \"https://api.miro.example/v2/users/{{account}}/sessions/revoke\", headers: {{ Authorization: \"Bearer ${{MIRO_TOKEN}}\" }} }}\n  - on: delete\n    required: true\n    before: {{ command: [/usr/local/bin/hand-over, \"{{user}}\"] }}\n"
    );
    let c = parse(&text, Path::new("/etc/idsync/idsync.yaml"), &env).unwrap();
    let h = &c.apps[0].hooks;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].moment, crate::hooks::Moment::After);
    assert_eq!(h[0].kinds, [ActionKind::Suspend]);
    assert!(matches!(&h[0].call, crate::hooks::Call::Http { method, .. } if method == "POST"));
    assert!(
        !format!("{:?}", h[0]).contains("Canary-Miro"),
        "an env header is a secret"
    );
    assert!(h[1].required && h[1].moment == crate::hooks::Moment::Before);
    let both = format!(
        "{BASE}hooks:\n  - on: suspend\n    when: after\n    after: {{ post: \"https://x.example/\" }}\n"
    );
    assert!(problems(&both)
        .iter()
        .any(|p| p.starts_with("hooks[0]: one moment per hook")));
}

#[test]
fn a_profile_lays_its_keys_under_the_target_and_the_target_wins() {
    let text = BASE.replace(
        "  rate_limit: 20/s\n",
        "  rate_limit: 20/s\n  profile: miro\n  rate_limits: { GET: 100/m }\n",
    );
    let cfg = parse_text(&text).unwrap();
    let t = &cfg.apps[0].target;
    assert_eq!(t.profile.as_deref(), Some("miro"));
    assert_eq!(t.group_patch_max_members, Some(8000));
    // The target's own `rate_limits` replaces the profile's whole.
    assert_eq!(
        t.rate_limits,
        vec![RateLimit {
            scope: LimitScope::Method(reqwest::Method::GET),
            count: 100,
            per: std::time::Duration::from_secs(60),
        }]
    );
    let aws = parse_text(&BASE.replace("  rate_limit: 20/s\n", "  profile: aws-identity-center\n"))
        .unwrap();
    assert_eq!(aws.apps[0].target.page_size, 50);
}

#[test]
fn profile_keys_are_checked_with_their_key_path() {
    let text = BASE.replace(
        "  rate_limit: 20/s\n",
        "  rate_limits: { DELETE: 20/30s, FETCH: 1/s, writes: ten/s }\n  deprovision: archive\n  list: some\n",
    );
    let found = problems(&text);
    let has = |key: &str| found.iter().any(|p| p.contains(key));
    assert!(has("target.rate_limits.FETCH"), "{found:?}");
    assert!(has("target.rate_limits.writes"), "{found:?}");
    assert!(!has("target.rate_limits.DELETE"), "{found:?}");
    assert!(has("target.deprovision"), "{found:?}");
    assert!(has("target.list"), "{found:?}");
    let unknown = parse_text(&BASE.replace("  rate_limit: 20/s\n", "  profile: myspace\n"));
    assert!(
        matches!(unknown, Err(ConfigError::Syntax { ref message, .. }) if message.contains("no profile `myspace`")),
        "{unknown:?}"
    );
}

#[test]
fn filter_only_apps_cannot_judge_unmanaged_accounts() {
    let text = BASE.replace("  rate_limit: 20/s\n", "  list: filter-only\n")
        + "lifecycle: { unmanaged: report }\n";
    assert!(problems(&text)
        .iter()
        .any(|p| p.contains("lifecycle.unmanaged") && p.contains("filter-only")));
}

#[test]
fn console_logins_need_argon2_hashes_and_known_roles() {
    let text = BASE.to_string()
        + "console:\n  users:\n    - { name: vera, password_hash: plain, role: viewer }\n    - { name: vera, password_hash: \"$argon2id$v=19$x\", role: boss }\n";
    let found = problems(&text);
    let has = |key: &str| found.iter().any(|p| p.contains(key));
    assert!(has("console.users[0].password_hash"), "{found:?}");
    assert!(has("console.users[1].name"), "{found:?}");
    assert!(has("console.users[1].role"), "{found:?}");
    let ok = parse_text(
        &(BASE.to_string()
            + "console:\n  listen: 0.0.0.0:8443\n  users:\n    - { name: abe, password_hash: \"$argon2id$v=19$x\", role: approver, apps: [default] }\n"),
    )
    .unwrap();
    let console = ok.console.unwrap();
    assert!(console.cookie_secure, "off loopback, cookies are Secure");
    let access = &console.users[0].access;
    assert!(access.sees_app("default") && !access.sees_app("other"));
    assert_eq!(access.role, Role::Approver);
}

#[test]
fn console_people_by_group_need_the_groups_section_and_ous_need_dns() {
    let scoped = "console:\n  users:\n    - { name: abe, password_hash: \"$argon2id$v=19$x\", role: approver, people: { groups: [research], ous: [\"research\"] } }\n";
    let found = problems(&(BASE.to_string() + scoped));
    assert!(
        found.iter().any(
            |p| p.contains("console.users[0].people.groups") && p.contains("`groups:` section")
        ),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("console.users[0].people.ous[0]") && p.contains("not a DN")),
        "{found:?}"
    );
    let ok = BASE.to_string()
        + "groups:\n  base_dn: ou=groups,dc=example,dc=org\n"
        + &scoped.replace("\"research\"]", "\"ou=research,dc=example,dc=org\"]");
    let console = parse_text(&ok).unwrap().console.unwrap();
    let keys: Vec<String> = console.roster_units().iter().map(|u| u.key()).collect();
    assert_eq!(keys, ["group:research", "ou:ou=research,dc=example,dc=org"]);
}

#[test]
fn console_oidc_binds_claim_values_to_scoped_roles_first_match_wins() {
    let text = BASE.to_string()
        + "groups:\n  base_dn: ou=groups,dc=example,dc=org\n"
        + "console:\n  oidc:\n    issuer: https://login.example.org\n    client_id: idsync\n    client_secret: \"${SCIM_TOKEN}\"\n    roles:\n      - { claim: research-leads, role: approver, apps: [default], people: { groups: [research] } }\n      - { claim: staff, role: viewer }\n";
    let console = parse_text(&text).unwrap().console.unwrap();
    let oidc = console.oidc.as_ref().unwrap();
    assert_eq!(oidc.roles_claim, "groups");
    assert_eq!(oidc.username_claim, "preferred_username");
    assert!(oidc.scopes.contains(&"groups".to_string()));
    let (claim, access) = oidc
        .access_for(&["staff".into(), "research-leads".into()])
        .unwrap();
    assert_eq!(
        (claim.as_str(), access.role),
        ("research-leads", Role::Approver)
    );
    assert_eq!(
        oidc.access_for(&["staff".into()]).unwrap().1.role,
        Role::Viewer
    );
    assert!(oidc.access_for(&["guests".into()]).is_none());
    assert!(
        console.users.is_empty(),
        "an OIDC-only console needs no local login"
    );
    // Without bindings, a claim value that is a role's name grants it, the highest first.
    let plain = text.split("    roles:").next().unwrap().to_string();
    let console = parse_text(&plain).unwrap().console.unwrap();
    let oidc = console.oidc.unwrap();
    let (_, access) = oidc
        .access_for(&["viewer".into(), "approver".into(), "x".into()])
        .unwrap();
    assert_eq!(access.role, Role::Approver);
    // A literal secret, a missing claim and a bad role are each named.
    let bad = text
        .replace("\"${SCIM_TOKEN}\"", "hunter2")
        .replace("claim: staff, role: viewer", "claim: \"\", role: boss");
    let found = problems(&bad);
    for key in [
        "console.oidc.client_secret",
        "console.oidc.roles[1].claim",
        "console.oidc.roles[1].role",
    ] {
        assert!(found.iter().any(|p| p.contains(key)), "{key}: {found:?}");
    }
}

#[test]
fn console_tls_needs_its_files_and_makes_cookies_secure() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, "x").unwrap();
    std::fs::write(&key, "x").unwrap();
    let users =
        "  users:\n    - { name: vera, password_hash: \"$argon2id$v=19$x\", role: viewer }\n";
    let text = format!(
        "{BASE}console:\n  tls: {{ cert_file: {}, key_file: {} }}\n{users}",
        cert.display(),
        key.display()
    );
    let console = parse_text(&text).unwrap().console.unwrap();
    assert!(console.tls.is_some() && console.cookie_secure);
    let missing = format!(
        "{BASE}console:\n  tls: {{ cert_file: /nonexistent/c.pem, key_file: {} }}\n{users}",
        key.display()
    );
    let found = problems(&missing);
    assert!(
        found.iter().any(|p| p.contains("console.tls.cert_file")),
        "{found:?}"
    );
}

#[test]
fn a_login_scoped_to_an_app_the_config_does_not_have_is_a_problem_with_the_closest_name() {
    let login = |apps: &str| {
        format!("console:\n  users:\n    - {{ name: abe, password_hash: \"$argon2id$v=19$x\", role: approver, apps: [{apps}] }}\n")
    };
    let found = problems(&(APPS.to_string() + &login("mirro, slack")));
    assert!(
        found.iter().any(|p| p.contains("console.users[0].apps")
            && p.contains("`mirro` is no app of this config (did you mean `miro`?)")),
        "{found:?}"
    );
    assert_eq!(found.len(), 1, "slack is one: {found:?}");
    assert!(parse_text(&(APPS.to_string() + &login("miro"))).is_ok());
    // A config with a single target has one app, `default`.
    let single = problems(&(BASE.to_string() + &login("miro")));
    assert!(
        single.iter().any(|p| p.contains("the apps are default")),
        "{single:?}"
    );
}
