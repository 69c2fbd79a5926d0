//! The nouns every other module speaks: directory users, app accounts, anchors and links.
//!
//! Pure data with the directory's notion of equality (a `UserName` compares without case, an
//! `Anchor` is opaque). No I/O here.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The directory user's immutable id (`entryUUID`, AD `objectGUID`, Graph `id`): opaque.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Anchor(String);

impl Anchor {
    pub fn new(value: impl Into<String>) -> Self {
        Anchor(value.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SCIM `userName`: equal without regard to case, as SCIM servers compare it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserName(String);

impl UserName {
    pub fn new(value: impl Into<String>) -> Self {
        UserName(value.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl PartialEq for UserName {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for UserName {}
impl PartialOrd for UserName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for UserName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}
impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One person as the directory describes them, read-only to idsync.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryUser {
    pub anchor: Anchor,
    /// Where the entry lives (DN for LDAP); for messages only, never for identity.
    pub locator: String,
    /// Attribute values keyed by lower-cased attribute name.
    pub attrs: BTreeMap<String, Vec<String>>,
    /// Disabled upstream (by the configured rule); disabled people are never created.
    pub disabled: bool,
    /// Values that could not be read (e.g. not UTF-8): the person is kept as present but not
    /// changed, and the problem is reported.
    pub problems: Vec<String>,
    /// The profile photo, when photos are synced and the person has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<crate::photo::Photo>,
}

impl DirectoryUser {
    /// All values of an attribute (case-insensitive name).
    pub fn values(&self, attr: &str) -> &[String] {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// One user resource in the target app, as last read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub user_name: UserName,
    pub active: bool,
    /// The whole resource as the app returned it.
    pub resource: serde_json::Value,
}

/// What the journal remembers of a link between an anchor and an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Active,
    Suspended,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Active => "active",
            LinkState::Suspended => "suspended",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(LinkState::Active),
            "suspended" => Some(LinkState::Suspended),
            _ => None,
        }
    }
}

/// The journal's record that `anchor` owns `account_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub anchor: Anchor,
    pub account_id: String,
    pub user_name: String,
    pub state: LinkState,
    pub suspended_at: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// SHA-256 of the photo last uploaded to the account (`None`: none uploaded).
    #[serde(default)]
    pub photo_hash: Option<String>,
}

/// One directory group, its members resolved to the people idsync reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryGroup {
    /// The group's immutable id (`entryUUID`, `objectGUID`, Graph `id`).
    pub anchor: Anchor,
    /// Where the group lives (DN for LDAP); for messages only.
    pub locator: String,
    /// The app group's `displayName`, rendered from the group's `name` template.
    pub name: String,
    /// Anchors of the in-scope people who are members (nested groups already flattened
    /// when configured).
    pub members: BTreeSet<Anchor>,
}

/// One SCIM Group in the app, as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppGroup {
    pub id: String,
    pub display_name: String,
    /// Member ids (`members[].value`): accounts, or other groups.
    pub members: BTreeSet<String>,
}

/// The journal's record that directory group `anchor` owns app group `group_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupLink {
    pub anchor: Anchor,
    pub group_id: String,
    pub name: String,
    /// The people idsync last put in the group (and has not removed since).
    pub members: BTreeSet<Anchor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_compare_without_case() {
        assert_eq!(
            UserName::new("Ada@Example.org"),
            UserName::new("ada@example.ORG")
        );
        assert_ne!(
            UserName::new("ada@example.org"),
            UserName::new("bob@example.org")
        );
    }
}
