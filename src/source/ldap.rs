//! LDAP / Active Directory reader on ldap3: simple bind, LDAPS or StartTLS with a verified
//! certificate (never a plaintext fallback), paged search (RFC 2696) so server size limits
//! never truncate a read, anchors from `entryUUID` or AD's binary `objectGUID`.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ldap3::adapters::{Adapter, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

use super::{DirectoryReader, Read, ReadRequest, SourceError};
use crate::config::{LdapConfig, LdapIncremental};
use crate::model::{Anchor, Attrs, DirectoryUser};

pub struct LdapReader {
    cfg: LdapConfig,
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
        LdapReader { cfg }
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
            10 => format!("referral to {refs:?}; point source.url/base_dn at the server that holds the entries"),
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

    /// A paged search (RFC 2696) to the end: every entry, or an error (a limit, a referral,
    /// a lost connection), never a short list.
    pub(super) async fn paged_search(
        &self,
        ldap: &mut Ldap,
        search: Search<'_>,
    ) -> Result<Vec<SearchEntry>, SourceError> {
        self.paged_search_map(ldap, search, Ok).await
    }

    /// `paged_search`, each entry turned into a `T` by `map` as it arrives.
    pub(super) async fn paged_search_map<T>(
        &self,
        ldap: &mut Ldap,
        search: Search<'_>,
        mut map: impl FnMut(SearchEntry) -> Result<T, SourceError>,
    ) -> Result<Vec<T>, SourceError> {
        let cfg = &self.cfg;
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> =
            vec![Box::new(PagedResults::new(cfg.page_size))];
        if !search.controls.is_empty() {
            ldap.with_controls(search.controls);
        }
        let mut stream = ldap
            .with_timeout(cfg.timeout)
            .streaming_search_with(
                adapters,
                search.base,
                search.scope,
                search.filter,
                search.attrs,
            )
            .await
            .map_err(|e| self.classify(e))?;
        let mut entries = Vec::new();
        let mut refs = 0usize;
        loop {
            let entry = match stream.next().await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => return Err(self.classify(e)),
            };
            if entry.is_ref() {
                refs += 1;
                continue;
            }
            if entry.is_intermediate() {
                continue;
            }
            entries.push(map(contained("entry", || SearchEntry::construct(entry))?)?);
        }
        let res = stream.finish().await;
        self.search_done(&res, refs, search.base, true)?;
        Ok(entries)
    }

    /// A finished search is complete only if it ended with success and without search
    /// references (idsync does not chase them): anything else fails the read.
    pub(super) fn search_done(
        &self,
        res: &ldap3::LdapResult,
        refs: usize,
        base: &str,
        paged: bool,
    ) -> Result<(), SourceError> {
        if res.rc != 0 {
            return Err(self.result_error(res.rc, &res.text, &res.refs, paged));
        }
        if refs > 0 {
            return Err(SourceError::Search {
                base: base.to_string(),
                detail: format!("{refs} search reference(s) point to other servers; idsync does not chase referrals: point source.base_dn at the server holding the entries"),
            });
        }
        Ok(())
    }

    pub(super) fn user(&self, entry: SearchEntry) -> Result<DirectoryUser, SourceError> {
        let dn = entry.dn;
        let mut attrs = Attrs::default();
        for (k, v) in entry.attrs {
            attrs.add(&k, v);
        }
        attrs.shrink_to_fit();
        let bin: BTreeMap<String, Vec<Vec<u8>>> = entry
            .bin_attrs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let anchor_attr = self.cfg.anchor.to_ascii_lowercase();
        let anchor = if anchor_attr == "objectguid" {
            let raw = bin
                .get(&anchor_attr)
                .and_then(|v| v.first().cloned())
                .or_else(|| {
                    attrs
                        .get(&anchor_attr)
                        .and_then(|v| v.first())
                        .map(|s| s.as_bytes().to_vec())
                });
            match raw {
                Some(bytes) => Some(guid_text(&bytes).ok_or_else(|| SourceError::BadEntry {
                    dn: dn.clone(),
                    detail: format!("objectGUID has {} bytes, not 16", bytes.len()),
                })?),
                None => None,
            }
        } else {
            attrs
                .get(&anchor_attr)
                .and_then(|v| v.first())
                .map(|s| s.trim().to_ascii_lowercase())
        };
        let anchor = anchor
            .filter(|a| !a.is_empty())
            .ok_or_else(|| SourceError::NoAnchor {
                dn: dn.clone(),
                attr: self.cfg.anchor.clone(),
            })?;
        let photo_attr = self.cfg.photo.as_deref();
        let problems = bin
            .keys()
            .filter(|k| **k != anchor_attr && Some(k.as_str()) != photo_attr)
            .map(|k| format!("attribute {k} is not valid UTF-8"))
            .collect();
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

/// Runs `f`, an ldap3 BER parse, turning its panic on malformed input into a bad entry.
pub(super) fn contained<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, SourceError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|_| SourceError::BadEntry {
        dn: "(unparseable)".into(),
        detail: format!("the server sent a malformed {what}"),
    })
}

/// AD objectGUID bytes -> the canonical `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` form
/// (the first three groups are little-endian).
pub fn guid_text(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_guid_renders_like_windows_does() {
        // Bytes of {2B1A3C4D-6E5F-7A8B-9C0D-1E2F3A4B5C6D} as AD stores them.
        let bytes = [
            0x4d, 0x3c, 0x1a, 0x2b, 0x5f, 0x6e, 0x8b, 0x7a, 0x9c, 0x0d, 0x1e, 0x2f, 0x3a, 0x4b,
            0x5c, 0x6d,
        ];
        assert_eq!(
            guid_text(&bytes).unwrap(),
            "2b1a3c4d-6e5f-7a8b-9c0d-1e2f3a4b5c6d"
        );
        assert!(guid_text(&bytes[..15]).is_none());
    }
}
