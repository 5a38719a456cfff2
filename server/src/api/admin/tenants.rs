//! `/api/admin/tenants`: the tenant list, one tenant, and the per-tenant switch of a flag (the
//! seed's `enable-multi-workspace` among them).
use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection, QueryRejection},
        Path, Query, State,
    },
    http::{HeaderMap, StatusCode},
    response::Response,
    Json,
};
use serde::{Deserialize, Serialize};
use store::rollout::{Gating, Spec};
use utoipa::{IntoParams, ToSchema};

use super::{flags::AdvanceBody, optional_json, settle, write, Admin, SEED_FLAG};
use crate::{
    error::{ApiError, ErrorBody},
    AppState,
};

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
    _: Admin,
    query: Result<Query<TenantListQuery>, QueryRejection>,
) -> Result<Json<TenantPage>, ApiError> {
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
    Admin { actor, .. }: Admin,
    body: Result<Json<NewTenantBody>, JsonRejection>,
) -> Result<Response, ApiError> {
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
    Ok(crate::api::versioned(StatusCode::CREATED, row.version, row))
}

/// One tenant, with its version as ETag.
#[utoipa::path(get, path = "/api/admin/tenants/{id}", tag = "admin", params(("id" = String, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::tenants::TenantRow), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    _: Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let row = store::tenants::get(&state.pool, &id).await?;
    Ok(crate::api::versioned(StatusCode::OK, row.version, row))
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
    Admin { actor, .. }: Admin,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<TenantPatchBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let expected = crate::api::if_match(&headers)?;
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
    Ok(crate::api::versioned(StatusCode::OK, row.version, row))
}

/// Archives a tenant: OFF everywhere from now on (unknown tenant), history kept.
#[utoipa::path(delete, path = "/api/admin/tenants/{id}", tag = "admin", params(("id" = String, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn archive_tenant(
    State(state): State<AppState>,
    Admin { actor, .. }: Admin,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
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
    Admin { actor, .. }: Admin,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<TenantFlagBody>, JsonRejection>,
) -> Result<Json<store::flags::Change>, ApiError> {
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
    Admin { actor, .. }: Admin,
    id: Result<Path<String>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<store::flags::Change>, ApiError> {
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
