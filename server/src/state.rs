//! What every handler shares.
use std::time::Instant;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use store::PgPool;

/// The router's state.
#[derive(Clone)]
pub struct AppState {
    /// Leptos site options.
    pub leptos_options: LeptosOptions,
    /// Database pool (connects lazily; survives outages).
    pub pool: PgPool,
    /// When this process started.
    pub started_at: Instant,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
