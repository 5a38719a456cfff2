//! The OpenAPI 3.1 document at `/api/openapi.json`, generated from the handlers' annotations.
use axum::Json;
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use crate::api::{admin, eval, ofrep};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Tenantry's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tenantry", description = "The rollout control plane for tenant-scoped feature flags."),
    modifiers(&Security),
    paths(
        crate::health::health,
        eval::features, eval::snapshot, eval::stream,
        ofrep::evaluate_one, ofrep::evaluate_all,
        admin::list_tenants, admin::create_tenant, admin::get_tenant, admin::update_tenant, admin::archive_tenant,
        admin::set_tenant_flag, admin::enable_multi_workspace,
        admin::list_flags, admin::create_flag, admin::get_flag, admin::flag_at, admin::get_plan, admin::import_plan, admin::tick_item, admin::sign_milestone,
        admin::request_change, admin::approve_change, admin::plan_settings, admin::plan_contacts, admin::resume_plan, admin::put_rollout, admin::advance, admin::rollback,
        admin::create_token, admin::list_tokens, admin::revoke_token,
        admin::audit, admin::migrations, crate::api::activity::ingest,
    ),
    tags(
        (name = "evaluation", description = "Is this flag on for tenant X?"),
        (name = "ofrep", description = "OpenFeature Remote Evaluation Protocol v1"),
        (name = "sdk", description = "Snapshot and change stream for local evaluation"),
        (name = "admin", description = "Tenants, flags, rollouts, tokens and audit (admin tokens)"),
        (name = "activity", description = "Workspace activity reported by the SaaS (tenant or server tokens)"),
        (name = "operations", description = "Health"),
    )
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
