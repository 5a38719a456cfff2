//! Flags and their rollouts. Phase changes are computed by the `flags` crate (the same code the
//! browser previews with) and written as exactly the tenant rows that differ.
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use flags::{FlagState, Rollout, Tenant};
use serde::Serialize;
use sqlx::PgConnection;

use crate::gates::Gating;
use crate::{Actor, Error, PgPool};

/// A flag with its rollout and counts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct FlagRow {
    /// Key.
    pub key: String,
    /// What it does.
    pub description: String,
    /// Phase, pilots and constraints.
    pub rollout: Rollout,
    /// Optimistic-concurrency version (the ETag of the flag).
    pub version: i64,
    /// The global row.
    pub enabled: bool,
    /// Tenants whose own row is enabled.
    pub tenants_on: i64,
    /// Excluded tenants.
    pub tenants_excluded: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change of the rollout.
    pub updated_at: DateTime<Utc>,
}

/// What a write changed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize)]
pub struct Change {
    /// The flag's version after the change.
    pub version: i64,
    /// Tenants that are now ON and were not.
    pub turned_on: Vec<String>,
    /// Tenants that were ON and are not any more.
    pub turned_off: Vec<String>,
}

type RawFlag = (
    String,
    String,
    serde_json::Value,
    i64,
    Option<bool>,
    i64,
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
);

const SELECT_FLAGS: &str = "SELECT f.key, f.description, f.rollout, f.version, \
        (SELECT enabled FROM feature_flags g WHERE g.key = f.key AND g.tenant_id IS NULL), \
        (SELECT count(*) FROM feature_flags t WHERE t.key = f.key AND t.tenant_id IS NOT NULL AND t.enabled), \
        (SELECT count(*) FROM feature_flags t WHERE t.key = f.key AND t.excluded), \
        f.created_at, f.updated_at \
     FROM flags f";

fn to_row(r: RawFlag) -> Result<FlagRow, Error> {
    let rollout = serde_json::from_value(r.2)
        .map_err(|e| Error::Invalid(format!("stored rollout of {:?} is unreadable: {e}", r.0)))?;
    Ok(FlagRow {
        key: r.0,
        description: r.1,
        rollout,
        version: r.3,
        enabled: r.4.unwrap_or(false),
        tenants_on: r.5,
        tenants_excluded: r.6,
        created_at: r.7,
        updated_at: r.8,
    })
}

/// Every flag, by key.
pub async fn list(pool: &PgPool) -> Result<Vec<FlagRow>, Error> {
    let rows: Vec<RawFlag> = sqlx::query_as(&format!("{SELECT_FLAGS} ORDER BY f.key"))
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(to_row).collect()
}

/// Every flag key, sorted (for pickers: no counts, no rollouts).
pub async fn keys(pool: &PgPool) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar("SELECT key FROM flags ORDER BY key")
        .fetch_all(pool)
        .await?)
}

/// For every flag, how many live tenants have it ON right now (the evaluation rule in SQL: the
/// global row or the tenant's row enabled, and the tenant's row not excluded), and the number of
/// live tenants.
pub async fn effective_on(pool: &PgPool) -> Result<(i64, Vec<(String, i64)>), Error> {
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE archived_at IS NULL")
        .fetch_one(pool)
        .await?;
    let per_flag: Vec<(String, i64)> = sqlx::query_as(
        "SELECT f.key, count(t.id) FILTER (WHERE NOT coalesce(r.excluded, false) \
                                         AND (coalesce(g.enabled, false) OR coalesce(r.enabled, false))) \
         FROM flags f \
         LEFT JOIN feature_flags g ON g.key = f.key AND g.tenant_id IS NULL \
         LEFT JOIN tenants t ON t.archived_at IS NULL \
         LEFT JOIN feature_flags r ON r.key = f.key AND r.tenant_id = t.id \
         GROUP BY f.key ORDER BY f.key",
    )
    .fetch_all(pool)
    .await?;
    Ok((live, per_flag))
}

/// One flag.
pub async fn get(pool: &PgPool, key: &str) -> Result<FlagRow, Error> {
    let row: Option<RawFlag> = sqlx::query_as(&format!("{SELECT_FLAGS} WHERE f.key = $1"))
        .bind(key)
        .fetch_optional(pool)
        .await?;
    to_row(row.ok_or_else(|| Error::NotFound(format!("flag {key:?}")))?)
}

/// Creates a flag, deployed OFF (its global row disabled).
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    description: &str,
) -> Result<FlagRow, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    sqlx::query("INSERT INTO flags (key, description) VALUES ($1, $2)")
        .bind(key)
        .bind(description)
        .execute(&mut *tx)
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict(_) => Error::Conflict(format!("flag {key:?} already exists")),
            Error::Invalid(_) => Error::Invalid(format!(
                "flag key {key:?} must be 1-100 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
            )),
            other => other,
        })?;
    sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ($1, NULL, false)")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    actor
        .audit(
            &mut tx,
            "flag.create",
            Some(key),
            None,
            None,
            Some(serde_json::json!({ "description": description })),
        )
        .await?;
    tx.commit().await?;
    get(pool, key).await
}

/// The flag's rollout and version, locked for the rest of the transaction.
pub(crate) async fn lock_flag(conn: &mut PgConnection, key: &str) -> Result<(Rollout, i64), Error> {
    rollout_of(
        conn,
        key,
        "SELECT rollout, version FROM flags WHERE key = $1 FOR UPDATE",
    )
    .await
}

/// The flag's rollout and version, without a lock.
pub(crate) async fn read_flag(conn: &mut PgConnection, key: &str) -> Result<(Rollout, i64), Error> {
    rollout_of(
        conn,
        key,
        "SELECT rollout, version FROM flags WHERE key = $1",
    )
    .await
}

async fn rollout_of(
    conn: &mut PgConnection,
    key: &str,
    sql: &'static str,
) -> Result<(Rollout, i64), Error> {
    let row: Option<(serde_json::Value, i64)> = sqlx::query_as(sql)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    let (rollout, version) = row.ok_or_else(|| Error::NotFound(format!("flag {key:?}")))?;
    let rollout = serde_json::from_value(rollout)
        .map_err(|e| Error::Invalid(format!("stored rollout of {key:?} is unreadable: {e}")))?;
    Ok((rollout, version))
}

/// Live tenants with the attributes constraints look at.
pub(crate) async fn live_tenants(conn: &mut PgConnection) -> Result<Vec<Tenant>, Error> {
    let rows: Vec<(String, String, String, Vec<String>)> =
        // Byte order (the order of Rust strings), so previews and diffs come out sorted as they go.
        sqlx::query_as("SELECT id, plan, region, tags FROM tenants WHERE archived_at IS NULL ORDER BY id COLLATE \"C\"")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, plan, region, tags)| Tenant {
            id,
            plan,
            region,
            tags,
        })
        .collect())
}

pub(crate) async fn flag_state(
    conn: &mut PgConnection,
    key: &str,
    rollout: &Rollout,
) -> Result<FlagState, Error> {
    let rows: Vec<(Option<String>, bool, bool)> =
        sqlx::query_as("SELECT tenant_id, enabled, excluded FROM feature_flags WHERE key = $1")
            .bind(key)
            .fetch_all(&mut *conn)
            .await?;
    let mut state = FlagState {
        target: Some(rollout.target()),
        ..FlagState::default()
    };
    for (tenant, enabled, excluded) in rows {
        state.add_row(tenant, enabled, excluded);
    }
    Ok(state)
}

async fn write_rows(
    conn: &mut PgConnection,
    key: &str,
    before: &FlagState,
    after: &FlagState,
) -> Result<(), Error> {
    let (enable, disable) = before.row_changes(after);
    if !enable.is_empty() {
        sqlx::query(
            "INSERT INTO feature_flags (key, tenant_id, enabled) SELECT $1, t, true FROM unnest($2::text[]) AS t \
             ON CONFLICT ON CONSTRAINT feature_flags_key_tenant_unique DO UPDATE SET enabled = true",
        )
        .bind(key)
        .bind(&enable)
        .execute(&mut *conn)
        .await?;
    }
    if !disable.is_empty() {
        sqlx::query(
            "UPDATE feature_flags SET enabled = false WHERE key = $1 AND tenant_id = ANY($2)",
        )
        .bind(key)
        .bind(&disable)
        .execute(&mut *conn)
        .await?;
    }
    if before.enabled != after.enabled {
        sqlx::query(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ($1, NULL, $2) \
             ON CONFLICT ON CONSTRAINT feature_flags_key_tenant_unique DO UPDATE SET enabled = EXCLUDED.enabled",
        )
        .bind(key)
        .bind(after.enabled)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn check_pilots(conn: &mut PgConnection, rollout: &Rollout) -> Result<(), Error> {
    if rollout.pilots.is_empty() {
        return Ok(());
    }
    let pilots: Vec<&str> = rollout.pilots.iter().map(String::as_str).collect();
    let known: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tenants WHERE id = ANY($1) AND archived_at IS NULL")
            .bind(&pilots)
            .fetch_all(&mut *conn)
            .await?;
    let known: HashSet<&str> = known.iter().map(String::as_str).collect();
    let unknown: Vec<&str> = pilots.into_iter().filter(|p| !known.contains(p)).collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "unknown pilot tenants: {}",
            unknown.join(", ")
        )))
    }
}

/// What [`apply_in_tx`] did: the states before and after over `tenants`, and their diff when the
/// gates needed it (a rise of the phase).
struct Applied {
    before: FlagState,
    after: FlagState,
    tenants: Vec<Tenant>,
    diff: Option<flags::Diff>,
}

/// Moves the flag to `rollout` inside `conn`'s transaction. A rise of the phase passes the plan's
/// gates first (see [`crate::gates`]).
async fn apply_in_tx(
    conn: &mut PgConnection,
    actor: &Actor,
    key: &str,
    rollout: &Rollout,
    expected_version: Option<i64>,
    gating: &Gating,
) -> Result<Applied, Error> {
    let (old, version) = lock_flag(conn, key).await?;
    if let Some(expected) = expected_version {
        if expected != version {
            return Err(Error::Conflict(format!(
                "flag {key:?} changed meanwhile: it is at version {version}, the edit was made on version {expected}"
            )));
        }
    }
    check_pilots(conn, rollout).await?;
    let tenants = live_tenants(conn).await?;
    let before = flag_state(conn, key, &old).await?;
    let after = old.apply(&before, key, rollout, &tenants);
    let mut gated_diff = None;
    if rollout.phase > old.phase {
        let diff = flags::diff(&before, &after, tenants.iter().map(|t| t.id.as_str()));
        let change = crate::gates::Computed {
            old: &old,
            target: rollout,
            version,
            after: &after,
            tenants: &tenants,
            diff: &diff,
        };
        if let Some(hash) = crate::gates::check(conn, actor, key, &change, gating).await? {
            crate::gates::mark_applied(conn, key, &hash).await?;
        }
        gated_diff = Some(diff);
    }
    write_rows(conn, key, &before, &after).await?;
    sqlx::query(
        "UPDATE flags SET rollout = $2, version = version + 1, updated_at = now() WHERE key = $1",
    )
    .bind(key)
    .bind(serde_json::to_value(rollout).map_err(|e| Error::Invalid(e.to_string()))?)
    .execute(&mut *conn)
    .await?;
    if &old != rollout {
        actor
            .audit(
                conn,
                "rollout.apply",
                Some(key),
                None,
                serde_json::to_value(&old).ok(),
                serde_json::to_value(rollout).ok(),
            )
            .await?;
    }
    Ok(Applied {
        before,
        after,
        tenants,
        diff: gated_diff,
    })
}

/// The change from `before` to `after` at the flag's new version (`known`: their diff, when it is
/// already computed).
async fn finish(
    conn: &mut PgConnection,
    key: &str,
    before: &FlagState,
    after: &FlagState,
    tenants: &[Tenant],
    known: Option<flags::Diff>,
) -> Result<Change, Error> {
    let version: i64 = sqlx::query_scalar("SELECT version FROM flags WHERE key = $1")
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    let d =
        known.unwrap_or_else(|| flags::diff(before, after, tenants.iter().map(|t| t.id.as_str())));
    Ok(Change {
        version,
        turned_on: d.turned_on,
        turned_off: d.turned_off,
    })
}

/// Moves the flag to `rollout` (phase, pilots, constraints) and writes exactly the rows that
/// differ. With `expected_version`, refuses with [`Error::Conflict`] when someone changed the flag
/// since that version. A higher phase passes the plan's gates ([`Error::Gated`] otherwise).
pub async fn apply_rollout(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    rollout: &Rollout,
    expected_version: Option<i64>,
    gating: &Gating,
) -> Result<Change, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let a = apply_in_tx(&mut tx, actor, key, rollout, expected_version, gating).await?;
    let change = finish(&mut tx, key, &a.before, &a.after, &a.tenants, a.diff).await?;
    tx.commit().await?;
    Ok(change)
}

/// The seed's per-tenant switch: enabling makes the tenant a pilot (and moves an OFF flag to the
/// pilot phase with this tenant as its only pilot — which passes the pilot gates); disabling
/// removes it from the pilots and turns its row off. `excluded`, when given, quarantines or
/// releases the tenant.
pub async fn set_tenant(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    tenant_id: &str,
    enabled: bool,
    excluded: Option<bool>,
    gating: &Gating,
) -> Result<Change, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1 AND archived_at IS NULL")
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Err(Error::NotFound(format!("tenant {tenant_id:?}")));
    }
    let (mut rollout, _) = lock_flag(&mut tx, key).await?;
    if enabled {
        if rollout.phase == flags::Phase::Off {
            // Starting a pilot from OFF: exactly this tenant, not the pilots of an earlier,
            // rolled-back attempt.
            rollout.pilots.clear();
            rollout.phase = flags::Phase::Pilot;
        }
        rollout.pilots.insert(tenant_id.to_string());
    } else {
        rollout.pilots.remove(tenant_id);
    }
    let Applied {
        before, tenants, ..
    } = apply_in_tx(&mut tx, actor, key, &rollout, None, gating).await?;
    sqlx::query(
        "INSERT INTO feature_flags (key, tenant_id, enabled, excluded) VALUES ($1, $2, $3, coalesce($4, false)) \
         ON CONFLICT ON CONSTRAINT feature_flags_key_tenant_unique \
         DO UPDATE SET enabled = EXCLUDED.enabled, excluded = coalesce($4, feature_flags.excluded)",
    )
    .bind(key)
    .bind(tenant_id)
    .bind(enabled)
    .bind(excluded)
    .execute(&mut *tx)
    .await?;
    let after = flag_state(&mut tx, key, &rollout).await?;
    let change = finish(&mut tx, key, &before, &after, &tenants, None).await?;
    tx.commit().await?;
    Ok(change)
}

/// The seed's "Quick Rollback": `UPDATE feature_flags SET enabled = false WHERE key = …` — every
/// row OFF, the rollout back to the OFF phase (pilots kept for the next attempt). Never gated.
pub async fn kill(pool: &PgPool, actor: &Actor, key: &str) -> Result<Change, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let (old, _) = lock_flag(&mut tx, key).await?;
    let before = flag_state(&mut tx, key, &old).await?;
    let tenants = live_tenants(&mut tx).await?;
    sqlx::query("UPDATE feature_flags SET enabled = false WHERE key = $1")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    let rollout = old.with_phase(flags::Phase::Off);
    sqlx::query(
        "UPDATE flags SET rollout = $2, version = version + 1, updated_at = now() WHERE key = $1",
    )
    .bind(key)
    .bind(serde_json::to_value(&rollout).map_err(|e| Error::Invalid(e.to_string()))?)
    .execute(&mut *tx)
    .await?;
    actor
        .audit(
            &mut tx,
            "rollout.kill",
            Some(key),
            None,
            serde_json::to_value(&old).ok(),
            serde_json::to_value(&rollout).ok(),
        )
        .await?;
    let after = flag_state(&mut tx, key, &rollout).await?;
    let change = finish(&mut tx, key, &before, &after, &tenants, None).await?;
    tx.commit().await?;
    Ok(change)
}

/// Everything the flag editor needs to preview a change in the browser: the flag, its current
/// effective state and every live tenant with its attributes.
pub async fn editor_data(
    pool: &PgPool,
    key: &str,
) -> Result<(FlagRow, FlagState, Vec<Tenant>), Error> {
    let row = get(pool, key).await?;
    let mut conn = pool.acquire().await?;
    let state = flag_state(&mut conn, key, &row.rollout).await?;
    let tenants = live_tenants(&mut conn).await?;
    Ok((row, state, tenants))
}

/// Moves the flag one rung up the default ladder (OFF → pilot → 10% → 50% → 100%), through the
/// gates of the plan. Refuses with [`Error::Invalid`] at the top, [`Error::Gated`] when a gate does
/// not hold (and no override was given), [`Error::Conflict`] when the flag changed since
/// `expected_version`. Returns the new phase and what changed.
pub async fn advance(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    expected_version: Option<i64>,
    gating: &Gating,
) -> Result<(flags::Phase, Change), Error> {
    let flag = get(pool, key).await?;
    let next = flag
        .rollout
        .phase
        .next(&flags::DEFAULT_LADDER)
        .ok_or_else(|| {
            Error::Invalid(format!("flag {key:?} is already at {}", flag.rollout.phase))
        })?;
    let change = apply_rollout(
        pool,
        actor,
        key,
        &flag.rollout.with_phase(next),
        Some(expected_version.unwrap_or(flag.version)),
        gating,
    )
    .await?;
    Ok((next, change))
}

/// Moves the flag one rung down the default ladder (OFF stays OFF). Never gated.
pub async fn step_back(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
) -> Result<(flags::Phase, Change), Error> {
    let flag = get(pool, key).await?;
    let previous = flag
        .rollout
        .phase
        .previous(&flags::DEFAULT_LADDER)
        .unwrap_or(flags::Phase::Off);
    let change = apply_rollout(
        pool,
        actor,
        key,
        &flag.rollout.with_phase(previous),
        None,
        &Gating::now(),
    )
    .await?;
    Ok((previous, change))
}
