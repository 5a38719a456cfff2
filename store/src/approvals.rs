//! Change request rows: a request to make an exact change (bound to its hash), and its approval by
//! a second person. Whether a request is still the change the flag would make, and whether a
//! change needs one, is the write path's (`crate::rollout`).
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Actor, Error};

/// A request to make a change, and its approval.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ChangeRequest {
    /// Id.
    pub id: i64,
    /// Phase when requested.
    pub from_phase: String,
    /// Phase after the change.
    pub to_phase: String,
    /// The change asked for: `"advance"`, `{"rollout": {…}}` or
    /// `{"tenant": {"tenant": …, "enabled": …, "excluded": …}}` (absent on requests made before
    /// any change could be requested: advance).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    pub change: Option<serde_json::Value>,
    /// The flag version the change was computed on.
    pub flag_version: Option<i64>,
    /// Hash of the exact change.
    pub change_hash: String,
    /// Tenants it turns on.
    pub turned_on: i32,
    /// Tenants it turns off.
    pub turned_off: i32,
    /// Who asked.
    pub requested_by: String,
    /// The person who asked (the user, or the token's owner); null on requests made before it was
    /// recorded, where `requested_by` is the person.
    pub requested_by_person: Option<String>,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// Who approved (never the requester).
    pub approved_by: Option<String>,
    /// When.
    pub approved_at: Option<DateTime<Utc>>,
    /// When the change was made.
    pub applied_at: Option<DateTime<Utc>>,
    /// Whether it is still the change the flag would make now (any edit voids it).
    #[sqlx(default)]
    pub current: bool,
}

impl ChangeRequest {
    /// The person who asked: [`Self::requested_by_person`], else (older rows) `requested_by`.
    pub fn requester(&self) -> &str {
        self.requested_by_person
            .as_deref()
            .unwrap_or(&self.requested_by)
    }
}

/// A request to store.
pub(crate) struct NewRequest<'a> {
    pub from_phase: String,
    pub to_phase: String,
    pub rollout: serde_json::Value,
    pub change: serde_json::Value,
    pub flag_version: i64,
    pub hash: &'a str,
    pub turned_on: usize,
    pub turned_off: usize,
}

/// The latest change requests of `key` (only request `id` when given), newest first, with
/// `current` unset.
pub(crate) async fn fetch(
    conn: &mut PgConnection,
    key: &str,
    id: Option<i64>,
) -> Result<Vec<ChangeRequest>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, from_phase, to_phase, change, flag_version, change_hash, turned_on, turned_off, \
                requested_by, requested_by_person, requested_at, approved_by, approved_at, applied_at \
         FROM change_requests WHERE flag_key = $1 AND ($2::bigint IS NULL OR id = $2) \
         ORDER BY id DESC LIMIT 20",
    )
    .bind(key)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Request `id` of `key`, or `NotFound`.
pub(crate) async fn one(
    conn: &mut PgConnection,
    key: &str,
    id: i64,
) -> Result<ChangeRequest, Error> {
    fetch(conn, key, Some(id))
        .await?
        .pop()
        .ok_or_else(|| Error::NotFound(format!("change request {id} of flag {key:?}")))
}

/// Whether a second person approved the change with `hash` and it was not made yet.
pub(crate) async fn approved(
    conn: &mut PgConnection,
    key: &str,
    hash: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM change_requests WHERE flag_key = $1 AND change_hash = $2 \
                        AND approved_by IS NOT NULL AND applied_at IS NULL)",
    )
    .bind(key)
    .bind(hash)
    .fetch_one(conn)
    .await?)
}

/// Stores a request by `actor` and audits it (`change.request`). Returns its id.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    actor: &Actor,
    key: &str,
    r: &NewRequest<'_>,
) -> Result<i64, Error> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO change_requests (flag_key, from_phase, to_phase, rollout, change, flag_version, change_hash, \
                                      turned_on, turned_off, requested_by, requested_by_person) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(key)
    .bind(&r.from_phase)
    .bind(&r.to_phase)
    .bind(&r.rollout)
    .bind(&r.change)
    .bind(r.flag_version)
    .bind(r.hash)
    .bind(i32::try_from(r.turned_on).unwrap_or(i32::MAX))
    .bind(i32::try_from(r.turned_off).unwrap_or(i32::MAX))
    .bind(&actor.name)
    .bind(&actor.person)
    .fetch_one(&mut *conn)
    .await?;
    let details = serde_json::json!({
        "request": id, "person": actor.person, "from": r.from_phase, "to": r.to_phase, "change": r.change,
        "change_hash": r.hash, "turned_on": r.turned_on, "turned_off": r.turned_off,
    });
    actor
        .audit(conn, "change.request", Some(key), None, None, Some(details))
        .await?;
    Ok(id)
}

/// Records `actor`'s approval of request `id` in `role` and audits it (`change.approve`).
pub(crate) async fn set_approved(
    conn: &mut PgConnection,
    actor: &Actor,
    key: &str,
    req: &ChangeRequest,
    role: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE change_requests SET approved_by = $2, approved_at = now() WHERE id = $1")
        .bind(req.id)
        .bind(&actor.name)
        .execute(&mut *conn)
        .await?;
    let details = serde_json::json!({
        "request": req.id, "role": role, "change_hash": req.change_hash, "person": actor.person,
    });
    actor
        .audit(conn, "change.approve", Some(key), None, None, Some(details))
        .await
}

/// Marks the request for `hash` applied (the change was made).
pub(crate) async fn mark_applied(
    conn: &mut PgConnection,
    key: &str,
    hash: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE change_requests SET applied_at = now() \
         WHERE flag_key = $1 AND change_hash = $2 AND applied_at IS NULL",
    )
    .bind(key)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// A change request waiting for someone's approval.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Waiting {
    /// Request id.
    pub id: i64,
    /// Flag.
    pub flag_key: String,
    /// Phase before and after.
    pub from_phase: String,
    /// Phase after.
    pub to_phase: String,
    /// Tenants it turns on.
    pub turned_on: i32,
    /// The person who asked.
    pub requester: String,
    /// When.
    pub requested_at: DateTime<Utc>,
}

/// The requests `role` may approve that wait for it: not approved, not applied, made on the
/// flag's current version, asked by someone other than `person`, on a flag whose plan lets
/// `role` approve (a flag without a stored plan has the seed's approvers: product owner, admin).
/// Newest first, at most 50. The plan page says exactly which are still the change the flag
/// would make; this list is what the navigation and the dashboard count.
pub async fn waiting_for(
    pool: &crate::PgPool,
    role: &str,
    person: &str,
) -> Result<Vec<Waiting>, Error> {
    Ok(sqlx::query_as(
        "SELECT r.id, r.flag_key, r.from_phase, r.to_phase, r.turned_on, \
                COALESCE(r.requested_by_person, r.requested_by) AS requester, r.requested_at \
         FROM change_requests r \
         JOIN flags f ON f.key = r.flag_key \
         LEFT JOIN rollout_plans p ON p.flag_key = r.flag_key \
         WHERE r.applied_at IS NULL AND r.approved_by IS NULL \
           AND (r.flag_version IS NULL OR r.flag_version = f.version) \
           AND $1 = ANY (COALESCE(p.approver_roles, ARRAY['product_owner', 'admin'])) \
           AND COALESCE(r.requested_by_person, r.requested_by) <> $2 \
         ORDER BY r.id DESC LIMIT 50",
    )
    .bind(role)
    .bind(person)
    .fetch_all(pool)
    .await?)
}
