//! Creating tokens, shared by the REST API and the CLI.
use chrono::{DateTime, Utc};

use crate::{auth, auth::Scope};

/// Stores the hash of `secret`. `owner` is the person the token acts for: over REST the creating
/// token's person ([`auth::Caller::person`]), so a token cannot mint a "second person"; `None`
/// from the CLI (the token is its own person).
#[allow(clippy::too_many_arguments)]
pub async fn create(
    pool: &store::PgPool,
    actor: &store::Actor,
    name: &str,
    scope: Scope,
    tenant_id: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    secret: &str,
    owner: Option<&str>,
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
            owner,
        },
    )
    .await
}
