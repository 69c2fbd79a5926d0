//! The console's read-only pages: apps, runs, one run, the dry-run plan, accounts and a
//! person's timeline, each limited to what the login sees.

use super::*;

pub(super) async fn overview(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
) -> Page {
    let runs = c.read(|j| j.runs(500)).await?;
    let held = c.read(|j| j.held_actions()).await?;
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
                .filter(|h| h.app == a.name && user.sees_person(&h.user_name, h.anchor.as_deref()))
                .count(),
            next: next.clone(),
        })
        .collect();
    Ok(render(token, |csrf| pages::overview(&user, csrf, &apps)))
}

#[derive(Deserialize)]
pub(super) struct RunsQuery {
    app: Option<String>,
}

pub(super) async fn runs(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Query(q): Query<RunsQuery>,
) -> Page {
    let rows = c.read(|j| j.runs(200)).await?;
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| user.sees_app(&r.app))
        .filter(|r| q.app.as_ref().is_none_or(|a| *a == r.app))
        .collect();
    Ok(render(token, |csrf| pages::runs(&user, csrf, &rows)))
}

#[derive(Deserialize)]
pub(super) struct RunQuery {
    /// Text an action's user, kind, reason or fields must contain.
    q: Option<String>,
}

pub(super) async fn run(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Path(id): Path<i64>,
    Query(q): Query<RunQuery>,
) -> Page {
    let found = c.read(move |j| Ok((j.run(id)?, j.actions(id)?))).await?;
    let (Some(row), actions) = found else {
        return Err(error(StatusCode::NOT_FOUND, &format!("no run {id}")));
    };
    if !user.sees_app(&row.app) {
        return Err(error(StatusCode::NOT_FOUND, &format!("no run {id}")));
    }
    let needle = q.q.unwrap_or_default();
    let actions: Vec<_> = actions
        .into_iter()
        .filter(|a| user.sees_person(&a.user_name, a.anchor.as_deref()))
        .filter(|a| pages::matches(a, &needle))
        .collect();
    Ok(render(token, |csrf| {
        pages::run(&user, csrf, &row, &actions, &needle)
    }))
}

#[derive(Deserialize)]
pub(super) struct PlanQuery {
    app: Option<String>,
}

/// The form asking for a plan (the overview links here with the app chosen).
pub(super) async fn plan_form(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Query(q): Query<PlanQuery>,
) -> Response {
    let apps: Vec<String> = c
        .cfg
        .apps
        .iter()
        .filter(|a| user.sees_app(&a.name))
        .map(|a| a.name.clone())
        .collect();
    let every = apps.len() == c.cfg.apps.len();
    render(token, |csrf| {
        pages::plan_form(&user, csrf, &apps, q.app.as_deref(), every)
    })
}

#[derive(Deserialize)]
pub(super) struct PlanForm {
    #[serde(default)]
    authenticity_token: String,
    #[serde(default)]
    app: String,
}

/// The current dry-run plan of one app (or of every app, for a login that sees them all):
/// both sides read, nothing written to an app, the plan journaled as a dry run.
pub(super) async fn plan(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Form(f): Form<PlanForm>,
) -> Response {
    if token.verify(&f.authenticity_token).is_err() {
        return error(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: reload the page and try again",
        );
    }
    let every = c.cfg.apps.iter().all(|a| user.sees_app(&a.name));
    let app = match Some(f.app).filter(|a| !a.is_empty()) {
        Some(a) if user.sees_app(&a) => Some(a),
        Some(_) => return error(StatusCode::NOT_FOUND, "no such app for this login"),
        None if every => None,
        None => return error(StatusCode::BAD_REQUEST, "choose the app"),
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
                    plan.actions.retain(|a| {
                        user.sees_person(&a.user_name, a.anchor.as_ref().map(|x| x.as_str()))
                    });
                    plan
                })
                .map_err(|e| e.to_string()),
        })
        .collect();
    render(token, |csrf| pages::plan(&user, csrf, &plans))
}

#[derive(Deserialize)]
pub(super) struct LinksQuery {
    app: Option<String>,
    q: Option<String>,
}

pub(super) async fn links(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Query(q): Query<LinksQuery>,
) -> Page {
    let apps: Vec<&crate::config::AppConfig> = c
        .cfg
        .apps
        .iter()
        .filter(|a| user.sees_app(&a.name))
        .filter(|a| q.app.as_ref().is_none_or(|n| *n == a.name))
        .collect();
    let names: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
    // Each app's links, in the order of `apps`.
    let per_app = c
        .read(move |j| {
            names
                .iter()
                .map(|n| j.for_app(n).links())
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let needle = q.q.unwrap_or_default().to_lowercase();
    let now = chrono::Utc::now();
    let rows: Vec<pages::LinkRow> = apps
        .iter()
        .zip(per_app)
        .flat_map(|(app, links)| {
            links
                .into_iter()
                .filter(|(anchor, l)| user.sees_person(&l.user_name, Some(anchor.as_str())))
                .map(|(_, l)| l)
                .filter(|l| needle.is_empty() || l.user_name.to_lowercase().contains(&needle))
                .map(|l| pages::LinkRow::new(&app.name, l, &app.policy.lifecycle, now))
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(render(token, |csrf| pages::links(&user, csrf, &rows)))
}

pub(super) async fn person(
    State(c): State<Shared>,
    Login(user): Login,
    token: CsrfToken,
    Path(name): Path<String>,
) -> Page {
    let wanted = name.clone();
    let rows = c.read(move |j| j.actions_of_person(&wanted, 200)).await?;
    let seen = user.sees_person(&name, None)
        || rows
            .iter()
            .any(|r| user.sees_person(&name, r.anchor.as_deref()));
    if !seen {
        return Err(error(
            StatusCode::NOT_FOUND,
            "no such person for this login",
        ));
    }
    let rows: Vec<_> = rows.into_iter().filter(|r| user.sees_app(&r.app)).collect();
    Ok(render(token, |csrf| {
        pages::person(&user, csrf, &name, &rows)
    }))
}
