//! LDAP / Active Directory reader on ldap3: simple bind, LDAPS or StartTLS with a verified
//! certificate (never a plaintext fallback), paged search (RFC 2696) so server size limits
//! never truncate a read, anchors from `entryUUID` or AD's binary `objectGUID`.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ldap3::adapters::{Adapter, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

use super::binary::{guid_text, render_binary_ids, BINARY_TEXT};
use super::settings::{LdapConfig, LdapIncremental};
use super::{DirectoryReader, Read, ReadRequest, SourceError};
use crate::model::{Anchor, Attrs, DirectoryUser};

pub struct LdapReader {
    cfg: LdapConfig,
    /// Continuation references (RFC 4511 4.5.3) the reads met and did not follow: other
    /// naming contexts (AD's DomainDnsZones, ForestDnsZones, Configuration) or subtrees
    /// held elsewhere. Named by `check --connect`.
    references: std::sync::Mutex<BTreeSet<String>>,
}

/// One search: where, what, and any extra request controls.
pub(super) struct Search<'a> {
    pub base: &'a str,
    pub scope: Scope,
    pub filter: &'a str,
    pub attrs: Vec<String>,
    pub controls: Vec<ldap3::controls::RawControl>,
}

impl LdapReader {
    pub fn new(cfg: LdapConfig) -> Self {
        LdapReader {
            cfg,
            references: Default::default(),
        }
    }

    /// The settings this reader was made with.
    pub fn settings(&self) -> &LdapConfig {
        &self.cfg
    }

    /// The continuation references skipped so far, sorted.
    pub fn skipped_references(&self) -> Vec<String> {
        self.references
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Notes a continuation reference: not an error (every entry this server holds under
    /// the base is returned), skipped unless `follow_referrals` chases it.
    pub(super) fn note_reference(
        &self,
        entry: ldap3::ResultEntry,
    ) -> Result<Vec<String>, SourceError> {
        let urls = contained("search reference", || ldap3::parse_refs(entry.0))?;
        for u in &urls {
            tracing::debug!(reference = %u, "search continuation reference");
        }
        if let Ok(mut r) = self.references.lock() {
            r.extend(urls.iter().cloned());
        }
        Ok(urls)
    }

    pub(super) fn config(&self) -> &LdapConfig {
        &self.cfg
    }

    fn tls_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, SourceError> {
        let Some(ca) = &self.cfg.ca_file else {
            return Ok(None);
        };
        let tls_err = |detail: String| SourceError::Tls {
            url: self.cfg.url.to_string(),
            detail,
        };
        let pem =
            std::fs::read(ca).map_err(|e| tls_err(format!("cannot read {}: {e}", ca.display())))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| tls_err(format!("{} is not PEM: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls_err(format!("{}: {e}", ca.display())))?;
        }
        if roots.is_empty() {
            return Err(tls_err(format!("{} holds no certificate", ca.display())));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(Arc::new(config)))
    }

    pub(super) fn classify(&self, e: LdapError) -> SourceError {
        let url = self.cfg.url.to_string();
        let detail = e.to_string();
        match e {
            LdapError::Io { source } if crate::http::is_tls_cause(&source) => {
                SourceError::Tls { url, detail }
            }
            LdapError::Io { .. } | LdapError::Timeout { .. } | LdapError::EndOfStream => {
                SourceError::Connect { url, detail }
            }
            LdapError::Rustls { .. } | LdapError::DNSName { .. } => {
                SourceError::Tls { url, detail }
            }
            _ => SourceError::Search {
                base: self.cfg.base_dn.clone(),
                detail,
            },
        }
    }

    /// Connects (LDAPS or StartTLS as configured) and binds.
    pub(super) async fn connect(&self) -> Result<Ldap, SourceError> {
        let cfg = &self.cfg;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(cfg.timeout)
            .set_starttls(cfg.start_tls);
        if let Some(tls) = self.tls_config()? {
            settings = settings.set_config(tls);
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, cfg.url.as_str())
            .await
            .map_err(|e| match e {
                // The answer to the StartTLS request: the server will not do TLS, and idsync
                // will not bind without it.
                LdapError::LdapResult { result } if cfg.start_tls => SourceError::Tls {
                    url: cfg.url.to_string(),
                    detail: format!(
                        "the server refused StartTLS (result code {} {}); enable TLS on the server (OpenLDAP: TLSCertificateFile), or use ldaps://; idsync never binds in plaintext",
                        result.rc, result.text
                    ),
                },
                e => self.classify(e),
            })?;
        ldap3::drive!(conn);
        if let (Some(dn), Some(pw)) = (&cfg.bind_dn, &cfg.bind_password) {
            let res = ldap
                .with_timeout(cfg.timeout)
                .simple_bind(dn, pw.expose())
                .await
                .map_err(|e| self.classify(e))?;
            if res.rc != 0 {
                return Err(SourceError::Bind {
                    bind_dn: dn.clone(),
                    detail: format!("result code {} {}", res.rc, res.text),
                });
            }
        }
        Ok(ldap)
    }

    pub(super) fn scope(&self) -> Scope {
        if self.cfg.one_level {
            Scope::OneLevel
        } else {
            Scope::Subtree
        }
    }

    /// A search's final result as an error, with what to fix.
    pub(super) fn result_error(
        &self,
        rc: u32,
        text: &str,
        refs: &[String],
        paged: bool,
    ) -> SourceError {
        let detail = match rc {
            3 => format!("time limit exceeded ({text}); raise the server's time limit for the bind account"),
            4 if paged => format!(
                "size limit exceeded ({text}): the server cut the read short; lift the bind account's total limit (OpenLDAP: `limits dn.exact=\"<bind dn>\" size.prtotal=unlimited`)"
            ),
            4 => format!(
                "size limit exceeded ({text}): syncrepl reads are not paged, so the bind account needs no size limit (OpenLDAP: `limits dn.exact=\"<bind dn>\" size=unlimited`)"
            ),
            10 => format!("the server refers the base itself to {refs:?}: the entries are held elsewhere; point source.url/base_dn at the server that holds them"),
            12 => format!("the server does not offer content synchronization ({text}); load the syncprov overlay, or set source.incremental: none"),
            32 => format!(
                "base DN not found ({text}); fix source.base_dn, or grant the bind account read access to it"
            ),
            50 => format!("insufficient access ({text}); grant the bind account read rights"),
            rc => format!("result code {rc} {text}"),
        };
        SourceError::Search {
            base: self.cfg.base_dn.clone(),
            detail,
        }
    }

    pub(super) async fn read_everything(&self) -> Result<Vec<DirectoryUser>, SourceError> {
        let cfg = &self.cfg;
        let mut ldap = self.connect().await?;
        let search = Search {
            base: &cfg.base_dn,
            scope: self.scope(),
            filter: &cfg.filter,
            attrs: cfg.attributes.clone(),
            controls: Vec::new(),
        };
        // Each entry becomes a person as it arrives: the raw entries are never all held.
        let users = self
            .paged_search_map(&mut ldap, search, |e| self.user(e))
            .await;
        let _ = ldap.unbind().await;
        users
    }

    /// The entry at `dn`, read alone (base scope) with the configured filter and
    /// attributes: `None` when it is gone or no longer matches the filter. A DN outside
    /// `base_dn` is out of scope, whatever it holds.
    pub(super) async fn read_dn(
        &self,
        ldap: &mut Ldap,
        dn: &str,
    ) -> Result<Option<SearchEntry>, SourceError> {
        let cfg = &self.cfg;
        if !within(dn, &cfg.base_dn) || (cfg.one_level && !child_of(dn, &cfg.base_dn)) {
            return Ok(None);
        }
        let found = ldap
            .with_timeout(cfg.timeout)
            .search(dn, Scope::Base, &cfg.filter, cfg.attributes.clone())
            .await
            .map_err(|e| self.classify(e))?;
        // 32: no such object (deleted, or moved away).
        if found.1.rc == 32 {
            return Ok(None);
        }
        self.search_done(&found.1, false)?;
        let entry = found
            .0
            .into_iter()
            .find(|e| !e.is_ref() && !e.is_intermediate());
        entry
            .map(|e| contained("entry", || SearchEntry::construct(e)))
            .transpose()
    }

    /// Each remembered person read again at their DN: who is still there, as read now.
    /// What confirms an incremental read's removals and disables (`source::confirm`).
    pub async fn read_people_at(
        &self,
        people: &[&DirectoryUser],
    ) -> Result<Vec<Option<DirectoryUser>>, SourceError> {
        let mut ldap = self.connect().await?;
        let mut out = Vec::with_capacity(people.len());
        for p in people {
            let entry = match self.read_dn(&mut ldap, &p.locator).await {
                Ok(e) => e,
                Err(e) => {
                    let _ = ldap.unbind().await;
                    return Err(e);
                }
            };
            let mut found = entry.map(|e| self.user(e)).transpose()?;
            // Another entry now at the same DN is somebody else: the person is gone.
            if found.as_ref().is_some_and(|f| f.anchor != p.anchor) {
                found = None;
            }
            if let Some(f) = found.as_mut() {
                f.sync_id = p.sync_id.clone();
            }
            out.push(found);
        }
        let _ = ldap.unbind().await;
        Ok(out)
    }

    /// A paged search (RFC 2696) to the end: every entry, or an error (a limit, a referral,
    /// a lost connection), never a short list.
    pub(super) async fn paged_search(
        &self,
        ldap: &mut Ldap,
        search: Search<'_>,
    ) -> Result<Vec<SearchEntry>, SourceError> {
        self.paged_search_map(ldap, search, Ok).await
    }

    /// `paged_search`, each entry turned into a `T` by `map` as it arrives; continuation
    /// references are followed when `follow_referrals` says so.
    pub(super) async fn paged_search_map<T>(
        &self,
        ldap: &mut Ldap,
        search: Search<'_>,
        mut map: impl FnMut(SearchEntry) -> Result<T, SourceError>,
    ) -> Result<Vec<T>, SourceError> {
        let (mut entries, refs) = self.search_pages(ldap, &search, &mut map).await?;
        if self.cfg.follow_referrals {
            for url in refs {
                entries.extend(self.chase(&url, &search, &mut map).await?);
            }
        }
        Ok(entries)
    }

    /// One paged search on this connection: its entries, and the continuation references
    /// it met (noted, not followed).
    async fn search_pages<T>(
        &self,
        ldap: &mut Ldap,
        search: &Search<'_>,
        map: &mut impl FnMut(SearchEntry) -> Result<T, SourceError>,
    ) -> Result<(Vec<T>, Vec<String>), SourceError> {
        let cfg = &self.cfg;
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> =
            vec![Box::new(PagedResults::new(cfg.page_size))];
        if !search.controls.is_empty() {
            ldap.with_controls(search.controls.clone());
        }
        let mut stream = ldap
            .with_timeout(cfg.timeout)
            .streaming_search_with(
                adapters,
                search.base,
                search.scope,
                search.filter,
                search.attrs.clone(),
            )
            .await
            .map_err(|e| self.classify(e))?;
        let mut entries = Vec::new();
        let mut refs = Vec::new();
        loop {
            let entry = match stream.next().await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => return Err(self.classify(e)),
            };
            if entry.is_ref() {
                refs.extend(self.note_reference(entry)?);
                continue;
            }
            if entry.is_intermediate() {
                continue;
            }
            entries.push(map(contained("entry", || SearchEntry::construct(entry))?)?);
        }
        let res = stream.finish().await;
        self.search_done(&res, true)?;
        Ok((entries, refs))
    }

    /// Follows one continuation reference: the same search (filter, attributes, scope) on
    /// the server and base it names, with the same bind and TLS settings. References met
    /// there are noted, not followed (no loops).
    async fn chase<T>(
        &self,
        url: &str,
        search: &Search<'_>,
        map: &mut impl FnMut(SearchEntry) -> Result<T, SourceError>,
    ) -> Result<Vec<T>, SourceError> {
        let bad = |detail: String| SourceError::Search {
            base: self.cfg.base_dn.clone(),
            detail,
        };
        let parsed = url::Url::parse(url)
            .map_err(|e| bad(format!("cannot follow the reference {url}: {e}")))?;
        let base = percent_decode(parsed.path().trim_start_matches('/'));
        let mut target = parsed.clone();
        target.set_path("");
        target.set_query(None);
        // The bind never travels in plaintext where the source's own does not.
        if target.scheme() == "ldap" && self.cfg.url.scheme() == "ldaps" {
            return Err(bad(format!("the reference {url} is plain ldap:// while source.url is ldaps://; idsync never binds in plaintext: set follow_referrals: false")));
        }
        let other = LdapReader::new(LdapConfig {
            url: target,
            base_dn: base.clone(),
            follow_referrals: false,
            ..self.cfg.clone()
        });
        let mut ldap = other.connect().await?;
        let chased = Search {
            base: &base,
            scope: search.scope,
            filter: search.filter,
            attrs: search.attrs.clone(),
            controls: Vec::new(),
        };
        let found = other.search_pages(&mut ldap, &chased, map).await;
        let _ = ldap.unbind().await;
        let (entries, _) = found?;
        if let Ok(mut r) = self.references.lock() {
            r.remove(url);
            r.extend(other.skipped_references());
        }
        tracing::debug!(reference = %url, entries = entries.len(), "followed a search continuation reference");
        Ok(entries)
    }

    /// A finished search is complete only if it ended with success: anything else (a
    /// limit, a referral *result* for the base itself) fails the read. Continuation
    /// references met along the way are not errors (see `note_reference`).
    pub(super) fn search_done(
        &self,
        res: &ldap3::LdapResult,
        paged: bool,
    ) -> Result<(), SourceError> {
        if res.rc != 0 {
            return Err(self.result_error(res.rc, &res.text, &res.refs, paged));
        }
        Ok(())
    }

    /// The entry's anchor: `objectGUID` bytes as GUID text, any other attribute's first
    /// value lower-cased; an entry without one fails the read.
    fn anchor_of(
        &self,
        dn: &str,
        anchor_attr: &str,
        attrs: &Attrs,
        bin: &BTreeMap<String, Vec<Vec<u8>>>,
    ) -> Result<String, SourceError> {
        let anchor = if anchor_attr == "objectguid" {
            let raw = bin
                .get(anchor_attr)
                .and_then(|v| v.first().cloned())
                .or_else(|| {
                    attrs
                        .get(anchor_attr)
                        .and_then(|v| v.first())
                        .map(|s| s.as_bytes().to_vec())
                });
            match raw {
                Some(bytes) => Some(guid_text(&bytes).ok_or_else(|| SourceError::BadEntry {
                    dn: dn.to_string(),
                    detail: format!("objectGUID has {} bytes, not 16", bytes.len()),
                })?),
                None => None,
            }
        } else {
            attrs
                .get(anchor_attr)
                .and_then(|v| v.first())
                .map(|s| s.trim().to_ascii_lowercase())
        };
        anchor
            .filter(|a| !a.is_empty())
            .ok_or_else(|| SourceError::NoAnchor {
                dn: dn.to_string(),
                attr: self.cfg.anchor.clone(),
            })
    }

    pub(super) fn user(&self, entry: SearchEntry) -> Result<DirectoryUser, SourceError> {
        let dn = entry.dn;
        let photo_attr = self.cfg.photo.as_deref();
        let max = self.cfg.max_value_bytes;
        // A value past the cap is dropped and freezes the person (a notice): planning
        // without it would clear the field in the app.
        let mut oversized = Vec::new();
        let mut attrs = Attrs::default();
        for (k, mut v) in entry.attrs {
            if Some(k.to_ascii_lowercase().as_str()) != photo_attr && drop_longer(&mut v, max) {
                oversized.push(k.clone());
            }
            attrs.add(&k, v);
        }
        attrs.shrink_to_fit();
        let mut problems_early = Vec::new();
        let mut bin: BTreeMap<String, Vec<Vec<u8>>> = entry
            .bin_attrs
            .into_iter()
            .map(|(k, mut v)| {
                let k = k.to_ascii_lowercase();
                if Some(k.as_str()) != photo_attr && k != "objectguid" && drop_longer(&mut v, max) {
                    oversized.push(k.clone());
                }
                (k, v)
            })
            .collect();
        let anchor_attr = self.cfg.anchor.to_ascii_lowercase();
        let anchor = self.anchor_of(&dn, &anchor_attr, &attrs, &bin)?;
        render_binary_ids(&mut attrs, &mut bin, &mut problems_early);
        let mut problems: Vec<String> = bin
            .iter()
            .filter(|(k, v)| {
                **k != anchor_attr
                    && Some(k.as_str()) != photo_attr
                    && !v.is_empty()
                    && !BINARY_TEXT.iter().any(|(n, _)| n == k)
            })
            .map(|(k, _)| format!("attribute {k} is not valid UTF-8"))
            .collect();
        problems.append(&mut problems_early);
        problems.extend(oversized.iter().map(|k| {
            format!("attribute {k} has a value longer than source.max_value_bytes ({max} bytes); fix the entry, or raise the limit")
        }));
        // A photo is binary: ldap3 hands it over as bytes (or as text, if it happened to be
        // valid UTF-8).
        let photo = photo_attr.and_then(|p| {
            let bytes = bin.get(p).and_then(|v| v.first().cloned()).or_else(|| {
                attrs
                    .remove(p)
                    .and_then(|v| v.into_iter().next())
                    .map(String::into_bytes)
            })?;
            (!bytes.is_empty()).then(|| crate::photo::Photo::new(bytes))
        });
        let mut user = DirectoryUser {
            anchor: Anchor::new(anchor),
            locator: dn,
            attrs,
            disabled: false,
            problems,
            photo,
            sync_id: None,
        };
        user.disabled = self.cfg.disabled.as_ref().is_some_and(|f| f.matches(&user));
        Ok(user)
    }
}

impl DirectoryReader for LdapReader {
    async fn read(&self, request: &ReadRequest<'_>) -> Result<Read, SourceError> {
        match self.cfg.incremental {
            LdapIncremental::None => self.read_everything().await.map(Read::full),
            LdapIncremental::Syncrepl => self.sync_read(request).await,
            LdapIncremental::Usn => self.usn_read(request).await,
        }
    }
}

/// A DN's components, lower-cased and trimmed (escaped commas aside, which a base DN
/// seldom holds).
fn rdns(dn: &str) -> Vec<String> {
    dn.split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect()
}

/// Whether `dn` is `base` or below it.
fn within(dn: &str, base: &str) -> bool {
    let (dn, base) = (rdns(dn), rdns(base));
    dn.len() >= base.len() && dn[dn.len() - base.len()..] == base[..]
}

/// Whether `dn` is directly below `base`.
fn child_of(dn: &str, base: &str) -> bool {
    within(dn, base) && rdns(dn).len() == rdns(base).len() + 1
}

/// Drops the values longer than `max` bytes; true when it dropped any.
fn drop_longer<T: AsRef<[u8]>>(values: &mut Vec<T>, max: usize) -> bool {
    let before = values.len();
    values.retain(|v| v.as_ref().len() <= max);
    values.len() < before
}

/// An LDAP URL's DN part, `%xx` escapes decoded (RFC 4516).
fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Runs `f`, an ldap3 BER parse, turning its panic on malformed input into a bad entry.
pub(super) fn contained<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, SourceError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|_| SourceError::BadEntry {
        dn: "(unparseable)".into(),
        detail: format!("the server sent a malformed {what}"),
    })
}
