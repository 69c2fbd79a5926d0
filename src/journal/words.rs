//! The journal's words: a run's mode and outcome, an action's status. Written as text
//! (`as_str`), read back into these types (`queries`).

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Apply,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Apply => "apply",
        }
    }
    pub(super) fn parse(s: &str) -> Option<Mode> {
        [Mode::DryRun, Mode::Apply]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Not finished (yet: a run in progress, or one a crash left, until the next start).
    Running,
    Ok,
    Aborted,
    Held,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Ok => "ok",
            Outcome::Aborted => "aborted",
            Outcome::Held => "held",
            Outcome::Failed => "failed",
        }
    }
    pub(super) fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Running,
            Outcome::Ok,
            Outcome::Aborted,
            Outcome::Held,
            Outcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Planned,
    Applied,
    Failed,
    Held,
    Skipped,
    /// The app refused the write for good (RFC 7644 `invalidValue`, `mutability`,
    /// `invalidSyntax`, or 501): remembered, not sent again until it changes (`escrow`).
    Refused,
    /// A held action a person approved (`error` says who, why, and what came of it).
    Approved,
    /// A held action a person rejected: nothing written.
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Applied => "applied",
            Status::Failed => "failed",
            Status::Held => "held",
            Status::Skipped => "skipped",
            Status::Refused => "refused",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
        }
    }
    pub(super) fn parse(s: &str) -> Option<Status> {
        [
            Status::Planned,
            Status::Applied,
            Status::Failed,
            Status::Held,
            Status::Skipped,
            Status::Refused,
            Status::Approved,
            Status::Rejected,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}
