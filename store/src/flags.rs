//! Flag rows: `flags` (key, rollout, version) and `feature_flags` (the effective state). Reading,
//! creating, and writing exactly the rows that differ between two states. Deciding a change of
//! who is ON is the write path's (`crate::rollout`), the only caller of the writers here.
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use flags::{FlagState, Rollout, Tenant};
use serde::Serialize;
use sqlx::PgConnection;

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
    /// Live tenants whose own row is enabled.
    pub tenants_on: i64,
    /// Live tenants excluded.
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

/// The query of a [`RawFlag`], with `$counts` for its two counts.
macro_rules! select_flags {
    ($counts:literal) => {
        concat!(
            "SELECT f.key, f.description, f.rollout, f.version, \
             (SELECT enabled FROM feature_flags g WHERE g.key = f.key AND g.tenant_id IS NULL), ",
            $counts,
            ", f.created_at, f.updated_at FROM flags f"
        )
    };
}

/// Flags with their counts of live tenants' rows.
const SELECT_FLAGS: &str = select_flags!(
    "(SELECT count(*) FROM feature_flags t JOIN tenants x ON x.id = t.tenant_id AND x.archived_at IS NULL \
       WHERE t.key = f.key AND t.enabled), \
     (SELECT count(*) FROM feature_flags t JOIN tenants x ON x.id = t.tenant_id AND x.archived_at IS NULL \
       WHERE t.key = f.key AND t.excluded)"
);

/// Flags without their counts (zeros: [`list_counted`] fills them in).
const SELECT_FLAGS_UNCOUNTED: &str = select_flags!("0::bigint, 0::bigint");

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

/// [`list`], its counts taken from `counts` (a live snapshot's, [`flags::compact::Counts`])
/// instead of counting rows: at 100,000 tenants × 20 flags the row counts take half a second.
/// Both count live tenants only (archived tenants evaluate as unknown). Counts in SQL when
/// `counts` is `None` or misses a flag (created after that snapshot).
pub async fn list_counted(
    pool: &PgPool,
    counts: Option<&flags::compact::Counts>,
) -> Result<Vec<FlagRow>, Error> {
    let Some(counts) = counts else {
        return list(pool).await;
    };
    let rows: Vec<RawFlag> = sqlx::query_as(&format!("{SELECT_FLAGS_UNCOUNTED} ORDER BY f.key"))
        .fetch_all(pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(c) = counts.flags.get(&r.0) else {
            return list(pool).await;
        };
        let mut row = to_row(r)?;
        row.tenants_on = i64::try_from(c.rows_on).unwrap_or(i64::MAX);
        row.tenants_excluded = i64::try_from(c.excluded).unwrap_or(i64::MAX);
        out.push(row);
    }
    Ok(out)
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

/// Writes exactly the `feature_flags` rows that differ between `before` and `after`: tenant rows
/// turned on or off, exclusions added or released, the global row.
pub(crate) async fn write_rows(
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
    let mut exclude: Vec<&str> = after
        .excluded
        .difference(&before.excluded)
        .map(String::as_str)
        .collect();
    let mut release: Vec<&str> = before
        .excluded
        .difference(&after.excluded)
        .map(String::as_str)
        .collect();
    exclude.sort_unstable();
    release.sort_unstable();
    if !exclude.is_empty() {
        sqlx::query(
            "INSERT INTO feature_flags (key, tenant_id, enabled, excluded) SELECT $1, t, false, true FROM unnest($2::text[]) AS t \
             ON CONFLICT ON CONSTRAINT feature_flags_key_tenant_unique DO UPDATE SET excluded = true",
        )
        .bind(key)
        .bind(&exclude)
        .execute(&mut *conn)
        .await?;
    }
    if !release.is_empty() {
        sqlx::query(
            "UPDATE feature_flags SET excluded = false WHERE key = $1 AND tenant_id = ANY($2)",
        )
        .bind(key)
        .bind(&release)
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

/// Stores `rollout` as the flag's and bumps its version.
pub(crate) async fn set_rollout(
    conn: &mut PgConnection,
    key: &str,
    rollout: &Rollout,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE flags SET rollout = $2, version = version + 1, updated_at = now() WHERE key = $1",
    )
    .bind(key)
    .bind(serde_json::to_value(rollout).map_err(|e| Error::Invalid(e.to_string()))?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The flag's version now (row triggers bump it too).
pub(crate) async fn version(conn: &mut PgConnection, key: &str) -> Result<i64, Error> {
    Ok(
        sqlx::query_scalar("SELECT version FROM flags WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Whether `tenant_id` is a live (not archived) tenant.
pub(crate) async fn tenant_is_live(
    conn: &mut PgConnection,
    tenant_id: &str,
) -> Result<bool, Error> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1 AND archived_at IS NULL")
            .bind(tenant_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(exists.is_some())
}

/// Refuses pilots that are not live tenants, naming them.
pub(crate) async fn check_pilots(conn: &mut PgConnection, rollout: &Rollout) -> Result<(), Error> {
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
