//! What DBAs look at: database size, the largest tables, the slowest statements and the average
//! query time (from `pg_stat_statements` when the extension is there).
use serde::Serialize;

use crate::{Error, PgPool};

/// The seed's DB query time thresholds: normal below 100 ms average, alert above 500 ms.
pub const QUERY_NORMAL_MS: f64 = 100.0;
/// See [`QUERY_NORMAL_MS`].
pub const QUERY_ALERT_MS: f64 = 500.0;

/// A table and its size.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TableSize {
    /// `schema.table`.
    pub name: String,
    /// Table + indexes + TOAST, in bytes.
    pub total_bytes: i64,
    /// Estimated live rows.
    pub rows: i64,
}

/// A statement from `pg_stat_statements`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Statement {
    /// Normalised text.
    pub query: String,
    /// Times run.
    pub calls: i64,
    /// Mean time, ms.
    pub mean_ms: f64,
    /// Total time, ms.
    pub total_ms: f64,
}

/// The state of the database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbHealth {
    /// Database name.
    pub database: String,
    /// Server version.
    pub server_version: String,
    /// Size on disk, bytes.
    pub size_bytes: i64,
    /// Connections to this database now.
    pub connections: i64,
    /// The largest tables, biggest first.
    pub tables: Vec<TableSize>,
    /// Slowest statements by mean time (None: no source has any).
    pub statements: Option<Vec<Statement>>,
    /// Average statement time over all calls, ms.
    pub avg_query_ms: Option<f64>,
    /// Where the statement figures come from: `pg_stat_statements` (every client of the
    /// database) or `tenantry` (this process's own statements, measured by the server).
    pub statements_source: Option<String>,
}

/// `normal`, `elevated` (between the thresholds) or `alert` for an average query time.
pub fn query_time_status(avg_ms: f64) -> &'static str {
    if avg_ms > QUERY_ALERT_MS {
        "alert"
    } else if avg_ms < QUERY_NORMAL_MS {
        "normal"
    } else {
        "elevated"
    }
}

/// Reads the health figures.
pub async fn health(pool: &PgPool) -> Result<DbHealth, Error> {
    let (database, server_version, size_bytes, connections): (String, String, i64, i64) =
        sqlx::query_as(
            "SELECT current_database(), current_setting('server_version'), \
                    pg_database_size(current_database()), \
                    (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())",
        )
        .fetch_one(pool)
        .await?;
    let tables: Vec<TableSize> = sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname AS name, pg_total_relation_size(c.oid) AS total_bytes, \
                greatest(c.reltuples, 0)::bigint AS rows \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY total_bytes DESC, name LIMIT 10",
    )
    .fetch_all(pool)
    .await?;
    let (mut statements, mut avg_query_ms) = match pg_stat_statements(pool).await {
        Ok(v) => v,
        // Not installed, or not preloaded: fall back to Tenantry's own timings.
        Err(e) => {
            tracing::debug!(error = %e, "pg_stat_statements unavailable");
            (None, None)
        }
    };
    let mut statements_source = statements
        .as_ref()
        .map(|_| "pg_stat_statements".to_string());
    if statements.is_none() {
        if let Some((own, avg)) = own_timings(10) {
            statements = Some(own);
            avg_query_ms = Some(avg);
            statements_source = Some("tenantry".to_string());
        }
    }
    Ok(DbHealth {
        database,
        server_version,
        size_bytes,
        connections,
        tables,
        statements,
        avg_query_ms,
        statements_source,
    })
}

async fn pg_stat_statements(
    pool: &PgPool,
) -> Result<(Option<Vec<Statement>>, Option<f64>), sqlx::Error> {
    let installed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
    )
    .fetch_one(pool)
    .await?;
    if !installed {
        return Ok((None, None));
    }
    let filter = "dbid = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let statements: Vec<Statement> = sqlx::query_as(&format!(
        "SELECT query, calls, mean_exec_time AS mean_ms, total_exec_time AS total_ms \
         FROM pg_stat_statements WHERE {filter} ORDER BY mean_exec_time DESC LIMIT 10"
    ))
    .fetch_all(pool)
    .await?;
    let avg: Option<f64> = sqlx::query_scalar(&format!(
        "SELECT sum(total_exec_time) / nullif(sum(calls), 0) FROM pg_stat_statements WHERE {filter}"
    ))
    .fetch_one(pool)
    .await?;
    Ok((Some(statements), avg))
}

/// Statement timings Tenantry measured itself (fed by the server's tracing layer from sqlx's
/// per-statement events): the health page's fallback when `pg_stat_statements` is unavailable.
static OWN_TIMINGS: std::sync::Mutex<Option<std::collections::HashMap<String, (i64, f64)>>> =
    std::sync::Mutex::new(None);

/// Distinct statements kept (new ones beyond this are not tracked).
const OWN_TIMINGS_MAX: usize = 500;

/// Records one statement's duration.
pub fn record_timing(statement: &str, ms: f64) {
    let key: String = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    let key: String = key.chars().take(300).collect();
    if key.is_empty() {
        return;
    }
    if let Ok(mut guard) = OWN_TIMINGS.lock() {
        let map = guard.get_or_insert_with(Default::default);
        if let Some(e) = map.get_mut(&key) {
            e.0 += 1;
            e.1 += ms;
        } else if map.len() < OWN_TIMINGS_MAX {
            map.insert(key, (1, ms));
        }
    }
}

/// The slowest statements by mean time and the average over all calls, from [`record_timing`];
/// `None` when nothing was recorded.
pub fn own_timings(limit: usize) -> Option<(Vec<Statement>, f64)> {
    let guard = OWN_TIMINGS.lock().ok()?;
    let map = guard.as_ref()?;
    let (calls, total) = map
        .values()
        .fold((0_i64, 0.0_f64), |(c, t), (n, ms)| (c + n, t + ms));
    if calls == 0 {
        return None;
    }
    let mut rows: Vec<Statement> = map
        .iter()
        .map(|(q, (n, ms))| Statement {
            query: q.clone(),
            calls: *n,
            mean_ms: ms / *n as f64,
            total_ms: *ms,
        })
        .collect();
    rows.sort_by(|a, b| b.mean_ms.total_cmp(&a.mean_ms));
    rows.truncate(limit);
    Some((rows, total / calls as f64))
}
