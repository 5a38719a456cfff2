//! Guard reading rows. The monitor (in the server) fetches each guard's samples and classifies
//! them with `flags::guard`; this module stores the latest reading per guard and the history of
//! level changes. What an alert does, and what the readings mean for the gates, is the write
//! path's (`crate::rollout`).
use chrono::{DateTime, Utc};
use flags::guard::{Level, Reading};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Error, PgPool};

/// A reading older than this does not count: the gate holds until the monitor reads again.
pub const STALE_AFTER_MINUTES: i64 = 10;

/// The latest reading of a guard.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct GuardState {
    /// Guard name.
    pub guard: String,
    /// `ok`, `warning`, `alert` or `hold`.
    pub level: String,
    /// The value the thresholds were applied to.
    pub value: Option<f64>,
    /// Per tenant: the tenants without the flag.
    pub others: Option<f64>,
    /// In words.
    pub detail: String,
    /// Since when it has been at this level.
    pub since: DateTime<Utc>,
    /// When it was read.
    pub at: DateTime<Utc>,
}

/// The latest reading of every guard of `key`.
pub(crate) async fn states(conn: &mut PgConnection, key: &str) -> Result<Vec<GuardState>, Error> {
    Ok(sqlx::query_as(
        "SELECT guard, level, value, others, detail, since, at FROM guard_state WHERE flag_key = $1 ORDER BY guard",
    )
    .bind(key)
    .fetch_all(conn)
    .await?)
}

/// Stores `reading` as the latest of `guard` at `at` (and a history row when its level changed).
/// Returns the level it had before, if any.
pub async fn record(
    pool: &PgPool,
    key: &str,
    guard: &str,
    reading: &Reading,
    at: DateTime<Utc>,
) -> Result<Option<Level>, Error> {
    let mut tx = pool.begin().await?;
    let before: Option<String> = sqlx::query_scalar(
        "SELECT level FROM guard_state WHERE flag_key = $1 AND guard = $2 FOR UPDATE",
    )
    .bind(key)
    .bind(guard)
    .fetch_optional(&mut *tx)
    .await?;
    let level = reading.level.as_str();
    sqlx::query(
        "INSERT INTO guard_state (flag_key, guard, level, value, others, detail, since, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (flag_key, guard) DO UPDATE SET level = EXCLUDED.level, value = EXCLUDED.value, \
             others = EXCLUDED.others, detail = EXCLUDED.detail, at = EXCLUDED.at, \
             since = CASE WHEN guard_state.level = EXCLUDED.level THEN guard_state.since ELSE EXCLUDED.since END",
    )
    .bind(key)
    .bind(guard)
    .bind(level)
    .bind(reading.value)
    .bind(reading.others)
    .bind(&reading.detail)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    if before.as_deref() != Some(level) {
        sqlx::query(
            "INSERT INTO guard_transitions (flag_key, guard, level, value, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key)
        .bind(guard)
        .bind(level)
        .bind(reading.value)
        .bind(&reading.detail)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(before.as_deref().and_then(Level::parse))
}
