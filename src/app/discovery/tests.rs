//! The mapping held against the documents Canaille's SCIM API really serves (recorded from
//! canaille 0.3.6; tests/canaille.rs checks the same against the live server).

use super::*;
use crate::mapping::{FieldMapping, Template};

fn canaille() -> Discovery {
    let doc = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    Discovery::from_documents(
        Some(&doc(include_str!("canaille-ServiceProviderConfig.json"))),
        Some(&doc(include_str!("canaille-Schemas.json"))),
        Some(&doc(include_str!("canaille-ResourceTypes.json"))),
    )
}

fn mapping(entries: &[(&str, bool)]) -> Mapping {
    Mapping::new(
        entries
            .iter()
            .map(|(path, once)| FieldMapping {
                path: FieldPath::parse(path).unwrap(),
                template: Template::parse("{cn}").unwrap(),
                set_once: *once,
            })
            .collect(),
    )
    .unwrap()
}

fn findings(d: &Discovery, m: &Mapping) -> Vec<String> {
    d.check_mapping(m, &|k| format!("mapping.{k}"))
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_service_provider_config_is_read() {
    let d = canaille();
    assert!(!d.filter, "Canaille says filter.supported: false");
    assert!(d.etag && d.patch && !d.bulk);
    assert!(d.member_ref(), "Canaille's Group members have `$ref`");
    assert!(d.user.as_ref().unwrap().extensions[0]
        .0
        .ends_with("enterprise:2.0:User"));
}

#[test]
fn every_mismatch_names_its_mapping_key_and_the_fix() {
    let found = findings(
        &canaille(),
        &mapping(&[
            ("userName", false),
            ("name.givenName", false),
            ("emails[type eq \"work\"].value", false),
            ("jobTitle", false),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                false,
            ),
        ]),
    );
    let has = |key: &str, words: &str| {
        assert!(
            found.iter().any(|f| f.contains(key) && f.contains(words)),
            "no finding for {key} saying {words:?} in {found:#?}"
        )
    };
    has(
        "mapping.emails[type eq \"work\"].value",
        "map `emails.value` instead",
    );
    has("mapping.jobTitle", "has no attribute `jobTitle`");
    has("mapping.jobTitle", "did you mean `title`?");
    has("mapping.name.formatted", "requires `name.formatted`");
    has("mapping.name.familyName", "requires `name.familyName`");
    has(
        "mapping.userName",
        "warning: mapping.userName: `userName` is immutable",
    );
    assert_eq!(found.len(), 5, "{found:#?}");
}

#[test]
fn a_mapping_that_fits_has_no_findings() {
    let found = findings(
        &canaille(),
        &mapping(&[
            ("userName", false),
            ("name.givenName", false),
            ("name.familyName", false),
            ("name.formatted", false),
            ("emails.value", false),
            ("title", false),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                false,
            ),
        ]),
    );
    assert_eq!(found, vec!["warning: mapping.userName: `userName` is immutable in this app (set when the account is created): a rename in the directory fails for that person; map userName from an attribute that never changes, or rename such accounts in the app by hand".to_string()]);
}

#[test]
fn read_only_and_unknown_extension_attributes_are_errors() {
    let found = findings(
        &canaille(),
        &mapping(&[
            ("userName", false),
            ("name.formatted", false),
            ("name.familyName", false),
            ("groups.value", false),
            (
                "urn:example:params:scim:schemas:extension:acme:2.0:User:badge",
                false,
            ),
        ]),
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("mapping.groups.value") && f.contains("read-only")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("no schema extension `urn:example")),
        "{found:#?}"
    );
}

#[test]
fn external_id_is_common_to_every_resource_unless_the_schema_says_otherwise() {
    let mut d = canaille();
    let m = mapping(&[
        ("userName", false),
        ("name.formatted", false),
        ("name.familyName", false),
        ("externalId", false),
    ]);
    // Canaille lists it read-only: an error.
    assert!(findings(&d, &m)
        .iter()
        .any(|f| f.contains("mapping.externalId") && f.contains("read-only")));
    // A schema that does not list it (scim2-server's): fine.
    let user = d.user.as_mut().unwrap();
    user.attributes.retain(|a| a.name != "externalId");
    assert!(!findings(&d, &m).iter().any(|f| f.contains("externalId")));
}

#[test]
fn an_app_that_serves_no_schemas_is_not_checked() {
    let d = Discovery::from_documents(None, None, None);
    assert_eq!(d, Discovery::default());
    assert!(findings(&d, &mapping(&[("userName", false), ("jobTitle", false)])).is_empty());
}
