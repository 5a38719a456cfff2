//! What the running binary knows about migrations versus what the database has applied.
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Error, PgPool, MIGRATOR};

/// The state of one migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Applied with the checksum this binary has.
    Applied,
    /// Known to the binary, not applied.
    Pending,
    /// Applied, but the file changed since (checksum mismatch).
    Drifted,
    /// Applied by a newer binary: unknown to this one.
    Unknown,
    /// Started and failed.
    Failed,
}

/// One migration as the binary and the database see it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MigrationInfo {
    /// Timestamp version from the file name.
    pub version: i64,
    /// Description from the file name.
    pub description: String,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub execution_ms: Option<f64>,
    /// Its state.
    pub state: MigrationState,
}

/// Counts for the health endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MigrationCounts {
    /// Applied with a matching checksum.
    pub applied: usize,
    /// Not applied yet (or failed).
    pub pending: usize,
    /// Applied with a checksum that no longer matches.
    pub drifted: usize,
}

#[derive(sqlx::FromRow)]
struct AppliedRow {
    version: i64,
    description: String,
    installed_on: DateTime<Utc>,
    success: bool,
    checksum: Vec<u8>,
    execution_time: i64,
}

/// Every migration, known or applied, by version.
pub async fn status(pool: &PgPool) -> Result<Vec<MigrationInfo>, Error> {
    status_in(&mut *pool.acquire().await?).await
}

/// [`status`] on one connection (inside a transaction).
pub(crate) async fn status_in(conn: &mut PgConnection) -> Result<Vec<MigrationInfo>, Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    let applied: Vec<AppliedRow> = if exists {
        sqlx::query_as(
            "SELECT version, description, installed_on, success, checksum, execution_time \
             FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await?
    } else {
        Vec::new()
    };
    let mut out: Vec<MigrationInfo> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| {
            let row = applied.iter().find(|a| a.version == m.version);
            let state = match row {
                None => MigrationState::Pending,
                Some(r) if !r.success => MigrationState::Failed,
                Some(r) if r.checksum.as_slice() != &*m.checksum => MigrationState::Drifted,
                Some(_) => MigrationState::Applied,
            };
            MigrationInfo {
                version: m.version,
                description: m.description.to_string(),
                applied_at: row.map(|r| r.installed_on),
                execution_ms: row.map(|r| r.execution_time as f64 / 1_000_000.0),
                state,
            }
        })
        .collect();
    for r in &applied {
        if !out.iter().any(|m| m.version == r.version) {
            out.push(MigrationInfo {
                version: r.version,
                description: r.description.clone(),
                applied_at: Some(r.installed_on),
                execution_ms: Some(r.execution_time as f64 / 1_000_000.0),
                state: MigrationState::Unknown,
            });
        }
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

impl MigrationCounts {
    /// The migration-readiness gate: no pending (or failed) and no drifted migration.
    pub fn ready(&self) -> bool {
        self.pending == 0 && self.drifted == 0
    }
}

/// Applied / pending / drifted counts.
pub async fn counts(pool: &PgPool) -> Result<MigrationCounts, Error> {
    counts_in(&mut *pool.acquire().await?).await
}

/// [`counts`] on one connection (inside a transaction).
pub(crate) async fn counts_in(conn: &mut PgConnection) -> Result<MigrationCounts, Error> {
    let mut c = MigrationCounts::default();
    for m in status_in(conn).await? {
        match m.state {
            MigrationState::Applied | MigrationState::Unknown => c.applied += 1,
            MigrationState::Pending | MigrationState::Failed => c.pending += 1,
            MigrationState::Drifted => c.drifted += 1,
        }
    }
    Ok(c)
}

/// The seed plan's migration check (section 1.3), verbatim.
pub const SEED_VERIFICATION_QUERY: &str =
    "SELECT COUNT(*) FROM feature_flags WHERE key = 'multi_workspace_enabled';";

/// Runs [`SEED_VERIFICATION_QUERY`]; the plan expects 1.
pub async fn seed_verification(pool: &PgPool) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(SEED_VERIFICATION_QUERY)
        .fetch_one(pool)
        .await?)
}

/// What [`SEED_VERIFICATION_QUERY`]'s rows are: whether the global row is there, and how many
/// tenant rows the rollout has written since (the plan's 1 is the count before any pilot).
pub async fn seed_verification_rows(pool: &PgPool) -> Result<(bool, i64), Error> {
    let (global, tenants): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE tenant_id IS NULL), count(*) FILTER (WHERE tenant_id IS NOT NULL) \
         FROM feature_flags WHERE key = 'multi_workspace_enabled'",
    )
    .fetch_one(pool)
    .await?;
    Ok((global == 1, tenants))
}
