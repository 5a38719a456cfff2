//! `/api/admin/tokens`: machine tokens (the secret is shown once).
use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection},
        Path, State,
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Admin;
use crate::{
    auth::{self, Scope},
    error::{ApiError, ErrorBody},
    AppState,
};

/// Makes a token change effective on this instance before answering; other instances follow
/// through `NOTIFY rollgate_tokens`.
async fn reload_tokens(state: &AppState) {
    if let Err(e) = state.live.tokens.reload(&state.pool).await {
        tracing::warn!(error = %e, "token cache reload failed");
    }
}

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
    Admin { actor, person }: Admin,
    body: Result<Json<NewTokenBody>, JsonRejection>,
) -> Result<Response, ApiError> {
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
        Some(&person),
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
    _: Admin,
) -> Result<Json<Vec<store::tokens::TokenRow>>, ApiError> {
    Ok(Json(store::tokens::list(&state.pool).await?))
}

/// Revokes a token at once on every instance.
#[utoipa::path(delete, path = "/api/admin/tokens/{id}", tag = "admin", params(("id" = i64, Path)), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = store::tokens::TokenRow), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Admin { actor, .. }: Admin,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<store::tokens::TokenRow>, ApiError> {
    let Path(id) = id?;
    let row = store::tokens::revoke(&state.pool, &actor, id).await?;
    reload_tokens(&state).await;
    Ok(Json(row))
}
