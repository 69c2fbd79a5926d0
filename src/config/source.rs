//! `source:` (LDAP / AD, Graph) and `groups:`, resolved into the connectors' settings.

use super::*;

impl Resolver<'_> {
    pub(super) fn ldap(
        &mut self,
        l: raw::RawLdap,
        mapping: Option<&Mapping>,
    ) -> Option<SourceConfig> {
        let url = self.url("source.url", &l.url, &["ldap", "ldaps"]);
        let bind_password = self.secret(
            "source.bind_password",
            l.bind_password.as_deref(),
            l.bind_password_file.as_deref(),
        );
        self.ldap_bind(&l, url.as_ref(), bind_password.is_some(), mapping);
        let ca_file = self.ca_file("source.ca_file", l.ca_file.as_deref());
        let filter = l
            .filter
            .unwrap_or_else(|| "(objectClass=inetOrgPerson)".to_string());
        if !(filter.starts_with('(') && filter.ends_with(')')) {
            self.problem("source.filter", format!("`{filter}` must be a parenthesised LDAP filter such as (objectClass=inetOrgPerson)"));
        }
        let one_level = self.one_level("source.scope", l.scope.as_deref());
        let disabled = l.disabled.as_deref().and_then(|d| match Filter::parse(d) {
            Ok(f) => Some(f),
            Err(e) => {
                self.problem("source.disabled", e.to_string());
                None
            }
        });
        let page_size = l.page_size.unwrap_or(500);
        if !(1..=10_000).contains(&page_size) {
            self.problem("source.page_size", "must be between 1 and 10000");
        }
        let timeout = self.duration(
            "source.timeout",
            l.timeout.as_deref(),
            std::time::Duration::from_secs(120),
        );
        let anchor = l.anchor.unwrap_or_else(|| "entryUUID".to_string());
        let mut attributes: Vec<String> = mapping.map(Mapping::attributes).unwrap_or_default();
        if let Some(d) = &disabled {
            d.attributes(&mut attributes);
        }
        attributes.push(anchor.to_ascii_lowercase());
        let photo = self.ldap_photo(l.photo.as_deref());
        attributes.extend(photo.clone());
        let incremental = self.ldap_incremental(l.incremental.as_deref(), &anchor);
        let full_every = self.duration(
            "source.full_every",
            l.full_every.as_deref(),
            std::time::Duration::from_secs(24 * 3600),
        );
        let max_value_bytes = self.size(
            "source.max_value_bytes",
            l.max_value_bytes,
            DEFAULT_MAX_VALUE_BYTES,
            64 << 20,
        );
        Some(SourceConfig::Ldap(LdapConfig {
            url: url?,
            start_tls: l.start_tls,
            ca_file,
            bind_dn: l.bind_dn,
            bind_password,
            base_dn: l.base_dn,
            filter,
            one_level,
            anchor,
            disabled,
            page_size: page_size as i32,
            timeout,
            attributes,
            photo,
            incremental,
            full_every,
            max_value_bytes,
            follow_referrals: l.follow_referrals,
        }))
    }

    /// The bind's consistency (a DN with its password, TLS for a password off loopback)
    /// and templates that read binary attributes.
    fn ldap_bind(
        &mut self,
        l: &raw::RawLdap,
        url: Option<&Url>,
        has_password: bool,
        mapping: Option<&Mapping>,
    ) {
        if l.bind_dn.is_some()
            && !has_password
            && !self
                .problems
                .iter()
                .any(|p| p.path.starts_with("source.bind_password"))
        {
            self.problem(
                "source.bind_dn",
                "a bind_dn needs `bind_password_file` (or `bind_password: \"${ENV}\"`)",
            );
        }
        for f in mapping.map(|m| m.fields.as_slice()).unwrap_or_default() {
            for attr in f.template.attributes() {
                if crate::source::binary::is_unrenderable(attr) {
                    self.problem(
                        &format!("mapping.{}", f.path),
                        format!("`{{{attr}}}` is a binary attribute (a photo, certificate or password) that idsync cannot write as text; map a text attribute (photos go through source.photo)"),
                    );
                }
            }
        }
        if l.bind_dn.is_none() && !has_password {
            self.warnings.push("source.bind_dn: not set, so idsync binds anonymously; a directory that hides people from anonymous reads looks empty (the safety gates stop the run), so give the read-only account idsync should use".into());
        }
        if l.bind_dn.is_none() && has_password {
            self.problem(
                "source.bind_password",
                "a password without `bind_dn`; add the bind DN",
            );
        }
        if let Some(u) = url {
            if u.scheme() == "ldaps" && l.start_tls {
                self.problem(
                    "source.start_tls",
                    "ldaps:// is already TLS; use ldap:// with start_tls: true, or drop start_tls",
                );
            }
            let loopback = matches!(
                u.host_str(),
                Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
            );
            if u.scheme() == "ldap" && !l.start_tls && !loopback && l.bind_dn.is_some() {
                self.warnings.push(format!("source.url: {u} is plain LDAP off loopback: the bind password travels in clear text; use ldaps:// or start_tls: true"));
            }
        }
    }

    /// An LDAP search scope: `sub` (the default) or `one` (true).
    fn one_level(&mut self, key: &str, raw: Option<&str>) -> bool {
        match raw {
            None | Some("sub") => false,
            Some("one") => true,
            Some(s) => {
                self.problem(key, format!("`{s}`: use `sub` (the default) or `one`"));
                false
            }
        }
    }

    /// `source.photo`: an attribute name, lower-cased.
    fn ldap_photo(&mut self, raw: Option<&str>) -> Option<String> {
        let photo = raw.map(|p| p.trim().to_ascii_lowercase());
        if let Some(p) = &photo {
            let ok = p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';');
            if !ok {
                self.problem(
                    "source.photo",
                    format!(
                        "`{p}` is not an attribute name; use jpegPhoto, or thumbnailPhoto on AD"
                    ),
                );
            }
        }
        photo
    }

    /// `source.incremental`, and the anchor each kind identifies entries by.
    fn ldap_incremental(&mut self, raw: Option<&str>, anchor: &str) -> LdapIncremental {
        let incremental = match raw {
            None | Some("none") => LdapIncremental::None,
            Some("syncrepl") => LdapIncremental::Syncrepl,
            Some("usn") => LdapIncremental::Usn,
            Some(o) => {
                self.problem(
                    "source.incremental",
                    format!("`{o}`: use `syncrepl` (OpenLDAP / 389-ds, RFC 4533), `usn` (Active Directory) or `none`"),
                );
                LdapIncremental::None
            }
        };
        if incremental == LdapIncremental::Usn && !anchor.eq_ignore_ascii_case("objectGUID") {
            self.problem(
                "source.anchor",
                "usn reads identify deleted entries by objectGUID: set anchor: objectGUID (or incremental: none)",
            );
        }
        incremental
    }

    /// Graph's token and API URLs (`{tenant}` filled in); plain HTTP off loopback warns.
    fn graph_endpoints(&mut self, g: &raw::RawGraph, tenant: &str) -> (Option<Url>, Option<Url>) {
        let token_text = g
            .token_url
            .clone()
            .unwrap_or_else(|| crate::source::graph::DEFAULT_TOKEN_URL.to_string())
            .replace("{tenant}", tenant);
        let token_url = self.url("source.token_url", &token_text, &["https", "http"]);
        let api_text = g
            .api_url
            .clone()
            .unwrap_or_else(|| crate::source::graph::DEFAULT_API_URL.to_string());
        let api_url = self.url(
            "source.api_url",
            api_text.trim_end_matches('/'),
            &["https", "http"],
        );
        for (key, u) in [
            ("source.token_url", &token_url),
            ("source.api_url", &api_url),
        ] {
            if let Some(u) = u {
                let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                if u.scheme() == "http" && !loopback {
                    self.warnings.push(format!("{key}: {u} is plain HTTP off loopback: the client secret or token travels in clear text"));
                }
            }
        }
        (token_url, api_url)
    }

    /// `source.incremental` of Graph: `delta` (the default) or `none`.
    fn graph_incremental(&mut self, raw: Option<&str>) -> Incremental {
        match raw {
            None | Some("delta") => Incremental::Delta,
            Some("none") => Incremental::None,
            Some(o) => {
                self.problem(
                    "source.incremental",
                    format!(
                        "`{o}`: use `delta` (read only changes) or `none` (read all every run)"
                    ),
                );
                Incremental::Delta
            }
        }
    }

    pub(super) fn graph(&mut self, g: raw::RawGraph) -> Option<SourceConfig> {
        let tenant = g.tenant.trim().to_string();
        let tenant_ok = !tenant.is_empty()
            && tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !tenant_ok {
            self.problem("source.tenant", format!("`{tenant}`: write the directory (tenant) id, a GUID, or its domain such as contoso.onmicrosoft.com"));
        }
        if g.client_id.trim().is_empty() {
            self.problem(
                "source.client_id",
                "the application (client) id of idsync's app registration is required",
            );
        }
        let client_secret = self.required_secret(
            "source.client_secret",
            g.client_secret.as_deref(),
            g.client_secret_file.as_deref(),
            "the app registration's client secret is required: `client_secret_file: /path` or `client_secret: \"${ENV}\"`",
        );
        let (token_url, api_url) = self.graph_endpoints(&g, &tenant);
        let scope = g.scope.unwrap_or_else(|| {
            api_url
                .as_ref()
                .map(|u| format!("{}/.default", u.origin().ascii_serialization()))
                .unwrap_or_default()
        });
        let ca_file = self.ca_file("source.ca_file", g.ca_file.as_deref());
        let incremental = self.graph_incremental(g.incremental.as_deref());
        let full_every = self.duration(
            "source.full_every",
            g.full_every.as_deref(),
            std::time::Duration::from_secs(24 * 3600),
        );
        let page_size = g.page_size.unwrap_or(999);
        if !(1..=999).contains(&page_size) {
            self.problem(
                "source.page_size",
                "must be between 1 and 999 (Graph's largest page of users)",
            );
        }
        let timeout = self.duration(
            "source.timeout",
            g.timeout.as_deref(),
            std::time::Duration::from_secs(30),
        );
        let proxy = self.proxy("source.proxy", g.proxy.as_deref());
        let max_response_bytes = self.size(
            "source.max_response_bytes",
            g.max_response_bytes,
            crate::http::DEFAULT_MAX_RESPONSE,
            1 << 30,
        );
        let max_users = g.max_users.unwrap_or(DEFAULT_MAX_ITEMS);
        if max_users == 0 {
            self.problem("source.max_users", "must be at least 1");
        }
        Some(SourceConfig::Graph(GraphConfig {
            tenant,
            client_id: g.client_id.trim().to_string(),
            client_secret: client_secret?,
            token_url: token_url?,
            api_url: api_url?,
            scope,
            ca_file,
            incremental,
            full_every,
            page_size,
            timeout,
            max_retries: g.max_retries.unwrap_or(5),
            select: Vec::new(),
            photo: g.photo.unwrap_or(false),
            photo_max_bytes: crate::photo::DEFAULT_MAX_BYTES,
            proxy,
            max_response_bytes,
            max_users,
        }))
    }

    /// `groups.base_dn`: required for LDAP, refused for Graph.
    fn groups_base_dn(&mut self, ldap: bool, raw: Option<String>) -> Option<String> {
        match (ldap, raw) {
            (true, Some(b)) if !b.trim().is_empty() => Some(b.trim().to_string()),
            (true, _) => {
                self.problem(
                    "groups.base_dn",
                    "required with an LDAP source: where the groups live, e.g. ou=groups,dc=example,dc=org",
                );
                None
            }
            (false, Some(_)) => {
                self.problem(
                    "groups.base_dn",
                    "only for LDAP sources; Graph reads /groups",
                );
                None
            }
            (false, None) => None,
        }
    }

    /// `groups.filter`: an LDAP filter (the standard group classes by default), or Graph's
    /// optional `$filter`.
    fn groups_filter(&mut self, ldap: bool, raw: Option<String>) -> Option<String> {
        if !ldap {
            return raw;
        }
        let f = raw.unwrap_or_else(|| LDAP_GROUP_FILTER.to_string());
        if !(f.starts_with('(') && f.ends_with(')')) {
            self.problem(
                "groups.filter",
                format!(
                    "`{f}` must be a parenthesised LDAP filter such as (objectClass=groupOfNames)"
                ),
            );
        }
        Some(f)
    }

    /// `groups.vanished`: what a managed group gone upstream becomes.
    fn vanished(&mut self, raw: Option<&str>) -> crate::groups::Vanished {
        match raw {
            None | Some("leave") => crate::groups::Vanished::Leave,
            Some("delete") => crate::groups::Vanished::Delete,
            Some(o) => {
                self.problem(
                    "groups.vanished",
                    format!("`{o}`: use `leave` (keep the app group, report it) or `delete`"),
                );
                crate::groups::Vanished::Leave
            }
        }
    }

    pub(super) fn groups(
        &mut self,
        g: raw::RawGroups,
        source: &Option<SourceConfig>,
    ) -> Option<GroupsConfig> {
        let ldap = match source {
            Some(SourceConfig::Ldap(l)) => Some(l),
            Some(SourceConfig::Graph(_)) => None,
            None => return None,
        };
        let base_dn = self.groups_base_dn(ldap.is_some(), g.base_dn.clone());
        let filter = self.groups_filter(ldap.is_some(), g.filter.clone());
        let one_level = self.one_level("groups.scope", g.scope.as_deref());
        let default_name = if ldap.is_some() {
            "{cn}"
        } else {
            "{displayName}"
        };
        let name_text = g.name.unwrap_or_else(|| default_name.to_string());
        let name = match Template::parse(&name_text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem("groups.name", e.to_string());
                None
            }
        };
        let anchor = match (ldap, g.anchor) {
            (Some(l), a) => a.unwrap_or_else(|| l.anchor.clone()),
            (None, Some(_)) => {
                self.problem(
                    "groups.anchor",
                    "only for LDAP sources; Graph groups are anchored by their id",
                );
                String::new()
            }
            (None, None) => "id".to_string(),
        };
        if ldap.is_none() && g.member_uid.is_some() {
            self.problem(
                "groups.member_uid",
                "only for LDAP posixGroup; remove it for Graph",
            );
        }
        let vanished = self.vanished(g.vanished.as_deref());
        let batch = g.batch.unwrap_or(100);
        if !(1..=1000).contains(&batch) {
            self.problem(
                "groups.batch",
                "members per PATCH request: between 1 and 1000 (default 100)",
            );
        }
        let only = g.only.map(|names| {
            if names.is_empty() {
                self.problem("groups.only", "an empty list selects no group; remove `only` to sync every group the filter finds");
            }
            names.iter().map(|n| n.trim().to_lowercase()).collect()
        });
        Some(GroupsConfig {
            base_dn,
            filter,
            one_level,
            only,
            name: name?,
            anchor,
            nested: g.nested.unwrap_or(false),
            member_uid: g
                .member_uid
                .unwrap_or_else(|| "uid".to_string())
                .trim()
                .to_ascii_lowercase(),
            policy: crate::groups::GroupPolicy { vanished },
            batch,
        })
    }
}
