//! Reads the whole evaluation state into a [`flags::Snapshot`] in one consistent transaction.
use std::collections::HashMap;

use flags::{FlagState, Rollout, Snapshot};

use crate::{Error, PgPool};

/// Loads every live tenant, every flag and every `feature_flags` row at one version.
pub async fn load(pool: &PgPool) -> Result<Snapshot, Error> {
    load_scoped(pool, None).await
}

/// The current change version: the version a snapshot loaded now would carry (one small query,
/// so an instance can tell whether its snapshot is behind before loading a new one).
pub async fn version(pool: &PgPool) -> Result<u64, Error> {
    let version: i64 = sqlx::query_scalar("SELECT version FROM change_version")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(version).unwrap_or_default())
}

/// The snapshot as one tenant sees it: every flag with its global row and that tenant's own row
/// only (the tenant page evaluates with it, without reading every tenant's rows).
pub async fn for_tenant(pool: &PgPool, tenant_id: &str) -> Result<Snapshot, Error> {
    load_scoped(pool, Some(tenant_id)).await
}

async fn load_scoped(pool: &PgPool, tenant: Option<&str>) -> Result<Snapshot, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM change_version")
        .fetch_one(&mut *tx)
        .await?;
    let tenants: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM tenants WHERE archived_at IS NULL AND ($1::text IS NULL OR id = $1)",
    )
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    let defs: Vec<(String, Option<serde_json::Value>)> =
        sqlx::query_as("SELECT key, rollout FROM flags")
            .fetch_all(&mut *tx)
            .await?;
    let rows: Vec<(String, Option<String>, bool, bool)> = sqlx::query_as(
        "SELECT key, tenant_id, enabled, excluded FROM feature_flags \
             WHERE $1::text IS NULL OR tenant_id IS NULL OR tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;

    let mut flags: HashMap<String, FlagState> = HashMap::with_capacity(defs.len());
    for (key, rollout) in defs {
        let target = match rollout.map(serde_json::from_value::<Rollout>) {
            Some(Ok(r)) => Some(r.target()),
            Some(Err(e)) => {
                tracing::warn!(flag = %key, error = %e, "ignoring unreadable rollout");
                None
            }
            None => None,
        };
        flags.insert(
            key,
            FlagState {
                target,
                ..FlagState::default()
            },
        );
    }
    for (key, tenant, enabled, excluded) in rows {
        flags
            .entry(key)
            .or_default()
            .add_row(tenant, enabled, excluded);
    }
    let mut snapshot = Snapshot::new(u64::try_from(version).unwrap_or_default());
    snapshot.tenants = tenants.into_iter().collect();
    snapshot.flags = flags;
    Ok(snapshot)
}
