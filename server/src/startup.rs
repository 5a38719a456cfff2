//! Building the router and serving it.
use std::net::SocketAddr;

use anyhow::Context;
use axum::http::{header, HeaderValue};
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use axum::{routing::get, Router};
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_sessions::Session;
use tower_sessions::{
    cookie::{time, SameSite},
    session_store::ExpiredDeletion,
    Expiry, SessionManagerLayer,
};
use tower_sessions_sqlx_store::PostgresStore;

use crate::{api::eval, session::SignedIn, AppState};

/// The web app's routes, generated once per process.
///
/// Generating them renders the app with resource loading suppressed through a process-wide flag
/// (leptos_server's `SuppressResourceLoad`); a resource of another request that is first polled
/// while the flag is up waits forever (leptos-rs/leptos#4773). Generating once, before any router
/// exists — `OnceLock` makes every other caller wait — means no page renders during it: a test
/// binary that built a router per test hung now and then on a page of a parallel test.
fn app_routes() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

/// Every route of the server over `state`. Tests call this and drive it with `oneshot`.
pub fn router(state: AppState) -> Router {
    let routes = app_routes();
    let ctx = app::ServerContext {
        pool: state.pool.clone(),
        backup_dir: state.backup_dir.clone(),
        database_url: state.database_url.clone(),
        backup_max_age: state.backup_max_age,
        prometheus: state.prometheus.clone(),
        login_throttle: state.login_throttle.clone(),
        trust_proxy: state.trust_proxy,
        trusted_proxies: state.trusted_proxies.clone(),
        publisher: crate::live::publisher(state.pool.clone(), state.live.clone()),
        counts: crate::live::counts(state.live.clone()),
    };
    let options = state.leptos_options.clone();
    // The HTTP API: one registry for its routes and its OpenAPI document.
    let (documented, doc) = crate::openapi::api().split_for_parts();
    // Token-authenticated: the API and the two routes outside it that need no session. No
    // session layer here — parsing cookies and creating a session is work an evaluation does not
    // need (it was on every request's path).
    let api = documented
        // Not part of the API, each for its reason: the document itself, and Prometheus' scrape
        // (text exposition format).
        .route("/api/openapi.json", crate::openapi::document(&doc))
        .route("/metrics", get(crate::metrics::render))
        .route_layer(crate::metrics::Track);
    let _ = crate::metrics::handle();
    let sessions = SessionManagerLayer::new(session_store(&state.pool))
        .with_name("tenantry_session")
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(state.secure_cookies)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(8)));
    // Session-authenticated: the web app, and two routes of it outside the API — its live
    // counter and the audit log's CSV download (a link on the audit page; session and role).
    let web = Router::new()
        .route("/api/ui/stream", get(eval::ui_stream))
        .route("/audit/export.csv", get(crate::export::audit_csv))
        .route_layer(crate::metrics::Track)
        .leptos_routes_with_context(
            &state,
            routes,
            {
                let ctx = ctx.clone();
                move || provide_context(ctx.clone())
            },
            move || app::shell(options.clone()),
        )
        // The 404 page renders with the same context, so its header knows who is signed in.
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(move || provide_context(ctx.clone()), app::shell))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_sign_in,
        ))
        .layer(sessions);
    let rest = Router::new()
        .merge(api)
        .merge(web)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::csrf::protect,
        ));
    hot_path(&state).fallback_service(common_layers(rest.with_state(state)))
}

/// What every response gets: the security headers, and gzip or br when the client asks
/// (Accept-Encoding) and the body is worth it — the SDK snapshot, OFREP bulk, JSON lists, pages
/// and the web app's assets. Never the event streams (tower-http's default predicate skips
/// text/event-stream) and never bodies under 32 bytes.
fn common_layers<S: Clone + Send + Sync + 'static>(r: Router<S>) -> Router<S> {
    r.layer(axum::middleware::map_response(security_headers))
        .layer(CompressionLayer::new())
}

/// The security headers, each unless the handler set it (pages send their own policy, with the
/// render's script nonce: `app::csp`). One layer for the four: every layer is one more future
/// wrapped around every request's.
async fn security_headers(res: Response) -> Response {
    with_headers(
        res,
        &[
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
    )
}

/// Sets each header the handler did not set itself.
fn with_headers(mut res: Response, headers: &[(header::HeaderName, &'static str)]) -> Response {
    let h = res.headers_mut();
    for (name, value) in headers {
        if let header::Entry::Vacant(v) = h.entry(name) {
            v.insert(HeaderValue::from_static(value));
        }
    }
    res
}

/// The evaluation hot path — what the SaaS asks on each of its own requests — on a small router
/// in front of everything else, so that it pays only for what it uses: the same handlers as the
/// documented routes (`openapi::api` registers them too), metrics, and a JSON API's headers. No
/// CSRF check (token-authenticated: a browser never attaches an `Authorization` header on its
/// own, and no cookie is read), no session, and not the router of every page and API route.
/// Everything else falls through to the full router.
fn hot_path(state: &AppState) -> Router {
    let hot = Router::new()
        .route("/api/features", get(eval::features))
        .route(
            "/ofrep/v1/evaluate/flags/{key}",
            axum::routing::post(crate::api::ofrep::evaluate_one),
        )
        .route_layer(crate::metrics::Track)
        .layer(axum::middleware::map_response(api_headers));
    hot.with_state(state.clone())
}

/// The Content-Security-Policy of the evaluation hot path's JSON answers: nothing may load, nothing
/// may frame them (OWASP's REST recommendation). The page policy's sources mean nothing to JSON,
/// and the hot path's answers are a few dozen bytes: its ~230 bytes would be most of each one.
pub const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The hot path's headers: a JSON API's (no compression either: its answers are a few dozen
/// bytes — the SDK snapshot and OFREP bulk, which are large, are compressed on the full router).
async fn api_headers(res: Response) -> Response {
    with_headers(
        res,
        &[
            (header::CONTENT_SECURITY_POLICY, API_CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
    )
}

/// The Content-Security-Policy of every response that is not a rendered page (pages send their
/// own, with the render's script nonce: `app::csp`).
pub const CONTENT_SECURITY_POLICY: &str = app::csp::STATIC;

/// Pages for signed-in users: anyone without a live session user (the same check as
/// [`SignedIn`]) goes to `/login?next=…` before the app renders. (Server functions check the role
/// themselves; this only routes people.)
async fn require_sign_in(
    State(state): State<AppState>,
    session: Session,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    let protected = path == "/"
        || app::PROTECTED_PREFIXES.iter().any(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
    if protected && req.method() == axum::http::Method::GET {
        match SignedIn::check(&session, &state).await {
            Ok(_) => return next.run(req).await,
            Err(e) if e.status != axum::http::StatusCode::UNAUTHORIZED => return e.into_response(),
            Err(_) => {}
        }
        let target = match req.uri().path_and_query() {
            Some(pq) => pq.as_str().to_string(),
            None => path.to_string(),
        };
        let next = app::url::encode(&target);
        return Redirect::to(&format!("/login?next={next}")).into_response();
    }
    next.run(req).await
}

/// Sign-in sessions live in Tenantry's own `sessions` table (created by a migration).
fn session_store(pool: &store::PgPool) -> PostgresStore {
    match PostgresStore::new(pool.clone())
        .with_schema_name("public")
        .and_then(|s| s.with_table_name("sessions"))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "session table name rejected; using the library default");
            PostgresStore::new(pool.clone())
        }
    }
}

/// Builds the state over `pool` and serves until Ctrl-C or SIGTERM.
pub async fn serve(
    pool: store::PgPool,
    database_url: String,
    addr: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let config = crate::config::Config::from_env()?;
    let leptos_options = crate::config::leptos_options(addr)?;
    let addr = leptos_options.site_addr;
    let mut state = AppState::with_config(leptos_options, pool, &config);
    state.database_url = Some(database_url);
    state.prometheus = config.prometheus()?;
    if let Err(e) = state.live.refresh_all(&state.pool).await {
        tracing::warn!(error = %e, "initial snapshot load failed; will retry in the background");
    }
    crate::live::spawn(state.pool.clone(), state.live.clone());
    crate::jobs::spawn_outbox_prune(state.pool.clone(), config.outbox_retention);
    if let Some(every) = config.auto_advance_interval {
        crate::jobs::spawn_auto_advance(state.clone(), every);
    }
    match &state.prometheus {
        Some(p) => {
            let every = config.guard_interval;
            tracing::info!(prometheus = %p.url(), every_secs = every.as_secs(), "guard monitor on");
            crate::jobs::spawn_guards(state.clone(), every);
        }
        None => tracing::warn!(
            "PROMETHEUS_URL is not set: guards hold, so phases gated by guards cannot be entered"
        ),
    }
    let throttle = state.login_throttle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(infra::throttle::PRUNE_EVERY);
        loop {
            tick.tick().await;
            throttle.prune(std::time::Instant::now());
        }
    });
    tokio::spawn(
        session_store(&state.pool)
            .continuously_delete_expired(std::time::Duration::from_secs(3600)),
    );
    let app = router(state);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("Tenantry listening on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
