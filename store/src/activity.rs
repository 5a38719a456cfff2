//! `workspace_activity_logs`: what the SaaS reports its tenants doing, the seed's pilot
//! monitoring queries, and activity per hour for a set of tenants.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, PgPool};

/// Most events one batch may carry.
pub const MAX_BATCH: usize = 1_000;
/// Longest `action`.
pub const MAX_ACTION: usize = 100;
/// Longest `actor`.
pub const MAX_ACTOR: usize = 200;
/// Largest `details`, serialised.
pub const MAX_DETAILS_BYTES: usize = 8_192;

/// An event as the SaaS sends it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewActivity {
    /// Tenant the event belongs to.
    pub tenant_id: String,
    /// What happened, e.g. `workspace.create`, `workspace.switch_error`.
    pub action: String,
    /// Who did it (a user id of the SaaS), optional.
    #[serde(default)]
    pub actor: Option<String>,
    /// Anything else, a JSON object (at most 8 KiB).
    #[serde(default)]
    pub details: Option<serde_json::Value>,
    /// When it happened (default: now); not more than 5 minutes ahead.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

/// One refused event of a batch.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Position in the batch (0-based).
    pub index: usize,
    /// Why.
    pub reason: String,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ActivityRow {
    /// Id.
    pub id: i64,
    /// Tenant.
    pub tenant_id: String,
    /// Action.
    pub action: String,
    /// Actor.
    pub actor: String,
    /// Details.
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Whether a JSON value holds a NUL character in a key or a string (Postgres' jsonb cannot).
fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Checks every event on its own (shape, sizes, time; `own_tenant` restricts a tenant token to
/// its tenant). Tenant existence is checked by [`insert_batch`].
pub fn validate(
    events: &[NewActivity],
    own_tenant: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<Rejected> {
    let mut out = Vec::new();
    let printable = |s: &str| !s.chars().any(char::is_control);
    for (index, e) in events.iter().enumerate() {
        let reason = if e.tenant_id.trim().is_empty() {
            Some("tenant_id is empty".to_string())
        } else if !printable(&e.tenant_id) {
            Some("tenant_id must be printable characters".to_string())
        } else if own_tenant.is_some_and(|own| own != e.tenant_id) {
            Some(format!(
                "a tenant token may only report its own tenant, not {:?}",
                e.tenant_id
            ))
        } else if e.action.trim().is_empty() {
            Some("action is empty".to_string())
        } else if e.action.chars().count() > MAX_ACTION || !printable(&e.action) {
            Some(format!(
                "action must be 1–{MAX_ACTION} printable characters"
            ))
        } else if e
            .actor
            .as_deref()
            .is_some_and(|a| a.chars().count() > MAX_ACTOR || !printable(a))
        {
            Some(format!(
                "actor must be at most {MAX_ACTOR} printable characters"
            ))
        } else if e.details.as_ref().is_some_and(|d| !d.is_object()) {
            Some("details must be a JSON object".to_string())
        } else if e.details.as_ref().is_some_and(has_nul) {
            Some("details may not contain the NUL character (\\u0000)".to_string())
        } else if e
            .details
            .as_ref()
            .is_some_and(|d| d.to_string().len() > MAX_DETAILS_BYTES)
        {
            Some(format!("details must be at most {MAX_DETAILS_BYTES} bytes"))
        } else if e
            .created_at
            .is_some_and(|t| t > now + chrono::Duration::minutes(5))
        {
            Some("created_at is in the future".to_string())
        } else {
            None
        };
        if let Some(reason) = reason {
            out.push(Rejected { index, reason });
        }
    }
    out
}

/// Stores a batch if every event is valid and names a live tenant: all or nothing. Returns the
/// refused events (nothing stored) or the number stored.
pub async fn insert_batch(
    pool: &PgPool,
    events: &[NewActivity],
    own_tenant: Option<&str>,
) -> Result<Result<u64, Vec<Rejected>>, Error> {
    let now = Utc::now();
    let mut rejected = validate(events, own_tenant, now);
    // Only the ids of events that passed: a refused one may hold text Postgres cannot take.
    let ids: Vec<&str> = events
        .iter()
        .enumerate()
        .filter(|(i, _)| !rejected.iter().any(|r| r.index == *i))
        .map(|(_, e)| e.tenant_id.as_str())
        .collect();
    let live: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tenants WHERE id = ANY($1) AND archived_at IS NULL")
            .bind(&ids)
            .fetch_all(pool)
            .await?;
    for (index, e) in events.iter().enumerate() {
        if !e.tenant_id.trim().is_empty()
            && !live.contains(&e.tenant_id)
            && !rejected.iter().any(|r| r.index == index)
        {
            rejected.push(Rejected {
                index,
                reason: format!("no live tenant {:?}", e.tenant_id),
            });
        }
    }
    if !rejected.is_empty() {
        rejected.sort_by_key(|r| r.index);
        return Ok(Err(rejected));
    }
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    let actors: Vec<&str> = events
        .iter()
        .map(|e| e.actor.as_deref().unwrap_or_default())
        .collect();
    let details: Vec<serde_json::Value> = events
        .iter()
        .map(|e| e.details.clone().unwrap_or_else(|| serde_json::json!({})))
        .collect();
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.created_at.unwrap_or(now)).collect();
    let done = sqlx::query(
        "INSERT INTO workspace_activity_logs (tenant_id, action, actor, details, created_at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[])",
    )
    .bind(&ids)
    .bind(&actions)
    .bind(&actors)
    .bind(&details)
    .bind(&times)
    .execute(pool)
    .await?;
    Ok(Ok(done.rows_affected()))
}

/// The seed's "Check workspace activity" query, verbatim.
pub const ACTIVITY_QUERY: &str = "SELECT action, COUNT(*) FROM workspace_activity_logs \nWHERE created_at > NOW() - INTERVAL '24 hours'\nGROUP BY action;";

/// The seed's "Check for errors" query, verbatim.
pub const ERRORS_QUERY: &str = "SELECT * FROM workspace_activity_logs \nWHERE action LIKE '%error%'\nORDER BY created_at DESC LIMIT 100;";

/// Actions the monitoring page lists at most (tenant tokens may report up to 1,000 new action
/// names per batch: the page must not grow with them).
pub const MAX_ACTIONS_SHOWN: i64 = 50;

/// Runs [`ACTIVITY_QUERY`] — verbatim, as the inner query — and returns its `limit` most frequent
/// rows (by count, then name) and how many rows it has in all.
pub async fn actions_last_24h(
    pool: &PgPool,
    limit: i64,
) -> Result<(Vec<(String, i64)>, i64), Error> {
    let inner = ACTIVITY_QUERY.trim_end().trim_end_matches(';');
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT q.action, q.count, count(*) OVER () AS total FROM ({inner}) q ORDER BY q.count DESC, q.action LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let total = rows.first().map_or(0, |r| r.2);
    Ok((rows.into_iter().map(|(a, n, _)| (a, n)).collect(), total))
}

/// Runs [`ERRORS_QUERY`].
pub async fn latest_errors(pool: &PgPool) -> Result<Vec<ActivityRow>, Error> {
    Ok(sqlx::query_as(ERRORS_QUERY).fetch_all(pool).await?)
}

/// Events per hour of `tenants` over the last `hours` hours, oldest first, one entry per hour
/// (zeros included).
pub async fn per_hour(
    pool: &PgPool,
    tenants: &[String],
    hours: i32,
) -> Result<Vec<(DateTime<Utc>, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT h.hour, count(a.id) FROM generate_series( \
             date_trunc('hour', now()) - make_interval(hours => $2 - 1), date_trunc('hour', now()), \
             interval '1 hour') AS h(hour) \
         LEFT JOIN workspace_activity_logs a \
             ON a.tenant_id = ANY($1) AND a.created_at >= h.hour AND a.created_at < h.hour + interval '1 hour' \
         GROUP BY h.hour ORDER BY h.hour",
    )
    .bind(tenants)
    .bind(hours)
    .fetch_all(pool)
    .await?)
}
