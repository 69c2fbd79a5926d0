//! The settings of the app connector (SCIM), as `config` resolves them. They live with the
//! connector; `config` builds them from the file (and re-exports them).

use std::path::PathBuf;

use url::Url;

use crate::redact::Secret;

#[derive(Clone, Debug)]
pub struct ScimConfig {
    pub url: Url,
    pub token: Secret,
    pub ca_file: Option<PathBuf>,
    pub concurrency: usize,
    /// Writes per second, if limited.
    pub rate_limit: Option<f64>,
    pub timeout: std::time::Duration,
    /// The `count` a list asks for; 0 asks for none (apps that fail on `count`).
    pub page_size: u32,
    pub max_retries: u32,
    pub photo: PhotoUpload,
    /// Photos larger than this are not uploaded (a warning for that person).
    pub photo_max_bytes: usize,
    /// The only proxy used (the environment's `HTTP_PROXY` and friends are ignored).
    pub proxy: Option<Url>,
    /// No reply body is read past this.
    pub max_response_bytes: usize,
    /// A list of accounts longer than this fails the read (an app paging forever).
    pub max_accounts: u64,
    /// The provider profile laid under these settings, if one was named.
    pub profile: Option<String>,
    /// How the app deprovisions a leaver.
    pub deprovision: Deprovision,
    /// False: never a hard DELETE of a user (the app has none, or it cannot be undone).
    pub deletes: bool,
    /// Members one group PATCH may add or remove at most (the app's own cap).
    pub group_patch_max_members: Option<usize>,
    /// `$ref` on group members: forced on or off; `None` follows the app's Group schema.
    pub member_ref: Option<bool>,
    /// Request rates by method, on top of `rate_limit`.
    pub rate_limits: Vec<RateLimit>,
    /// How the app's accounts are read.
    pub list: ListMode,
    /// How often the app is listed whole; between, cycles plan against the accounts the
    /// journal remembers (zero: every cycle lists it).
    pub full_every: std::time::Duration,
    /// Send `If-Match` with the version an account was read at, where the app announces
    /// ETag support (`target.etags: false`: never, for an app that refuses its own ETags).
    pub etags: bool,
}

/// Default `target.full_every`: a day.
pub const DEFAULT_FULL_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How an app's accounts are read (`target.list`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListMode {
    /// `GET /Users`, paged: every account.
    #[default]
    Full,
    /// The list hides deactivated accounts (Atlassian): a linked account missing from it
    /// is read by id before it is judged gone.
    ActiveOnly,
    /// The app cannot be listed: linked accounts are read by id, people without a link
    /// looked up by the match rule (`userName eq ...`). Unlinked accounts are never seen.
    FilterOnly,
}

pub use crate::plan::Deprovision;

/// At most `count` requests per `per`, for the requests `scope` names.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    pub scope: LimitScope,
    pub count: u32,
    pub per: std::time::Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitScope {
    All,
    /// Every method but GET.
    Writes,
    Method(reqwest::Method),
}

impl LimitScope {
    pub fn covers(&self, method: &reqwest::Method) -> bool {
        match self {
            LimitScope::All => true,
            LimitScope::Writes => method != reqwest::Method::GET,
            LimitScope::Method(m) => m == method,
        }
    }
}

/// Default ceiling on the items one list may hold (`target.max_accounts`, `source.max_users`).
pub const DEFAULT_MAX_ITEMS: u64 = 1_000_000;

/// How photos reach the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhotoUpload {
    /// PATCH the SCIM `photos` attribute with a `data:` URI.
    Scim,
    /// Send the bytes to a URL template (`{url}` = target.url, `{id}` = the account id);
    /// a removed photo is a DELETE of the same URL.
    Http {
        method: reqwest::Method,
        url: String,
    },
    /// Photos are not synced.
    None,
}
