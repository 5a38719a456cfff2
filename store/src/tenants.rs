//! Tenants: listing with search, filters and paging.
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Error, PgPool};

/// A tenant row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TenantRow {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Plan.
    pub plan: String,
    /// Region.
    pub region: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Sort orders the list offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TenantSort {
    /// By name, A→Z.
    #[default]
    Name,
    /// Newest first.
    Newest,
    /// By plan then name.
    Plan,
    /// By region then name.
    Region,
}

impl TenantSort {
    fn order_by(self) -> &'static str {
        match self {
            TenantSort::Name => "lower(name), id",
            TenantSort::Newest => "created_at DESC, id",
            TenantSort::Plan => "plan, lower(name), id",
            TenantSort::Region => "region, lower(name), id",
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct TenantQuery {
    /// Case-insensitive substring of the name or the id.
    pub search: Option<String>,
    /// Exact plan.
    pub plan: Option<String>,
    /// Exact region.
    pub region: Option<String>,
    /// Order.
    pub sort: TenantSort,
    /// 1-based page number.
    pub page: u32,
    /// Rows per page (1..=500).
    pub per_page: u32,
}

/// One page of results and the total.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows matching the query, over all pages.
    pub total: i64,
    /// 1-based page number.
    pub page: u32,
    /// Rows per page.
    pub per_page: u32,
}

/// Escapes `%`, `_` and `\` so user input matches literally inside `LIKE`.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

const FILTER: &str = "archived_at IS NULL \
    AND ($1::text IS NULL OR name ILIKE $1 OR id ILIKE $1) \
    AND ($2::text IS NULL OR plan = $2) \
    AND ($3::text IS NULL OR region = $3)";

/// A page of live (not archived) tenants.
pub async fn list(pool: &PgPool, q: &TenantQuery) -> Result<Page<TenantRow>, Error> {
    let per_page = q.per_page.clamp(1, 500);
    let page = q.page.max(1);
    let pattern = q
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(like_pattern);
    let plan = q.plan.as_deref().filter(|s| !s.is_empty());
    let region = q.region.as_deref().filter(|s| !s.is_empty());
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM tenants WHERE {FILTER}"))
        .bind(&pattern)
        .bind(plan)
        .bind(region)
        .fetch_one(pool)
        .await?;
    let offset = i64::from(page - 1) * i64::from(per_page);
    let items = sqlx::query_as::<_, TenantRow>(&format!(
        "SELECT id, name, plan, region, tags, version, created_at FROM tenants \
         WHERE {FILTER} ORDER BY {} LIMIT $4 OFFSET $5",
        q.sort.order_by()
    ))
    .bind(&pattern)
    .bind(plan)
    .bind(region)
    .bind(i64::from(per_page))
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(Page {
        items,
        total,
        page,
        per_page,
    })
}

/// One live tenant.
pub async fn get(pool: &PgPool, id: &str) -> Result<TenantRow, Error> {
    sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, plan, region, tags, version, created_at FROM tenants \
         WHERE id = $1 AND archived_at IS NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("tenant {id:?}")))
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
