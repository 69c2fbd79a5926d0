//! Black-box: profile photos from slapd's jpegPhoto to the real scim2-server (SCIM `photos`)
//! or to a photo URL of the app, uploaded only when their SHA-256 changed.

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::proxy::{Fault, HttpFaults, Rule};
use common::{action_of, person_ldif, retarget, Testbed};
use idsync::photo::{digest, sample_jpeg, sample_png};
use serde_json::Value;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A person's LDIF with a jpegPhoto.
fn with_photo(uid: &str, given: &str, photo: &[u8]) -> String {
    let ldif = person_ldif(uid, given, "Example", "Engineer", "ou=people");
    format!("{}\njpegPhoto:: {}\n\n", ldif.trim_end(), b64(photo))
}

fn photo_source(tb: &Testbed) -> String {
    format!("{}  photo: jpegPhoto\n", tb.base_source())
}

/// The data URI bytes of the account's `photo` entry, if it has one.
fn app_photo(u: &Value) -> Option<(String, Vec<u8>)> {
    let p = u["photos"]
        .as_array()?
        .iter()
        .find(|p| p["type"] == "photo")?
        .clone();
    assert_eq!(p["primary"], true);
    let value = p["value"].as_str()?;
    let (head, data) = value.strip_prefix("data:")?.split_once(";base64,")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    Some((head.to_string(), bytes))
}

#[test]
fn a_directory_photo_reaches_the_app_once_and_each_change_is_uploaded_once() {
    let jpeg = sample_jpeg(96, 96, 800);
    let ldif = with_photo("ada", "Ada", &jpeg)
        + &person_ldif("alan", "Alan", "Turing", "Researcher", "ou=people");
    let tb = Testbed::start(&ldif);
    let cfg = tb.write_config(&photo_source(&tb), "", "");

    let plan = tb.ok(&cfg, &["plan"]);
    assert!(
        plan.contains(&format!("photo: (none) -> \"{}\"", &digest(&jpeg)[..12])),
        "plan shows the digest prefix:\n{plan}"
    );
    assert!(!plan.contains(&b64(&jpeg)[..40]), "never the bytes");

    tb.ok(&cfg, &["sync"]);
    let ada = tb.scim_user("ada@example.org").unwrap();
    assert_eq!(app_photo(&ada), Some(("image/jpeg".into(), jpeg.clone())));
    assert!(app_photo(&tb.scim_user("alan@example.org").unwrap()).is_none());

    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_writes(), writes, "a second sync transfers no photo");

    let png = sample_png(120, 80);
    tb.ldapmodify(&format!(
        "dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: jpegPhoto\njpegPhoto:: {}\n",
        b64(&png)
    ));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        tb.scim_writes(),
        writes + 1,
        "a changed photo is uploaded once"
    );
    let ada = tb.scim_user("ada@example.org").unwrap();
    assert_eq!(app_photo(&ada), Some(("image/png".into(), png.clone())));
    let run = tb.last_run(&cfg);
    assert_eq!(run["actions"][0]["before"]["photo"], digest(&jpeg)[..12]);
    assert_eq!(run["actions"][0]["after"]["photo"], digest(&png)[..12]);

    tb.ldapmodify(
        "dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\ndelete: jpegPhoto\n",
    );
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_writes(), writes + 2);
    assert!(
        app_photo(&tb.scim_user("ada@example.org").unwrap()).is_none(),
        "a removed photo is removed"
    );
    let writes = tb.scim_writes();
    tb.ok(&cfg, &["sync"]);
    assert_eq!(tb.scim_writes(), writes);
}

#[test]
fn an_oversized_and_a_non_image_photo_are_warnings_and_the_rest_of_the_run_applies() {
    let good = sample_jpeg(64, 64, 700);
    let ldif = with_photo("ada", "Ada", &sample_jpeg(64, 64, 5000))
        + &with_photo("alan", "Alan", b"%PDF-1.4 not a photo at all")
        + &with_photo("grace", "Grace", &good);
    let tb = Testbed::start(&ldif);
    let cfg = tb.write_config(&photo_source(&tb), "  photo_max_bytes: 2000\n", "");

    let out = tb.ok(&cfg, &["sync"]);
    assert!(out.contains(": ok ("), "the run is ok: {out}");
    for who in ["ada@example.org", "alan@example.org"] {
        let u = tb.scim_user(who).expect("created anyway");
        assert!(app_photo(&u).is_none(), "{who} has no photo uploaded");
    }
    assert_eq!(
        app_photo(&tb.scim_user("grace@example.org").unwrap()),
        Some(("image/jpeg".into(), good))
    );

    let run = tb.last_run(&cfg);
    assert_eq!(run["run"]["outcome"], "ok");
    let notices: Vec<String> = run["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| format!("{}: {}", n["user_name"], n["message"]))
        .collect();
    let text = notices.join("\n");
    assert!(
        text.contains("ada@example.org")
            && text.contains("5000 bytes, more than target.photo_max_bytes (2000)"),
        "{text}"
    );
    assert!(
        text.contains("alan@example.org") && text.contains("not a JPEG or PNG image"),
        "{text}"
    );
    let table = tb.ok(&cfg, &["show", "last"]);
    assert!(
        table.contains("notice  ada@example.org: photo not synced"),
        "{table}"
    );
}

/// One request the photo endpoint took: (method, path, content type, body).
type Seen = (String, String, String, Vec<u8>);

/// An app endpoint that takes photo bytes, recording each request.
struct PhotoEndpoint {
    served: common::Served,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl PhotoEndpoint {
    fn start() -> PhotoEndpoint {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let log = log.clone();
            async move {
                let header = |req: &axum::extract::Request, name: &str| {
                    req.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let auth = header(&req, "authorization");
                let mime = header(&req, "content-type");
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .unwrap()
                    .to_vec();
                if auth != format!("Bearer {}", common::TOKEN) {
                    return axum::http::StatusCode::UNAUTHORIZED;
                }
                log.lock().unwrap().push((method, path, mime, body));
                axum::http::StatusCode::NO_CONTENT
            }
        });
        PhotoEndpoint {
            served: common::serve(app),
            seen,
        }
    }
}

#[test]
fn photos_can_be_put_to_a_photo_url_of_the_app() {
    let png = sample_png(100, 100);
    let tb = Testbed::start(&with_photo("ada", "Ada", &png));
    let endpoint = PhotoEndpoint::start();
    let target = format!(
        "  photo: {{ put: \"http://127.0.0.1:{}/api/users/{{id}}/photo\", allow_other_origin: true }}\n",
        endpoint.served.port
    );
    let cfg = tb.write_config(&photo_source(&tb), &target, "");

    tb.ok(&cfg, &["sync"]);
    let id = tb.scim_user("ada@example.org").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = endpoint.seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        1,
        "{:?}",
        seen.iter().map(|s| (&s.0, &s.1)).collect::<Vec<_>>()
    );
    assert_eq!(
        (seen[0].0.as_str(), seen[0].1.as_str(), seen[0].2.as_str()),
        ("PUT", &*format!("/api/users/{id}/photo"), "image/png")
    );
    assert_eq!(seen[0].3, png, "the exact bytes");

    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        endpoint.seen.lock().unwrap().len(),
        1,
        "unchanged: not sent again"
    );

    tb.ldapmodify(
        "dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\ndelete: jpegPhoto\n",
    );
    tb.ok(&cfg, &["sync"]);
    let seen = endpoint.seen.lock().unwrap().clone();
    assert_eq!(
        (seen[1].0.as_str(), seen[1].1.as_str()),
        ("DELETE", &*format!("/api/users/{id}/photo"))
    );
}

/// An app whose `photos` is read-only answers the photo with 400 (RFC 7644 3.5.2): the
/// account is still created and linked, the refusal is a notice, and no run fails or
/// makes a second account.
#[test]
fn a_photo_the_app_refuses_is_a_notice_and_the_create_and_its_link_stand() {
    use common::proxy::{Fault, HttpFaults, Rule};
    let jpeg = sample_jpeg(64, 64, 2000);
    let ldif = with_photo("ada", "Ada", &jpeg);
    let tb = Testbed::start(&ldif);
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    proxy.add(
        Rule::new(
            "PATCH",
            "/v2/Users/",
            Fault::Status {
                code: 400,
                retry_after: None,
            },
        )
        .body("\"photos\"")
        .times(100),
    );
    let cfg = tb.write_config(&photo_source(&tb), "", "");
    common::retarget(&cfg, &tb.scim_url(), &proxy.scim_url());
    let out = tb.idsync(&cfg, &["sync"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("applied 1, failed 0"), "{stdout}");
    let show = tb.ok(&cfg, &["show", "last"]);
    assert!(
        show.contains("notice: the app refused the photo (400"),
        "{show}"
    );
    // Linked: the next run updates nothing but tries the photo again, and never creates.
    let again = tb.idsync(&cfg, &["sync"]);
    assert!(again.status.success());
    assert_eq!(tb.scim_users().len(), 1, "no second account");
    let show = tb.ok(&cfg, &["show", "last"]);
    assert!(
        !show.contains("create") && !show.contains("adopt"),
        "{show}"
    );
}

/// Photo uploads (the data: URI) the proxy saw.
fn photo_sends(proxy: &HttpFaults) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|s| s.method != "GET" && s.body.contains("data:image"))
        .count()
}

#[test]
fn a_photo_the_app_refuses_for_good_is_remembered_not_sent_every_run() {
    let jpeg = sample_jpeg(64, 64, 400);
    let ldif = with_photo("ada", "Ada", &jpeg)
        + &person_ldif("alan", "Alan", "Turing", "Researcher", "ou=people");
    let tb = Testbed::start(&ldif);
    // A strict app: photos.value is an external reference, a data: URI is refused.
    let proxy = HttpFaults::start(&format!("http://127.0.0.1:{}", tb.scim_port));
    proxy.add(
        Rule::new(
            "WRITE",
            "/Users",
            Fault::ScimError {
                code: 400,
                scim_type: "invalidValue",
                detail: "photos.value must be an external reference (a URL)",
            },
        )
        .body("data:image")
        .times(1000),
    );
    let cfg = tb.write_config(&photo_source(&tb), "", "");
    retarget(&cfg, &tb.scim_url(), &proxy.scim_url());
    // Its schema says so (as RFC 7643's does), and `check --connect` names the choices.
    let check = tb.ok(&cfg, &["check", "--connect"]);
    assert!(
        check.contains("`photos.value` an external reference") && check.contains("photo: none"),
        "{check}"
    );

    // The first sync creates both; Ada's photo is refused and remembered.
    tb.ok(&cfg, &["sync"]);
    assert_eq!(photo_sends(&proxy), 1);
    let run = tb.last_run(&cfg);
    let ada = action_of(&run, "ada@example.org");
    assert_eq!(ada["status"], "applied", "the account was made: {ada}");
    assert!(
        ada["error"]
            .as_str()
            .unwrap()
            .contains("refused the photo for good (400 invalidValue"),
        "{ada}"
    );

    // Nothing changed: the photo is not sent again, and the plan has nothing to do.
    let out = tb.idsync(&cfg, &["plan", "--detailed-exitcode"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("photo left alone"), "{stdout}");
    tb.ok(&cfg, &["sync"]);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(
        photo_sends(&proxy),
        1,
        "sent at most once per back-off step"
    );

    // A new photo upstream is another value: sent at once (and refused: a photo-only
    // update the app refused is `refused`, not a change).
    let png = sample_png(40, 40);
    tb.ldapmodify(&format!(
        "dn: uid=ada,ou=people,dc=example,dc=org\nchangetype: modify\nreplace: jpegPhoto\njpegPhoto:: {}\n",
        b64(&png)
    ));
    tb.ok(&cfg, &["sync"]);
    assert_eq!(photo_sends(&proxy), 2);
    let run = tb.last_run(&cfg);
    assert_eq!(run["actions"][0]["status"], "refused", "{run}");
    let runs: Value =
        serde_json::from_str(&tb.ok(&cfg, &["runs", "--limit", "1", "--format", "json"])).unwrap();
    assert_eq!(runs[0]["counts"]["applied"], 0, "{runs}");
    assert_eq!(runs[0]["counts"]["app_refused"], 1, "{runs}");
    tb.ok(&cfg, &["sync"]);
    assert_eq!(photo_sends(&proxy), 2);

    // `--full` asks again.
    tb.ok(&cfg, &["sync", "--full"]);
    assert_eq!(photo_sends(&proxy), 3);
    tb.ok(&cfg, &["sync"]);
    assert_eq!(photo_sends(&proxy), 3);
}
