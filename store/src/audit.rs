//! The audit log: every change with actor, time, before and after.
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Error, PgPool};

/// One audit entry.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    /// Id (increasing).
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// Through what: ui, api, cli, sql, system, migration.
    pub source: String,
    /// What, e.g. `feature_flag.update`, `rollout.apply`.
    pub action: String,
    /// Flag, if any.
    pub flag_key: Option<String>,
    /// Tenant, if any.
    pub tenant_id: Option<String>,
    /// State before.
    pub before: Option<serde_json::Value>,
    /// State after.
    pub after: Option<serde_json::Value>,
}

/// Filters of the audit query; all optional. Also the query string of `GET /api/admin/audit`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct AuditQuery {
    /// Flag key.
    pub flag: Option<String>,
    /// Tenant id.
    pub tenant: Option<String>,
    /// Actor name.
    pub actor: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Not before.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Only ids below this (paging backwards).
    pub before_id: Option<i64>,
    /// At most this many, 1..=1000 (default 100).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// Newest first, at most `q.limit` (1..=1000) rows.
pub async fn query(pool: &PgPool, q: &AuditQuery) -> Result<Vec<AuditRow>, Error> {
    fetch(pool, q, q.limit.clamp(1, 1000)).await
}

/// Most rows one CSV export returns.
pub const EXPORT_LIMIT: i64 = 100_000;

/// One page of the CSV export (up to [`EXPORT_LIMIT`] rows in all): newest first, at most `limit` rows below `q.before_id` (keyset paging,
/// so a streamed export holds one page in memory, never the whole log).
pub async fn export_page(
    pool: &PgPool,
    q: &AuditQuery,
    limit: i64,
) -> Result<Vec<AuditRow>, Error> {
    fetch(pool, q, limit.clamp(1, EXPORT_LIMIT)).await
}

async fn fetch(pool: &PgPool, q: &AuditQuery, limit: i64) -> Result<Vec<AuditRow>, Error> {
    let blank = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(sqlx::query_as(
        "SELECT id, at, actor, source, action, flag_key, tenant_id, before, after FROM audit_log \
         WHERE ($1::text IS NULL OR flag_key = $1) AND ($2::text IS NULL OR tenant_id = $2) \
           AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR source = $4) \
           AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6) \
           AND ($7::bigint IS NULL OR id < $7) \
         ORDER BY id DESC LIMIT $8",
    )
    .bind(blank(&q.flag))
    .bind(blank(&q.tenant))
    .bind(blank(&q.actor))
    .bind(blank(&q.source))
    .bind(q.since)
    .bind(q.until)
    .bind(q.before_id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The newest audit entry of a change that moved the flag's version (a rollout applied or rolled
/// back, a `feature_flags` row written by any door, the flag created): who changed it last, for
/// the editor's conflict warning. Plan ticks and sign-offs do not count.
pub async fn last_flag_change(pool: &PgPool, key: &str) -> Result<Option<AuditRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, at, actor, source, action, flag_key, tenant_id, before, after FROM audit_log \
         WHERE flag_key = $1 \
           AND (action LIKE 'rollout.%' OR action LIKE 'feature_flag.%' OR action LIKE 'flag.%') \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await?)
}

/// The state of one flag at a moment in the past, rebuilt from the audit log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlagAt {
    /// Flag key.
    pub key: String,
    /// The moment.
    pub at: DateTime<Utc>,
    /// Whether the flag existed then (had any row).
    pub existed: bool,
    /// Whether its global row was ON then.
    pub global: bool,
    /// Tenants that had it ON then, sorted.
    pub tenants_on: Vec<String>,
}

/// Time travel: which tenants had `key` ON at `at`. Replays the last audited state of every
/// `feature_flags` row of the flag up to `at` (the audit triggers record every row change, raw SQL
/// included), then applies the evaluation rule: ON when the global row or the tenant's row is
/// enabled, unless the tenant's row is excluded. A global ON covers the tenants that existed then;
/// tenants archived by then are OFF (as evaluation treats them).
pub async fn flag_at(pool: &PgPool, key: &str, at: DateTime<Utc>) -> Result<FlagAt, Error> {
    let (existed, global): (bool, bool) = sqlx::query_as(
        "WITH latest AS ( \
             SELECT DISTINCT ON (tenant_id) tenant_id, after FROM audit_log \
             WHERE flag_key = $1 AND action LIKE 'feature_flag.%' AND at <= $2 \
             ORDER BY tenant_id, id DESC) \
         SELECT EXISTS (SELECT 1 FROM latest WHERE after IS NOT NULL), \
                coalesce((SELECT (after->>'enabled')::boolean FROM latest WHERE tenant_id IS NULL), false)",
    )
    .bind(key)
    .bind(at)
    .fetch_one(pool)
    .await?;
    let tenants_on: Vec<String> = sqlx::query_scalar(
        "WITH latest AS ( \
             SELECT DISTINCT ON (tenant_id) tenant_id, after FROM audit_log \
             WHERE flag_key = $1 AND action LIKE 'feature_flag.%' AND at <= $2 AND tenant_id IS NOT NULL \
             ORDER BY tenant_id, id DESC), \
         rows AS ( \
             SELECT tenant_id, coalesce((after->>'enabled')::boolean, false) AS enabled, \
                    coalesce((after->>'excluded')::boolean, false) AS excluded \
             FROM latest) \
         SELECT id FROM ( \
             SELECT t.id FROM tenants t WHERE $3 AND t.created_at <= $2 \
                 AND (t.archived_at IS NULL OR t.archived_at > $2) \
             UNION SELECT tenant_id FROM rows WHERE enabled) AS on_then \
         WHERE id NOT IN (SELECT tenant_id FROM rows WHERE excluded) \
           AND id NOT IN (SELECT t.id FROM tenants t WHERE t.archived_at <= $2) \
         ORDER BY id",
    )
    .bind(key)
    .bind(at)
    .bind(global)
    .fetch_all(pool)
    .await?;
    Ok(FlagAt {
        key: key.to_string(),
        at,
        existed,
        global,
        tenants_on,
    })
}
