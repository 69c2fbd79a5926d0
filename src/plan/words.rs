//! The plan's vocabulary: action kinds, field changes, actions with their reasons, notices,
//! and the plan itself.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Create,
    Adopt,
    Update,
    Reactivate,
    Reinvite,
    Suspend,
    Delete,
    /// A directory group new to the app: POST /Groups with its members.
    GroupCreate,
    /// An app group of the same name taken under management (then brought in line).
    GroupAdopt,
    /// A managed group renamed and/or its members added or removed.
    GroupUpdate,
    /// A managed group gone upstream, deleted (`groups.vanished: delete`).
    GroupDelete,
}

impl ActionKind {
    pub const ALL: [ActionKind; 11] = [
        ActionKind::Create,
        ActionKind::Adopt,
        ActionKind::Update,
        ActionKind::Reactivate,
        ActionKind::Reinvite,
        ActionKind::Suspend,
        ActionKind::Delete,
        ActionKind::GroupCreate,
        ActionKind::GroupAdopt,
        ActionKind::GroupUpdate,
        ActionKind::GroupDelete,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Adopt => "adopt",
            ActionKind::Update => "update",
            ActionKind::Reactivate => "reactivate",
            ActionKind::Reinvite => "reinvite",
            ActionKind::Suspend => "suspend",
            ActionKind::Delete => "delete",
            ActionKind::GroupCreate => "group-create",
            ActionKind::GroupAdopt => "group-adopt",
            ActionKind::GroupUpdate => "group-update",
            ActionKind::GroupDelete => "group-delete",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Suspensions and deletions: what `max_deprovisions` counts.
    pub fn is_deprovision(self) -> bool {
        matches!(self, ActionKind::Suspend | ActionKind::Delete)
    }
    /// Actions on app groups (applied after every action on accounts).
    pub fn is_group(self) -> bool {
        matches!(
            self,
            ActionKind::GroupCreate
                | ActionKind::GroupAdopt
                | ActionKind::GroupUpdate
                | ActionKind::GroupDelete
        )
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a change changes: one of the account's flags idsync manages itself, or an attribute
/// the mapping fills. Written (journal, saved plans, reports) as the SCIM path or the
/// pseudo-field's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// The account's `active` flag.
    Active,
    /// The account's photo: before -> after are SHA-256 prefixes, never bytes.
    Photo,
    /// A group's membership: before -> after name only the members that change (removed
    /// ones before, added ones after), as userNames.
    Members,
    /// `displayName`: a group's name, or a person's mapped display name.
    DisplayName,
    /// Any other attribute the mapping fills.
    Mapped(FieldPath),
}

impl Field {
    /// The field a change list calls `text`. A path the mapping grammar does not know
    /// (a journal row written by an older release) is kept as it was written.
    pub fn parse(text: &str) -> Field {
        match text {
            "active" => Field::Active,
            "photo" => Field::Photo,
            "members" => Field::Members,
            "displayName" => Field::DisplayName,
            _ => {
                Field::Mapped(FieldPath::parse(text).unwrap_or_else(|_| FieldPath::verbatim(text)))
            }
        }
    }

    /// The field a mapping entry writes.
    pub fn mapped(path: &FieldPath) -> Field {
        Field::parse(&path.to_string())
    }

    /// The SCIM attribute path a write uses, for fields written as attributes.
    pub fn path(&self) -> Option<FieldPath> {
        match self {
            Field::Active | Field::Photo | Field::Members => None,
            Field::DisplayName => Some(FieldPath::verbatim("displayName")),
            Field::Mapped(p) => Some(p.clone()),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Active => f.write_str("active"),
            Field::Photo => f.write_str("photo"),
            Field::Members => f.write_str("members"),
            Field::DisplayName => f.write_str("displayName"),
            Field::Mapped(p) => p.fmt(f),
        }
    }
}

impl From<&str> for Field {
    fn from(text: &str) -> Field {
        Field::parse(text)
    }
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        let text = String::deserialize(d)?;
        Ok(Field::parse(&text))
    }
}

/// One member added to or removed from an app group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    pub add: bool,
    pub user_name: String,
    /// The person (`None`: an account linked to nobody any more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    /// The account removed, or (adds) the person's account when the plan was made; apply
    /// looks an added person's account up again, as a create in the same run makes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    /// A removed member as the app lists it, when that is not the account id (apps that
    /// list members by userName): the removal names this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_as: Option<String>,
    pub why: String,
}

/// One field's before -> after. `None` = absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: Field,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One write a run would make, with why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub kind: ActionKind,
    pub user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    /// The anchor that owned the account before (a re-hire taking an account over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_anchor: Option<Anchor>,
    pub changes: Vec<Change>,
    pub reason: String,
    /// Why a safety gate or approval rule holds this action back, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// A group action's member changes (the `members` change says the same for people).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberChange>,
    /// The hooks the action runs, as `name (moment)` (a reviewed plan shows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<String>,
}

impl Action {
    /// An action on a person's existing account.
    pub fn on_account(
        kind: ActionKind,
        user_name: &str,
        anchor: &Anchor,
        account: &AccountId,
        changes: Vec<Change>,
        reason: String,
    ) -> Action {
        Action {
            kind,
            user_name: user_name.to_string(),
            anchor: Some(anchor.clone()),
            account_id: Some(account.clone()),
            previous_anchor: None,
            changes,
            reason,
            held: None,
            hooks: Vec::new(),
            members: Vec::new(),
        }
    }
}

/// Something reported, not acted on (protected, conflicts, unreadable data, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStats {
    pub source_users: usize,
    pub source_disabled: usize,
    pub accounts: usize,
    pub links: usize,
    /// Actions left out because they wait for a retry after a lasting failure.
    #[serde(default)]
    pub escrowed: usize,
    /// How many present people a focused plan looked at (`Focus`); `None`: everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub looked_at: Option<usize>,
    /// How many links whose person is gone it looked at too (a focused plan judges
    /// every one of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_looked_at: Option<usize>,
}

/// The full list of actions one run would take, computed before any write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub notices: Vec<Notice>,
    pub stats: PlanStats,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
    /// Number of actions per kind.
    pub fn counts(&self) -> BTreeMap<ActionKind, usize> {
        let mut out = BTreeMap::new();
        for a in &self.actions {
            *out.entry(a.kind).or_default() += 1;
        }
        out
    }
}
