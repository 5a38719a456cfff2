//! Machine tokens: stored as SHA-256 hashes, shown once, revocable.
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Actor, Error, PgPool};

/// A token's metadata (never its secret).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenRow {
    /// Id.
    pub id: i64,
    /// Human name, unique among live tokens.
    pub name: String,
    /// `admin`, `server` or `tenant`.
    pub scope: String,
    /// The tenant of a tenant-scoped token.
    pub tenant_id: Option<String>,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// The person it acts for when approving changes: inherited from the token that created it
    /// over REST (a user name, or `token:<name>` of a CLI-made token at the root of the chain);
    /// null for a token made by the CLI, which is its own person (`token:<name>`).
    pub owner: Option<String>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A live token with its hash, for the server's in-memory cache.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveToken {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: String,
    /// Tenant of a tenant token.
    pub tenant_id: Option<String>,
    /// The person it acts for (null: itself, `token:<name>`).
    pub owner: Option<String>,
    /// SHA-256 of the secret.
    pub token_hash: Vec<u8>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// Name.
    pub name: &'a str,
    /// Scope.
    pub scope: &'a str,
    /// Tenant for a tenant token.
    pub tenant_id: Option<&'a str>,
    /// SHA-256 of the secret.
    pub token_hash: &'a [u8],
    /// Display prefix.
    pub prefix: &'a str,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// The person it acts for: the creating token's person over REST, `None` from the CLI.
    pub owner: Option<&'a str>,
}

const COLUMNS: &str =
    "id, name, scope, tenant_id, prefix, created_at, created_by, owner, expires_at, revoked_at";

/// Stores a new token.
pub async fn create(pool: &PgPool, actor: &Actor, t: &NewToken<'_>) -> Result<TokenRow, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    if let Some(tenant) = t.tenant_id {
        let live: Option<String> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1 AND archived_at IS NULL")
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await?;
        if live.is_none() {
            return Err(Error::NotFound(format!("tenant {tenant:?}")));
        }
    }
    let row: TokenRow = sqlx::query_as(&format!(
        "INSERT INTO api_tokens (name, scope, tenant_id, token_hash, prefix, created_by, expires_at, owner) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(t.name)
    .bind(t.scope)
    .bind(t.tenant_id)
    .bind(t.token_hash)
    .bind(t.prefix)
    .bind(&actor.name)
    .bind(t.expires_at)
    .bind(t.owner)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match Error::from(e) {
        Error::Conflict(c) if c == "api_tokens_live_name_idx" => {
            Error::Conflict(format!("a live token named {:?} exists", t.name))
        }
        Error::Conflict(_) => Error::Conflict("this token secret is already registered".into()),
        Error::Invalid(c) if c == "api_tokens_tenant_scope" => {
            Error::Invalid("a tenant token needs a tenant, and only a tenant token may have one".into())
        }
        other => other,
    })?;
    actor
        .audit(
            &mut tx,
            "token.create",
            None,
            row.tenant_id.as_deref(),
            None,
            Some(
                serde_json::json!({ "id": row.id, "name": row.name, "scope": row.scope, "owner": row.owner }),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// Every token, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<TokenRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_tokens ORDER BY id DESC"
    ))
    .fetch_all(pool)
    .await?)
}

/// A live token by name.
pub async fn find_live(pool: &PgPool, name: &str) -> Result<Option<TokenRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE name = $1 AND revoked_at IS NULL"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?)
}

/// Revokes a token; revoking twice is a no-op that returns the row.
pub async fn revoke(pool: &PgPool, actor: &Actor, id: i64) -> Result<TokenRow, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let row: Option<TokenRow> = sqlx::query_as(&format!(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| Error::NotFound(format!("token {id}")))?;
    actor
        .audit(
            &mut tx,
            "token.revoke",
            None,
            row.tenant_id.as_deref(),
            None,
            Some(serde_json::json!({ "id": id, "name": row.name })),
        )
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// Every live (not revoked) token with its hash.
pub async fn active(pool: &PgPool) -> Result<Vec<ActiveToken>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, name, scope, tenant_id, owner, token_hash, expires_at FROM api_tokens WHERE revoked_at IS NULL",
    )
    .fetch_all(pool)
    .await?)
}
