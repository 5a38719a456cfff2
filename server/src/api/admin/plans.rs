//! `/api/admin/flags/{key}/plan`: the rollout plan — checklists, sign-offs, change requests and
//! approvals, settings, contacts, resuming after a guard's pause.
use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection},
        Path, State,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use chrono::Utc;
use flags::change::{OnAlert, Role};
use flags::{Constraint, Phase};
use serde::Deserialize;
use std::collections::BTreeSet;
use store::rollout::Spec;
use utoipa::ToSchema;

use super::{optional_json, Admin};
use crate::{
    error::{ApiError, ErrorBody},
    AppState,
};

/// The flag's rollout plan (created from the seed template on first use) with the gates of the
/// next phase evaluated now.
#[utoipa::path(get, path = "/api/admin/flags/{key}/plan", tag = "admin", params(("key" = String, Path)), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::rollout::PlanState), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_plan(
    State(state): State<AppState>,
    _: Admin,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<store::rollout::PlanState>, ApiError> {
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
    Admin { actor, .. }: Admin,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<PlanImportBody>, JsonRejection>,
) -> Result<Response, ApiError> {
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
    Admin { actor, .. }: Admin,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<TickBody>, JsonRejection>,
) -> Result<Response, ApiError> {
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
    Admin { actor, .. }: Admin,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<SignBody>, JsonRejection>,
) -> Result<Response, ApiError> {
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
    /// `off`, `pilot`, `N%` (1–99) or `100%`; anything else is a 422 naming the phases.
    #[schema(value_type = String, example = "10%")]
    pub phase: Phase,
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
    Admin { actor, .. }: Admin,
    key: Result<Path<String>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let Path(key) = key?;
    let b: RequestBody = optional_json(&body)?;
    let spec = match (b.rollout, b.tenant) {
        (None, None) => Spec::Advance,
        (Some(r), None) => Spec::Rollout(flags::Rollout {
            phase: r.phase,
            pilots: r.pilots,
            constraints: r.constraints,
        }),
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
    Admin { actor, .. }: Admin,
    path: Result<Path<(String, i64)>, PathRejection>,
) -> Result<Json<store::approvals::ChangeRequest>, ApiError> {
    let Path((key, id)) = path?;
    Ok(Json(
        store::rollout::approve(&state.pool, &actor, &key, id, Role::Admin).await?,
    ))
}

/// A plan's approval and automation settings, and optionally its gates.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanSettingsBody {
    /// Raising the phase needs a second user's approval of the exact change; absent keeps it.
    pub approvals_required: Option<bool>,
    /// Roles that may approve: admin, product_owner, qa, dba; absent keeps them.
    #[schema(value_type = Option<Vec<String>>)]
    pub approver_roles: Option<Vec<Role>>,
    /// Advance on its own once every gate holds; absent keeps it.
    pub auto_advance: Option<bool>,
    /// On a guard's alert, besides pausing: `pause` (a new plan's), `previous` (one phase down)
    /// or `off` (the kill switch); absent keeps it.
    #[schema(value_type = Option<String>)]
    pub on_alert: Option<OnAlert>,
    /// The gates per phase; absent keeps them.
    #[schema(value_type = Option<Vec<Object>>)]
    pub gates: Option<Vec<flags::plan::PhaseGates>>,
    /// The guards (name, title, PromQL query, warn, alert, direction `higher_is_worse` or
    /// `lower_is_worse`, per_tenant, unit); absent keeps them.
    #[schema(value_type = Option<Vec<Object>>)]
    pub guards: Option<Vec<flags::guard::GuardSpec>>,
}

/// Changes the plan's approvals, automatic advance, alert action, gates and guards — each one the
/// body gives; the others are kept (audited as `plan.settings`).
#[utoipa::path(put, path = "/api/admin/flags/{key}/plan/settings", tag = "admin", params(("key" = String, Path)), request_body = PlanSettingsBody,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn plan_settings(
    State(state): State<AppState>,
    Admin { actor, .. }: Admin,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<PlanSettingsBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(key) = key?;
    let Json(b) = body?;
    let patch = store::plans::SettingsPatch {
        approvals_required: b.approvals_required,
        approver_roles: b.approver_roles,
        auto_advance: b.auto_advance,
        on_alert: b.on_alert,
    };
    store::plans::set_settings(
        &state.pool,
        &actor,
        &key,
        &patch,
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
    Admin { actor, .. }: Admin,
    key: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
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
    Admin { actor, .. }: Admin,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<ContactsBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(key) = key?;
    let Json(b) = body?;
    store::plans::set_contacts(&state.pool, &actor, &key, &b.contacts).await?;
    Ok(StatusCode::NO_CONTENT)
}
