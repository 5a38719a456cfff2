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

/// Newest first.
pub async fn query(pool: &PgPool, q: &AuditQuery) -> Result<Vec<AuditRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, at, actor, source, action, flag_key, tenant_id, before, after FROM audit_log \
         WHERE ($1::text IS NULL OR flag_key = $1) AND ($2::text IS NULL OR tenant_id = $2) \
           AND ($3::text IS NULL OR actor = $3) AND ($4::text IS NULL OR source = $4) \
           AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6) \
           AND ($7::bigint IS NULL OR id < $7) \
         ORDER BY id DESC LIMIT $8",
    )
    .bind(&q.flag)
    .bind(&q.tenant)
    .bind(&q.actor)
    .bind(&q.source)
    .bind(q.since)
    .bind(q.until)
    .bind(q.before_id)
    .bind(q.limit.clamp(1, 1000))
    .fetch_all(pool)
    .await?)
}
