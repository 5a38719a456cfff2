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
    /// When the user was disabled (None: live). A disabled user cannot sign in and has no session.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Raised whenever the user's sessions must end (password or role reset, disabling, revoking
    /// sessions); a session made at another epoch is refused.
    pub session_epoch: i64,
}

/// The columns of [`UserRow`], in order.
const COLUMNS: &str = "id, username, role, created_at, disabled_at, session_epoch";

/// Creates a user, or with `replace` resets the password and role of an existing one (which also
/// enables it again and ends its sessions).
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
        format!(
            "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) \
             ON CONFLICT ON CONSTRAINT users_username_unique DO UPDATE SET password_hash = EXCLUDED.password_hash, \
             role = EXCLUDED.role, disabled_at = NULL, session_epoch = users.session_epoch + 1 \
             RETURNING {COLUMNS}"
        )
    } else {
        format!("INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING {COLUMNS}")
    };
    let row: UserRow = sqlx::query_as(&sql)
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
    #[derive(sqlx::FromRow)]
    struct WithHash {
        #[sqlx(flatten)]
        row: UserRow,
        password_hash: String,
    }
    let found: Option<WithHash> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE username = $1 AND disabled_at IS NULL"
    ))
    .bind(username)
    .fetch_optional(pool)
    .await?;
    Ok(found.map(|w| (w.row, w.password_hash)))
}

/// A live user by id (a session's user may have been disabled since).
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<UserRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 AND disabled_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Every user, live or disabled, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<UserRow>, Error> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
            .fetch_all(pool)
            .await?,
    )
}

/// Disables `username` (it can no longer sign in, and its sessions end) or enables it again.
/// Audited as `user.disable` / `user.enable`; disabling a disabled user keeps its first disable
/// time, enabling a live one changes nothing (both are audited all the same). `NotFound` for an
/// unknown user.
pub async fn set_disabled(
    pool: &PgPool,
    actor: &Actor,
    username: &str,
    disabled: bool,
) -> Result<UserRow, Error> {
    let sql = if disabled {
        format!(
            "UPDATE users SET disabled_at = coalesce(disabled_at, now()), session_epoch = session_epoch + 1 \
             WHERE username = $1 RETURNING {COLUMNS}"
        )
    } else {
        format!("UPDATE users SET disabled_at = NULL WHERE username = $1 RETURNING {COLUMNS}")
    };
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    change(pool, actor, username, &sql, action).await
}

/// Ends every session of `username` (they sign in again). Audited as `user.sessions_revoke`.
pub async fn revoke_sessions(
    pool: &PgPool,
    actor: &Actor,
    username: &str,
) -> Result<UserRow, Error> {
    let sql = format!(
        "UPDATE users SET session_epoch = session_epoch + 1 WHERE username = $1 RETURNING {COLUMNS}"
    );
    change(pool, actor, username, &sql, "user.sessions_revoke").await
}

/// Runs `sql` (an UPDATE of one user by name, returning [`COLUMNS`]) as `actor` and audits it as
/// `action`.
async fn change(
    pool: &PgPool,
    actor: &Actor,
    username: &str,
    sql: &str,
    action: &str,
) -> Result<UserRow, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let row: UserRow = sqlx::query_as(sql)
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {username:?}")))?;
    actor
        .audit(
            &mut tx,
            action,
            None,
            None,
            None,
            Some(serde_json::json!({
                "username": row.username,
                "disabled": row.disabled_at.is_some(),
            })),
        )
        .await?;
    tx.commit().await?;
    Ok(row)
}
