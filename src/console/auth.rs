//! Who is asking: local logins checked against their argon2 hashes, sessions in an
//! HttpOnly, SameSite=Strict cookie (tower-sessions), login attempts rate-limited per name
//! and per address, and `Login`, the extractor every page takes.

use std::net::IpAddr;
use std::num::NonZeroU32;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_sessions::Session;

use super::Shared;
use crate::config::ConsoleUser;

/// The session key holding the login's name.
const USER_KEY: &str = "user";

/// The logged-in user of a request; a request without one is sent to `/login`.
pub struct Login(pub ConsoleUser);

impl FromRequestParts<Shared> for Login {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(code, text)| (code, text).into_response())?;
        let name: Option<String> = session.get(USER_KEY).await.ok().flatten();
        // A login removed from the config since is no login.
        match name.and_then(|n| state.user(&n).cloned()) {
            Some(user) => Ok(Login(user)),
            None => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// Login attempts allowed per name and per address: 5 a minute each.
pub struct Throttle {
    by_name: DefaultKeyedRateLimiter<String>,
    by_addr: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for Throttle {
    fn default() -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(5).expect("5 > 0"));
        Throttle {
            by_name: RateLimiter::keyed(quota),
            by_addr: RateLimiter::keyed(quota),
        }
    }
}

impl Throttle {
    /// True when another attempt for this name from this address may be checked now.
    pub fn allows(&self, name: &str, addr: IpAddr) -> bool {
        self.by_addr.check_key(&addr).is_ok() && self.by_name.check_key(&name.to_string()).is_ok()
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

/// Starts the session of a login: a new session id (no fixation), the name in it.
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

/// Ends the session.
pub async fn end(session: &Session) {
    let _ = session.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    fn user(name: &str, password: &str) -> ConsoleUser {
        ConsoleUser {
            name: name.into(),
            password_hash: hash(password).unwrap(),
            role: Role::Viewer,
            apps: None,
            people: Vec::new(),
        }
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

    #[test]
    fn login_attempts_are_limited_per_name_and_address() {
        let t = Throttle::default();
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        let allowed = (0..10).filter(|_| t.allows("vera", addr)).count();
        assert_eq!(allowed, 5);
    }
}
