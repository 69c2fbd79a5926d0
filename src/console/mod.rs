//! The operator console (`idsync serve`): runs, diffs, held actions and links in the
//! browser, for local logins with roles scoped to apps and people. Server-rendered (maud),
//! no script, every asset in the binary. Reads the journal; its only write is a decision
//! on a held action, made through `run::approve` / `run::reject` like the CLI's, journaled
//! with the login's name and comment. Every form carries a CSRF token (axum_csrf).

pub mod auth;
mod login;
mod oidc;
mod pages;
mod read;
mod sessions;
mod throttle;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_csrf::{CsrfConfig, CsrfToken, Key};
use serde::Deserialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::config::Config;
use crate::config::{Access, ConsoleConfig, ConsoleUser, Role};
use crate::journal::{Decider, Journal};
use auth::Login;
use throttle::Throttle;

/// What every request handler shares.
pub struct Console {
    cfg: Config,
    console: ConsoleConfig,
    journal: Journal,
    csrf: CsrfConfig,
    throttle: Throttle,
    /// Dry-run plans on demand: one every 30 s for the whole console (each reads both
    /// sides in full).
    plans: governor::DefaultDirectRateLimiter,
    /// Verified when a login name is unknown, so timing does not tell names apart.
    decoy: ConsoleUser,
    /// The OpenID Connect provider, when `console.oidc` is set.
    oidc: Option<oidc::Provider>,
}

impl Console {
    fn user(&self, name: &str) -> Option<&ConsoleUser> {
        self.console.users.iter().find(|u| u.name == name)
    }

    /// Runs a journal query off the async threads.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Journal) -> Result<T, crate::journal::JournalError> + Send + 'static,
    ) -> Result<T, Response> {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&me.journal))
            .await
            .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the query stopped"))?
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &format!("journal: {e}")))
    }
}

/// The router's state: the console, shared.
#[derive(Clone)]
pub struct Shared(Arc<Console>);

impl std::ops::Deref for Shared {
    type Target = Arc<Console>;
    fn deref(&self) -> &Arc<Console> {
        &self.0
    }
}

impl FromRef<Shared> for CsrfConfig {
    fn from_ref(c: &Shared) -> CsrfConfig {
        c.csrf.clone()
    }
}

/// A handler's answer: the page, or an error page (`?` on a journal read).
type Page = Result<Response, Response>;

/// A page with the request's CSRF token in its forms (and the token's cookie set).
fn render(token: CsrfToken, page: impl FnOnce(&str) -> maud::Markup) -> Response {
    let csrf = token.authenticity_token().unwrap_or_default();
    let markup = page(&csrf);
    (token, markup).into_response()
}

fn error(code: StatusCode, text: &str) -> Response {
    (code, pages::message(code, text)).into_response()
}

/// The client's address: the peer's, or behind a trusted proxy the last hop it names.
fn client_addr(
    console: &ConsoleConfig,
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
) -> SocketAddr {
    let forwarded = console
        .trust_forwarded
        .then(|| headers.get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse::<std::net::IpAddr>().ok());
    forwarded.map_or(peer, |ip| SocketAddr::new(ip, 0))
}

/// The console's own URL as the browser reaches it (OIDC's callback is built on it):
/// `public_url`, else the scheme and host a trusted proxy names, else the request's.
fn own_url(console: &ConsoleConfig, headers: &axum::http::HeaderMap) -> String {
    if let Some(u) = &console.public_url {
        return u.as_str().trim_end_matches('/').to_string();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or(v).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let forwarded = |name: &str| console.trust_forwarded.then(|| header(name)).flatten();
    let scheme = forwarded("x-forwarded-proto")
        .filter(|p| p == "https" || p == "http")
        .unwrap_or_else(|| {
            if console.tls.is_some() {
                "https"
            } else {
                "http"
            }
            .into()
        });
    let host = forwarded("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or_else(|| console.listen.to_string());
    format!("{scheme}://{host}")
}

/// Serves the console until the process ends.
pub async fn serve(cfg: Config, journal: Journal) -> anyhow::Result<()> {
    let console = cfg
        .console
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no `console:` section in the config: add one with `listen:` and `users:` (`idsync passwd` makes a password_hash)"))?;
    let secure = console.cookie_secure;
    let csrf = csrf_config(secure);
    let decoy = ConsoleUser {
        name: String::new(),
        password_hash: auth::hash("-").map_err(|e| anyhow::anyhow!(e))?,
        access: Access {
            role: Role::Viewer,
            apps: Some(Default::default()),
            people: Default::default(),
        },
    };
    let listen = console.listen;
    let provider = match &console.oidc {
        Some(o) => Some(oidc::Provider::new(o.clone()).map_err(|e| anyhow::anyhow!(e))?),
        None => None,
    };
    let tls = console.tls.clone();
    let store = sessions::FileStore::open(&cfg.state_dir)
        .map_err(|e| anyhow::anyhow!("the console's session store: {e}"))?;
    let state = Arc::new(Console {
        cfg,
        console,
        journal,
        csrf,
        throttle: Throttle::default(),
        plans: governor::RateLimiter::direct(
            governor::Quota::with_period(std::time::Duration::from_secs(30)).expect("30 s > 0"),
        ),
        decoy,
        oidc: provider,
    });
    let service =
        router(Shared(state), store, secure).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(t) => tls::serve(listen, &t, service).await,
        None => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!(%listen, "serving the console (HTTP)");
            axum::serve(listener, service).await?;
            Ok(())
        }
    }
}

/// CSRF tokens: an HMAC with a key and salt made at start, in a Strict, HttpOnly cookie.
fn csrf_config(secure: bool) -> CsrfConfig {
    let mut salt = [0u8; 32];
    {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        OsRng.fill_bytes(&mut salt);
    }
    CsrfConfig::default()
        .with_key(Some(Key::generate()))
        .with_salt(salt.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .with_secure(secure)
        .with_http_only(true)
        .with_cookie_same_site(axum_csrf::SameSite::Strict)
        .with_cookie_name("idsync_csrf")
}

/// Every page and form, behind the session layer.
fn router(state: Shared, store: sessions::FileStore, secure: bool) -> Router {
    let sessions = SessionManagerLayer::new(store)
        .with_name("idsync_session")
        .with_secure(secure)
        .with_http_only(true)
        // Lax, not Strict: the provider's redirect back to /oidc/callback is a cross-site
        // navigation that must carry the session. Every form has its CSRF token, and no
        // GET changes anything.
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::hours(8),
        ));
    Router::new()
        .route("/login", get(login::login_page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/", get(read::overview))
        .route("/runs", get(read::runs))
        .route("/runs/{id}", get(read::run))
        .route("/approvals", get(approvals))
        .route("/links", get(read::links))
        .route("/plan", get(read::plan_form).post(read::plan))
        .route("/oidc/login", get(login::oidc_login))
        .route("/oidc/callback", get(login::oidc_callback))
        .route("/people/{user_name}", get(read::person))
        .route("/approvals/{run}/{seq}", post(decide))
        .route("/approvals/{run}", post(decide_run))
        .route("/style.css", get(pages::style))
        .layer(sessions)
        .with_state(state)
}

async fn approvals(
    State(c): State<Shared>,
    Login(user): Login,
    session: Session,
    token: CsrfToken,
) -> Page {
    let held = c.read(|j| j.held_actions()).await?;
    let held: Vec<_> = held
        .into_iter()
        .filter(|h| user.sees_app(&h.app) && user.sees_person(&h.user_name, h.anchor.as_deref()))
        .collect();
    // What the decision just made came to, said once.
    let said: Option<String> = session.remove(SAID).await.ok().flatten();
    Ok(render(token, |csrf| {
        pages::approvals(&user, csrf, &held, said.as_deref())
    }))
}

/// The session key of what the last decision came to.
const SAID: &str = "said";

/// The held actions a decision names (one, or every one of a run), when this login may
/// decide each: what they are in words, and their app.
async fn held_to_decide(
    c: &Shared,
    user: &auth::Viewer,
    run: i64,
    seq: Option<i64>,
) -> Result<(String, String), Response> {
    let held = c.read(|j| j.held_actions()).await?;
    let rows: Vec<_> = held
        .into_iter()
        .filter(|h| h.run == run && seq.is_none_or(|q| h.seq == q))
        .collect();
    let Some(first) = rows.first() else {
        let id = seq.map_or(run.to_string(), |q| format!("{run}:{q}"));
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!("no held action {id} (decided already?)"),
        ));
    };
    if !rows
        .iter()
        .all(|r| user.may_decide(&r.app, &r.user_name, r.anchor.as_deref()))
    {
        tracing::warn!(user = %user.name, run, ?seq, "console decision refused: not this login's to make");
        return Err(error(
            StatusCode::FORBIDDEN,
            "this login may not decide this action",
        ));
    }
    let what = match rows.len() {
        1 => format!("{} {}", first.kind.as_str(), first.user_name),
        n => format!("all {n} held actions of run {run}"),
    };
    Ok((what, first.app.clone()))
}

/// The decision, made as the CLI's is, on a thread of its own (an approval re-reads both
/// sides and writes to the app).
async fn run_decision(
    c: &Shared,
    approve: bool,
    sel: crate::run::Selector,
    by: Decider,
) -> Result<Result<crate::run::Decision, crate::run::RunError>, Response> {
    let me = Arc::clone(c);
    tokio::task::spawn_blocking(move || match approve {
        true => tokio::runtime::Handle::current().block_on(crate::run::approve(
            &me.cfg,
            &me.journal,
            sel,
            &by,
        )),
        false => crate::run::reject(&me.journal, sel, &by),
    })
    .await
    .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the decision stopped"))
}

/// What a decision came to, in a sentence for the page that follows it.
fn decision_text(approve: bool, what: &str, app: &str, d: &crate::run::Decision) -> String {
    match (approve, d.run) {
        (false, _) => format!("Rejected {what}: nothing was written to {app}."),
        (true, Some(run)) if d.stale + d.failed > 0 => format!(
            "Approved {what}: run {run} applied {}; {} no longer planned (the person or the account changed since it was held: nothing written, the next sync plans anew); {} refused by the app (see run {run}).",
            d.applied, d.stale, d.failed
        ),
        (true, None) if d.stale > 0 => format!(
            "Approved {what}, but not applied: the person or the account changed since it was held, so it is no longer planned; nothing was written (the next sync plans anew)."
        ),
        (true, Some(run)) => format!("Approved {what}: applied by run {run}."),
        (true, None) => format!("Approved {what}."),
    }
}

#[derive(Deserialize)]
struct DecideForm {
    #[serde(default)]
    authenticity_token: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

/// One held action decided.
async fn decide(
    State(c): State<Shared>,
    Login(user): Login,
    session: Session,
    token: CsrfToken,
    Path((run, seq)): Path<(i64, i64)>,
    Form(f): Form<DecideForm>,
) -> Page {
    decide_held(c, user, session, token, run, Some(seq), f).await
}

/// Every held action of a run decided at once (the CLI's `approve RUN`): only by a login
/// that may decide each of them.
async fn decide_run(
    State(c): State<Shared>,
    Login(user): Login,
    session: Session,
    token: CsrfToken,
    Path(run): Path<i64>,
    Form(f): Form<DecideForm>,
) -> Page {
    decide_held(c, user, session, token, run, None, f).await
}

async fn decide_held(
    c: Shared,
    user: auth::Viewer,
    session: Session,
    token: CsrfToken,
    run: i64,
    seq: Option<i64>,
    f: DecideForm,
) -> Page {
    if token.verify(&f.authenticity_token).is_err() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: nothing was decided",
        ));
    }
    let (what, app) = held_to_decide(&c, &user, run, seq).await?;
    let by = Decider {
        who: format!("console:{}", user.name),
        comment: f.comment.trim().chars().take(500).collect(),
    };
    let sel = crate::run::Selector { run, seq };
    let approve = match f.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("`{other}` is no decision: approve or reject"),
            ))
        }
    };
    let outcome = run_decision(&c, approve, sel, by).await?;
    match outcome {
        Ok(d) => {
            tracing::info!(user = %user.name, run, ?seq, decision = %f.decision, applied = d.applied, "console decision");
            let _ = session
                .insert(SAID, decision_text(approve, &what, &app, &d))
                .await;
            Ok(Redirect::to("/approvals").into_response())
        }
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(trust: bool) -> ConsoleConfig {
        ConsoleConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            users: Vec::new(),
            cookie_secure: false,
            trust_forwarded: trust,
            public_url: None,
            tls: None,
            oidc: None,
        }
    }

    #[test]
    fn the_callback_url_comes_from_public_url_then_a_trusted_proxy_then_the_request() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("host", "10.0.0.5:8080".parse().unwrap());
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert("x-forwarded-host", "idsync.example.org".parse().unwrap());
        assert_eq!(own_url(&console(false), &h), "http://10.0.0.5:8080");
        assert_eq!(own_url(&console(true), &h), "https://idsync.example.org");
        let mut set = console(true);
        set.public_url = Some("https://console.example.org/".parse().unwrap());
        assert_eq!(own_url(&set, &h), "https://console.example.org");
    }

    #[test]
    fn the_forwarded_address_counts_only_behind_a_trusted_proxy() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        assert_eq!(client_addr(&console(false), peer, &h), peer);
        assert_eq!(
            client_addr(&console(true), peer, &h).ip().to_string(),
            "198.51.100.7"
        );
        assert_eq!(client_addr(&console(true), peer, &Default::default()), peer);
    }
}
