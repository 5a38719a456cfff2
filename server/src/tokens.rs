//! Creating tokens, shared by the REST API and the CLI.
use chrono::{DateTime, Utc};

use crate::{auth, auth::Scope};

/// Stores the hash of `secret`.
pub async fn create(
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
