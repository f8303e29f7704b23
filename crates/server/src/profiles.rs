//! The configuration profiles embedded from `profiles/*.toml`.

use crate::ServerError;
use sql::bootstrap::Profile;

/// Every profile, as (name, TOML text).
const PROFILES: &[(&str, &str)] = &[
    ("default", include_str!("../../../profiles/default.toml")),
    (
        "replication-source",
        include_str!("../../../profiles/replication-source.toml"),
    ),
    (
        "replication-target",
        include_str!("../../../profiles/replication-target.toml"),
    ),
];

/// The names of the embedded profiles.
pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|(n, _)| *n).collect()
}

/// The profile `name`, parsed and validated.
pub fn load(name: &str) -> Result<Profile, ServerError> {
    let (_, text) = PROFILES.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        ServerError::Config(format!(
            "unknown configuration profile {name:?}; valid profiles: {}",
            names().join(", ")
        ))
    })?;
    let profile: Profile = toml::from_str(text)
        .map_err(|e| ServerError::Config(format!("embedded profile {name} is invalid: {e}")))?;
    profile
        .validate()
        .map_err(|e| ServerError::Config(format!("embedded profile {name} is invalid: {e}")))?;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: every embedded profile parses and validates, names match files, and an unknown
    // name lists the valid ones.
    #[test]
    fn embedded_profiles_are_valid() {
        for name in names() {
            let p = load(name).expect(name);
            assert_eq!(p.name, name);
        }
        let source = load("replication-source").expect("source");
        let vcs: Vec<_> = source
            .virtual_clusters
            .iter()
            .map(|v| (v.id, v.name.as_str()))
            .collect();
        assert_eq!(vcs, vec![(2, "template"), (3, "application")]);
        let err = load("nope").expect_err("unknown").to_string();
        assert!(
            err.contains("replication-source") && err.contains("default"),
            "{err}"
        );
    }
}
