//! The apps idsync keeps (the SCIM side), behind small capabilities: `AccountReader` (what
//! `plan` gets), `AccountWriter` (what `sync` adds) and `GroupWriter`. Connectors live in
//! submodules, each with its settings (`settings`), which `config` builds.

pub mod discovery;
pub mod profiles;
pub mod scim;
pub mod settings;

use std::future::Future;

use serde_json::Value;

use crate::model::{Account, AccountId, AppGroup};
use crate::photo::Photo;
use crate::plan::Change;

/// A call to the app failed. `fatal()` errors abort the run (the rest would fail the same
/// way); others fail just that action, to be retried by the next run.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot reach the app at {url}: {detail}; check target.url and that the app is up")]
    Connect { url: String, detail: String },
    #[error("TLS with the app at {url} failed: {detail}; check target.ca_file and that target.url names a host the app's certificate is for")]
    Tls { url: String, detail: String },
    #[error("the app refused the token ({status}) at {url}; check target.token_file")]
    Auth { url: String, status: u16 },
    #[error("{method} {url} answered {status}: {detail}")]
    Http {
        method: String,
        url: String,
        status: u16,
        detail: String,
        /// The SCIM error's `scimType` (RFC 7644 3.12), when the app gave one.
        scim_type: Option<String>,
    },
    #[error("{method} {url}: gave up after {attempts} attempts: {detail}")]
    Exhausted {
        method: String,
        url: String,
        attempts: u32,
        detail: String,
        /// The app's last answer, if it answered (a 5xx every time, say).
        status: Option<u16>,
    },
    /// A 3xx: idsync follows no redirect, so every call would meet it.
    #[error("{method} {url}: {detail}")]
    Redirect {
        method: String,
        url: String,
        detail: String,
    },
    #[error("{url}: the app's reply is not valid SCIM: {detail}")]
    BadReply { url: String, detail: String },
    #[error("userName {user_name} is taken by account {account}, which belongs to another directory user")]
    Taken { user_name: String, account: String },
    #[error("not applied: {detail}")]
    Stale { detail: String },
    /// The app refused a write because the resource changed in it since idsync read it
    /// (a 412 to `If-Match`).
    #[error("not applied: {detail}")]
    Changed { detail: String },
    /// A create failed in a way that leaves unknown whether the app made the resource (the
    /// client looks for it before sending again; never seen outside the SCIM client).
    #[error("a create's outcome is unknown: {detail}")]
    Uncertain {
        detail: String,
        /// The app's answer (a 5xx), if it answered.
        status: Option<u16>,
    },
}

impl TargetError {
    /// True when every further call would fail the same way. A write the app answered
    /// with the same 5xx every time is that write's failure (an app that 500s on one
    /// immutable attribute); a run stops after several in a row (`apply`).
    pub fn fatal(&self) -> bool {
        match self {
            TargetError::Exhausted { method, status, .. } => {
                !(status.is_some_and(|s| s >= 500) && method != "GET")
            }
            TargetError::Connect { .. }
            | TargetError::Tls { .. }
            | TargetError::Auth { .. }
            | TargetError::Redirect { .. } => true,
            _ => false,
        }
    }
}

/// The outcome of a create.
#[derive(Debug)]
pub enum Created {
    New(Account),
    /// The userName was taken (409): this is the account that holds it.
    Existing(Account),
}

/// Reads accounts; all a dry run may use.
pub trait AccountReader: Sync {
    fn list_accounts(&self) -> impl Future<Output = Result<Vec<Account>, TargetError>> + Send;
}

/// Changes accounts.
pub trait AccountWriter: AccountReader {
    /// Creates an account with these fields (each change's `after`); a userName conflict
    /// returns the holder.
    fn create(
        &self,
        changes: &[Change],
    ) -> impl Future<Output = Result<Created, TargetError>> + Send;
    /// Applies changes to an account as last read (`current`).
    fn update(
        &self,
        id: &AccountId,
        current: &Value,
        changes: &[Change],
    ) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Deletes an account; one already gone counts as deleted. `current` is the account as
    /// last read (its version guards the delete where the app supports ETags).
    fn delete(
        &self,
        id: &AccountId,
        current: &Value,
    ) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Sets (or with `None` removes) an account's photo; `current` is the account as last
    /// read, so other photos it has are kept.
    fn set_photo(
        &self,
        id: &AccountId,
        current: &Value,
        photo: Option<&Photo>,
    ) -> impl Future<Output = Result<(), TargetError>> + Send;
}

/// Reads the app's groups (SCIM `/Groups`); all a dry run may use of them.
pub trait GroupReader: Sync {
    fn list_groups(&self) -> impl Future<Output = Result<Vec<AppGroup>, TargetError>> + Send;
}

/// Changes the app's groups. Member ids are account ids.
pub trait GroupWriter: GroupReader {
    /// Creates a group with these members; returns its id.
    fn create_group(
        &self,
        name: &str,
        members: &[AccountId],
    ) -> impl Future<Output = Result<String, TargetError>> + Send;
    /// Renames a group and/or adds and removes members.
    fn update_group(
        &self,
        id: &str,
        rename: Option<&str>,
        add: &[AccountId],
        remove: &[AccountId],
    ) -> impl Future<Output = Result<(), TargetError>> + Send;
    /// Deletes a group; one already gone counts as deleted.
    fn delete_group(&self, id: &str) -> impl Future<Output = Result<(), TargetError>> + Send;
}
