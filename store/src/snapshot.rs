//! Reads the whole evaluation state in one consistent transaction: into a
//! [`flags::CompactSnapshot`] (what the server holds and keeps current from the outbox,
//! [`crate::outbox`]), or into a version-1 [`flags::Snapshot`] (the tenant page's view of one
//! tenant).
use std::collections::HashMap;

use flags::{CompactSnapshot, FlagState, Rollout, Snapshot, Target, Tenant};

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
        let target = target_of(&key, rollout);
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

/// The rollout target a flag's stored rollout stands for; `None` (with a warning) when it cannot
/// be read, so such a flag's rows are all listed as set by hand.
pub(crate) fn target_of(key: &str, rollout: Option<serde_json::Value>) -> Option<Target> {
    match rollout.map(serde_json::from_value::<Rollout>) {
        Some(Ok(r)) => Some(r.target()),
        Some(Err(e)) => {
            tracing::warn!(flag = %key, error = %e, "ignoring unreadable rollout");
            None
        }
        None => None,
    }
}

/// A `flags` error of data read from the database.
pub(crate) fn inconsistent(e: flags::Error) -> Error {
    Error::Invalid(format!("inconsistent evaluation state: {e}"))
}

/// Loads every live tenant (with the plan, region and tags constraints read), every flag with its
/// target and every enabled or excluded `feature_flags` row at one version, straight into the
/// compact form: a flag's rows are read one flag at a time (only the enabled or excluded ones;
/// any other row means what no row means), so the load never holds more than one flag's rows
/// besides the result.
pub async fn load_compact(pool: &PgPool) -> Result<CompactSnapshot, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM change_version")
        .fetch_one(&mut *tx)
        .await?;
    let mut snap = CompactSnapshot::new(u64::try_from(version).unwrap_or_default());
    let tenants: Vec<(String, String, String, Vec<String>)> = sqlx::query_as(
        "SELECT id, plan, region, tags FROM tenants WHERE archived_at IS NULL ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (id, plan, region, tags) in tenants {
        snap.upsert_tenant(Tenant {
            id,
            plan,
            region,
            tags,
        })
        .map_err(inconsistent)?;
    }
    let defs: Vec<(String, Option<serde_json::Value>, bool)> = sqlx::query_as(
        "SELECT f.key, f.rollout, coalesce(g.enabled, false) FROM flags f \
         LEFT JOIN feature_flags g ON g.key = f.key AND g.tenant_id IS NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (key, rollout, enabled) in defs {
        // The rows first, against no target (each is then simply listed), then the target,
        // which keeps them and lists only those that differ from it.
        snap.set_row(&key, None, enabled, false)
            .map_err(inconsistent)?;
        let rows: Vec<(String, bool, bool)> = sqlx::query_as(
            "SELECT tenant_id, enabled, excluded FROM feature_flags \
             WHERE key = $1 AND tenant_id IS NOT NULL AND (enabled OR excluded)",
        )
        .bind(&key)
        .fetch_all(&mut *tx)
        .await?;
        for (tenant, enabled, excluded) in rows {
            snap.set_row(&key, Some(&tenant), enabled, excluded)
                .map_err(inconsistent)?;
        }
        let target = target_of(&key, rollout);
        snap.set_target(&key, target).map_err(inconsistent)?;
    }
    tx.commit().await?;
    Ok(snap)
}
