//! Tenants: listing with search, filters and paging.
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Error, PgPool};

/// A tenant row.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Parses `name`, `newest`, `plan` or `region` (empty means `name`).
    pub fn parse(s: &str) -> Result<TenantSort, Error> {
        match s {
            "" | "name" => Ok(TenantSort::Name),
            "newest" => Ok(TenantSort::Newest),
            "plan" => Ok(TenantSort::Plan),
            "region" => Ok(TenantSort::Region),
            other => Err(Error::Invalid(format!(
                "unknown sort {other:?}: use name, newest, plan or region"
            ))),
        }
    }

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
    /// Only tenants for which this flag is ON (`true`) or OFF (`false`).
    pub flag_state: Option<(String, bool)>,
    /// Order.
    pub sort: TenantSort,
    /// 1-based page number.
    pub page: u32,
    /// Rows per page (1..=500).
    pub per_page: u32,
}

/// Parses the flag-state filter: `state` is empty (no filter), `on` or `off`, about `flag`.
pub fn flag_state_filter(flag: &str, state: &str) -> Result<Option<(String, bool)>, Error> {
    let on = match state.trim() {
        "" => return Ok(None),
        "on" => true,
        "off" => false,
        other => {
            return Err(Error::Invalid(format!(
                "unknown flag state {other:?}: use on or off"
            )))
        }
    };
    let flag = flag.trim();
    if flag.is_empty() {
        return Err(Error::Invalid("a flag state filter needs a flag".into()));
    }
    Ok(Some((flag.to_string(), on)))
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
    AND ($3::text IS NULL OR region = $3) \
    AND ($4::text IS NULL OR $5 = ({on}))";

/// "Flag `key` is ON for tenant `tenant`" in SQL (`key` and `tenant` are SQL expressions): the
/// tenant's row is not excluded, and the global row or the tenant's row is enabled. The global
/// row is a scalar subquery (computed once per statement) and the tenant's rows are index
/// lookups, so this stays fast over 100,000 tenants.
fn on_rule(key: &str, tenant: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM feature_flags x WHERE x.key = {key} AND x.tenant_id = {tenant} AND x.excluded) \
         AND ((SELECT coalesce(bool_or(g.enabled), false) FROM feature_flags g \
               WHERE g.key = {key} AND g.tenant_id IS NULL) \
              OR EXISTS (SELECT 1 FROM feature_flags r \
                         WHERE r.key = {key} AND r.tenant_id = {tenant} AND r.enabled))"
    )
}

/// The WHERE clause of the list ($1 search, $2 plan, $3 region, $4 flag, $5 wanted state).
fn filter() -> String {
    FILTER.replace("{on}", &on_rule("$4", "tenants.id"))
}

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
    let (state_key, state_on) = match &q.flag_state {
        Some((key, on)) => (Some(key.as_str()), *on),
        None => (None, true),
    };
    let filter = filter();
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM tenants WHERE {filter}"))
        .bind(&pattern)
        .bind(plan)
        .bind(region)
        .bind(state_key)
        .bind(state_on)
        .fetch_one(pool)
        .await?;
    let offset = i64::from(page - 1) * i64::from(per_page);
    let items = sqlx::query_as::<_, TenantRow>(&format!(
        "SELECT id, name, plan, region, tags, version, created_at FROM tenants \
         WHERE {filter} ORDER BY {} LIMIT $6 OFFSET $7",
        q.sort.order_by()
    ))
    .bind(&pattern)
    .bind(plan)
    .bind(region)
    .bind(state_key)
    .bind(state_on)
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

/// Which of `ids` have `key` ON right now (the evaluation rule, in SQL).
pub async fn on_among(pool: &PgPool, key: &str, ids: &[String]) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT t FROM unnest($2::text[]) AS t WHERE {}",
        on_rule("$1", "t")
    ))
    .bind(key)
    .bind(ids)
    .fetch_all(pool)
    .await?)
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

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Id (1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit).
    pub id: String,
    /// Name.
    pub name: String,
    /// Plan.
    pub plan: String,
    /// Region.
    pub region: String,
    /// Tags.
    pub tags: Vec<String>,
}

/// Fields to change; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    /// Name.
    pub name: Option<String>,
    /// Plan.
    pub plan: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Tags.
    pub tags: Option<Vec<String>>,
}

fn invalid_tenant(e: sqlx::Error) -> Error {
    match Error::from(e) {
        Error::Invalid(c) => Error::Invalid(match c.as_str() {
            "tenants_id_format" => "tenant id must be 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter or digit".into(),
            "tenants_name_length" => "tenant name must be 1-200 characters".into(),
            "tenants_plan_known" => "plan must be one of free, starter, pro, enterprise".into(),
            "tenants_region_format" => "region must be 1-32 characters of a-z 0-9 -".into(),
            other => other.to_string(),
        }),
        Error::Conflict(_) => Error::Conflict("a tenant with this id exists".into()),
        other => other,
    }
}

/// Creates a tenant. During a percentage phase it gets the phase's answer for its bucket: its row
/// is written for every flag whose current target selects it.
pub async fn create(
    pool: &PgPool,
    actor: &crate::Actor,
    t: &NewTenant,
) -> Result<TenantRow, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let row: TenantRow = sqlx::query_as(
        "INSERT INTO tenants (id, name, plan, region, tags) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id, name, plan, region, tags, version, created_at",
    )
    .bind(&t.id)
    .bind(t.name.trim())
    .bind(&t.plan)
    .bind(&t.region)
    .bind(&t.tags)
    .fetch_one(&mut *tx)
    .await
    .map_err(invalid_tenant)?;
    let tenant = flags::Tenant {
        id: t.id.clone(),
        plan: t.plan.clone(),
        region: t.region.clone(),
        tags: t.tags.clone(),
    };
    let rollouts: Vec<(String, serde_json::Value)> =
        // FOR SHARE: a rollout change (which holds its flag FOR UPDATE) either commits before this
        // reads it, or waits for this tenant's rows and then sees them.
        sqlx::query_as("SELECT key, rollout FROM flags FOR SHARE")
            .fetch_all(&mut *tx)
            .await?;
    let keys: Vec<String> = rollouts
        .into_iter()
        .filter_map(|(key, r)| {
            let r: flags::Rollout = serde_json::from_value(r).ok()?;
            r.target().includes(&key, &tenant).then_some(key)
        })
        .collect();
    if !keys.is_empty() {
        sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled) SELECT k, $2, true FROM unnest($1::text[]) AS k")
            .bind(&keys)
            .bind(&t.id)
            .execute(&mut *tx)
            .await?;
    }
    actor
        .audit(
            &mut tx,
            "tenant.create",
            None,
            Some(&t.id),
            None,
            serde_json::to_value(&row).ok(),
        )
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// Changes a tenant if it is still at `expected_version`.
pub async fn update(
    pool: &PgPool,
    actor: &crate::Actor,
    id: &str,
    patch: &TenantPatch,
    expected_version: Option<i64>,
) -> Result<TenantRow, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let before = sqlx::query_as::<_, TenantRow>(
        "SELECT id, name, plan, region, tags, version, created_at FROM tenants WHERE id = $1 AND archived_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::NotFound(format!("tenant {id:?}")))?;
    if let Some(v) = expected_version {
        if v != before.version {
            return Err(Error::Conflict(format!(
                "tenant {id:?} changed meanwhile: it is at version {}, the edit was made on version {v}",
                before.version
            )));
        }
    }
    let row: TenantRow = sqlx::query_as(
        "UPDATE tenants SET name = coalesce($2, name), plan = coalesce($3, plan), region = coalesce($4, region), \
         tags = coalesce($5, tags), version = version + 1, updated_at = now() WHERE id = $1 \
         RETURNING id, name, plan, region, tags, version, created_at",
    )
    .bind(id)
    .bind(patch.name.as_deref().map(str::trim))
    .bind(&patch.plan)
    .bind(&patch.region)
    .bind(&patch.tags)
    .fetch_one(&mut *tx)
    .await
    .map_err(invalid_tenant)?;
    actor
        .audit(
            &mut tx,
            "tenant.update",
            None,
            Some(id),
            serde_json::to_value(&before).ok(),
            serde_json::to_value(&row).ok(),
        )
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// Archives a tenant: it disappears from lists and evaluation (fail closed); its rows stay for
/// the history.
pub async fn archive(pool: &PgPool, actor: &crate::Actor, id: &str) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let done = sqlx::query("UPDATE tenants SET archived_at = now(), version = version + 1 WHERE id = $1 AND archived_at IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("tenant {id:?}")));
    }
    actor
        .audit(&mut tx, "tenant.archive", None, Some(id), None, None)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
