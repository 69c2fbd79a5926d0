//! `console:` resolved: where `idsync serve` listens (plain or TLS), who may log in (local
//! logins with argon2 hashes, an OIDC provider's users by a claim), and what each sees.

use super::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// `console:`: where `idsync serve` listens and who may log in.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    pub users: Vec<ConsoleUser>,
    /// Session cookies carry `Secure` (default: when idsync serves TLS, or `listen` is not
    /// loopback, or the console sits behind a trusted proxy).
    pub cookie_secure: bool,
    /// Behind a reverse proxy: the client's address is the last `X-Forwarded-For` hop, and
    /// the console's own URL (OIDC's redirect) comes from `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` when `public_url` is not set. Anyone can send those headers: set
    /// only behind a proxy that overwrites them.
    pub trust_forwarded: bool,
    /// The URL people reach the console at (OIDC's redirect is built from it).
    pub public_url: Option<Url>,
    /// idsync serves HTTPS itself with this certificate.
    pub tls: Option<ConsoleTls>,
    pub oidc: Option<OidcConfig>,
}

/// `console.tls`: PEM files, read at start and again on SIGHUP.
#[derive(Clone, Debug)]
pub struct ConsoleTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One local login.
#[derive(Clone, Debug)]
pub struct ConsoleUser {
    pub name: String,
    /// A PHC string (`$argon2id$...`, from `idsync passwd`).
    pub password_hash: String,
    pub access: Access,
}

/// `console.oidc`: log in at an OpenID Connect provider (authorization code + PKCE).
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The provider's issuer; its `/.well-known/openid-configuration` is read at start.
    pub issuer: Url,
    pub client_id: String,
    pub client_secret: Secret,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The claim naming the person (shown, and in the audit).
    pub username_claim: String,
    /// The claim whose values grant access (a list of group names, or one string).
    pub roles_claim: String,
    /// The access each claim value grants, first match wins; empty: a value that is a role's
    /// name (`viewer`, `approver`, `admin`) grants that role, unscoped.
    pub roles: Vec<OidcBinding>,
    pub ca_file: Option<PathBuf>,
}

/// `console.oidc.roles[]`: a value of the roles claim, and what it grants.
#[derive(Clone, Debug)]
pub struct OidcBinding {
    pub claim: String,
    pub access: Access,
}

impl OidcConfig {
    /// What a provider's user with these roles-claim values may do: the first binding one
    /// of them names (without bindings, the highest role a value names), and which value
    /// it was (kept in the session, looked up again on every request).
    pub fn access_for(&self, values: &[String]) -> Option<(String, Access)> {
        if self.roles.is_empty() {
            return values
                .iter()
                .filter_map(|v| Some((v.clone(), Role::parse(v)?)))
                .max_by_key(|(_, r)| *r)
                .map(|(v, role)| {
                    let access = Access {
                        role,
                        apps: None,
                        people: People::default(),
                    };
                    (v, access)
                });
        }
        self.roles
            .iter()
            .find(|b| values.iter().any(|v| v == &b.claim))
            .map(|b| (b.claim.clone(), b.access.clone()))
    }
}

/// What a login may see and do.
#[derive(Clone, Debug)]
pub struct Access {
    pub role: Role,
    /// The apps this login sees (`None`: every app).
    pub apps: Option<BTreeSet<String>>,
    pub people: People,
}

/// The people a login sees: matching any part; empty: everyone.
#[derive(Clone, Debug, Default)]
pub struct People {
    /// userName patterns (`*@research.example.org`).
    pub user_names: Vec<glob::Pattern>,
    /// Directory groups (a name, DN or id; nested members count), as of the last sync.
    pub groups: Vec<String>,
    /// Directory subtrees (DNs), as of the last sync.
    pub ous: Vec<String>,
}

impl People {
    pub fn everyone(&self) -> bool {
        self.user_names.is_empty() && self.groups.is_empty() && self.ous.is_empty()
    }

    /// The groups and OUs named, as the roster's keys.
    pub fn units(&self) -> Vec<crate::roster::Unit> {
        let groups = self.groups.iter().cloned().map(crate::roster::Unit::Group);
        let ous = self.ous.iter().cloned().map(crate::roster::Unit::Ou);
        groups.chain(ous).collect()
    }

    /// True when `user_name` matches one of the patterns.
    pub fn names(&self, user_name: &str) -> bool {
        self.user_names.iter().any(|p| {
            p.matches_with(
                user_name,
                glob::MatchOptions {
                    case_sensitive: false,
                    ..Default::default()
                },
            )
        })
    }
}

/// What a login may do, each role including the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Sees runs, plans, diffs, held actions and links.
    Viewer,
    /// Also approves and rejects held actions.
    Approver,
    /// Also everything else the console offers (every app and person, whatever the
    /// binding's scope says).
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "approver" => Some(Role::Approver),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

impl Access {
    /// True when this login sees this app.
    pub fn sees_app(&self, app: &str) -> bool {
        self.role == Role::Admin || self.apps.as_ref().is_none_or(|a| a.contains(app))
    }
}

impl ConsoleConfig {
    /// Every group and OU some login's people scope names (what each sync records).
    pub fn roster_units(&self) -> Vec<crate::roster::Unit> {
        let bound = self
            .oidc
            .iter()
            .flat_map(|o| o.roles.iter().map(|b| &b.access));
        let mut units: Vec<_> = self
            .users
            .iter()
            .map(|u| &u.access)
            .chain(bound)
            .flat_map(|a| a.people.units())
            .collect();
        units.sort();
        units.dedup();
        units
    }
}

/// `console:` as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    pub listen: Option<String>,
    #[serde(default)]
    pub users: Vec<RawConsoleUser>,
    pub cookie_secure: Option<bool>,
    #[serde(default)]
    pub trust_forwarded: bool,
    pub public_url: Option<String>,
    pub tls: Option<RawTls>,
    pub oidc: Option<RawOidc>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub username_claim: Option<String>,
    pub roles_claim: Option<String>,
    #[serde(default)]
    pub roles: Vec<RawBinding>,
    pub ca_file: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBinding {
    pub claim: String,
    pub role: String,
    pub apps: Option<Vec<String>>,
    pub people: Option<RawPeople>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsoleUser {
    pub name: String,
    pub password_hash: String,
    pub role: String,
    pub apps: Option<Vec<String>>,
    pub people: Option<RawPeople>,
}

/// A login's or binding's `role`, `apps` and `people`, as written.
struct RawAccess {
    role: String,
    apps: Option<Vec<String>>,
    people: Option<RawPeople>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeople {
    #[serde(default)]
    pub user_names: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub ous: Vec<String>,
}

/// What the rest of the config offers a console's people scopes.
pub(super) struct Directory {
    /// `groups:` is configured: each sync reads the groups.
    pub groups: bool,
    /// The source has DNs (LDAP, AD).
    pub dns: bool,
}

impl Resolver<'_> {
    pub(super) fn console(&mut self, raw: RawConsole, dir: Directory) -> Option<ConsoleConfig> {
        let text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = match text.parse::<std::net::SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    "console.listen",
                    format!("`{text}` is not an address:port such as 127.0.0.1:8080"),
                );
                None
            }
        };
        if raw.users.is_empty() && raw.oidc.is_none() {
            self.problem(
                "console.users",
                "no login: add one (`idsync passwd` makes a password_hash), or `console.oidc`",
            );
        }
        let mut users = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, u) in raw.users.into_iter().enumerate() {
            let at = format!("console.users[{i}]");
            if u.name.trim().is_empty() || !names.insert(u.name.clone()) {
                self.problem(
                    &format!("{at}.name"),
                    "give each login a distinct, non-empty name",
                );
            }
            if !u.password_hash.starts_with("$argon2") {
                self.problem(
                    &format!("{at}.password_hash"),
                    "must be an argon2 hash (`$argon2id$...`): make one with `idsync passwd`",
                );
            }
            let raw = RawAccess {
                role: u.role,
                apps: u.apps,
                people: u.people,
            };
            if let Some(access) = self.access(&at, raw, &dir) {
                users.push(ConsoleUser {
                    name: u.name,
                    password_hash: u.password_hash,
                    access,
                });
            }
        }
        let public_url = raw
            .public_url
            .and_then(|u| self.url("console.public_url", &u, &["http", "https"]));
        let tls = raw.tls.and_then(|t| {
            let cert_file = self.ca_file("console.tls.cert_file", Some(&t.cert_file));
            let key_file = self.ca_file("console.tls.key_file", Some(&t.key_file));
            Some(ConsoleTls {
                cert_file: cert_file?,
                key_file: key_file?,
            })
        });
        let oidc = raw.oidc.and_then(|o| self.oidc(o, &dir));
        let listen = listen?;
        let secure_default = tls.is_some() || !listen.ip().is_loopback() || raw.trust_forwarded;
        Some(ConsoleConfig {
            listen,
            users,
            cookie_secure: raw.cookie_secure.unwrap_or(secure_default),
            trust_forwarded: raw.trust_forwarded,
            public_url,
            tls,
            oidc,
        })
    }

    fn oidc(&mut self, o: RawOidc, dir: &Directory) -> Option<OidcConfig> {
        let issuer = self.url("console.oidc.issuer", &o.issuer, &["https", "http"]);
        if o.client_id.trim().is_empty() {
            self.problem(
                "console.oidc.client_id",
                "the client id registered at the provider is required",
            );
        }
        let client_secret = self.required_secret(
            "console.oidc.client_secret",
            o.client_secret.as_deref(),
            o.client_secret_file.as_deref(),
            "the client secret registered at the provider is required: `client_secret_file: /path` or `client_secret: \"${ENV}\"`",
        );
        let mut roles = Vec::new();
        for (i, b) in o.roles.into_iter().enumerate() {
            let at = format!("console.oidc.roles[{i}]");
            if b.claim.trim().is_empty() {
                self.problem(
                    &format!("{at}.claim"),
                    "name the claim value (a group at the provider) this binding is for",
                );
            }
            let raw = RawAccess {
                role: b.role,
                apps: b.apps,
                people: b.people,
            };
            if let Some(access) = self.access(&at, raw, dir) {
                roles.push(OidcBinding {
                    claim: b.claim,
                    access,
                });
            }
        }
        let ca_file = self.ca_file("console.oidc.ca_file", o.ca_file.as_deref());
        let roles_claim = o.roles_claim.unwrap_or_else(|| "groups".into());
        let scopes = o.scopes.unwrap_or_else(|| {
            let mut s = vec!["profile".to_string(), "email".to_string()];
            if roles_claim == "groups" {
                s.push("groups".into());
            }
            s
        });
        Some(OidcConfig {
            issuer: issuer?,
            client_id: o.client_id,
            client_secret: client_secret?,
            scopes: scopes.into_iter().filter(|s| s != "openid").collect(),
            username_claim: o
                .username_claim
                .unwrap_or_else(|| "preferred_username".into()),
            roles_claim,
            roles,
            ca_file,
        })
    }

    fn access(&mut self, at: &str, raw: RawAccess, dir: &Directory) -> Option<Access> {
        let role = Role::parse(&raw.role).or_else(|| {
            self.problem(
                &format!("{at}.role"),
                format!("`{}`: use viewer, approver or admin", raw.role),
            );
            None
        });
        let raw_people = raw.people.unwrap_or_default();
        let mut people = People::default();
        for (j, p) in raw_people.user_names.into_iter().enumerate() {
            match glob::Pattern::new(&p) {
                Ok(g) => people.user_names.push(g),
                Err(e) => self.problem(
                    &format!("{at}.people.user_names[{j}]"),
                    format!("`{p}`: {e}"),
                ),
            }
        }
        if !raw_people.groups.is_empty() && !dir.groups {
            self.problem(&format!("{at}.people.groups"), "scoping people by directory group needs the `groups:` section (its base_dn), so each sync reads the groups and records who is in them");
        }
        if !raw_people.ous.is_empty() && !dir.dns {
            self.problem(
                &format!("{at}.people.ous"),
                "this directory has no DNs (Graph): scope by `groups` or `user_names`",
            );
        }
        for (j, ou) in raw_people.ous.iter().enumerate() {
            if !ou.contains('=') {
                self.problem(
                    &format!("{at}.people.ous[{j}]"),
                    format!("`{ou}` is not a DN: write it as ou=research,dc=example,dc=org"),
                );
            }
        }
        people.groups = raw_people.groups;
        people.ous = raw_people.ous;
        Some(Access {
            role: role?,
            apps: raw.apps.map(|a| a.into_iter().collect()),
            people,
        })
    }
}

/// Logins whose scope names an app the config does not have: each a problem with the
/// closest name (a login that silently sees nothing is worse than a refused config).
pub(super) fn unknown_apps(console: &ConsoleConfig, apps: &[&str]) -> Vec<super::Problem> {
    let scoped = console
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| (format!("console.users[{i}].apps"), &u.access))
        .chain(console.oidc.iter().flat_map(|o| {
            o.roles
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("console.oidc.roles[{i}].apps"), &b.access))
        }));
    let mut out = Vec::new();
    for (path, access) in scoped {
        for name in access.apps.iter().flatten() {
            if apps.contains(&name.as_str()) {
                continue;
            }
            let hint = apps
                .iter()
                .map(|a| (strsim::damerau_levenshtein(name, a), *a))
                .filter(|(d, a)| *d <= 2.max(a.len() / 3))
                .min()
                .map(|(_, a)| format!(" (did you mean `{a}`?)"))
                .unwrap_or_default();
            out.push(super::Problem {
                path: path.clone(),
                message: format!(
                    "`{name}` is no app of this config{hint}: the apps are {}; a login scoped to it would see nothing",
                    apps.join(", ")
                ),
            });
        }
    }
    out
}
