//! `GET /api/health`: can this instance serve, and is its data current?
use std::time::Duration;

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// The snapshot evaluations are served from.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotHealth {
    /// Its version (0 before the first load).
    pub version: u64,
    /// Seconds since it was last confirmed current.
    pub age_seconds: f64,
    /// Flags in it.
    pub flags: usize,
    /// Live tenants in it.
    pub tenants: usize,
}

/// Health of the instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`; `degraded` when the database is away but evaluations are served from the last
    /// snapshot; `unavailable` when there is no snapshot either.
    pub status: &'static str,
    /// `ok` or the reason it is not.
    pub database: String,
    /// Migration counts, when the database answered.
    #[schema(value_type = Option<Object>)]
    pub migrations: Option<store::migrations::MigrationCounts>,
    /// Snapshot version and age.
    pub snapshot: SnapshotHealth,
    /// `ok` when the LISTEN connection that carries changes is up, else `down`.
    pub listen: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// Seconds since this instance started.
    pub uptime_seconds: u64,
}

/// 200 with `{status, database, migrations: {applied, pending}, snapshot, listen, version}`, or
/// 503 with the reason in the same shape.
#[utoipa::path(get, path = "/api/health", tag = "operations",
    responses((status = 200, body = Health), (status = 503, description = "Database unreachable", body = Health)))]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let db = store::health::ping(&state.pool, Duration::from_secs(2)).await;
    let migrations = match db {
        Ok(()) => store::migrations::counts(&state.pool).await.ok(),
        Err(_) => None,
    };
    let snap = state.live.current();
    let (code, status, database) = match (&db, &migrations) {
        (Ok(()), Some(_)) => (StatusCode::OK, "ok", "ok".to_string()),
        (Ok(()), None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "connected, but the migration table could not be read".to_string(),
        ),
        (Err(e), _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            if state.live.is_loaded() {
                "degraded"
            } else {
                "unavailable"
            },
            format!("unreachable: {}", e.public_reason()),
        ),
    };
    let body = Health {
        status,
        database,
        migrations,
        snapshot: SnapshotHealth {
            version: snap.version(),
            age_seconds: (state.live.age().as_secs_f64() * 10.0).round() / 10.0,
            flags: snap.flag_count(),
            tenants: snap.tenant_count(),
        },
        listen: if state.live.is_listening() {
            "ok"
        } else {
            "down"
        },
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started_at.elapsed().as_secs(),
    };
    (code, [("cache-control", "no-store")], Json(body))
}
