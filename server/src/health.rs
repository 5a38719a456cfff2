//! `GET /api/health`: is this instance able to serve, and is its database current?
use std::time::Duration;

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::Serialize;

use crate::AppState;

/// Health of the database connection.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`, or `unavailable` when the database cannot be reached.
    pub status: &'static str,
    /// `ok` or the reason it is not.
    pub database: String,
    /// Migration counts, when the database answered.
    pub migrations: Option<store::migrations::MigrationCounts>,
    /// The server's version.
    pub version: &'static str,
    /// Seconds since this instance started.
    pub uptime_seconds: u64,
}

/// 200 with `{status, database, migrations: {applied, pending}, version}`, or 503 with the reason
/// in the same shape.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let db = store::health::ping(&state.pool, Duration::from_secs(2)).await;
    let migrations = match db {
        Ok(()) => store::migrations::counts(&state.pool).await.ok(),
        Err(_) => None,
    };
    let (code, status, database) = match (&db, &migrations) {
        (Ok(()), Some(_)) => (StatusCode::OK, "ok", "ok".to_string()),
        (Ok(()), None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "connected, but the migration table could not be read".to_string(),
        ),
        (Err(e), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("unreachable: {}", e.public_reason()),
        ),
    };
    let body = Health {
        status,
        database,
        migrations,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started_at.elapsed().as_secs(),
    };
    (code, [("cache-control", "no-store")], Json(body))
}
