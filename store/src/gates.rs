//! Gates on phase changes. Raising a flag's phase (advance, a rollout edit, enabling a pilot on an
//! OFF flag) passes the plan's gates for every phase it enters and, when the plan says so, a second
//! user's approval of the exact change; otherwise it is refused with the list of what does not
//! hold. An admin may override with a written reason (audited as `gate.override`). Lowering the
//! phase and the kill switch are never gated.
use chrono::{DateTime, Utc};
use flags::plan::Approval;
use flags::{FlagState, Phase, Rollout, Tenant};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::{Actor, Error, PgPool};

/// When a change is checked, and the break-glass reason if an admin overrides the gates.
#[derive(Debug, Clone)]
pub struct Gating {
    /// The clock the windows are measured with (injected: tests move it).
    pub now: DateTime<Utc>,
    /// An admin's written reason to pass unmet gates. Only callers that checked the admin role set
    /// it.
    pub override_reason: Option<String>,
}

impl Gating {
    /// Checked now, no override.
    pub fn now() -> Self {
        Gating {
            now: Utc::now(),
            override_reason: None,
        }
    }

    /// Checked now, with an admin's break-glass reason (`None` or blank: no override).
    pub fn with_override(reason: Option<String>) -> Self {
        Gating {
            now: Utc::now(),
            override_reason: reason.filter(|r| !r.trim().is_empty()),
        }
    }
}

/// A phase change as the gates see it: where it goes and exactly what it flips.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// Phase now.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub from: Phase,
    /// Phase after.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub to: Phase,
    /// The flag version the change is computed on.
    pub version: i64,
    /// SHA-256 of (flag, version, target rollout, tenants turned on, tenants turned off): what an
    /// approval binds to.
    pub hash: String,
    /// Tenants the change turns on.
    pub turned_on: usize,
    /// Tenants the change turns off.
    pub turned_off: usize,
}

/// A request to make a phase change, and its approval.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ChangeRequest {
    /// Id.
    pub id: i64,
    /// Phase when requested.
    pub from_phase: String,
    /// Phase requested.
    pub to_phase: String,
    /// Hash of the exact change.
    pub change_hash: String,
    /// Tenants it turns on.
    pub turned_on: i32,
    /// Tenants it turns off.
    pub turned_off: i32,
    /// Who asked.
    pub requested_by: String,
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

/// The hash an approval binds to: the flag, its version, the target rollout, the tenants the
/// change turns on and off, and every tenant ON after it (so a raw-SQL edit of any row, which does
/// not bump the version, changes it too).
pub(crate) fn change_hash<'a>(
    key: &str,
    version: i64,
    target: &Rollout,
    turned_on: &[String],
    turned_off: &[String],
    on_after: impl Iterator<Item = &'a str>,
) -> Result<String, Error> {
    let target = serde_json::to_string(target).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut h = Sha256::new();
    h.update(b"rollgate-change-v1\n");
    for part in [key, &version.to_string(), &target] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    for (label, ids) in [("on", turned_on), ("off", turned_off)] {
        h.update(label.as_bytes());
        for id in ids {
            h.update(b"\x1f");
            h.update(id.as_bytes());
        }
        h.update(b"\n");
    }
    h.update(b"after");
    for id in on_after {
        h.update(b"\x1f");
        h.update(id.as_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The change from `old` to `target`, computed as `after` over `tenants` with diff `d`.
pub(crate) struct Computed<'a> {
    pub old: &'a Rollout,
    pub target: &'a Rollout,
    pub version: i64,
    pub after: &'a FlagState,
    pub tenants: &'a [Tenant],
    pub diff: &'a flags::Diff,
}

fn proposal_of(key: &str, c: &Computed<'_>) -> Result<Proposal, Error> {
    let d = c.diff;
    let on_after = c
        .tenants
        .iter()
        .map(|t| t.id.as_str())
        .filter(|id| c.after.is_on(id));
    Ok(Proposal {
        from: c.old.phase,
        to: c.target.phase,
        version: c.version,
        hash: change_hash(
            key,
            c.version,
            c.target,
            &d.turned_on,
            &d.turned_off,
            on_after,
        )?,
        turned_on: d.turned_on.len(),
        turned_off: d.turned_off.len(),
    })
}

/// The change moving `key` from `old` (at `version`) to `target` would make now.
pub(crate) async fn propose(
    conn: &mut PgConnection,
    key: &str,
    old: &Rollout,
    target: &Rollout,
    version: i64,
) -> Result<Proposal, Error> {
    let tenants = crate::flags::live_tenants(conn).await?;
    let before = crate::flags::flag_state(conn, key, old).await?;
    let after = old.apply(&before, key, target, &tenants);
    let diff = flags::diff(&before, &after, tenants.iter().map(|t| t.id.as_str()));
    proposal_of(
        key,
        &Computed {
            old,
            target,
            version,
            after: &after,
            tenants: &tenants,
            diff: &diff,
        },
    )
}

/// Proposals already computed, by (flag, flag version, snapshot version): any change to the flag,
/// its rows or the tenants bumps one of the two, so an entry is exact while its key matches.
type ProposalCache = Vec<((String, i64, i64), Proposal)>;
static PROPOSALS: tokio::sync::Mutex<ProposalCache> = tokio::sync::Mutex::const_new(Vec::new());

/// [`propose`] for the next phase as the plan page shows it, computed once per state: every view
/// of the plan needs the change's hash, and over 100,000 tenants computing it is the expensive
/// part of the page. Computations are serialised, so concurrent views wait for one result instead
/// of each loading every tenant.
pub(crate) async fn propose_cached(
    conn: &mut PgConnection,
    key: &str,
    old: &Rollout,
    target: &Rollout,
    version: i64,
) -> Result<Proposal, Error> {
    let snapshot: i64 = sqlx::query_scalar("SELECT version FROM change_version")
        .fetch_one(&mut *conn)
        .await?;
    let id = (key.to_string(), version, snapshot);
    let mut cache = PROPOSALS.lock().await;
    if let Some((_, p)) = cache.iter().find(|(k, _)| *k == id) {
        if p.to == target.phase {
            return Ok(p.clone());
        }
    }
    let p = propose(conn, key, old, target, version).await?;
    cache.retain(|(k, _)| k.0 != key);
    if cache.len() >= 64 {
        cache.remove(0);
    }
    cache.push((id, p.clone()));
    Ok(p)
}

/// The latest change requests of `key` (only request `id` when given), newest first; `current`
/// marks those not applied whose hash is `current_hash`.
async fn fetch_requests(
    conn: &mut PgConnection,
    key: &str,
    id: Option<i64>,
    current_hash: Option<&str>,
) -> Result<Vec<ChangeRequest>, Error> {
    let mut rows: Vec<ChangeRequest> = sqlx::query_as(
        "SELECT id, from_phase, to_phase, change_hash, turned_on, turned_off, requested_by, requested_at, \
                approved_by, approved_at, applied_at \
         FROM change_requests WHERE flag_key = $1 AND ($2::bigint IS NULL OR id = $2) \
         ORDER BY id DESC LIMIT 20",
    )
    .bind(key)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    for r in &mut rows {
        r.current = r.applied_at.is_none() && Some(r.change_hash.as_str()) == current_hash;
    }
    Ok(rows)
}

/// The latest change requests of `key`, newest first.
pub(crate) async fn requests(
    conn: &mut PgConnection,
    key: &str,
    current_hash: Option<&str>,
) -> Result<Vec<ChangeRequest>, Error> {
    fetch_requests(conn, key, None, current_hash).await
}

/// Request `id` of `key`, or `NotFound`.
async fn one_request(
    conn: &mut PgConnection,
    key: &str,
    id: i64,
    current_hash: Option<&str>,
) -> Result<ChangeRequest, Error> {
    fetch_requests(conn, key, Some(id), current_hash)
        .await?
        .pop()
        .ok_or_else(|| Error::NotFound(format!("change request {id} of flag {key:?}")))
}

/// The approval state of the change with `hash`.
pub(crate) fn approval(
    settings: &crate::plans::Settings,
    requests: &[ChangeRequest],
    hash: &str,
) -> Approval {
    if !settings.approvals_required {
        Approval::NotRequired
    } else if requests
        .iter()
        .any(|r| r.current && r.change_hash == hash && r.approved_by.is_some())
    {
        Approval::Approved
    } else {
        Approval::Needed(settings.approver_roles.clone())
    }
}

/// Checks the gates of the change from `old` to `target` (already computed as `before` →
/// `after`) inside the flag's transaction. Returns the change's hash when it is a phase rise that
/// may go ahead (the caller marks its request applied), `None` when nothing is gated; refuses with
/// [`Error::Gated`] otherwise. An override is audited with the gates it passed.
pub(crate) async fn check(
    conn: &mut PgConnection,
    actor: &Actor,
    key: &str,
    change: &Computed<'_>,
    gating: &Gating,
) -> Result<Option<String>, Error> {
    let (old, target) = (change.old, change.target);
    if target.phase <= old.phase {
        return Ok(None);
    }
    let proposal = proposal_of(key, change)?;
    let plan = crate::plans::load(conn, key).await?;
    let mut facts = crate::plans::facts(conn, key, &plan, gating.now)
        .await?
        .facts;
    let requests = requests(conn, key, Some(&proposal.hash)).await?;
    facts.approval = approval(&plan.settings, &requests, &proposal.hash);
    let unmet =
        flags::plan::unmet_for_change(&plan.document, &plan.gates, old.phase, target.phase, &facts);
    if unmet.is_empty() {
        return Ok(Some(proposal.hash));
    }
    let unmet: Vec<String> = unmet.iter().map(ToString::to_string).collect();
    match &gating.override_reason {
        Some(reason) => {
            if reason.chars().count() > 1000 {
                return Err(Error::Invalid(
                    "an override reason has at most 1000 characters".into(),
                ));
            }
            let details = serde_json::json!({
                "from": old.phase.to_string(),
                "to": target.phase.to_string(),
                "reason": reason.trim(),
                "unmet": unmet,
                "change_hash": proposal.hash,
            });
            actor
                .audit(conn, "gate.override", Some(key), None, None, Some(details))
                .await?;
            Ok(Some(proposal.hash))
        }
        None => Err(Error::Gated {
            phase: target.phase.to_string(),
            unmet,
        }),
    }
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

/// Asks for the flag's next phase: records the exact change (and its hash) for a second user to
/// approve. A pending identical request is returned instead of a new one.
pub async fn request(pool: &PgPool, actor: &Actor, key: &str) -> Result<ChangeRequest, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let (rollout, version) = crate::flags::read_flag(&mut tx, key).await?;
    let next = rollout
        .phase
        .next(&flags::DEFAULT_LADDER)
        .ok_or_else(|| Error::Invalid(format!("flag {key:?} is already at {}", rollout.phase)))?;
    let p = propose(&mut tx, key, &rollout, &rollout.with_phase(next), version).await?;
    let existing = requests(&mut tx, key, Some(&p.hash)).await?;
    if let Some(same) = existing
        .into_iter()
        .find(|r| r.current && r.requested_by == actor.name)
    {
        tx.commit().await?;
        return Ok(same);
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO change_requests (flag_key, from_phase, to_phase, rollout, change_hash, turned_on, turned_off, requested_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(key)
    .bind(p.from.to_string())
    .bind(p.to.to_string())
    .bind(serde_json::to_value(rollout.with_phase(next)).map_err(|e| Error::Invalid(e.to_string()))?)
    .bind(&p.hash)
    .bind(i32::try_from(p.turned_on).unwrap_or(i32::MAX))
    .bind(i32::try_from(p.turned_off).unwrap_or(i32::MAX))
    .bind(&actor.name)
    .fetch_one(&mut *tx)
    .await?;
    let details = serde_json::json!({ "request": id, "from": p.from.to_string(), "to": p.to.to_string(), "change_hash": p.hash });
    actor
        .audit(
            &mut tx,
            "change.request",
            Some(key),
            None,
            None,
            Some(details),
        )
        .await?;
    let row = one_request(&mut tx, key, id, Some(&p.hash)).await?;
    tx.commit().await?;
    Ok(row)
}

/// Approves request `id` as `role`. Refused when the role may not approve for this plan, when the
/// approver asked for the change, when it was already approved or applied, and when the change is
/// no longer the one the flag would make (the flag or its tenants changed since: ask again).
pub async fn approve(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    id: i64,
    role: &str,
) -> Result<ChangeRequest, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let plan = crate::plans::load(&mut tx, key).await?;
    if !plan.settings.approver_roles.iter().any(|r| r == role) {
        return Err(Error::Forbidden(format!(
            "approving changes of {key:?} needs the role {}; you act as {role}",
            plan.settings.approver_roles.join(" or ")
        )));
    }
    let (rollout, version) = crate::flags::lock_flag(&mut tx, key).await?;
    let current = match rollout.phase.next(&flags::DEFAULT_LADDER) {
        Some(next) => Some(
            propose(&mut tx, key, &rollout, &rollout.with_phase(next), version)
                .await?
                .hash,
        ),
        None => None,
    };
    let req = one_request(&mut tx, key, id, current.as_deref()).await?;
    if req.requested_by == actor.name {
        return Err(Error::Forbidden(
            "you asked for this change: a second user must approve it".into(),
        ));
    }
    if req.applied_at.is_some() {
        return Err(Error::Conflict(format!(
            "change request {id} was already applied"
        )));
    }
    if let Some(by) = &req.approved_by {
        return Err(Error::Conflict(format!(
            "change request {id} was already approved by {by}"
        )));
    }
    if !req.current {
        return Err(Error::Conflict(format!(
            "change request {id} is stale: the flag or its tenants changed since it was asked for, so the change it describes is not the one advancing would make; ask again"
        )));
    }
    sqlx::query("UPDATE change_requests SET approved_by = $2, approved_at = now() WHERE id = $1")
        .bind(id)
        .bind(&actor.name)
        .execute(&mut *tx)
        .await?;
    let details =
        serde_json::json!({ "request": id, "role": role, "change_hash": req.change_hash });
    actor
        .audit(
            &mut tx,
            "change.approve",
            Some(key),
            None,
            None,
            Some(details),
        )
        .await?;
    let row = one_request(&mut tx, key, id, current.as_deref()).await?;
    tx.commit().await?;
    Ok(row)
}

/// One pass of automatic advance at `now`: every flag whose plan says `auto_advance` and whose
/// next phase's gates (and approval) all hold is advanced, as Rollgate itself (source `system`,
/// actor `rollgate:auto-advance`). Returns the flags advanced and their new phase. A flag whose
/// gates do not hold is left alone; errors of one flag do not stop the others.
pub async fn auto_advance(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Phase)>, Error> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT flag_key FROM rollout_plans WHERE auto_advance ORDER BY flag_key",
    )
    .fetch_all(pool)
    .await?;
    let actor = Actor::new("rollgate:auto-advance", crate::Source::System);
    let gating = Gating {
        now,
        override_reason: None,
    };
    let mut advanced = Vec::new();
    for key in keys {
        match crate::flags::advance(pool, &actor, &key, None, &gating).await {
            Ok((phase, _)) => advanced.push((key, phase)),
            Err(Error::Gated { .. }) | Err(Error::Invalid(_)) | Err(Error::Conflict(_)) => {}
            Err(e) => tracing::warn!(flag = %key, error = %e, "automatic advance failed"),
        }
    }
    Ok(advanced)
}
