//! The lifecycle policy the planner applies: match rule, lifecycle windows, protected
//! accounts, photos, and the account attributes they read.

use super::*;

/// How a person without a link is matched to an existing account.
#[derive(Clone, Debug)]
pub struct MatchRule {
    /// Account field compared (case-insensitively), e.g. `userName`.
    pub target: FieldPath,
    /// Template rendered from the directory user, e.g. `{mail}`.
    pub source: Template,
}

/// What happens to a person who comes back after the reactivation window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterWindow {
    /// Delete the old account, create a new one, relink.
    Reinvite,
    /// Report only: an admin decides.
    Hold,
}

/// What happens to accounts that exist only in the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmanaged {
    Ignore,
    Report,
    Suspend,
}

#[derive(Clone, Debug)]
pub struct Lifecycle {
    pub reactivation_window: Duration,
    pub after_window: AfterWindow,
    /// `None` = never delete.
    pub delete_after: Option<Duration>,
    /// Field rewrites applied on suspension (e.g. title "Former member").
    pub leaver: Vec<(FieldPath, String)>,
    pub unmanaged: Unmanaged,
    /// Account attribute that marks an invitation not yet accepted (value `true`): such an
    /// inactive account is the app's business, never "reactivated" by idsync.
    pub pending: Option<FieldPath>,
}

impl Lifecycle {
    pub(crate) fn is_pending(&self, account: &Account) -> bool {
        !account.active
            && self
                .pending
                .as_ref()
                .and_then(|p| p.get(&account.resource.value()))
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            reactivation_window: Duration::days(7),
            after_window: AfterWindow::Reinvite,
            delete_after: None,
            leaver: Vec::new(),
            unmanaged: Unmanaged::Ignore,
            pending: None,
        }
    }
}

/// userName patterns (`admin@*`) of accounts idsync never touches.
#[derive(Clone, Debug, Default)]
pub struct Protected {
    patterns: Vec<glob::Pattern>,
}

impl Protected {
    pub fn new(patterns: Vec<glob::Pattern>) -> Self {
        Protected { patterns }
    }
    /// The pattern protecting this userName, if any.
    pub fn matching(&self, user_name: &str) -> Option<&str> {
        let opts = glob::MatchOptions {
            case_sensitive: false,
            ..Default::default()
        };
        self.patterns
            .iter()
            .find(|p| p.matches_with(user_name, opts))
            .map(|p| p.as_str())
    }
}

/// Photo sync, when the source reads photos and the app takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhotoPolicy {
    /// Larger photos are not uploaded (a warning for that person).
    pub max_bytes: usize,
}

/// Everything the planner needs from the config.
#[derive(Clone, Debug)]
pub struct Policy {
    pub photos: Option<PhotoPolicy>,
    pub mapping: Mapping,
    pub match_rule: MatchRule,
    pub lifecycle: Lifecycle,
    pub protected: Protected,
}

impl Policy {
    /// The accounts' top-level attributes the lifecycle reads or writes (lower-cased): the
    /// mapped ones (whole, so a PATCH of one element keeps the others), the match field, the
    /// pending marker, the leaver fields, and `photos` when photos are synced. An account
    /// needs nothing else; keeping only these is what lets 100k accounts fit in memory.
    pub fn account_attributes(&self) -> BTreeSet<String> {
        let mut keep: BTreeSet<String> = ["id", "username", "active"]
            .into_iter()
            .map(String::from)
            .collect();
        let paths = self
            .mapping
            .fields
            .iter()
            .map(|f| &f.path)
            .chain([&self.match_rule.target])
            .chain(self.lifecycle.pending.as_ref())
            .chain(self.lifecycle.leaver.iter().map(|(p, _)| p));
        keep.extend(paths.map(|p| p.top().to_ascii_lowercase()));
        if self.photos.is_some() {
            keep.insert("photos".into());
        }
        keep
    }
}
