//! The operator console (`idsync serve`): runs, diffs, held actions and links in the
//! browser, for local logins with roles scoped to apps and people. Server-rendered (maud),
//! no script, every asset in the binary. Reads the journal; its only write is a decision
//! on a held action, made through `run::approve` / `run::reject` like the CLI's, journaled
//! with the login's name and comment. Every form carries a CSRF token (axum_csrf).

pub mod auth;
mod pages;

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
use tower_sessions::{Expiry, MemoryStore, Session, SessionManagerLayer};

use crate::config::Config;
use crate::config::{ConsoleConfig, ConsoleUser, Role};
use crate::journal::{Decider, Journal};
use auth::{Login, Throttle};

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

/// Serves the console until the process ends.
pub async fn serve(cfg: Config, journal: Journal) -> anyhow::Result<()> {
    let console = cfg
        .console
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no `console:` section in the config: add one with `listen:` and `users:` (`idsync passwd` makes a password_hash)"))?;
    let secure = console.cookie_secure;
    let mut salt = [0u8; 32];
    {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        OsRng.fill_bytes(&mut salt);
    }
    let csrf = CsrfConfig::default()
        .with_key(Some(Key::generate()))
        .with_salt(salt.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .with_secure(secure)
        .with_http_only(true)
        .with_cookie_same_site(axum_csrf::SameSite::Strict)
        .with_cookie_name("idsync_csrf");
    let decoy = ConsoleUser {
        name: String::new(),
        password_hash: auth::hash("-").map_err(|e| anyhow::anyhow!(e))?,
        role: Role::Viewer,
        apps: Some(Default::default()),
        people: Vec::new(),
    };
    let listen = console.listen;
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
    });
    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_name("idsync_session")
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::hours(8),
        ));
    let app = Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(overview))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/approvals", get(approvals))
        .route("/links", get(links))
        .route("/plan", get(plan))
        .route("/people/{user_name}", get(person))
        .route("/approvals/{run}/{seq}", post(decide))
        .route("/style.css", get(pages::style))
        .layer(sessions)
        .with_state(Shared(state));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "serving the console");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

async fn login_page(token: CsrfToken) -> Response {
    render(token, |csrf| pages::login(csrf, None))
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    authenticity_token: String,
}

async fn login(
    State(c): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    session: Session,
    token: CsrfToken,
    Form(f): Form<LoginForm>,
) -> Response {
    let addr = client_addr(&c.console, peer, &headers);
    if token.verify(&f.authenticity_token).is_err() {
        return error(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: reload the page and try again",
        );
    }
    if !c.throttle.allows(&f.name, addr.ip()) {
        tracing::warn!(name = %f.name, addr = %addr.ip(), "console login attempts throttled");
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many login attempts: wait a minute",
        );
    }
    let (name, password) = (f.name.clone(), f.password.clone());
    let me = Arc::clone(&c);
    // argon2 takes tens of milliseconds: off the async threads.
    let found = tokio::task::spawn_blocking(move || {
        let users: Vec<ConsoleUser> = me.console.users.clone();
        let decoy = std::slice::from_ref(&me.decoy);
        match auth::check(&users, &name, &password) {
            Some(u) => Some(u.clone()),
            None => {
                // Same cost for an unknown name.
                let _ = auth::check(decoy, "", &password);
                None
            }
        }
    })
    .await
    .ok()
    .flatten();
    let Some(user) = found else {
        tracing::warn!(name = %f.name, addr = %addr.ip(), "console login refused");
        let csrf = token.authenticity_token().unwrap_or_default();
        return (
            StatusCode::UNAUTHORIZED,
            token,
            pages::login(&csrf, Some("wrong name or password")),
        )
            .into_response();
    };
    if let Err(code) = auth::start(&session, &user).await {
        return error(code, "the session could not start");
    }
    tracing::info!(user = %user.name, role = user.role.as_str(), "console login");
    Redirect::to("/").into_response()
}

#[derive(Deserialize)]
struct TokenOnly {
    #[serde(default)]
    authenticity_token: String,
}

async fn logout(session: Session, token: CsrfToken, Form(f): Form<TokenOnly>) -> Response {
    if token.verify(&f.authenticity_token).is_err() {
        return error(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong",
        );
    }
    auth::end(&session).await;
    Redirect::to("/login").into_response()
}

async fn overview(State(c): State<Shared>, Login(user): Login, token: CsrfToken) -> Response {
    let runs = match c.read(|j| j.runs(500)).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let held = match c.read(|j| j.held_actions()).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let next = c.cfg.schedule.as_ref().and_then(|s| {
        s.upcoming(chrono::Local)
            .next()
            .map(|t| t.format("%Y-%m-%d %H:%M %Z").to_string())
    });
    let apps: Vec<pages::AppCard> = c
        .cfg
        .apps
        .iter()
        .filter(|a| user.sees_app(&a.name))
        .map(|a| pages::AppCard {
            name: a.name.clone(),
            runs: runs
                .iter()
                .filter(|r| r.app == a.name)
                .take(20)
                .cloned()
                .collect(),
            held: held
                .iter()
                .filter(|h| h.app == a.name && user.sees_person(&h.user_name))
                .count(),
            next: next.clone(),
        })
        .collect();
    render(token, |csrf| pages::overview(&user, csrf, &apps))
}

#[derive(Deserialize)]
struct RunsQuery {
    app: Option<String>,
}

async fn runs(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Query(q): Query<RunsQuery>,
) -> Response {
    let rows = match c.read(|j| j.runs(200)).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| user.sees_app(&r.app))
        .filter(|r| q.app.as_ref().is_none_or(|a| *a == r.app))
        .collect();
    render(token, |csrf| pages::runs(&user, csrf, &rows))
}

#[derive(Deserialize)]
struct RunQuery {
    /// Text an action's user, kind, reason or fields must contain.
    q: Option<String>,
}

async fn run(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Path(id): Path<i64>,
    Query(q): Query<RunQuery>,
) -> Response {
    let found = match c.read(move |j| Ok((j.run(id)?, j.actions(id)?))).await {
        Ok(f) => f,
        Err(e) => return e,
    };
    let (Some(row), actions) = found else {
        return error(StatusCode::NOT_FOUND, &format!("no run {id}"));
    };
    if !user.sees_app(&row.app) {
        return error(StatusCode::NOT_FOUND, &format!("no run {id}"));
    }
    let needle = q.q.unwrap_or_default();
    let actions: Vec<_> = actions
        .into_iter()
        .filter(|a| user.sees_person(&a.user_name))
        .filter(|a| pages::matches(a, &needle))
        .collect();
    render(token, |csrf| {
        pages::run(&user, csrf, &row, &actions, &needle)
    })
}

#[derive(Deserialize)]
struct PlanQuery {
    app: Option<String>,
}

/// The current dry-run plan of one app (or of every app, for a login that sees them all):
/// both sides read, nothing written to an app, the plan journaled as a dry run.
async fn plan(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Query(q): Query<PlanQuery>,
) -> Response {
    let every = c.cfg.apps.iter().all(|a| user.sees_app(&a.name));
    let app = match q.app {
        Some(a) if user.sees_app(&a) => Some(a),
        Some(_) => return error(StatusCode::NOT_FOUND, "no such app for this login"),
        None if every => None,
        None => return error(StatusCode::BAD_REQUEST, "name the app: /plan?app=NAME"),
    };
    if c.plans.check().is_err() {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "a plan was made less than 30 seconds ago (each reads both sides in full): try again shortly",
        );
    }
    let me = Arc::clone(&c);
    let made = tokio::task::spawn_blocking(move || {
        tokio::runtime::Handle::current().block_on(crate::run::dry_run(
            &me.cfg,
            &me.journal,
            "console",
            false,
            app.as_deref(),
        ))
    })
    .await;
    let summaries = match made {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return error(StatusCode::BAD_GATEWAY, &format!("{e}")),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the plan stopped"),
    };
    let plans: Vec<pages::AppPlan> = summaries
        .into_iter()
        .map(|s| pages::AppPlan {
            app: s.app,
            plan: s
                .result
                .map(|r| {
                    let mut plan = r.plan;
                    plan.actions.retain(|a| user.sees_person(&a.user_name));
                    plan
                })
                .map_err(|e| e.to_string()),
        })
        .collect();
    render(token, |csrf| pages::plan(&user, csrf, &plans))
}

#[derive(Deserialize)]
struct LinksQuery {
    app: Option<String>,
    q: Option<String>,
}

async fn links(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Query(q): Query<LinksQuery>,
) -> Response {
    let apps: Vec<crate::config::AppConfig> = c
        .cfg
        .apps
        .iter()
        .filter(|a| user.sees_app(&a.name))
        .filter(|a| q.app.as_ref().is_none_or(|n| *n == a.name))
        .cloned()
        .collect();
    let names: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
    let found = c
        .read(move |j| {
            names
                .into_iter()
                .map(|n| Ok((n.clone(), j.for_app(&n).links()?)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    let per_app = match found {
        Ok(l) => l,
        Err(e) => return e,
    };
    let needle = q.q.unwrap_or_default().to_lowercase();
    let now = chrono::Utc::now();
    let rows: Vec<pages::LinkRow> = per_app
        .into_iter()
        .flat_map(|(app, links)| {
            let lifecycle = apps
                .iter()
                .find(|a| a.name == app)
                .map(|a| a.policy.lifecycle.clone())
                .unwrap_or_default();
            links
                .into_values()
                .filter(|l| user.sees_person(&l.user_name))
                .filter(|l| needle.is_empty() || l.user_name.to_lowercase().contains(&needle))
                .map(|l| pages::LinkRow::new(&app, l, &lifecycle, now))
                .collect::<Vec<_>>()
        })
        .collect();
    render(token, |csrf| pages::links(&user, csrf, &rows))
}

async fn person(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Path(name): Path<String>,
) -> Response {
    if !user.sees_person(&name) {
        return error(StatusCode::NOT_FOUND, "no such person for this login");
    }
    let wanted = name.clone();
    let rows = match c.read(move |j| j.actions_of_person(&wanted, 200)).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let rows: Vec<_> = rows.into_iter().filter(|r| user.sees_app(&r.app)).collect();
    render(token, |csrf| pages::person(&user, csrf, &name, &rows))
}

async fn approvals(State(c): State<Shared>, Login(user): Login, token: CsrfToken) -> Response {
    let held = match c.read(|j| j.held_actions()).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let held: Vec<_> = held
        .into_iter()
        .filter(|h| user.sees_app(&h.app) && user.sees_person(&h.user_name))
        .collect();
    render(token, |csrf| pages::approvals(&user, csrf, &held))
}

#[derive(Deserialize)]
struct DecideForm {
    #[serde(default)]
    authenticity_token: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

async fn decide(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Path((run, seq)): Path<(i64, i64)>,
    Form(f): Form<DecideForm>,
) -> Response {
    if token.verify(&f.authenticity_token).is_err() {
        return error(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: nothing was decided",
        );
    }
    let held = match c.read(|j| j.held_actions()).await {
        Ok(h) => h,
        Err(e) => return e,
    };
    let Some(row) = held.into_iter().find(|h| h.run == run && h.seq == seq) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no held action {run}:{seq} (decided already?)"),
        );
    };
    if !user.may_decide(&row.app, &row.user_name) {
        tracing::warn!(user = %user.name, run, seq, "console decision refused: not this login's to make");
        return error(
            StatusCode::FORBIDDEN,
            "this login may not decide this action",
        );
    }
    let by = Decider {
        who: format!("console:{}", user.name),
        comment: f.comment.trim().chars().take(500).collect(),
    };
    let sel = crate::run::Selector {
        run,
        seq: Some(seq),
    };
    let approve = match f.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("`{other}` is no decision: approve or reject"),
            )
        }
    };
    let me = Arc::clone(&c);
    // The decision runs as the CLI's does, on a thread of its own (an approval re-reads
    // both sides and writes to the app).
    let outcome = tokio::task::spawn_blocking(move || match approve {
        true => tokio::runtime::Handle::current().block_on(crate::run::approve(
            &me.cfg,
            &me.journal,
            sel,
            &by,
        )),
        false => crate::run::reject(&me.journal, sel, &by),
    })
    .await;
    let Ok(outcome) = outcome else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the decision stopped");
    };
    match outcome {
        Ok(d) => {
            tracing::info!(user = %user.name, run, seq, decision = %f.decision, applied = d.applied, "console decision");
            Redirect::to(&format!("/approvals?done={run}:{seq}")).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}")),
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
        }
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
