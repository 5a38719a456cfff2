//! The OpenAPI 3.1 document at `/api/openapi.json`, generated from the handlers' annotations.
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    api::{activity, admin, eval, ofrep},
    AppState,
};

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

/// The document's header: title, security schemes and tags. Its paths come from the routes
/// themselves ([`api`]).
#[derive(OpenApi)]
#[openapi(
    info(title = "Tenantry", description = "The rollout control plane for tenant-scoped feature flags."),
    modifiers(&Security),
    tags(
        (name = "evaluation", description = "Is this flag on for tenant X?"),
        (name = "ofrep", description = "OpenFeature Remote Evaluation Protocol v1"),
        (name = "sdk", description = "Snapshot and change stream for local evaluation"),
        (name = "admin", description = "Tenants, flags, rollouts, tokens and audit (admin tokens)"),
        (name = "activity", description = "Workspace activity reported by the SaaS (tenant or server tokens)"),
        (name = "operations", description = "Health"),
    )
)]
struct Header;

/// The one registry of the HTTP API: every route under `/api` and `/ofrep` is added here with
/// `routes!`, which takes its path, method and documentation from the handler's
/// `#[utoipa::path]`. The router and the OpenAPI document are two views of this value
/// (`split_for_parts`), so neither can list a route the other lacks. The only routes outside it
/// are in `startup::router`, each with the reason it is not part of the API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Header::openapi())
        .routes(routes!(crate::health::health))
        .routes(routes!(eval::features))
        .routes(routes!(eval::snapshot))
        .routes(routes!(eval::stream))
        .routes(routes!(ofrep::evaluate_all))
        .routes(routes!(ofrep::evaluate_one))
        // 1,000 events of up to 8 KiB details each.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(activity::ingest))
                .layer(axum::extract::DefaultBodyLimit::max(10 * 1024 * 1024)),
        )
        .merge(admin::router())
}

/// Tenantry's OpenAPI document, for code that wants it without serving it (tests, tools).
pub struct ApiDoc;

impl OpenApi for ApiDoc {
    fn openapi() -> utoipa::openapi::OpenApi {
        api().split_for_parts().1
    }
}

/// `GET /api/openapi.json`: the document, serialised once per router.
pub fn document(doc: &utoipa::openapi::OpenApi) -> axum::routing::MethodRouter<AppState> {
    let body = match serde_json::to_vec(doc) {
        Ok(bytes) => axum::body::Bytes::from(bytes),
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document does not serialise");
            axum::body::Bytes::new()
        }
    };
    axum::routing::get(move || {
        let body = body.clone();
        async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        }
    })
}
