//! The change outbox (migration `20261203000013_change_outbox.sql`): the triggers that audit and
//! bump the change version also record what changed — each `feature_flags` row's new state, the
//! key of each flag whose target changed, the id of each tenant whose record changed — so a
//! reader at version V catches up by reading everything after V in one statement
//! ([`since`]) instead of loading every tenant and every row.
use std::time::Duration;

use flags::delta::{Changes, FlagChange, RowChange, TenantChange};
use flags::Tenant;

use crate::snapshot::target_of;
use crate::{Error, PgPool};

/// How long the outbox keeps a version by default (`TENANTRY_OUTBOX_RETENTION_SECS`). A reader
/// further behind (an instance cut off from the database longer, an SDK reconnecting later)
/// loads everything instead.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(15 * 60);

/// One line of [`since`]'s answer.
#[derive(Debug, sqlx::FromRow)]
struct Line {
    kind: String,
    version: Option<i64>,
    horizon: Option<i64>,
    /// `head`: a reset is among the changes; `row`: the row was deleted; `flag`, `tenant`: it
    /// still exists (and the tenant is live).
    flag: Option<bool>,
    flag_key: Option<String>,
    tenant_id: Option<String>,
    enabled: Option<bool>,
    excluded: Option<bool>,
    rollout: Option<serde_json::Value>,
    plan: Option<String>,
    region: Option<String>,
    tags: Option<Vec<String>>,
}

/// Everything after `version`, as one consistent read (one statement): every changed
/// `feature_flags` row's latest state, every touched flag's current target (or its removal),
/// every touched tenant's current record with its enabled or excluded rows (or its removal), at
/// the database's current version, which the returned [`Changes`] lead to (`from` is `version`).
///
/// `Ok(None)` when the outbox cannot bring a reader at `version` up to date — it was pruned past
/// `version`, a TRUNCATE (a `reset`) happened since, the database's version is older than
/// `version` (a restored backup), or a line cannot be read — the reader then loads everything
/// ([`crate::snapshot::load_compact`]).
pub async fn since(pool: &PgPool, version: u64) -> Result<Option<Changes>, Error> {
    let Ok(from) = i64::try_from(version) else {
        return Ok(None);
    };
    let lines: Vec<Line> = sqlx::query_as(
        "WITH o AS ( \
             SELECT * FROM change_outbox \
             WHERE version > $1 \
               AND $1 >= (SELECT version FROM change_outbox_horizon) \
               AND $1 <= (SELECT version FROM change_version) \
         ), \
         latest AS ( \
             SELECT DISTINCT ON (flag_key, tenant_id) flag_key, tenant_id, enabled, excluded, deleted \
             FROM o WHERE kind = 'row' ORDER BY flag_key, tenant_id, seq DESC \
         ), \
         touched_flags AS (SELECT DISTINCT flag_key FROM o WHERE kind = 'flag'), \
         touched_tenants AS (SELECT DISTINCT tenant_id FROM o WHERE kind = 'tenant') \
         SELECT 'head'::text AS kind, (SELECT version FROM change_version) AS version, \
                (SELECT version FROM change_outbox_horizon) AS horizon, \
                EXISTS (SELECT 1 FROM o WHERE o.kind NOT IN ('row', 'flag', 'tenant')) AS flag, \
                NULL::text AS flag_key, NULL::text AS tenant_id, NULL::bool AS enabled, \
                NULL::bool AS excluded, NULL::jsonb AS rollout, NULL::text AS plan, \
                NULL::text AS region, NULL::text[] AS tags \
         UNION ALL \
         SELECT 'row', NULL, NULL, l.deleted, l.flag_key, l.tenant_id, l.enabled, l.excluded, \
                NULL, NULL, NULL, NULL \
         FROM latest l \
         UNION ALL \
         SELECT 'flag', NULL, NULL, f.key IS NOT NULL, t.flag_key, NULL, NULL, NULL, f.rollout, \
                NULL, NULL, NULL \
         FROM touched_flags t LEFT JOIN flags f ON f.key = t.flag_key \
         UNION ALL \
         SELECT 'tenant', NULL, NULL, x.id IS NOT NULL, NULL, t.tenant_id, NULL, NULL, NULL, \
                x.plan, x.region, x.tags \
         FROM touched_tenants t LEFT JOIN tenants x ON x.id = t.tenant_id AND x.archived_at IS NULL \
         UNION ALL \
         SELECT 'tenant_row', NULL, NULL, NULL, ff.key, ff.tenant_id, ff.enabled, ff.excluded, \
                NULL, NULL, NULL, NULL \
         FROM touched_tenants t \
         JOIN tenants x ON x.id = t.tenant_id AND x.archived_at IS NULL \
         JOIN feature_flags ff ON ff.tenant_id = t.tenant_id AND (ff.enabled OR ff.excluded)",
    )
    .bind(from)
    .fetch_all(pool)
    .await?;
    Ok(read(version, lines))
}

/// Turns the lines into changes, or `None` (with the reason logged) when they cannot bring a
/// reader at `from` up to date.
fn read(from: u64, lines: Vec<Line>) -> Option<Changes> {
    let unreadable = |what: &str| {
        tracing::warn!(what, "unreadable outbox line: loading everything instead");
    };
    let Some(head) = lines.iter().find(|l| l.kind == "head") else {
        unreadable("no head line");
        return None;
    };
    let current = u64::try_from(head.version.unwrap_or(-1)).ok()?;
    let horizon = u64::try_from(head.horizon.unwrap_or(-1)).ok()?;
    if current < from {
        tracing::info!(
            from,
            current,
            "the database is at an older version (a restored backup?)"
        );
        return None;
    }
    if from < horizon {
        tracing::info!(from, horizon, "the outbox no longer reaches back");
        return None;
    }
    if head.flag == Some(true) {
        tracing::info!(from, current, "a reset since: loading everything");
        return None;
    }
    let mut changes = Changes::new(from, current);
    for line in lines {
        match line.kind.as_str() {
            "head" => {}
            "row" | "tenant_row" => {
                let Some(flag) = line.flag_key else {
                    unreadable("a row without a flag");
                    return None;
                };
                let deleted = line.kind == "row" && line.flag.unwrap_or(false);
                changes.rows.push(RowChange {
                    flag,
                    tenant: line.tenant_id,
                    enabled: !deleted && line.enabled.unwrap_or(false),
                    excluded: !deleted && line.excluded.unwrap_or(false),
                });
            }
            "flag" => {
                let Some(key) = line.flag_key else {
                    unreadable("a flag without a key");
                    return None;
                };
                let removed = !line.flag.unwrap_or(false);
                let target = if removed {
                    None
                } else {
                    target_of(&key, line.rollout)
                };
                changes.flags.push(FlagChange {
                    key,
                    removed,
                    target,
                });
            }
            "tenant" => {
                let Some(id) = line.tenant_id else {
                    unreadable("a tenant without an id");
                    return None;
                };
                changes.tenants.push(if line.flag.unwrap_or(false) {
                    TenantChange::present(Tenant {
                        id,
                        plan: line.plan.unwrap_or_default(),
                        region: line.region.unwrap_or_default(),
                        tags: line.tags.unwrap_or_default(),
                    })
                } else {
                    TenantChange::removed(id)
                });
            }
            other => {
                unreadable(other);
                return None;
            }
        }
    }
    Some(changes)
}

/// The database's current change version (cheap: one row).
pub async fn current_version(pool: &PgPool) -> Result<u64, Error> {
    let v: i64 = sqlx::query_scalar("SELECT version FROM change_version")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(v).unwrap_or_default())
}

/// How far back the outbox reaches: it holds every change after this version.
pub async fn horizon(pool: &PgPool) -> Result<u64, Error> {
    let v: i64 = sqlx::query_scalar("SELECT version FROM change_outbox_horizon")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(v).unwrap_or_default())
}

/// Deletes every version of the outbox older than `retention` (a version goes whole, with all of
/// its rows) and raises the horizon past them. Returns how many rows went. Safe to run from every
/// instance at once.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, Error> {
    let deleted: i64 = sqlx::query_scalar(
        "WITH cutoff AS ( \
             SELECT max(version) AS v FROM change_outbox \
             WHERE at < clock_timestamp() - make_interval(secs => $1) \
         ), \
         moved AS ( \
             UPDATE change_outbox_horizon SET version = greatest(version, (SELECT v FROM cutoff)) \
             WHERE (SELECT v FROM cutoff) IS NOT NULL RETURNING 1 \
         ), \
         gone AS ( \
             DELETE FROM change_outbox WHERE version <= (SELECT v FROM cutoff) RETURNING 1 \
         ) \
         SELECT count(*) FROM gone",
    )
    .bind(retention.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(deleted).unwrap_or_default())
}
