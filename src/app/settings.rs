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
