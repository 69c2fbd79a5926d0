//! Upstream directories, read-only: the `DirectoryReader` trait and its connectors.
//!
//! A reader returns the whole in-scope population or an error: never a short list. What
//! counts as a failed read is decided here; whether a read is plausible is `safety`'s job.

pub mod filter;
pub mod ldap;

use std::future::Future;

use crate::model::DirectoryUser;

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
}

/// Reads every in-scope person from a directory.
pub trait DirectoryReader {
    fn read_all(&self) -> impl Future<Output = Result<Vec<DirectoryUser>, SourceError>> + Send;
}
