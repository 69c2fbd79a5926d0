//! Black-box against a second SCIM server this project did not write: Canaille (PyPI), an
//! open-source identity server, whose SCIM API differs from scim2-server the way real apps
//! do: it ignores `filter` (and says so), refuses `type` and `primary` on emails, requires
//! `name.formatted` and `name.familyName`, makes `photos` read-only and `userName`
//! immutable, requires `$ref` on group members, lists members by userName, and fails
//! (500) on any list that asks for a page size (`count`). People,
//! groups and photos converge with a mapping that fits it, and the next sync writes nothing.

mod common;

use common::proxy::HttpFaults;
use common::*;
use idsync::photo::sample_jpeg;

const GROUPS_OU: &str =
    "dn: ou=groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: groups\n\n";

/// Ada (with a photo), Alan, Grace; `eng` = {ada, alan}.
fn directory() -> String {
    use base64::Engine as _;
    let photo = base64::engine::general_purpose::STANDARD.encode(sample_jpeg(8, 8, 2000));
    let people = trio().replacen("uid: ada\n", &format!("uid: ada\njpegPhoto:: {photo}\n"), 1);
    format!(
        "{people}{GROUPS_OU}dn: cn=eng,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: eng\nmember: uid=ada,ou=people,dc=example,dc=org\nmember: uid=alan,ou=people,dc=example,dc=org\n\n"
    )
}

/// A mapping for Canaille's schema: plain `emails.value` (a one-element list), the name
/// parts it requires.
const FITS: &str = r#"mapping:
  userName: "{mail}"
  name.givenName: "{givenName}"
  name.familyName: "{sn}"
  name.formatted: "{cn}"
  displayName: "{cn}"
  title: "{title}"
  emails.value: "{mail}"
groups:
  base_dn: ou=groups,dc=example,dc=org
"#;

/// The config for an app at `url` with this `mapping:` (and groups) block; `page_size: 0`
/// asks Canaille for no `count`.
fn config(tb: &Testbed, url: &str, mapping_and_groups: &str) -> std::path::PathBuf {
    with_target(tb, url, "  page_size: 0\n", mapping_and_groups)
}

fn with_target(
    tb: &Testbed,
    url: &str,
    target_extra: &str,
    mapping_and_groups: &str,
) -> std::path::PathBuf {
    let text = format!(
        "state_dir: {state}\n{source}  photo: jpegPhoto\ntarget:\n  kind: scim\n  url: {url}\n  token_file: scim.token\n{target_extra}match: {{ target: userName, source: \"{{mail}}\" }}\n{mapping_and_groups}",
        state = tb.state_dir().display(),
        source = tb.base_source(),
    );
    let path = tb.dir.path().join("canaille.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn eng_members(app: &ScimServer) -> Vec<String> {
    let eng = app
        .group_resources()
        .into_iter()
        .find(|g| g["displayName"] == "eng")
        .expect("group eng in Canaille");
    let mut names: Vec<String> = eng["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| m["value"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn people_groups_and_photos_converge_on_canaille_and_the_next_sync_writes_nothing() {
    let tb = Testbed::start(&directory());
    let app = ScimServer::canaille();
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", app.port));
    let url = format!("http://127.0.0.1:{}{}", proxy.port, app.base_path());
    let cfg = config(&tb, &url, FITS);

    let check = tb.ok(&cfg, &["check", "--connect"]);
    assert!(check.contains("filter no"), "{check}");
    assert!(check.contains("group members with $ref"), "{check}");
    assert!(
        check.contains("warning: mapping.userName: `userName` is immutable"),
        "{check}"
    );
    assert!(
        check.contains("warning: target.photo: `photos` is read-only"),
        "{check}"
    );
    assert!(!check.contains("error:"), "{check}");

    tb.ok(&cfg, &["sync"]);
    let users = app.user_resources();
    assert_eq!(users.len(), 3, "{users:#?}");
    let ada = users
        .iter()
        .find(|u| u["userName"] == "ada@example.org")
        .unwrap();
    assert_eq!(
        ada["emails"],
        serde_json::json!([{ "value": "ada@example.org" }])
    );
    assert_eq!(ada["name"]["formatted"], "Ada Lovelace");
    assert!(ada.get("photos").is_none(), "no photo was sent: {ada}");
    // Canaille lists members by userName: recognised, not re-added.
    assert_eq!(eng_members(&app), ["ada@example.org", "alan@example.org"]);
    let shown = tb.ok(&cfg, &["show", "last"]);
    assert!(
        shown.contains("photos are read-only in app default"),
        "{shown}"
    );
    // No filter was sent to an app that says it has none.
    assert!(
        !proxy.seen().iter().any(|s| s.path.contains("filter=")),
        "{:?}",
        proxy.seen()
    );

    let before = proxy.writes();
    let out = tb.ok(&cfg, &["sync"]);
    assert_eq!(proxy.writes(), before, "a second sync wrote: {out}");

    // Alan leaves eng and is disabled: his suspension and his removal from the group (by
    // the userName Canaille lists him as) converge, and the next sync is quiet again.
    tb.ldapmodify("dn: cn=eng,ou=groups,dc=example,dc=org\nchangetype: modify\ndelete: member\nmember: uid=alan,ou=people,dc=example,dc=org\n");
    tb.ldapmodify("dn: uid=alan,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(eng_members(&app), ["ada@example.org"]);
    assert_eq!(
        app.users(),
        [
            ("ada@example.org".to_string(), true),
            ("alan@example.org".to_string(), false),
            ("grace@example.org".to_string(), true),
        ]
    );
    let before = proxy.writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(proxy.writes(), before, "the sync after the changes wrote");
    let dupes = app.user_resources().len();
    assert_eq!(dupes, 3, "no duplicate account");
}

#[test]
fn check_connect_names_each_mapping_mismatch_with_canailles_schema_and_the_fix() {
    let tb = Testbed::start(&trio());
    let app = ScimServer::canaille();
    // The mapping that suits scim2-server, a misremembered attribute, the default page size.
    let cfg = with_target(
        &tb,
        &app.url(),
        "",
        "mapping:\n  userName: \"{mail}\"\n  name.givenName: \"{givenName}\"\n  emails[type eq \"work\"].value: \"{mail}\"\n  jobTitle: \"{title}\"\n",
    );
    let out = tb.idsync(&cfg, &["check", "--connect"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for (key, says) in [
        (
            "error: mapping.emails[type eq \"work\"].value",
            "map `emails.value` instead",
        ),
        ("error: mapping.jobTitle", "did you mean `title`?"),
        ("error: mapping.name.formatted", "requires `name.formatted`"),
        (
            "error: mapping.name.familyName",
            "requires `name.familyName`",
        ),
        (
            "error: target.page_size",
            "fails when a list asks for a page size (`count`",
        ),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(key) && l.contains(says)),
            "no `{key}` saying {says:?} in:\n{text}"
        );
    }
    assert!(text.contains("5 problem(s) with the app"), "{text}");
    // Against scim2-server the same mapping's typed email is fine.
    let reference = config(
        &tb,
        &tb.scim_url(),
        "mapping:\n  userName: \"{mail}\"\n  name.givenName: \"{givenName}\"\n  emails[type eq \"work\"].value: \"{mail}\"\n",
    );
    let text = tb.ok(&reference, &["check", "--connect"]);
    assert!(!text.contains("error:"), "{text}");
}

fn journal(tb: &Testbed) -> rusqlite::Connection {
    rusqlite::Connection::open(tb.state_dir().join("journal.sqlite3")).unwrap()
}

fn patches(proxy: &HttpFaults) -> usize {
    proxy.count("PATCH", "/Users/")
}

#[test]
fn a_rename_canaille_refuses_is_escrowed_then_quarantined_and_never_fails_the_run() {
    let tb = Testbed::start(&directory());
    let app = ScimServer::canaille();
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", app.port));
    let url = format!("http://127.0.0.1:{}{}", proxy.port, app.base_path());
    let cfg = config(&tb, &url, FITS);
    tb.ok(&cfg, &["sync"]);

    // Ada's mail changes: her userName with it, which Canaille answers with a 500 (an HTML
    // page) every time. Grace's title changes in the same run.
    tb.ldapmodify("dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: mail\nmail: ada.l@example.org\n");
    tb.ldapmodify("dn: uid=grace,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: title\ntitle: Rear Admiral\n");
    let out = tb.idsync(&cfg, &["sync"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let run = tb.last_run(&cfg);
    assert_eq!(run["run"]["counts"]["failed"], 1, "{text}\n{run:#}");
    assert_eq!(
        run["run"]["counts"]["applied"], 1,
        "the rest of the run proceeds: {text}"
    );
    let grace = app
        .user_resources()
        .into_iter()
        .find(|u| u["userName"] == "grace@example.org")
        .unwrap();
    assert_eq!(grace["title"], "Rear Admiral");

    // The next cycle does not send it again: it waits in escrow, with a notice saying so.
    let before = patches(&proxy);
    let out = tb.ok(&cfg, &["sync"]);
    assert_eq!(
        patches(&proxy),
        before,
        "an escrowed action was sent again: {out}"
    );
    let plan = tb.ok(&cfg, &["plan"]);
    assert!(plan.contains("escrowed update: failed 1 time(s)"), "{plan}");
    assert!(plan.contains("next try after"), "{plan}");

    // Its time comes (the journal aged): tried once more, and on the fourth failure it is
    // quarantined: held for an operator, still never sent by itself.
    journal(&tb)
        .execute(
            "UPDATE escrow SET failures = 3, next_try = '2000-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
    let out = tb.idsync(&cfg, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed action fails the sync's exit"
    );
    assert!(patches(&proxy) > before, "tried again when its time came");
    let before = patches(&proxy);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(patches(&proxy), before, "a quarantined action was sent");
    let held = tb.ok(&cfg, &["approvals"]);
    assert!(held.contains("quarantined: failed 4 times"), "{held}");
    assert!(held.contains("ada"), "{held}");
    assert_eq!(app.user_resources().len(), 3, "no duplicate account");
}

#[test]
fn an_edit_made_in_an_app_that_cannot_filter_is_repaired_at_the_full_read_full_every_makes() {
    let tb = Testbed::start(&trio());
    let app = ScimServer::canaille();
    let cfg = with_target(
        &tb,
        &app.url(),
        "  page_size: 0\n  full_every: 3s\n",
        &FITS.replace("groups:\n  base_dn: ou=groups,dc=example,dc=org\n", ""),
    );
    tb.ok(&cfg, &["sync"]);
    // An admin changes Grace's title in Canaille itself (a whole-resource PUT).
    let grace = app
        .user_resources()
        .into_iter()
        .find(|u| u["userName"] == "grace@example.org")
        .unwrap();
    let mut edited = grace.clone();
    edited["title"] = "Commodore".into();
    let status = reqwest::blocking::Client::new()
        .put(format!(
            "{}/Users/{}",
            app.url(),
            grace["id"].as_str().unwrap()
        ))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(edited.to_string())
        .send()
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let title = |app: &ScimServer| {
        app.user_resources()
            .into_iter()
            .find(|u| u["userName"] == "grace@example.org")
            .unwrap()["title"]
            .clone()
    };
    // Canaille cannot say what changed: the next cycle plans against what it remembers.
    tb.ok(&cfg, &["sync"]);
    assert_eq!(title(&app), "Commodore");
    assert!(
        tb.last_app_read(&cfg).contains("app remembered"),
        "{}",
        tb.last_app_read(&cfg)
    );
    // The full read full_every makes sees the edit and repairs it.
    std::thread::sleep(std::time::Duration::from_secs(3));
    tb.ok(&cfg, &["sync"]);
    assert!(
        tb.last_app_read(&cfg)
            .contains("app listed in full (target.full_every: 3s)"),
        "{}",
        tb.last_app_read(&cfg)
    );
    assert_eq!(title(&app), "Admiral");
}
