use super::*;
use crate::model::Anchor;

fn user(attrs: &[(&str, &[&str])]) -> DirectoryUser {
    DirectoryUser {
        anchor: Anchor::new("a1"),
        locator: "uid=a,dc=x".into(),
        attrs: attrs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect(),
        disabled: false,
        problems: vec![],
        photo: None,
        sync_id: None,
    }
}

#[test]
fn template_joins_attributes_and_text() {
    let t = Template::parse("{givenName} {sn}").unwrap();
    assert_eq!(
        t.render(&user(&[("givenName", &["Ada"]), ("sn", &["Lovelace"])])),
        Some("Ada Lovelace".into())
    );
}

#[test]
fn template_with_every_attribute_empty_yields_no_value() {
    let t = Template::parse("Dr. {givenName} {sn}").unwrap();
    assert_eq!(t.render(&user(&[])), None);
}

#[test]
fn template_index_picks_one_value_and_braces_escape() {
    let t = Template::parse("{{{phones[1]}}}").unwrap();
    assert_eq!(
        t.render(&user(&[("phones", &["1", "2"])])),
        Some("{2}".into())
    );
}

#[test]
fn template_errors_say_what_is_wrong() {
    assert!(Template::parse("{mail")
        .unwrap_err()
        .to_string()
        .contains("never closed"));
    assert!(Template::parse("{}").is_err());
    assert!(Template::parse("{a[x]}").is_err());
    assert!(Template::parse("a}").is_err());
}

#[test]
fn paths_round_trip_through_their_text() {
    for text in [
        "userName",
        "name.givenName",
        "emails[type eq \"work\"].value",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    ] {
        assert_eq!(FieldPath::parse(text).unwrap().to_string(), text);
    }
    assert!(FieldPath::parse("emails[display eq \"x\"].value").is_err());
    assert!(FieldPath::parse("active").is_err());
}

#[test]
fn multi_valued_set_keeps_other_elements() {
    let path = FieldPath::parse("emails[type eq \"work\"].value").unwrap();
    let mut r = json!({"emails": [{"type": "home", "value": "h@x"}]});
    path.set(&mut r, Some("w@x"));
    assert_eq!(path.get(&r), Some("w@x".into()));
    assert_eq!(r["emails"].as_array().unwrap().len(), 2);
    path.set(&mut r, None);
    assert_eq!(r["emails"], json!([{"type": "home", "value": "h@x"}]));
}

#[test]
fn extension_paths_add_their_schema() {
    let path =
        FieldPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
            .unwrap();
    let mut r = json!({"schemas": [CORE_USER_SCHEMA]});
    path.set(&mut r, Some("R&D"));
    assert_eq!(path.get(&r), Some("R&D".into()));
    assert_eq!(r["schemas"].as_array().unwrap().len(), 2);
    assert_eq!(
        path.patch_target(),
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
    );
}

#[test]
fn sub_attribute_get_is_case_insensitive() {
    let path = FieldPath::parse("name.givenName").unwrap();
    assert_eq!(
        path.get(&json!({"Name": {"GIVENNAME": "Ada"}})),
        Some("Ada".into())
    );
}

#[test]
fn a_plain_path_on_a_multi_valued_attribute_writes_a_one_element_list() {
    let path = FieldPath::parse("emails.value").unwrap();
    let mut r = serde_json::json!({});
    path.set(&mut r, Some("ada@x.org"));
    assert_eq!(
        r,
        serde_json::json!({ "emails": [{ "value": "ada@x.org" }] })
    );
    assert_eq!(path.get(&r).as_deref(), Some("ada@x.org"));
    assert_eq!(path.to_string(), "emails.value");
    assert_eq!(path.patch_target(), "emails");
}

#[test]
fn a_plain_path_reads_and_writes_the_primary_element_else_the_first() {
    let path = FieldPath::parse("emails.value").unwrap();
    let mut r = serde_json::json!({ "emails": [
        { "value": "home@x.org" },
        { "value": "work@x.org", "primary": true }
    ] });
    assert_eq!(path.get(&r).as_deref(), Some("work@x.org"));
    path.set(&mut r, Some("new@x.org"));
    assert_eq!(r["emails"][0]["value"], "home@x.org");
    assert_eq!(r["emails"][1]["value"], "new@x.org");
    let mut first = serde_json::json!({ "emails": [{ "value": "a@x" }, { "value": "b@x" }] });
    assert_eq!(path.get(&first).as_deref(), Some("a@x"));
    path.set(&mut first, None);
    assert_eq!(first, serde_json::json!({ "emails": [{ "value": "b@x" }] }));
}

#[test]
fn primary_selector_writes_primary_true_and_never_a_type() {
    let path = FieldPath::parse("emails[primary eq true].value").unwrap();
    let mut r = serde_json::json!({});
    path.set(&mut r, Some("ada@x.org"));
    assert_eq!(
        r,
        serde_json::json!({ "emails": [{ "value": "ada@x.org", "primary": true }] })
    );
    assert_eq!(path.to_string(), "emails[primary eq true].value");
}

#[test]
fn a_multi_valued_attribute_without_its_sub_attribute_is_refused_with_the_forms() {
    let err = FieldPath::parse("emails").unwrap_err().to_string();
    assert!(err.contains("`emails.value`"), "{err}");
    assert!(err.contains("[primary eq true]"), "{err}");
    // A single-valued attribute with a sub-attribute stays an object.
    let mut r = serde_json::json!({});
    FieldPath::parse("name.givenName")
        .unwrap()
        .set(&mut r, Some("Ada"));
    assert_eq!(r, serde_json::json!({ "name": { "givenName": "Ada" } }));
}
