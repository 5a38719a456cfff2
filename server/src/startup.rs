//! Building the router and serving it.
use std::{net::SocketAddr, time::Instant};

use anyhow::Context;
use axum::{routing::get, Router};
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;

use crate::{health, AppState};

/// Every route of the server over `state`. Tests call this and drive it with `oneshot`.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let ctx = app::ServerContext {
        pool: state.pool.clone(),
    };
    let options = state.leptos_options.clone();
    Router::new()
        .route("/api/health", get(health::health))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(ctx.clone()),
            move || app::shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .with_state(state)
}

/// Builds the state over `pool` and serves until Ctrl-C or SIGTERM.
pub async fn serve(pool: store::PgPool, addr: Option<SocketAddr>) -> anyhow::Result<()> {
    let leptos_options = crate::config::leptos_options(addr)?;
    let addr = leptos_options.site_addr;
    let state = AppState {
        leptos_options,
        pool,
        started_at: Instant::now(),
    };
    let app = router(state);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("Rollgate listening on http://{addr}");
    axum::serve(listener, app)
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
