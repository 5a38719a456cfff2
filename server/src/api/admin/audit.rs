//! `/api/admin/audit` and `/api/admin/migrations`: what happened, and the schema's state.
use axum::{
    extract::{rejection::QueryRejection, Query, State},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::Admin;
use crate::{
    error::{ApiError, ErrorBody},
    AppState,
};

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(store::audit::AuditQuery), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<store::audit::AuditRow>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    _: Admin,
    query: Result<Query<store::audit::AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<store::audit::AuditRow>>, ApiError> {
    let Query(q) = query?;
    if !(1..=1000).contains(&q.limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    Ok(Json(store::audit::query(&state.pool, &q).await?))
}

// ---------------------------------------------------------------- migrations

/// Migration status for DBAs.
#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationReport {
    /// Every migration the binary knows or the database has applied, by version.
    pub migrations: Vec<store::migrations::MigrationInfo>,
    /// Applied / pending / drifted counts.
    #[schema(value_type = Object)]
    pub counts: store::migrations::MigrationCounts,
    /// The seed plan's check, verbatim.
    pub verification_query: &'static str,
    /// Its result (the plan expects 1 before any tenant is enabled).
    pub verification_count: i64,
}

/// What the running binary knows versus what the database has applied.
#[utoipa::path(get, path = "/api/admin/migrations", tag = "admin", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = MigrationReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn migrations(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<MigrationReport>, ApiError> {
    let migrations = store::migrations::status(&state.pool).await?;
    let counts = store::migrations::counts(&state.pool).await?;
    Ok(Json(MigrationReport {
        migrations,
        counts,
        verification_query: store::migrations::SEED_VERIFICATION_QUERY,
        verification_count: store::migrations::seed_verification(&state.pool).await?,
    }))
}
