//! What 389 Directory Server needs for content synchronization, checked by `check
//! --connect` where the bind may read it: the Retro Changelog on, with `nsslapd-attribute:
//! nsuniqueid:targetUniqueId` (without it a refresh from a cookie silently returns nothing:
//! changes would be missed until the next full read), and the Content Synchronization
//! plugin on. A server that is not 389-ds, by its rootDSE's `vendorName`, needs nothing here.

use ldap3::{Scope, SearchEntry};

use super::ldap::{contained, LdapReader};
use super::SourceError;

const RETRO: &str = "cn=Retro Changelog Plugin,cn=plugins,cn=config";
const CONTENT_SYNC: &str = "cn=Content Synchronization,cn=plugins,cn=config";

impl LdapReader {
    /// `check --connect`'s word on the server's content sync settings: `None` for a server
    /// that is not 389-ds; else what is wrong, or that it could not tell.
    pub async fn ds389_sync_settings(&self) -> Result<Option<String>, SourceError> {
        let mut ldap = self.connect().await?;
        let read = |base: &'static str, attrs: &'static [&'static str]| {
            let mut ldap = ldap.clone();
            async move {
                let found = ldap
                    .search(base, Scope::Base, "(objectClass=*)", attrs.to_vec())
                    .await
                    .map_err(|e| self.classify(e))?;
                let entry = found
                    .0
                    .into_iter()
                    .next()
                    .map(|e| contained("entry", || SearchEntry::construct(e)))
                    .transpose()?;
                Ok::<_, SourceError>(entry)
            }
        };
        let root = read("", &["vendorName"]).await?;
        let vendor = root
            .as_ref()
            .and_then(|e| first(e, "vendorName"))
            .unwrap_or_default();
        if !vendor.contains("389") {
            let _ = ldap.unbind().await;
            return Ok(None);
        }
        let retro = read(RETRO, &["nsslapd-pluginEnabled", "nsslapd-attribute"]).await;
        let sync = read(CONTENT_SYNC, &["nsslapd-pluginEnabled"]).await;
        let _ = ldap.unbind().await;
        let (Ok(Some(retro)), Ok(Some(sync))) = (retro, sync) else {
            return Ok(Some(format!(
                "389 Directory Server: this bind cannot read cn=config, so idsync cannot check that the Retro Changelog is on with `nsslapd-attribute: nsuniqueid:targetUniqueId` ({RETRO}) and that Content Synchronization is on; without them a refresh from a cookie returns nothing"
            )));
        };
        let on = |e: &SearchEntry| {
            first(e, "nsslapd-pluginEnabled").is_some_and(|v| v.eq_ignore_ascii_case("on"))
        };
        let mut wrong = Vec::new();
        if !on(&retro) {
            wrong.push(format!(
                "enable the Retro Changelog ({RETRO}: nsslapd-pluginEnabled: on)"
            ));
        }
        let attributes = values(&retro, "nsslapd-attribute");
        if !attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case("nsuniqueid:targetUniqueId"))
        {
            wrong.push(format!(
                "add `nsslapd-attribute: nsuniqueid:targetUniqueId` to {RETRO} (without it a refresh from a cookie returns nothing: changes are missed until the next full read)"
            ));
        }
        if !on(&sync) {
            wrong.push(format!(
                "enable Content Synchronization ({CONTENT_SYNC}: nsslapd-pluginEnabled: on)"
            ));
        }
        Ok(Some(match wrong.is_empty() {
            true => "389 Directory Server: Retro Changelog (nsuniqueid:targetUniqueId) and Content Synchronization on".into(),
            false => format!(
                "warning: 389 Directory Server: {}; then restart the server",
                wrong.join("; ")
            ),
        }))
    }
}

fn values(e: &SearchEntry, attr: &str) -> Vec<String> {
    e.attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter().cloned())
        .collect()
}

fn first(e: &SearchEntry, attr: &str) -> Option<String> {
    values(e, attr).into_iter().next()
}
