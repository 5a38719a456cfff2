//! `/api/admin`: tenants, flags and their rollouts, tokens, audit. Admin tokens only.
use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use flags::change::{Role, RollbackTarget};
use flags::{Constraint, Phase, Rollout};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use store::rollout::{Gating, Spec};
use store::{Actor, Source};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{self, Caller, Scope},
    error::{ApiError, ErrorBody},
    AppState,
};

/// The flag the seed's `enable-multi-workspace` endpoint switches.
pub const SEED_FLAG: &str = "multi_workspace_enabled";

fn admin(caller: &Caller) -> Result<Actor, ApiError> {
    caller.require(&[Scope::Admin])?;
    Ok(caller.actor(Source::Api))
}

/// Publishes the write to this instance's snapshot before answering (read-your-writes); other
/// instances follow through NOTIFY.
async fn settle(state: &AppState) {
    if let Err(e) = state.live.refresh_snapshot(&state.pool).await {
        tracing::warn!(error = %e, "snapshot refresh after a write failed");
    }
}

/// Makes a token change effective on this instance before answering; other instances follow
/// through `NOTIFY rollgate_tokens`.
async fn reload_tokens(state: &AppState) {
    if let Err(e) = state.live.tokens.reload(&state.pool).await {
        tracing::warn!(error = %e, "token cache reload failed");
    }
}

// ---------------------------------------------------------------- tenants

/// Query of the tenant list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TenantListQuery {
    /// Case-insensitive substring of name or id.
    pub q: Option<String>,
    /// Plan.
    pub plan: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// `name` (default), `newest`, `plan` or `region`.
    pub sort: Option<String>,
    /// With `state`: the flag whose state filters.
    pub flag: Option<String>,
    /// `on` or `off`: only tenants for which `flag` is ON / OFF.
    pub state: Option<String>,
    /// 1-based page (default 1).
    pub page: Option<u32>,
    /// Rows per page, 1..=500 (default 50).
    pub per_page: Option<u32>,
}

/// A page of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPage {
    /// Rows.
    pub items: Vec<store::tenants::TenantRow>,
    /// Matches over all pages.
    pub total: i64,
    /// Page.
    pub page: u32,
    /// Rows per page.
    pub per_page: u32,
}

/// Lists live tenants.
#[utoipa::path(get, path = "/api/admin/tenants", tag = "admin", params(TenantListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = TenantPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<TenantListQuery>, QueryRejection>,
) -> Result<Json<TenantPage>, ApiError> {
    admin(&caller)?;
    let Query(q) = query?;
    // A bad query parameter is the caller's request error (400), not a rule of the data (422).
    let bad = |e: store::Error| ApiError::bad_request(e.to_string());
    let sort =
        store::tenants::TenantSort::parse(q.sort.as_deref().unwrap_or_default()).map_err(bad)?;
    let flag_state = store::tenants::flag_state_filter(
        q.flag.as_deref().unwrap_or_default(),
        q.state.as_deref().unwrap_or_default(),
    )
    .map_err(bad)?;
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=500).contains(&per_page) {
        return Err(ApiError::bad_request("per_page must be between 1 and 500"));
    }
    let page = store::tenants::list(
        &state.pool,
        &store::tenants::TenantQuery {
            search: q.q,
            plan: q.plan,
            region: q.region,
            flag_state,
            sort,
            page: q.page.unwrap_or(1).max(1),
            per_page,
        },
    )
    .await?;
    Ok(Json(TenantPage {
        items: page.items,
        total: page.total,
        page: page.page,
        per_page: page.per_page,
    }))
}

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    /// Id: 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or digit).
    pub id: String,
    /// Name.
    pub name: String,
    /// free, starter (default), pro or enterprise.
    pub plan: Option<String>,
    /// Region (default eu-west).
    pub region: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Creates a tenant; during a percentage phase it gets the phase's answer for its bucket.
#[utoipa::path(post, path = "/api/admin/tenants", tag = "admin", request_body = NewTenantBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = store::tenants::TenantRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<NewTenantBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = admin(&caller)?;
    let Json(b) = body?;
    let row = store::tenants::create(
        &state.pool,
        &actor,
        &store::tenants::NewTenant {
            id: b.id,
            name: b.name,
            plan: b.plan.unwrap_or_else(|| "starter".into()),
            region: b.region.unwrap_or_else(|| "eu-west".into()),
            tags: b.tags,
        },
    )
    .await?;
    settle(&state).await;
    Ok(super::versioned(StatusCode::CREATED, row.version, row))
}

/// One tenant, with its version as ETag.
#[utoipa::path(get, path = "/api/admin/tenants/{id}", tag = "admin", params(("id" = String, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::tenants::TenantRow), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    admin(&caller)?;
    let Path(id) = id?;
    let row = store::tenants::get(&state.pool, &id).await?;
    Ok(super::versioned(StatusCode::OK, row.version, row))
}

/// Fields to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatchBody {
    /// Name.
    pub name: Option<String>,
    /// Plan.
    pub plan: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
}

/// Changes a tenant. Send `If-Match` with the version you read to refuse lost updates (409).
#[utoipa::path(patch, path = "/api/admin/tenants/{id}", tag = "admin", params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = TenantPatchBody, security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::tenants::TenantRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_tenant(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<TenantPatchBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = admin(&caller)?;
    let Path(id) = id?;
    let expected = super::if_match(&headers)?;
    let Json(b) = body?;
    let row = store::tenants::update(
        &state.pool,
        &actor,
        &id,
        &store::tenants::TenantPatch {
            name: b.name,
            plan: b.plan,
            region: b.region,
            tags: b.tags,
        },
        expected,
    )
    .await?;
    settle(&state).await;
    Ok(super::versioned(StatusCode::OK, row.version, row))
}

/// Archives a tenant: OFF everywhere from now on (unknown tenant), history kept.
#[utoipa::path(delete, path = "/api/admin/tenants/{id}", tag = "admin", params(("id" = String, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn archive_tenant(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let actor = admin(&caller)?;
    let Path(id) = id?;
    store::tenants::archive(&state.pool, &actor, &id).await?;
    settle(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The per-tenant switch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantFlagBody {
    /// ON (the tenant becomes a pilot) or OFF.
    pub enabled: bool,
    /// Quarantine (true) or release (false) the tenant; absent keeps it.
    pub excluded: Option<bool>,
    /// A change that turns the tenant ON passes the plan's gates; an admin's written reason
    /// overrides them (audited as `gate.override`).
    #[serde(default)]
    pub override_reason: Option<String>,
}

/// Makes a change through the one write path and publishes it on this instance.
async fn write(
    state: &AppState,
    actor: &Actor,
    key: &str,
    spec: Spec,
    expected: Option<i64>,
    gating: &Gating,
) -> Result<Json<store::flags::Change>, ApiError> {
    let applied = store::rollout::change(&state.pool, actor, key, &spec, expected, gating).await?;
    settle(state).await;
    Ok(Json(applied.change))
}

/// Sets one tenant's row of a flag (the general form of `enable-multi-workspace`).
#[utoipa::path(put, path = "/api/admin/tenants/{id}/flags/{key}", tag = "admin",
    params(("id" = String, Path), ("key" = String, Path)), request_body = TenantFlagBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::flags::Change), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Turning the tenant ON: the plan's gates do not hold (`gates_unmet`), or a guard paused the rollout (`paused`)", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_tenant_flag(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<TenantFlagBody>, JsonRejection>,
) -> Result<Json<store::flags::Change>, ApiError> {
    let actor = admin(&caller)?;
    let Path((id, key)) = path?;
    let Json(b) = body?;
    let spec = Spec::Tenant {
        tenant: id,
        enabled: b.enabled,
        excluded: b.excluded,
    };
    let gating = Gating::with_override(b.override_reason);
    write(&state, &actor, &key, spec, None, &gating).await
}

/// The seed's pilot command: `POST /api/admin/tenants/TENANT_A_ID/enable-multi-workspace`. The
/// body is optional: `{"override_reason": "…"}` passes unmet gates (admins, audited).
#[utoipa::path(post, path = "/api/admin/tenants/{id}/enable-multi-workspace", tag = "admin",
    params(("id" = String, Path)), request_body(content = Option<AdvanceBody>), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::flags::Change), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The gates of the pilot phase do not hold (`gates_unmet`), or a guard paused the rollout (`paused`)", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn enable_multi_workspace(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<store::flags::Change>, ApiError> {
    let actor = admin(&caller)?;
    let Path(id) = id?;
    let b: AdvanceBody = optional_json(&body)?;
    let spec = Spec::Tenant {
        tenant: id,
        enabled: true,
        excluded: None,
    };
    let gating = Gating::with_override(b.override_reason);
    write(&state, &actor, SEED_FLAG, spec, None, &gating).await
}

// ---------------------------------------------------------------- flags

/// Every flag with its rollout and counts.
#[utoipa::path(get, path = "/api/admin/flags", tag = "admin", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<store::flags::FlagRow>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_flags(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<store::flags::FlagRow>>, ApiError> {
    admin(&caller)?;
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
    caller: Caller,
    body: Result<Json<NewFlagBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = admin(&caller)?;
    let Json(b) = body?;
    let row = store::flags::create(&state.pool, &actor, &b.key, &b.description).await?;
    settle(&state).await;
    Ok(super::versioned(StatusCode::CREATED, row.version, row))
}

/// One flag; its version is the ETag to send back as `If-Match`.
#[utoipa::path(get, path = "/api/admin/flags/{key}", tag = "admin", params(("key" = String, Path)), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::flags::FlagRow), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_flag(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    admin(&caller)?;
    let Path(key) = key?;
    let row = store::flags::get(&state.pool, &key).await?;
    Ok(super::versioned(StatusCode::OK, row.version, row))
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
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<AtQuery>, QueryRejection>,
) -> Result<Json<store::audit::FlagAt>, ApiError> {
    admin(&caller)?;
    let Path(key) = key?;
    let Query(q) = query?;
    Ok(Json(store::audit::flag_at(&state.pool, &key, q.at).await?))
}

/// A rollout to apply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutBody {
    /// `off`, `pilot`, `N%` or `100%`.
    pub phase: String,
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

/// The rollout a request body names (its phase parsed, 422 with the reason otherwise).
fn rollout_of(
    phase: &str,
    pilots: BTreeSet<String>,
    constraints: Vec<Constraint>,
) -> Result<Rollout, ApiError> {
    let phase: Phase = phase
        .parse()
        .map_err(|e: flags::Error| ApiError::unprocessable(e.to_string()))?;
    Ok(Rollout {
        phase,
        pilots,
        constraints,
    })
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
    caller: Caller,
    headers: HeaderMap,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<RolloutBody>, JsonRejection>,
) -> Result<Json<store::flags::Change>, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    let expected = super::if_match(&headers)?;
    let Json(b) = body?;
    let rollout = rollout_of(&b.phase, b.pilots, b.constraints)?;
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
    caller: Caller,
    headers: HeaderMap,
    key: Result<Path<String>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<store::flags::Change>, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    let expected = super::if_match(&headers)?;
    let b: AdvanceBody = optional_json(&body)?;
    let gating = Gating::with_override(b.override_reason);
    write(&state, &actor, &key, Spec::Advance, expected, &gating).await
}

/// An optional JSON body: empty means the default.
fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
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
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<store::flags::Change>, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    let b: RollbackBody = optional_json(&body)?;
    let spec = Spec::Rollback(b.to.unwrap_or_default());
    write(&state, &actor, &key, spec, None, &Gating::now()).await
}

// ---------------------------------------------------------------- tokens

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// Unique name among live tokens.
    pub name: String,
    /// admin, server or tenant.
    pub scope: Scope,
    /// The tenant of a tenant token.
    pub tenant_id: Option<String>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A created token: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret. Store it now: Tenantry keeps only its hash.
    pub token: String,
    /// Its metadata.
    #[serde(flatten)]
    pub meta: store::tokens::TokenRow,
}

/// Creates a token and shows its secret once. It acts for the same person as the token creating it
/// (`owner`), so it cannot approve that person's changes.
#[utoipa::path(post, path = "/api/admin/tokens", tag = "admin", request_body = NewTokenBody, security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<NewTokenBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = admin(&caller)?;
    let Json(b) = body?;
    let secret = auth::generate_secret(b.scope).map_err(|e| {
        tracing::error!(error = %e, "token generation failed");
        ApiError::internal()
    })?;
    let meta = crate::tokens::create(
        &state.pool,
        &actor,
        &b.name,
        b.scope,
        b.tenant_id.as_deref(),
        b.expires_at,
        &secret,
        // The new token acts for the same person as the one creating it.
        Some(&caller.person),
    )
    .await?;
    reload_tokens(&state).await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: secret,
            meta,
        }),
    )
        .into_response())
}

/// Every token (never the secrets).
#[utoipa::path(get, path = "/api/admin/tokens", tag = "admin", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<store::tokens::TokenRow>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<store::tokens::TokenRow>>, ApiError> {
    admin(&caller)?;
    Ok(Json(store::tokens::list(&state.pool).await?))
}

/// Revokes a token at once on every instance.
#[utoipa::path(delete, path = "/api/admin/tokens/{id}", tag = "admin", params(("id" = i64, Path)), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::tokens::TokenRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<store::tokens::TokenRow>, ApiError> {
    let actor = admin(&caller)?;
    let Path(id) = id?;
    let row = store::tokens::revoke(&state.pool, &actor, id).await?;
    reload_tokens(&state).await;
    Ok(Json(row))
}

// ---------------------------------------------------------------- audit

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(store::audit::AuditQuery), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<store::audit::AuditRow>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<store::audit::AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<store::audit::AuditRow>>, ApiError> {
    admin(&caller)?;
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
    caller: Caller,
) -> Result<Json<MigrationReport>, ApiError> {
    admin(&caller)?;
    let migrations = store::migrations::status(&state.pool).await?;
    let counts = store::migrations::counts(&state.pool).await?;
    Ok(Json(MigrationReport {
        migrations,
        counts,
        verification_query: store::migrations::SEED_VERIFICATION_QUERY,
        verification_count: store::migrations::seed_verification(&state.pool).await?,
    }))
}

// ---------------------------------------------------------------- rollout plans

/// The flag's rollout plan (created from the seed template on first use) with the gates of the
/// next phase evaluated now.
#[utoipa::path(get, path = "/api/admin/flags/{key}/plan", tag = "admin", params(("key" = String, Path)), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::rollout::PlanState), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_plan(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<store::rollout::PlanState>, ApiError> {
    admin(&caller)?;
    let Path(key) = key?;
    Ok(Json(
        store::rollout::plan_state(&state.pool, &key, Utc::now()).await?,
    ))
}

/// A plan written in Markdown, like the seed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanImportBody {
    /// The Markdown text.
    pub markdown: String,
}

/// Replaces the plan's checklists, milestones and contacts with those of a Markdown plan.
#[utoipa::path(put, path = "/api/admin/flags/{key}/plan", tag = "admin", params(("key" = String, Path)), request_body = PlanImportBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_plan(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<PlanImportBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    let Json(body) = body?;
    let doc = store::plans::import(&state.pool, &actor, &key, &body.markdown).await?;
    Ok(Json(doc).into_response())
}

/// A tick (or untick) of a checklist item.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TickBody {
    /// Checklist name.
    pub checklist: String,
    /// Item text.
    pub item: String,
    /// `false` unticks (default `true`).
    #[serde(default = "yes")]
    pub ticked: bool,
    /// Optional note (≤ 2000 characters).
    #[serde(default)]
    pub note: String,
}

fn yes() -> bool {
    true
}

/// Ticks or unticks a checklist item (the history keeps every tick).
#[utoipa::path(post, path = "/api/admin/flags/{key}/plan/ticks", tag = "admin", params(("key" = String, Path)), request_body = TickBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = store::plans::TickRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn tick_item(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<TickBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    let Json(b) = body?;
    let row = store::plans::tick(
        &state.pool,
        &actor,
        &key,
        &b.checklist,
        &b.item,
        b.ticked,
        &b.note,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// A signature (or its withdrawal).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignBody {
    /// Milestone name.
    pub milestone: String,
    /// `false` withdraws (default `true`).
    #[serde(default = "yes")]
    pub signed: bool,
}

/// Signs a milestone (admin tokens may sign for every owner).
#[utoipa::path(post, path = "/api/admin/flags/{key}/plan/signoffs", tag = "admin", params(("key" = String, Path)), request_body = SignBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = store::plans::SignoffRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn sign_milestone(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<SignBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    let Json(b) = body?;
    let row = store::plans::sign(
        &state.pool,
        &actor,
        &key,
        &b.milestone,
        b.signed,
        Role::Admin,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// What to ask approval for: nothing (advancing), a rollout, or a per-tenant switch.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestBody {
    /// The rollout a `PUT …/rollout` would set (phase, pilots, constraints).
    pub rollout: Option<RolloutRequest>,
    /// The per-tenant switch a `PUT /api/admin/tenants/{id}/flags/{key}` (or the seed's
    /// `enable-multi-workspace`) would make.
    pub tenant: Option<TenantRequest>,
}

/// A rollout to ask approval for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// `off`, `pilot`, `N%` or `100%`.
    pub phase: String,
    /// Pilot tenants.
    #[serde(default)]
    pub pilots: BTreeSet<String>,
    /// Constraints of the percentage phases.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
}

/// A per-tenant switch to ask approval for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    /// Tenant id.
    pub id: String,
    /// ON (default) or OFF.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Quarantine (true) or release (false); absent keeps it.
    pub excluded: Option<bool>,
}

/// Asks a second person to approve an exact change that turns tenants ON: advancing (no body), a
/// rollout, or a per-tenant switch. The request binds to the change's hash; making that very
/// change later passes the approval gate.
#[utoipa::path(post, path = "/api/admin/flags/{key}/plan/requests", tag = "admin", params(("key" = String, Path)),
    request_body(content = Option<RequestBody>), security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = store::approvals::ChangeRequest), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "Already at 100%, both a rollout and a tenant given, or a change that turns nobody ON", body = ErrorBody)))]
pub async fn request_change(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    let b: RequestBody = optional_json(&body)?;
    let spec = match (b.rollout, b.tenant) {
        (None, None) => Spec::Advance,
        (Some(r), None) => Spec::Rollout(rollout_of(&r.phase, r.pilots, r.constraints)?),
        (None, Some(t)) => Spec::Tenant {
            tenant: t.id,
            enabled: t.enabled,
            excluded: t.excluded,
        },
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "ask for one change at a time: a rollout or a tenant, not both",
            ))
        }
    };
    let row = store::rollout::request(&state.pool, &actor, &key, &spec).await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// Approves a change request (as an admin token acting for another person than the one who asked —
/// not the same token, nor one minted by it or by its owner; 409 when the flag or its tenants
/// changed since, so the change is not the one requested).
#[utoipa::path(post, path = "/api/admin/flags/{key}/plan/requests/{id}/approve", tag = "admin",
    params(("key" = String, Path), ("id" = i64, Path)), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::approvals::ChangeRequest), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve_change(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, i64)>, PathRejection>,
) -> Result<Json<store::approvals::ChangeRequest>, ApiError> {
    let actor = admin(&caller)?;
    let Path((key, id)) = path?;
    Ok(Json(
        store::rollout::approve(&state.pool, &actor, &key, id, Role::Admin).await?,
    ))
}

/// A plan's approval and automation settings, and optionally its gates.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanSettingsBody {
    /// Raising the phase needs a second user's approval of the exact change.
    pub approvals_required: bool,
    /// Roles that may approve: admin, product_owner, qa, dba.
    pub approver_roles: Vec<String>,
    /// Advance on its own once every gate holds.
    pub auto_advance: bool,
    /// On a guard's alert, besides pausing: `pause` (default), `previous` (one phase down) or
    /// `off` (the kill switch).
    #[serde(default = "pause")]
    pub on_alert: String,
    /// The gates per phase; absent keeps them.
    #[schema(value_type = Option<Vec<Object>>)]
    pub gates: Option<Vec<flags::plan::PhaseGates>>,
    /// The guards (name, title, PromQL query, warn, alert, direction `higher_is_worse` or
    /// `lower_is_worse`, per_tenant, unit); absent keeps them.
    #[schema(value_type = Option<Vec<Object>>)]
    pub guards: Option<Vec<flags::guard::GuardSpec>>,
}

fn pause() -> String {
    "pause".into()
}

/// Changes the plan's approvals, automatic advance and gates (audited as `plan.settings`).
#[utoipa::path(put, path = "/api/admin/flags/{key}/plan/settings", tag = "admin", params(("key" = String, Path)), request_body = PlanSettingsBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn plan_settings(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<PlanSettingsBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    let Json(b) = body?;
    let approver_roles = b
        .approver_roles
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let settings = store::plans::Settings {
        approvals_required: b.approvals_required,
        approver_roles,
        auto_advance: b.auto_advance,
        on_alert: b
            .on_alert
            .parse()
            .map_err(|e: flags::Error| ApiError::unprocessable(e.to_string()))?,
    };
    store::plans::set_settings(
        &state.pool,
        &actor,
        &key,
        &settings,
        b.gates.as_deref(),
        b.guards.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resumes a rollout a guard's alert paused (a person's decision; audited as `plan.resume`). The
/// guards still gate the next advance.
#[utoipa::path(post, path = "/api/admin/flags/{key}/plan/resume", tag = "admin", params(("key" = String, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Not paused", body = ErrorBody)))]
pub async fn resume_plan(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    store::plans::resume(&state.pool, &actor, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The plan's Contacts table.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactsBody {
    /// Rows: role (e.g. "On-call Engineer") and contact.
    #[schema(value_type = Vec<Object>)]
    pub contacts: Vec<flags::plan::Contact>,
}

/// Replaces the plan's Contacts table (audited as `plan.contacts`).
#[utoipa::path(put, path = "/api/admin/flags/{key}/plan/contacts", tag = "admin", params(("key" = String, Path)), request_body = ContactsBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn plan_contacts(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<ContactsBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let actor = admin(&caller)?;
    let Path(key) = key?;
    let Json(b) = body?;
    store::plans::set_contacts(&state.pool, &actor, &key, &b.contacts).await?;
    Ok(StatusCode::NO_CONTENT)
}
