//! The console's login routes: the local login form (argon2, throttled, a decoy check for
//! unknown names), the OIDC provider's two legs (`/oidc/login` sends the browser there,
//! `/oidc/callback` takes it back), and logout.

use super::*;

/// The provider's name on the login button: its host.
fn provider_name(c: &Console) -> Option<String> {
    let o = c.console.oidc.as_ref()?;
    Some(
        o.issuer
            .host_str()
            .unwrap_or("your identity provider")
            .to_string(),
    )
}

pub(super) async fn login_page(State(c): State<Shared>, token: CsrfToken) -> Response {
    let provider = provider_name(&c);
    let local = !c.console.users.is_empty();
    render(token, |csrf| {
        pages::login(csrf, None, provider.as_deref(), local)
    })
}

/// The session key of a login started at the provider.
const PENDING_KEY: &str = "oidc_pending";

/// Sends the browser to the provider to log in.
pub(super) async fn oidc_login(
    State(c): State<Shared>,
    headers: axum::http::HeaderMap,
    session: Session,
) -> Page {
    let provider = c.oidc.as_ref().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "no OIDC login is set up (console.oidc)",
        )
    })?;
    let callback = format!("{}/oidc/callback", own_url(&c.console, &headers));
    let (url, pending) = provider.start(&callback).await.map_err(|e| {
        tracing::warn!(error = %e, "OIDC login could not start");
        error(
            StatusCode::BAD_GATEWAY,
            &format!("the identity provider: {e}"),
        )
    })?;
    session.insert(PENDING_KEY, &pending).await.map_err(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the session could not keep the login",
        )
    })?;
    Ok(Redirect::to(&url).into_response())
}

#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the provider sends the browser back: the code checked and exchanged, the user's
/// access found from the roles claim, the session started.
pub(super) async fn oidc_callback(
    State(c): State<Shared>,
    session: Session,
    Query(q): Query<Callback>,
) -> Page {
    let (Some(provider), Some(cfg)) = (c.oidc.as_ref(), c.console.oidc.as_ref()) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "no OIDC login is set up (console.oidc)",
        ));
    };
    let pending: Option<oidc::Pending> = session.remove(PENDING_KEY).await.ok().flatten();
    if let Some(e) = q.error {
        let why = q.error_description.unwrap_or_default();
        return Err(error(
            StatusCode::UNAUTHORIZED,
            &format!("the identity provider refused the login: {e} {why}"),
        ));
    }
    let (Some(pending), Some(code), Some(state)) = (pending, q.code, q.state) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "no login was started in this browser session (or it was used already): log in again",
        ));
    };
    let who = provider.finish(pending, &state, &code).await.map_err(|e| {
        tracing::warn!(error = %e, "OIDC login refused");
        error(StatusCode::UNAUTHORIZED, &e)
    })?;
    let Some((claim, access)) = cfg.access_for(&who.roles) else {
        tracing::warn!(user = %who.name, roles = ?who.roles, "OIDC login has no console role");
        return Err(error(
            StatusCode::FORBIDDEN,
            &format!(
                "{} logged in at the provider, but no value of its `{}` claim ({}) grants a console role: add one under console.oidc.roles",
                who.name,
                cfg.roles_claim,
                if who.roles.is_empty() { "none".to_string() } else { who.roles.join(", ") }
            ),
        ));
    };
    let login = auth::OidcLogin {
        name: who.name.clone(),
        claim,
    };
    auth::start_oidc(&session, &login)
        .await
        .map_err(|code| error(code, "the session could not start"))?;
    tracing::info!(user = %who.name, role = access.role.as_str(), "console login (OIDC)");
    Ok(Redirect::to("/").into_response())
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    authenticity_token: String,
}

pub(super) async fn login(
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
    if c.throttle
        .blocked(&f.name, addr.ip(), std::time::Instant::now())
    {
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
        c.throttle
            .failed(&f.name, addr.ip(), std::time::Instant::now());
        tracing::warn!(name = %f.name, addr = %addr.ip(), "console login refused");
        let csrf = token.authenticity_token().unwrap_or_default();
        let provider = provider_name(&c);
        return (
            StatusCode::UNAUTHORIZED,
            token,
            pages::login(
                &csrf,
                Some("wrong name or password"),
                provider.as_deref(),
                true,
            ),
        )
            .into_response();
    };
    if let Err(code) = auth::start(&session, &user).await {
        return error(code, "the session could not start");
    }
    tracing::info!(user = %user.name, role = user.access.role.as_str(), "console login");
    Redirect::to("/").into_response()
}

#[derive(Deserialize)]
pub(super) struct TokenOnly {
    #[serde(default)]
    authenticity_token: String,
}

pub(super) async fn logout(
    session: Session,
    token: CsrfToken,
    Form(f): Form<TokenOnly>,
) -> Response {
    if token.verify(&f.authenticity_token).is_err() {
        return error(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong",
        );
    }
    auth::end(&session).await;
    Redirect::to("/login").into_response()
}
