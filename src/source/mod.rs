//! Upstream directories, read-only: the `DirectoryReader` trait and its connectors.
//!
//! A reader returns the whole in-scope population or an error: never a short list. What
//! counts as a failed read is decided here; whether a read is plausible is `safety`'s job.
//! An incremental reader (Graph delta) is handed what the journal remembers of the last
//! read (`Remembered`), reads only the changes, and returns the merged population with the
//! state to remember next (`Remember`); the run commits that state with its outcome.
//! Each connector's settings live in `settings`; `config` builds them, the connectors never
//! read the config file.

pub mod binary;
pub mod confirm;
pub mod ds389;
pub mod filter;
pub mod graph;
pub mod groups;
pub mod ldap;
pub mod refresh;
pub mod settings;
pub mod syncrepl;
pub mod usn;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::model::{Anchor, DirectoryUser};

/// A directory read failed. The run must abort before any write; retry on the next run.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "cannot reach the directory at {url}: {detail}; check source.url and that the server is up"
    )]
    Connect { url: String, detail: String },
    #[error("TLS with the directory at {url} failed: {detail}; check source.ca_file and the server certificate")]
    Tls { url: String, detail: String },
    #[error("the directory refused the bind as {bind_dn}: {detail}; check source.bind_dn and the password file")]
    Bind { bind_dn: String, detail: String },
    #[error("the directory search under {base} failed: {detail}")]
    Search { base: String, detail: String },
    #[error("entry {dn} has no {attr}; idsync needs it as the immutable anchor: grant the bind account read access to {attr} (or set source.anchor)")]
    NoAnchor { dn: String, attr: String },
    #[error("entry {dn}: {detail}")]
    BadEntry { dn: String, detail: String },
    #[error("the token endpoint {url} refused idsync: {detail}")]
    Token { url: String, detail: String },
    #[error("{url}: {detail}")]
    Api { url: String, detail: String },
}

/// What the journal remembers of an incremental source between runs.
#[derive(Debug, Default)]
pub struct Remembered {
    /// The source's own opaque state (e.g. a Graph delta link), as it last saved it.
    pub cursor: Option<String>,
    /// The population as of that cursor.
    pub users: Vec<DirectoryUser>,
}

/// How the remembered population changes when a run commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheChange {
    /// The read was complete: remember exactly its users.
    Replace,
    /// Only these anchors changed (upserted from the read's users) or left.
    Delta {
        upserted: BTreeSet<Anchor>,
        removed: BTreeSet<Anchor>,
    },
}

impl CacheChange {
    /// Nothing changed: the remembered population stands.
    pub fn none() -> CacheChange {
        CacheChange::Delta {
            upserted: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }
}

/// State an incremental source asks the run to remember, committed with the run's outcome.
#[derive(Debug, Clone)]
pub struct Remember {
    pub cursor: String,
    pub cache: CacheChange,
}

/// How a read was done, for logs and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadKind {
    Full { why: String },
    Incremental { changed: usize, removed: usize },
}

impl std::fmt::Display for ReadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadKind::Full { why } => write!(f, "full read ({why})"),
            ReadKind::Incremental { changed, removed } => {
                write!(f, "incremental read: {changed} changed, {removed} removed")
            }
        }
    }
}

/// One complete read of the in-scope population.
#[derive(Debug)]
pub struct Read {
    pub users: Vec<DirectoryUser>,
    pub kind: ReadKind,
    /// What to remember for the next incremental read, if the source reads incrementally.
    pub remember: Option<Remember>,
}

impl Read {
    /// A full read of a source that keeps no state between runs.
    pub fn full(users: Vec<DirectoryUser>) -> Read {
        Read {
            users,
            kind: ReadKind::Full {
                why: "every run reads everything".into(),
            },
            remember: None,
        }
    }
}

/// What the directory changed since a cursor, read without the population: a quiet
/// cycle's first question (`run::quiet`). Nothing a plan reads changed when every person
/// changed is as the journal remembers them (a change to an attribute idsync does not
/// read: a logon stamp, a password; a value written again as it was) and no anchor touched
/// is a remembered person.
#[derive(Debug, Default)]
pub struct Since {
    /// The cursor to keep if nothing that matters changed.
    pub cursor: String,
    /// The people in scope changed since the cursor (whole); at most `Since::LIMIT`.
    pub changed: Vec<DirectoryUser>,
    /// People changed since the cursor as patches to who they were (a Graph delta item
    /// holds the changed properties only); at most `Since::LIMIT`.
    pub patched: Vec<Patch>,
    /// Anchors changed out of scope or deleted: a remembered person among them has left.
    pub touched: BTreeSet<Anchor>,
}

/// A person's change as the directory reported it: the changed properties only.
#[derive(Debug)]
pub struct Patch {
    pub anchor: Anchor,
    pub item: serde_json::Value,
    /// Applies `item` to the person it changed (what the source's incremental read does).
    pub apply: fn(&mut DirectoryUser, &serde_json::Value),
}

impl Since {
    /// More people changed than this, and the question is not worth asking: the cycle
    /// plans (and reads them once).
    pub const LIMIT: usize = 100;

    /// The anchors to look up among the remembered people.
    pub fn anchors(&self) -> BTreeSet<&Anchor> {
        self.changed
            .iter()
            .map(|u| &u.anchor)
            .chain(self.patched.iter().map(|p| &p.anchor))
            .chain(&self.touched)
            .collect()
    }

    /// Whether nothing a plan reads changed, given the remembered people among `anchors`.
    pub fn changes_nothing(&self, remembered: &BTreeMap<Anchor, DirectoryUser>) -> bool {
        let changed: BTreeSet<&Anchor> = self.changed.iter().map(|u| &u.anchor).collect();
        let as_remembered = |u: &DirectoryUser| serde_json::to_value(u).ok();
        let whole = self.changed.iter().all(|u| {
            remembered
                .get(&u.anchor)
                .is_some_and(|r| as_remembered(r) == as_remembered(u))
        });
        // A newcomer has nobody to patch: a change.
        let patched = self.patched.iter().all(|p| {
            remembered.get(&p.anchor).is_some_and(|r| {
                let mut after = r.clone();
                (p.apply)(&mut after, &p.item);
                as_remembered(&after) == as_remembered(r)
            })
        });
        whole
            && patched
            && self
                .touched
                .iter()
                .all(|a| changed.contains(a) || !remembered.contains_key(a))
    }
}

/// Whether `every` (a `full_every`) has passed since the last full read.
pub fn full_every_due(
    last_full: DateTime<Utc>,
    every: std::time::Duration,
    now: DateTime<Utc>,
) -> bool {
    let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
    now - last_full >= every
}

/// Why a read is full because `every` has passed since the last full one, if it has.
pub fn full_every_reason(
    last_full: DateTime<Utc>,
    every: std::time::Duration,
    now: DateTime<Utc>,
) -> Option<String> {
    full_every_due(last_full, every, now).then(|| {
        format!(
            "full_every {} since the last full read at {}",
            humantime::format_duration(every),
            last_full.format("%Y-%m-%d %H:%M UTC")
        )
    })
}

/// What a read may use besides the directory itself.
pub struct ReadRequest<'a> {
    pub remembered: Option<&'a Remembered>,
    /// Read everything even when an incremental read is possible (`--full`).
    pub force_full: bool,
    pub now: DateTime<Utc>,
    /// The photo each linked person's account has (SHA-256), as the journal recorded it: a
    /// source may skip downloading a photo the app already has.
    pub photo_hashes: &'a BTreeMap<Anchor, String>,
}

/// Reads every in-scope person from a directory.
pub trait DirectoryReader {
    fn read(
        &self,
        request: &ReadRequest<'_>,
    ) -> impl Future<Output = Result<Read, SourceError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attrs;

    fn person(anchor: &str, title: &str, description: &str) -> DirectoryUser {
        let mut attrs = Attrs::default();
        attrs.insert("title", vec![title.into()]);
        if !description.is_empty() {
            attrs.insert("description", vec![description.into()]);
        }
        DirectoryUser {
            anchor: Anchor::new(anchor),
            locator: format!("uid={anchor},ou=people"),
            attrs,
            disabled: false,
            problems: Vec::new(),
            photo: None,
            sync_id: None,
        }
    }

    fn remembered(people: &[DirectoryUser]) -> BTreeMap<Anchor, DirectoryUser> {
        people
            .iter()
            .map(|p| (p.anchor.clone(), p.clone()))
            .collect()
    }

    fn since(changed: Vec<DirectoryUser>, touched: &[&str]) -> Since {
        Since {
            cursor: "c".into(),
            changed,
            touched: touched.iter().map(|a| Anchor::new(*a)).collect(),
            ..Since::default()
        }
    }

    #[test]
    fn a_person_changed_only_where_idsync_does_not_read_is_no_change() {
        let ada = person("ada", "Engineer", "");
        let known = remembered(std::slice::from_ref(&ada));
        assert!(since(vec![ada.clone()], &["ada"]).changes_nothing(&known));
        assert!(since(Vec::new(), &[]).changes_nothing(&known));
    }

    #[test]
    fn a_changed_value_a_newcomer_or_a_remembered_person_touched_elsewhere_is_a_change() {
        let ada = person("ada", "Engineer", "");
        let known = remembered(&[ada.clone(), person("bob", "Clerk", "")]);
        let promoted = person("ada", "Lead Engineer", "");
        assert!(!since(vec![promoted], &[]).changes_nothing(&known));
        assert!(!since(vec![person("eve", "Spy", "")], &[]).changes_nothing(&known));
        // Bob changed out of scope, or was deleted: he has left.
        assert!(!since(vec![ada.clone()], &["bob"]).changes_nothing(&known));
        // An object that is nobody idsync knows (a computer, a leaver already gone).
        assert!(since(vec![ada], &["pc-17"]).changes_nothing(&known));
    }

    /// A patch that sets the properties it names (`title` only, in these tests).
    fn set(u: &mut DirectoryUser, item: &serde_json::Value) {
        if let Some(t) = item["title"].as_str() {
            u.attrs.insert("title", vec![t.into()]);
        }
    }

    fn patch(anchor: &str, item: serde_json::Value) -> Patch {
        Patch {
            anchor: Anchor::new(anchor),
            item,
            apply: set,
        }
    }

    #[test]
    fn a_patch_that_leaves_a_person_as_remembered_is_no_change() {
        let known = remembered(&[person("ada", "Engineer", "")]);
        let mut s = since(Vec::new(), &[]);
        // A value written again as it was, or a property no mapping reads.
        s.patched = vec![
            patch("ada", serde_json::json!({ "title": "Engineer" })),
            patch("ada", serde_json::json!({ "officeLocation": "B2" })),
        ];
        assert!(s.changes_nothing(&known));
        assert_eq!(s.anchors().len(), 1);
        // A new value, or somebody nobody remembers (a newcomer).
        s.patched = vec![patch("ada", serde_json::json!({ "title": "Lead" }))];
        assert!(!s.changes_nothing(&known));
        s.patched = vec![patch("eve", serde_json::json!({ "title": "Spy" }))];
        assert!(!s.changes_nothing(&known));
    }

    #[test]
    fn a_person_is_compared_as_the_journal_remembers_them() {
        let mut read = person("ada", "Engineer", "");
        let mut kept = read.clone();
        read.photo = Some(crate::photo::Photo::new(vec![1, 2, 3]));
        kept.photo = serde_json::from_value(serde_json::to_value(&read.photo).unwrap()).unwrap();
        assert!(since(vec![read], &[]).changes_nothing(&remembered(&[kept])));
    }
}
