//! Provider profiles (`target.profile: NAME`): what discovery cannot tell about a real app
//! (page caps, group PATCH sizes, per-method rate limits, how it deprovisions), as data
//! files in `config/profiles/`, each citing its sources. A profile is a set of `target:`
//! keys laid under the app's own: every key the target block sets wins.

use serde_yaml::Mapping;

/// The profiles idsync ships, by name.
pub const PROFILES: &[(&str, &str)] = &[
    (
        "aws-identity-center",
        include_str!("../../config/profiles/aws-identity-center.yaml"),
    ),
    (
        "atlassian",
        include_str!("../../config/profiles/atlassian.yaml"),
    ),
    (
        "canaille",
        include_str!("../../config/profiles/canaille.yaml"),
    ),
    ("canva", include_str!("../../config/profiles/canva.yaml")),
    (
        "github-emu",
        include_str!("../../config/profiles/github-emu.yaml"),
    ),
    (
        "hcp-terraform",
        include_str!("../../config/profiles/hcp-terraform.yaml"),
    ),
    ("miro", include_str!("../../config/profiles/miro.yaml")),
    (
        "pagerduty",
        include_str!("../../config/profiles/pagerduty.yaml"),
    ),
    ("slack", include_str!("../../config/profiles/slack.yaml")),
    ("zoom", include_str!("../../config/profiles/zoom.yaml")),
];

/// Lays the named profile's keys under a `target:` block (its own keys win). An unknown
/// name is an error listing the known ones.
pub fn lay_under(target: &mut Mapping) -> Result<(), String> {
    let Some(name) = target.get("profile") else {
        return Ok(());
    };
    let Some(name) = name.as_str() else {
        return Err("target.profile: must be a profile's name".into());
    };
    let Some((_, text)) = PROFILES.iter().find(|(n, _)| *n == name) else {
        let known: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "target.profile: no profile `{name}`; idsync knows {} (or leave it out and set the keys yourself)",
            known.join(", ")
        ));
    };
    let profile: Mapping = serde_yaml::from_str(text).expect("shipped profiles parse (tested)");
    for (k, v) in profile {
        if !target.contains_key(&k) {
            target.insert(k, v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Value;

    /// One shipped profile's keys.
    fn keys(name: &str) -> Option<Mapping> {
        let (_, text) = PROFILES.iter().find(|(n, _)| *n == name)?;
        serde_yaml::from_str(text).ok()
    }

    #[test]
    fn every_shipped_profile_parses_and_cites_a_source() {
        for (name, text) in PROFILES {
            assert!(keys(name).is_some_and(|m| !m.is_empty()), "{name}");
            assert!(text.contains("Source"), "{name} cites no source");
        }
    }

    #[test]
    fn every_profile_file_is_shipped() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/profiles");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            assert!(
                PROFILES.iter().any(|(n, _)| *n == name),
                "config/profiles/{name}.yaml is not in PROFILES"
            );
        }
    }

    #[test]
    fn the_target_block_wins_over_its_profile() {
        let mut t: Mapping =
            serde_yaml::from_str("profile: aws-identity-center\nmax_page: 20\n").unwrap();
        lay_under(&mut t).unwrap();
        assert_eq!(t.get("max_page"), Some(&Value::from(20)));
        assert_eq!(t.get("group_patch_max_members"), Some(&Value::from(100)));
    }

    #[test]
    fn an_unknown_profile_lists_the_known_ones() {
        let mut t: Mapping = serde_yaml::from_str("profile: myspace\n").unwrap();
        let err = lay_under(&mut t).unwrap_err();
        assert!(
            err.contains("no profile `myspace`") && err.contains("miro"),
            "{err}"
        );
    }
}
