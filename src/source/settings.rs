//! The settings of the directory connectors, as `config` resolves them: LDAP / AD, Graph,
//! and which groups to read. They live with the connectors that use them; `config` builds
//! them from the file (and re-exports them), so the connectors never look at the file.

use std::collections::BTreeSet;
use std::path::PathBuf;

use url::Url;

use crate::mapping::Template;
use crate::redact::Secret;
use crate::source::filter::Filter;

#[derive(Clone, Debug)]
pub struct LdapConfig {
    pub url: Url,
    pub start_tls: bool,
    pub ca_file: Option<PathBuf>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    pub base_dn: String,
    pub filter: String,
    pub one_level: bool,
    /// Attribute carrying the anchor (`entryUUID`, `objectGUID`, ...).
    pub anchor: String,
    pub disabled: Option<Filter>,
    pub page_size: i32,
    pub timeout: std::time::Duration,
    /// Every attribute the read must fetch (mapping, match rule, disabled rule, anchor).
    pub attributes: Vec<String>,
    /// The attribute holding the photo (lower-cased), when photos are synced.
    pub photo: Option<String>,
    pub incremental: LdapIncremental,
    /// A full read at least this often, as a backstop for incremental reads.
    pub full_every: std::time::Duration,
    /// Attribute values longer than this (the photo aside) are left out, with a notice.
    pub max_value_bytes: usize,
    /// Chase search continuation references (same bind, same TLS settings).
    pub follow_referrals: bool,
}

/// Default `source.max_value_bytes`.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024;

/// How an LDAP source reads between full reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LdapIncremental {
    /// Every run reads every entry (paged).
    None,
    /// RFC 4533 refreshOnly: only the entries changed since the last run's cookie.
    Syncrepl,
    /// Active Directory: only the entries whose uSNChanged is above the last run's mark.
    Usn,
}

/// How a Graph source reads between full reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incremental {
    /// Every run reads every user.
    None,
    /// `/users/delta`: only the changes since the last run's delta link.
    Delta,
}

#[derive(Clone, Debug)]
pub struct GraphConfig {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The OAuth2 token endpoint, `{tenant}` already filled in.
    pub token_url: Url,
    /// The API root, e.g. `https://graph.microsoft.com/v1.0` (no trailing slash).
    pub api_url: Url,
    /// The client-credentials scope, e.g. `https://graph.microsoft.com/.default`.
    pub scope: String,
    pub ca_file: Option<PathBuf>,
    pub incremental: Incremental,
    /// A full read at least this often, as a backstop for incremental reads.
    pub full_every: std::time::Duration,
    /// `$top` asked of `/users` (the server may serve fewer per page).
    pub page_size: u32,
    pub timeout: std::time::Duration,
    pub max_retries: u32,
    /// Graph user properties to `$select` (always `id` and `accountEnabled` among them).
    pub select: Vec<String>,
    /// Read each enabled user's photo.
    pub photo: bool,
    /// A photo longer than this is not downloaded past it (`target.photo_max_bytes`).
    pub photo_max_bytes: usize,
    /// The only proxy used (the environment's `HTTP_PROXY` and friends are ignored).
    pub proxy: Option<Url>,
    /// No reply body is read past this.
    pub max_response_bytes: usize,
    /// A read of more users or groups than this fails (a server paging forever).
    pub max_users: u64,
}

/// `groups:`: group sync, when configured.
#[derive(Clone, Debug)]
pub struct GroupsConfig {
    /// LDAP: where groups live (`None` for Graph).
    pub base_dn: Option<String>,
    /// LDAP: the groups' filter; Graph: an optional `$filter` on `/groups`.
    pub filter: Option<String>,
    pub one_level: bool,
    /// Only groups with these names (lower-cased), if given.
    pub only: Option<BTreeSet<String>>,
    /// The app group's `displayName`.
    pub name: Template,
    /// LDAP: the group's anchor attribute.
    pub anchor: String,
    /// Flatten nested groups into their parents.
    pub nested: bool,
    /// LDAP `posixGroup`: the people attribute `memberUid` values name (lower-cased).
    pub member_uid: String,
    pub policy: crate::groups::GroupPolicy,
    /// Members added or removed per PATCH request.
    pub batch: usize,
}

/// The default filter of LDAP groups: the three standard group classes.
pub const LDAP_GROUP_FILTER: &str =
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup)(objectClass=group))";
