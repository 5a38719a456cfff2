//! Creating tokens, shared by the REST API and the CLI.
use chrono::{DateTime, Utc};

use crate::{auth, auth::Scope, error::ApiError, AppState};

/// Stores the hash of `secret` and refreshes this instance's token cache.
pub async fn create(
    state: &AppState,
    actor: &store::Actor,
    name: &str,
    scope: Scope,
    tenant_id: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    secret: &str,
) -> Result<store::tokens::TokenRow, ApiError> {
    let row = create_in(
        &state.pool,
        actor,
        name,
        scope,
        tenant_id,
        expires_at,
        secret,
    )
    .await?;
    if let Err(e) = state.live.tokens.reload(&state.pool).await {
        tracing::warn!(error = %e, "token cache reload failed");
    }
    Ok(row)
}

/// Stores the hash of `secret`.
pub async fn create_in(
    pool: &store::PgPool,
    actor: &store::Actor,
    name: &str,
    scope: Scope,
    tenant_id: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    secret: &str,
) -> Result<store::tokens::TokenRow, store::Error> {
    let hash = auth::hash_secret(secret);
    store::tokens::create(
        pool,
        actor,
        &store::tokens::NewToken {
            name,
            scope: scope.as_str(),
            tenant_id,
            token_hash: &hash,
            prefix: &auth::display_prefix(secret),
            expires_at,
        },
    )
    .await
}
