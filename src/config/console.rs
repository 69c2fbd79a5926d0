//! `console:` resolved: the listen address, and each local login's hash, role and scope
//! (what `idsync serve` reads).

use super::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// `console:`: where `idsync serve` listens and who may log in.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    pub users: Vec<ConsoleUser>,
    /// Session cookies carry `Secure` (default: unless `listen` is loopback, where the
    /// console is reached over plain HTTP or through a TLS-terminating proxy).
    pub cookie_secure: bool,
    /// The client's address (login throttling, logs) is the last `X-Forwarded-For` hop
    /// (set only behind a proxy that sets it: anyone can send the header).
    pub trust_forwarded: bool,
}

/// One local login.
#[derive(Clone, Debug)]
pub struct ConsoleUser {
    pub name: String,
    /// A PHC string (`$argon2id$...`, from `idsync passwd`).
    pub password_hash: String,
    pub role: Role,
    /// The apps this login sees (`None`: every app).
    pub apps: Option<BTreeSet<String>>,
    /// The people this login sees: userName patterns (`*@research.example.org`); empty:
    /// everyone.
    pub people: Vec<glob::Pattern>,
}

/// What a login may do, each role including the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Sees runs, plans, diffs, held actions and links.
    Viewer,
    /// Also approves and rejects held actions.
    Approver,
    /// Also everything else the console offers (every app, whatever `apps` says).
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

impl ConsoleUser {
    /// True when this login sees this app.
    pub fn sees_app(&self, app: &str) -> bool {
        self.role == Role::Admin || self.apps.as_ref().is_none_or(|a| a.contains(app))
    }

    /// True when this login sees this person (by userName).
    pub fn sees_person(&self, user_name: &str) -> bool {
        self.role == Role::Admin
            || self.people.is_empty()
            || self.people.iter().any(|p| {
                p.matches_with(
                    user_name,
                    glob::MatchOptions {
                        case_sensitive: false,
                        ..Default::default()
                    },
                )
            })
    }

    /// True when this login may decide this held action.
    pub fn may_decide(&self, app: &str, user_name: &str) -> bool {
        self.role >= Role::Approver && self.sees_app(app) && self.sees_person(user_name)
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
    /// Behind a reverse proxy: the client's address is the last `X-Forwarded-For` hop.
    #[serde(default)]
    pub trust_forwarded: bool,
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

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeople {
    #[serde(default)]
    pub user_names: Vec<String>,
}

impl Resolver<'_> {
    pub(super) fn console(&mut self, raw: RawConsole) -> Option<ConsoleConfig> {
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
        if raw.users.is_empty() {
            self.problem(
                "console.users",
                "no login: add one (`idsync passwd` makes a password_hash)",
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
            let role = Role::parse(&u.role).or_else(|| {
                self.problem(
                    &format!("{at}.role"),
                    format!("`{}`: use viewer, approver or admin", u.role),
                );
                None
            });
            let mut people = Vec::new();
            for (j, p) in u
                .people
                .map(|p| p.user_names)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                match glob::Pattern::new(&p) {
                    Ok(g) => people.push(g),
                    Err(e) => self.problem(
                        &format!("{at}.people.user_names[{j}]"),
                        format!("`{p}`: {e}"),
                    ),
                }
            }
            if let Some(role) = role {
                users.push(ConsoleUser {
                    name: u.name,
                    password_hash: u.password_hash,
                    role,
                    apps: u.apps.map(|a| a.into_iter().collect()),
                    people,
                });
            }
        }
        let listen = listen?;
        Some(ConsoleConfig {
            listen,
            users,
            cookie_secure: raw.cookie_secure.unwrap_or(!listen.ip().is_loopback()),
            trust_forwarded: raw.trust_forwarded,
        })
    }
}
