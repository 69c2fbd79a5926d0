//! Who is asking: local logins checked against their argon2 hashes (or an OIDC provider's
//! users, `oidc`), sessions in an HttpOnly, SameSite cookie (tower-sessions; failed logins
//! are throttled in `throttle`), and `Login`, the extractor every page takes: the
//! `Viewer`, with what they may see.

use std::collections::BTreeSet;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use super::Shared;
use crate::config::{Access, ConsoleUser, Role};

/// The session key holding a local login's name.
const USER_KEY: &str = "user";
/// The session key holding an OIDC login (`OidcLogin`).
const OIDC_KEY: &str = "oidc";

/// A provider's user as the session keeps them: their name and the roles-claim value that
/// granted their access (looked up in the config again on each request, so a binding
/// removed there ends the access).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct OidcLogin {
    pub name: String,
    pub claim: String,
}

/// Who is asking, and what they may see and do.
pub struct Viewer {
    /// The login's name (`oidc:NAME` for a provider's user): shown, and in the audit.
    pub name: String,
    pub access: Access,
    /// The people (anchors) in the groups and subtrees `access.people` names, as the last
    /// sync recorded them.
    roster: BTreeSet<String>,
}

impl Viewer {
    pub fn role(&self) -> Role {
        self.access.role
    }

    pub fn sees_app(&self, app: &str) -> bool {
        self.access.sees_app(app)
    }

    /// True when this login sees this person: by userName pattern, or by the directory
    /// group or subtree the person (`anchor`) was in at the last sync.
    pub fn sees_person(&self, user_name: &str, anchor: Option<&str>) -> bool {
        let people = &self.access.people;
        self.access.role == Role::Admin
            || people.everyone()
            || people.names(user_name)
            || anchor.is_some_and(|a| self.roster.contains(a))
    }

    /// True when this login may decide this held action.
    pub fn may_decide(&self, app: &str, user_name: &str, anchor: Option<&str>) -> bool {
        self.access.role >= Role::Approver
            && self.sees_app(app)
            && self.sees_person(user_name, anchor)
    }
}

/// The logged-in user of a request; a request without one is sent to `/login`.
pub struct Login(pub Viewer);

impl FromRequestParts<Shared> for Login {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(code, text)| (code, text).into_response())?;
        let local: Option<String> = session.get(USER_KEY).await.ok().flatten();
        let oidc: Option<OidcLogin> = session.get(OIDC_KEY).await.ok().flatten();
        // A login (or binding) removed from the config since is no login.
        let found = match (local, oidc) {
            (Some(n), _) => state.user(&n).map(|u| (u.name.clone(), u.access.clone())),
            (None, Some(o)) => state.console.oidc.as_ref().and_then(|cfg| {
                let (_, access) = cfg.access_for(std::slice::from_ref(&o.claim))?;
                Some((format!("oidc:{}", o.name), access))
            }),
            (None, None) => None,
        };
        let Some((name, access)) = found else {
            return Err(Redirect::to("/login").into_response());
        };
        let units: Vec<String> = if access.role == Role::Admin {
            Vec::new()
        } else {
            access.people.units().iter().map(|u| u.key()).collect()
        };
        let roster = match units.is_empty() {
            true => BTreeSet::new(),
            false => state.read(move |j| j.roster(&units)).await?,
        };
        Ok(Login(Viewer {
            name,
            access,
            roster,
        }))
    }
}

/// The login whose name and password these are (`None` at once for an unknown name: the
/// caller spends the same time on a decoy).
pub fn check<'u>(users: &'u [ConsoleUser], name: &str, password: &str) -> Option<&'u ConsoleUser> {
    let user = users.iter().find(|u| u.name == name)?;
    let ok = PasswordHash::new(&user.password_hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    ok.then_some(user)
}

/// A new argon2id hash of `password` (`idsync passwd`).
pub fn hash(password: &str) -> Result<String, String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Starts the session of a local login: a new session id (no fixation), the name in it.
pub async fn start(session: &Session, user: &ConsoleUser) -> Result<(), StatusCode> {
    session
        .cycle_id()
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    session
        .insert(USER_KEY, &user.name)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

/// Starts the session of a provider's user: a new session id, who they are in it.
pub async fn start_oidc(session: &Session, login: &OidcLogin) -> Result<(), StatusCode> {
    session
        .cycle_id()
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    session
        .insert(OIDC_KEY, login)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

/// Ends the session.
pub async fn end(session: &Session) {
    let _ = session.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::People;

    fn user(name: &str, password: &str) -> ConsoleUser {
        ConsoleUser {
            name: name.into(),
            password_hash: hash(password).unwrap(),
            access: Access {
                role: Role::Viewer,
                apps: None,
                people: People::default(),
            },
        }
    }

    #[test]
    fn a_scoped_login_sees_people_by_name_pattern_or_by_the_recorded_group() {
        let viewer = |role| Viewer {
            name: "abe".into(),
            access: Access {
                role,
                apps: Some(["miro".to_string()].into_iter().collect()),
                people: People {
                    user_names: vec![glob::Pattern::new("*@lab.example.org").unwrap()],
                    groups: vec!["research".into()],
                    ous: Vec::new(),
                },
            },
            roster: ["anchor-ada".to_string()].into_iter().collect(),
        };
        let abe = viewer(Role::Approver);
        assert!(abe.sees_person("ADA@example.org", Some("anchor-ada")));
        assert!(abe.sees_person("cy@LAB.example.org", None));
        assert!(!abe.sees_person("bob@example.org", Some("anchor-bob")));
        assert!(abe.may_decide("miro", "x", Some("anchor-ada")));
        assert!(!abe.may_decide("slack", "x", Some("anchor-ada")));
        assert!(!viewer(Role::Viewer).may_decide("miro", "x", Some("anchor-ada")));
        assert!(viewer(Role::Admin).may_decide("slack", "bob@example.org", None));
    }

    #[test]
    fn a_login_needs_its_own_password() {
        let users = [user("vera", "correct horse"), user("abe", "battery staple")];
        assert_eq!(
            check(&users, "vera", "correct horse").map(|u| u.name.as_str()),
            Some("vera")
        );
        assert!(check(&users, "vera", "battery staple").is_none());
        assert!(check(&users, "nobody", "correct horse").is_none());
        assert!(users[0].password_hash.starts_with("$argon2id$"));
    }
}
