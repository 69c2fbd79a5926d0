//! `check --connect`: both ends reached, each app's schema held against its mapping.

use super::*;

/// The mapping's attributes that no person read has (a typo such as `{tilte}` blanks a
/// field for everyone), each with the mapping key that reads it.
fn unread_attributes(app: &AppConfig, users: &[crate::model::DirectoryUser]) -> Vec<String> {
    if users.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for f in &app.policy.mapping.fields {
        for attr in f.template.attributes() {
            if users.iter().all(|u| u.values(attr).is_empty()) {
                let at = match app.name.as_str() {
                    crate::journal::DEFAULT_APP => String::new(),
                    name => format!("apps.{name}."),
                };
                out.push(format!(
                    "{at}mapping.{} reads {{{attr}}}, which no person read has; check its spelling and the bind account's read rights",
                    f.path
                ));
            }
        }
    }
    out
}

/// `check --connect`: reaches the directory (see `Directory::probe`), then lists each
/// app's users (and groups).
pub async fn probe(cfg: &Config) -> Result<Probe, RunError> {
    let apps: Vec<&AppConfig> = cfg.apps.iter().collect();
    let connectors = Connectors::open(cfg, &apps)?;
    let (mut text, users) = connectors.directory.probe(cfg.groups.as_ref()).await?;
    for app in &apps {
        for warning in unread_attributes(app, &users) {
            text.push_str(&format!("; warning: {warning}"));
        }
    }
    let mut findings = Vec::new();
    for app in &apps {
        let client = connectors.app(&app.name);
        let several = cfg.apps.len() > 1;
        // A config key as the file names it: under `apps.NAME.` when there are several apps.
        let key = |k: &str| match several {
            true => format!("apps.{}.{k}", app.name),
            false => k.to_string(),
        };
        let listed = match app.target.list {
            crate::app::settings::ListMode::FilterOnly => Ok(Vec::new()),
            _ => client.list_accounts().await,
        };
        let accounts = match listed {
            Ok(accounts) => accounts,
            Err(e) => match list_without_count(app, &e).await {
                Some(accounts) => {
                    findings.push(crate::app::discovery::Finding {
                        level: crate::app::discovery::Level::Error,
                        key: key("target.page_size"),
                        problem: format!("the app fails when a list asks for a page size (`count`: {e}) and lists fine without one; set `page_size: 0`"),
                    });
                    accounts
                }
                None => return Err(e.into()),
            },
        };
        let name = if several {
            format!("app {}", app.name)
        } else {
            "app".to_string()
        };
        match app.target.list {
            crate::app::settings::ListMode::FilterOnly => {
                text.push_str(&format!("; {name}: not listed (target.list: filter-only)"))
            }
            _ => text.push_str(&format!("; {name}: {} accounts", accounts.len())),
        }
        if app.groups.is_some() {
            text.push_str(&format!(", {} groups", client.list_groups().await?.len()));
        }
        let discovery = client.discovery().await?;
        text.push_str(&format!(" ({})", discovery.summary()));
        let mapping_key = |path: &str| key(&format!("mapping.{path}"));
        findings.extend(discovery.check_mapping(&app.policy.mapping, &mapping_key));
        let scim_photos = app.target.photo == crate::app::settings::PhotoUpload::Scim;
        if app.policy.photos.is_some() && scim_photos && discovery.photos_read_only() {
            findings.push(crate::app::discovery::Finding {
                level: crate::app::discovery::Level::Warning,
                key: key("target.photo"),
                problem: "`photos` is read-only in this app: idsync sends it no photo; set `photo: none` here".into(),
            });
        } else if app.policy.photos.is_some() && scim_photos && discovery.photos_want_url() {
            findings.push(crate::app::discovery::Finding {
                level: crate::app::discovery::Level::Warning,
                key: key("target.photo"),
                problem: "this app's schema makes `photos.value` an external reference (RFC 7643: a URL to the image); `photo: scim` sends the photo as a data: URI, which an app that holds to its schema refuses (idsync then remembers the refusal instead of sending it every run). Working choices: keep `photo: scim` where the app takes data: URIs, `photo: none`, or `photo: { put: URL }` / `{ post: URL }` where the app has an upload endpoint".into(),
            });
        }
    }
    Ok(Probe { text, findings })
}

/// The accounts listed with no `count`, when a list that asked for one failed with an
/// answer from the app (not a connection or token problem) and this one works: some apps
/// fail on `count` itself.
async fn list_without_count(
    app: &AppConfig,
    failed: &crate::app::TargetError,
) -> Option<Vec<crate::model::Account>> {
    use crate::app::TargetError;
    let answered = match failed {
        TargetError::Exhausted { .. } => true,
        TargetError::Http { status, .. } => *status == 400 || *status >= 500,
        _ => false,
    };
    if !answered || app.target.page_size == 0 {
        return None;
    }
    let mut target = app.target.clone();
    target.page_size = 0;
    let client = crate::app::scim::ScimClient::new(target).ok()?;
    client.list_accounts().await.ok()
}

/// What `check --connect` found: one line on each end, and the mapping's mismatches with
/// each app's schema.
pub struct Probe {
    pub text: String,
    pub findings: Vec<crate::app::discovery::Finding>,
}
