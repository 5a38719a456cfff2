//! `/api/admin/flags`: flags, their rollout (phase, pilots, constraints), advance, rollback and
//! time travel.
use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::{HeaderMap, StatusCode},
    response::Response,
    Json,
};
use chrono::{DateTime, Utc};
use flags::change::RollbackTarget;
use flags::{Constraint, Phase, Rollout};
use serde::Deserialize;
use std::collections::BTreeSet;
use store::rollout::{Gating, Spec};
use utoipa::{IntoParams, ToSchema};

use super::{optional_json, settle, write, Admin};
use crate::{
    error::{ApiError, ErrorBody},
    AppState,
};

/// Every flag with its rollout and counts.
#[utoipa::path(get, path = "/api/admin/flags", tag = "admin", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<store::flags::FlagRow>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_flags(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<Vec<store::flags::FlagRow>>, ApiError> {
    Ok(Json(store::flags::list(&state.pool).await?))
}

/// A flag to create (deployed OFF).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFlagBody {
    /// Key: 1-100 of a-z 0-9 _ . - starting with a letter or digit.
    pub key: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
}

/// Creates a flag, OFF.
#[utoipa::path(post, path = "/api/admin/flags", tag = "admin", request_body = NewFlagBody, security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = store::flags::FlagRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_flag(
    State(state): State<AppState>,
    Admin { actor, .. }: Admin,
    body: Result<Json<NewFlagBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    let row = store::flags::create(&state.pool, &actor, &b.key, &b.description).await?;
    settle(&state).await;
    Ok(crate::api::versioned(StatusCode::CREATED, row.version, row))
}

/// One flag; its version is the ETag to send back as `If-Match`.
#[utoipa::path(get, path = "/api/admin/flags/{key}", tag = "admin", params(("key" = String, Path)), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::flags::FlagRow), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_flag(
    State(state): State<AppState>,
    _: Admin,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(key) = key?;
    let row = store::flags::get(&state.pool, &key).await?;
    Ok(crate::api::versioned(StatusCode::OK, row.version, row))
}

/// The moment of a time-travel question.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AtQuery {
    /// RFC 3339 time, e.g. `2026-11-25T10:00:00Z`.
    pub at: DateTime<Utc>,
}

/// Time travel: which tenants had the flag ON at `at`, rebuilt from the audit log.
#[utoipa::path(get, path = "/api/admin/flags/{key}/at", tag = "admin", params(("key" = String, Path), AtQuery), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::audit::FlagAt), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn flag_at(
    State(state): State<AppState>,
    _: Admin,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<AtQuery>, QueryRejection>,
) -> Result<Json<store::audit::FlagAt>, ApiError> {
    let Path(key) = key?;
    let Query(q) = query?;
    Ok(Json(store::audit::flag_at(&state.pool, &key, q.at).await?))
}

/// A rollout to apply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutBody {
    /// `off`, `pilot`, `N%` (1–99) or `100%`; anything else is a 422 naming the phases.
    #[schema(value_type = String, example = "10%")]
    pub phase: Phase,
    /// Pilot tenants.
    #[serde(default)]
    pub pilots: BTreeSet<String>,
    /// Constraints of the percentage phases.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// A change that turns a tenant ON or raises the phase passes the plan's gates; an admin's
    /// written reason overrides them (audited).
    #[serde(default)]
    pub override_reason: Option<String>,
}

/// Moves the flag to a rollout (phase, pilots, constraints) and writes exactly the tenant rows
/// that change. `If-Match` refuses a lost update with 409.
#[utoipa::path(put, path = "/api/admin/flags/{key}/rollout", tag = "admin", params(("key" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = RolloutBody, security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::flags::Change), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The flag changed since If-Match (`conflict`), the change turns tenants ON and the gates do not hold (`gates_unmet`), or a guard paused the rollout (`paused`)", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_rollout(
    State(state): State<AppState>,
    Admin { actor, .. }: Admin,
    headers: HeaderMap,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<RolloutBody>, JsonRejection>,
) -> Result<Json<store::flags::Change>, ApiError> {
    let Path(key) = key?;
    let expected = crate::api::if_match(&headers)?;
    let Json(b) = body?;
    let rollout = Rollout {
        phase: b.phase,
        pilots: b.pilots,
        constraints: b.constraints,
    };
    let gating = Gating::with_override(b.override_reason);
    write(
        &state,
        &actor,
        &key,
        Spec::Rollout(rollout),
        expected,
        &gating,
    )
    .await
}

/// Break glass: pass unmet gates with a written reason (admin tokens only; audited as
/// `gate.override` with the gates it passed).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceBody {
    /// Why the gates are overridden (1–1000 characters); absent: the gates apply.
    pub override_reason: Option<String>,
}

/// Advances the flag to the next rung of the ladder (OFF → pilot → 10% → 50% → 100%) when the
/// plan's gates for it hold (409 `gates_unmet` with the list otherwise).
#[utoipa::path(post, path = "/api/admin/flags/{key}/advance", tag = "admin", params(("key" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body(content = Option<AdvanceBody>), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::flags::Change), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Gates unmet (`gates_unmet`), paused by a guard (`paused`), or the flag changed since If-Match (`conflict`)", body = ErrorBody),
        (status = 422, description = "Already at 100%", body = ErrorBody)))]
pub async fn advance(
    State(state): State<AppState>,
    Admin { actor, .. }: Admin,
    headers: HeaderMap,
    key: Result<Path<String>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<store::flags::Change>, ApiError> {
    let Path(key) = key?;
    let expected = crate::api::if_match(&headers)?;
    let b: AdvanceBody = optional_json(&body)?;
    let gating = Gating::with_override(b.override_reason);
    write(&state, &actor, &key, Spec::Advance, expected, &gating).await
}

/// Where to roll back to.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// `off` (default; the seed's Quick Rollback: every row OFF) or `previous` (one rung down).
    #[schema(value_type = Option<String>)]
    pub to: Option<RollbackTarget>,
}

/// Rolls back. Never gated, always audited.
#[utoipa::path(post, path = "/api/admin/flags/{key}/rollback", tag = "admin", params(("key" = String, Path)),
    request_body(content = Option<RollbackBody>), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::flags::Change), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "`to` is neither `off` nor `previous`", body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    Admin { actor, .. }: Admin,
    key: Result<Path<String>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<store::flags::Change>, ApiError> {
    let Path(key) = key?;
    let b: RollbackBody = optional_json(&body)?;
    let spec = Spec::Rollback(b.to.unwrap_or_default());
    write(&state, &actor, &key, spec, None, &Gating::now()).await
}
