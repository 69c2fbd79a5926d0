//! The nouns every other module speaks: directory users, app accounts, anchors and links.
//!
//! Pure data with the directory's notion of equality (a `UserName` compares without case, an
//! `Anchor` is opaque). No I/O here.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

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

/// An account's id in the app (SCIM `id`), as the app gave it: opaque.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    pub fn new(value: impl Into<String>) -> Self {
        AccountId(value.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AccountId {
    fn from(value: &str) -> Self {
        AccountId::new(value)
    }
}

impl std::borrow::Borrow<str> for AccountId {
    fn borrow(&self) -> &str {
        &self.0
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
    /// The name as it compares: lower-cased, a character at a time (no copy is made).
    fn folded(&self) -> impl Iterator<Item = char> + '_ {
        self.0.chars().flat_map(char::to_lowercase)
    }
    fn both_ascii(&self, other: &Self) -> bool {
        self.0.is_ascii() && other.0.is_ascii()
    }
}

impl PartialEq for UserName {
    fn eq(&self, other: &Self) -> bool {
        if self.both_ascii(other) {
            return self.0.eq_ignore_ascii_case(&other.0);
        }
        self.folded().eq(other.folded())
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
        if self.both_ascii(other) {
            return self
                .0
                .bytes()
                .map(|b| b.to_ascii_lowercase())
                .cmp(other.0.bytes().map(|b| b.to_ascii_lowercase()));
        }
        self.folded().cmp(other.folded())
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
    pub attrs: Attrs,
    /// Disabled upstream (by the configured rule); disabled people are never created.
    pub disabled: bool,
    /// Values that could not be read (e.g. not UTF-8): the person is kept as present but not
    /// changed, and the problem is reported.
    pub problems: Vec<String>,
    /// The profile photo, when photos are synced and the person has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<crate::photo::Photo>,
    /// The content-sync UUID (RFC 4533 `syncUUID`) the directory names this person by,
    /// where it is not the anchor (389-ds derives it from `nsUniqueId`; OpenLDAP's is the
    /// `entryUUID`): how a sync refresh's deletions are matched to people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<Anchor>,
}

impl DirectoryUser {
    /// All values of an attribute (case-insensitive name).
    pub fn values(&self, attr: &str) -> &[String] {
        self.attrs.get(attr).unwrap_or(&[])
    }
}

/// A person's attribute values by lower-cased name. Every person's are held for the whole
/// run, so they are kept small: one sorted list per person (not a B-tree node of 11 slots)
/// with exact capacities, and names shared between people (a directory has a handful of
/// attribute names; 100,000 people repeat them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attrs(Vec<(Arc<str>, Vec<String>)>);

impl Attrs {
    /// The values of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[String]> {
        let name = lower(name);
        let i = self.find(&name).ok()?;
        Some(&self.0[i].1)
    }

    /// Sets the values of `name` (any case), replacing what it had.
    pub fn insert(&mut self, name: &str, mut values: Vec<String>) {
        values.shrink_to_fit();
        let name = lower(name);
        match self.find(&name) {
            Ok(i) => self.0[i].1 = values,
            Err(i) => self.0.insert(i, (intern(&name), values)),
        }
    }

    /// Adds values to `name` (any case), after those it has.
    pub fn add(&mut self, name: &str, values: Vec<String>) {
        let name = lower(name);
        match self.find(&name) {
            Ok(i) => {
                self.0[i].1.extend(values);
                self.0[i].1.shrink_to_fit();
            }
            Err(_) => self.insert(&name, values),
        }
    }

    /// Removes `name` (any case) and returns its values.
    pub fn remove(&mut self, name: &str) -> Option<Vec<String>> {
        let i = self.find(&lower(name)).ok()?;
        Some(self.0.remove(i).1)
    }

    /// Names and values, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(k, v)| (&**k, v.as_slice()))
    }

    /// Gives back spare capacity (after the last `insert`).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }

    fn find(&self, lower_name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(lower_name))
    }
}

/// `name` lower-cased (borrowed when it already is).
fn lower(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// The one shared copy of an attribute name. The table only grows, by names the directory
/// sends for the attributes idsync asks for: a handful.
fn intern(name: &str) -> Arc<str> {
    static NAMES: OnceLock<Mutex<BTreeSet<Arc<str>>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known.clone();
    }
    let new: Arc<str> = Arc::from(name);
    names.insert(new.clone());
    new
}

impl<K: AsRef<str>> FromIterator<(K, Vec<String>)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (K, Vec<String>)>>(iter: I) -> Self {
        let mut attrs = Attrs::default();
        for (k, v) in iter {
            attrs.add(k.as_ref(), v);
        }
        attrs.shrink_to_fit();
        attrs
    }
}

impl<K: AsRef<str>, const N: usize> From<[(K, Vec<String>); N]> for Attrs {
    fn from(list: [(K, Vec<String>); N]) -> Self {
        list.into_iter().collect()
    }
}

impl From<BTreeMap<String, Vec<String>>> for Attrs {
    fn from(map: BTreeMap<String, Vec<String>>) -> Self {
        map.into_iter().collect()
    }
}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Attrs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, Vec<String>>::deserialize(deserializer).map(Attrs::from)
    }
}

/// One user resource in the target app, as last read.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub id: AccountId,
    pub user_name: UserName,
    pub active: bool,
    /// The resource as the app returned it, less what idsync never reads (see
    /// `Policy::account_attributes`).
    pub resource: Resource,
}

/// A JSON resource held as compact text. 100,000 accounts kept as `serde_json::Value` trees
/// cost about 4 KB each (a B-tree node per object, a heap block per string); as text they
/// cost the size of their JSON. Read it back with `value()` where it is needed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Resource(Box<str>);

impl Resource {
    pub fn new(value: &serde_json::Value) -> Resource {
        Resource(value.to_string().into_boxed_str())
    }

    /// A resource from JSON text `new` wrote (the journal's remembered accounts).
    pub fn from_text(text: String) -> Resource {
        Resource(text.into_boxed_str())
    }

    /// The resource's JSON text.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The resource as JSON (`null` for an empty one).
    pub fn value(&self) -> serde_json::Value {
        if self.0.is_empty() {
            return serde_json::Value::Null;
        }
        // The text was written by `new` from a `Value`: it always parses.
        serde_json::from_str(&self.0).unwrap_or_default()
    }
}

impl From<serde_json::Value> for Resource {
    fn from(value: serde_json::Value) -> Resource {
        Resource::new(&value)
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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
    pub account_id: AccountId,
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
    /// when configured): what group sync puts in the app group.
    pub members: BTreeSet<Anchor>,
    /// The people who are direct members.
    pub direct: BTreeSet<Anchor>,
    /// The people who are members directly or through nested groups (what an app's
    /// `scope.groups` counts unless `nested: false`).
    pub transitive: BTreeSet<Anchor>,
}

/// One SCIM Group in the app, as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppGroup {
    pub id: String,
    pub display_name: String,
    /// Member ids (`members[].value`): accounts, or other groups.
    pub members: BTreeSet<AccountId>,
    /// Members the app lists by another value than their account's id (a userName), by
    /// the account id they were recognised as: a removal must name the value the app has.
    pub listed_as: BTreeMap<AccountId, String>,
    /// `meta.lastModified` as the app wrote it, where it gives one.
    pub modified: Option<String>,
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
    fn attributes_are_found_in_any_case_and_kept_as_the_journal_stores_them() {
        let mut attrs = Attrs::default();
        attrs.add("Mail", vec!["ada@x.org".into()]);
        attrs.add("mail", vec!["ada@y.org".into()]);
        attrs.insert("CN", vec!["Ada".into()]);
        assert_eq!(attrs.get("MAIL").unwrap(), ["ada@x.org", "ada@y.org"]);
        attrs.insert("cn", vec!["Ada L.".into()]);
        assert_eq!(attrs.get("cn").unwrap(), ["Ada L."]);
        // The same JSON object as a map of lower-cased names (what remembered people are).
        let json = serde_json::to_value(&attrs).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"cn": ["Ada L."], "mail": ["ada@x.org", "ada@y.org"]})
        );
        assert_eq!(serde_json::from_value::<Attrs>(json).unwrap(), attrs);
        assert_eq!(attrs.remove("Cn").unwrap(), ["Ada L."]);
        assert!(attrs.get("cn").is_none());
        // Two people share one copy of a name.
        let other: Attrs = [("mail", vec!["bob@x.org".to_string()])].into();
        assert!(Arc::ptr_eq(&attrs.0[0].0, &other.0[0].0));
    }

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
        // Beyond ASCII too, and in one order whether or not a name is ASCII.
        assert_eq!(
            UserName::new("ÉMILE@Example.org"),
            UserName::new("émile@example.org")
        );
        assert_ne!(UserName::new("émile@x.org"), UserName::new("emile@x.org"));
        let mut names: Vec<UserName> = ["Zoë@x", "ada@x", "Émile@x", "BOB@x", "zoe@x"]
            .into_iter()
            .map(UserName::new)
            .collect();
        names.sort();
        let sorted: Vec<&str> = names.iter().map(UserName::as_str).collect();
        assert_eq!(sorted, ["ada@x", "BOB@x", "zoe@x", "Zoë@x", "Émile@x"]);
        assert!(UserName::new("Ada") < UserName::new("adam"));
    }
}
