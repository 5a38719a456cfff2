//! People who sign in, with their role. Password hashing happens in the caller (argon2); this
//! module only stores the PHC string.
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Actor, Error, PgPool};

/// A user without the password hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// admin, product_owner, qa, dba or viewer.
    pub role: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Creates a user, or with `replace` resets the password and role of an existing one.
pub async fn upsert(
    pool: &PgPool,
    actor: &Actor,
    username: &str,
    password_hash: &str,
    role: &str,
    replace: bool,
) -> Result<UserRow, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let sql = if replace {
        "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) \
         ON CONFLICT ON CONSTRAINT users_username_unique DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role, disabled_at = NULL \
         RETURNING id, username, role, created_at"
    } else {
        "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING id, username, role, created_at"
    };
    let row: UserRow = sqlx::query_as(sql)
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict(_) => Error::Conflict(format!("user {username:?} exists")),
            Error::Invalid(c) if c == "users_role_known" => {
                Error::Invalid("role must be one of admin, product_owner, qa, dba, viewer".into())
            }
            Error::Invalid(_) => Error::Invalid(
                "username must be 2-64 characters of a-z 0-9 _ . @ - starting with a letter or digit".into(),
            ),
            other => other,
        })?;
    actor
        .audit(
            &mut tx,
            "user.upsert",
            None,
            None,
            None,
            Some(serde_json::json!({ "username": username, "role": role })),
        )
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// The live user `username` with its password hash.
pub async fn credentials(
    pool: &PgPool,
    username: &str,
) -> Result<Option<(UserRow, String)>, Error> {
    let row: Option<(i64, String, String, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT id, username, role, created_at, password_hash FROM users WHERE username = $1 AND disabled_at IS NULL",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, username, role, created_at, hash)| {
        (
            UserRow {
                id,
                username,
                role,
                created_at,
            },
            hash,
        )
    }))
}

/// A live user by id (a session's user may have been disabled since).
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<UserRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, username, role, created_at FROM users WHERE id = $1 AND disabled_at IS NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}
