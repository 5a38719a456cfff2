//! Rollout plans: the document and gates per flag, checklist ticks and sign-offs with their
//! history, and the gates of the next phase evaluated with `flags::plan`.
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use flags::guard::GuardSpec;
use flags::plan::{Approval, GateFacts, PhaseGates, PlanDocument, Unmet};
use flags::{Phase, DEFAULT_LADDER};
use serde::Serialize;
use sqlx::PgConnection;

use crate::{Actor, Error, PgPool};

/// A tick or untick of a checklist item.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TickRow {
    /// Checklist.
    pub checklist: String,
    /// Item.
    pub item: String,
    /// Ticked (false: unticked).
    pub ticked: bool,
    /// Note.
    pub note: String,
    /// Who.
    pub actor: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A signature (or its withdrawal) of a milestone.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SignoffRow {
    /// Milestone.
    pub milestone: String,
    /// Signed (false: withdrawn).
    pub signed: bool,
    /// Who.
    pub actor: String,
    /// In which role.
    pub role: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A flag's plan with its current state and the gates of the next phase.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct PlanState {
    /// Flag.
    pub flag_key: String,
    /// Checklists, milestones and contacts.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub document: PlanDocument,
    /// Gates per phase.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub gates: Vec<PhaseGates>,
    /// Current phase.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub phase: Phase,
    /// When the current phase began (the last rollout change, else the flag's creation).
    pub phase_since: DateTime<Utc>,
    /// Next phase of the ladder.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub next: Option<Phase>,
    /// Gates of the next phase that do not hold (empty: it may be entered).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub unmet: Vec<Unmet>,
    /// The same, in words.
    pub unmet_text: Vec<String>,
    /// Current state of every ticked or unticked item (latest per item).
    pub ticks: Vec<TickRow>,
    /// Current state of every milestone signed or withdrawn (latest per milestone).
    pub signoffs: Vec<SignoffRow>,
    /// Approvals, automation and what an alert does.
    pub settings: Settings,
    /// The guards watched during monitoring windows.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub guards: Vec<GuardSpec>,
    /// The latest reading of each guard.
    pub guard_states: Vec<crate::guards::GuardState>,
    /// Set when a guard's alert paused the rollout (until someone resumes it).
    pub paused: Option<Paused>,
    /// The current phase has lasted longer than its decision is due (the pilot's 72 h).
    pub decision_overdue: bool,
    /// The change advancing would make now, with its hash.
    pub proposal: Option<crate::gates::Proposal>,
    /// The latest change requests (newest first), each marked whether it is the current change.
    pub requests: Vec<crate::gates::ChangeRequest>,
    /// Plan version.
    pub version: i64,
}

fn seed_document() -> Result<PlanDocument, Error> {
    flags::plan::import_markdown(flags::plan::SEED_PLAN).map_err(|e| Error::Invalid(e.to_string()))
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::Invalid(format!("encoding the plan: {e}")))
}

/// A stored plan: its document, gates, guards, settings, pause and version.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub document: PlanDocument,
    pub gates: Vec<PhaseGates>,
    pub guards: Vec<GuardSpec>,
    pub settings: Settings,
    pub paused: Option<Paused>,
    pub version: i64,
}

/// How a plan's phase changes are approved, whether Rollgate advances on its own, and what a
/// guard's alert does.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Settings {
    /// Raising the phase needs a second user's approval of the exact change.
    pub approvals_required: bool,
    /// Roles that may approve (a user other than the requester).
    pub approver_roles: Vec<String>,
    /// Advance on its own once every gate holds (audited as Rollgate's own change).
    pub auto_advance: bool,
    /// On a guard's alert, besides pausing: `pause` (nothing more), `previous` (one phase down) or
    /// `off` (the kill switch).
    pub on_alert: String,
}

/// What a guard's alert may do.
pub const ON_ALERT: [&str; 3] = ["pause", "previous", "off"];

/// A paused rollout: no automatic advance and no advance at all until a person resumes it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paused {
    /// When.
    pub at: DateTime<Utc>,
    /// Why (the guard and its reading).
    pub reason: String,
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    document: serde_json::Value,
    gates: serde_json::Value,
    guards: Option<serde_json::Value>,
    version: i64,
    approvals_required: bool,
    approver_roles: Vec<String>,
    auto_advance: bool,
    on_alert: String,
    paused_at: Option<DateTime<Utc>>,
    paused_reason: Option<String>,
}

/// The stored plan of `key`. A flag without one gets the seed template on first use; an unknown
/// flag is `NotFound`.
pub(crate) async fn load(conn: &mut PgConnection, key: &str) -> Result<Plan, Error> {
    load_row(conn, key, false).await
}

/// [`load`], with the plan's row locked for the rest of the transaction: for read-modify-write
/// changes of the plan, so two of them never both read the old row.
pub(crate) async fn load_for_update(conn: &mut PgConnection, key: &str) -> Result<Plan, Error> {
    load_row(conn, key, true).await
}

async fn load_row(conn: &mut PgConnection, key: &str, lock: bool) -> Result<Plan, Error> {
    macro_rules! select {
        () => {
            "SELECT document, gates, guards, version, approvals_required, approver_roles, \
                    auto_advance, on_alert, paused_at, paused_reason \
             FROM rollout_plans WHERE flag_key = $1"
        };
    }
    let select = if lock {
        concat!(select!(), " FOR UPDATE")
    } else {
        select!()
    };
    let row: Option<PlanRow> = sqlx::query_as(select)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    let row = match row {
        Some(row) => row,
        None => {
            let exists: Option<String> = sqlx::query_scalar("SELECT key FROM flags WHERE key = $1")
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
            if exists.is_none() {
                return Err(Error::NotFound(format!("flag {key:?}")));
            }
            sqlx::query(
                "INSERT INTO rollout_plans (flag_key, document, gates) VALUES ($1, $2, $3) \
                 ON CONFLICT (flag_key) DO NOTHING",
            )
            .bind(key)
            .bind(to_json(&seed_document()?)?)
            .bind(to_json(&flags::plan::seed_gates())?)
            .execute(&mut *conn)
            .await?;
            sqlx::query_as(select)
                .bind(key)
                .fetch_one(&mut *conn)
                .await?
        }
    };
    let document: PlanDocument = serde_json::from_value(row.document)
        .map_err(|e| Error::Invalid(format!("stored plan of {key:?} is unreadable: {e}")))?;
    let gates: Vec<PhaseGates> = serde_json::from_value(row.gates)
        .map_err(|e| Error::Invalid(format!("stored gates of {key:?} are unreadable: {e}")))?;
    let guards: Vec<GuardSpec> = match row.guards {
        None => flags::guard::seed_guards(),
        Some(g) => serde_json::from_value(g)
            .map_err(|e| Error::Invalid(format!("stored guards of {key:?} are unreadable: {e}")))?,
    };
    Ok(Plan {
        document,
        gates,
        guards,
        settings: Settings {
            approvals_required: row.approvals_required,
            approver_roles: row.approver_roles,
            auto_advance: row.auto_advance,
            on_alert: row.on_alert,
        },
        paused: row.paused_at.map(|at| Paused {
            at,
            reason: row.paused_reason.unwrap_or_default(),
        }),
        version: row.version,
    })
}

/// What the gates are checked against, read from the plan's history: ticks, sign-offs, the start
/// of the current phase, migrations. The approval is the caller's (it depends on the change).
pub(crate) struct Facts {
    pub facts: GateFacts,
    pub ticks: Vec<TickRow>,
    pub signoffs: Vec<SignoffRow>,
    pub phase_since: DateTime<Utc>,
    pub guard_states: Vec<crate::guards::GuardState>,
}

pub(crate) async fn facts(
    conn: &mut PgConnection,
    key: &str,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<Facts, Error> {
    let ticks: Vec<TickRow> = sqlx::query_as(
        "SELECT DISTINCT ON (checklist, item) checklist, item, ticked, note, actor, at \
         FROM plan_ticks WHERE flag_key = $1 ORDER BY checklist, item, id DESC",
    )
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    let signoffs: Vec<SignoffRow> = sqlx::query_as(
        "SELECT DISTINCT ON (milestone) milestone, signed, actor, role, at \
         FROM plan_signoffs WHERE flag_key = $1 ORDER BY milestone, id DESC",
    )
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    let phase_since: DateTime<Utc> = sqlx::query_scalar(
        "SELECT coalesce((SELECT max(at) FROM audit_log WHERE flag_key = $1 \
                          AND action IN ('rollout.apply', 'rollout.kill')), \
                         (SELECT created_at FROM flags WHERE key = $1))",
    )
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    let counts = crate::migrations::counts_in(conn).await?;
    let facts = GateFacts {
        now: now.timestamp(),
        phase_since: phase_since.timestamp(),
        ticked: ticks
            .iter()
            .filter(|t| t.ticked)
            .map(|t| (t.checklist.clone(), t.item.clone()))
            .collect(),
        signed: signoffs
            .iter()
            .filter(|s| s.signed)
            .map(|s| s.milestone.clone())
            .collect::<BTreeSet<_>>(),
        guards_not_ok: BTreeMap::new(),
        paused: plan.paused.as_ref().map(|p| p.reason.clone()),
        migrations_ready: counts.ready(),
        approval: Approval::NotRequired,
    };
    let guard_states = crate::guards::states(conn, key).await?;
    let mut facts = facts;
    facts.guards_not_ok = crate::guards::not_ok(plan, &guard_states, now);
    Ok(Facts {
        facts,
        ticks,
        signoffs,
        phase_since,
        guard_states,
    })
}

/// The plan of `key` (created from the seed template on first use) with the gates of the next
/// phase evaluated at `now`, the change advancing would make and its approval.
pub async fn get(pool: &PgPool, key: &str, now: DateTime<Utc>) -> Result<PlanState, Error> {
    let mut tx = pool.begin().await?;
    let plan = load(&mut tx, key).await?;
    let Facts {
        mut facts,
        ticks,
        signoffs,
        phase_since,
        guard_states,
    } = facts(&mut tx, key, &plan, now).await?;
    let (rollout, version) = crate::flags::read_flag(&mut tx, key).await?;
    let phase = rollout.phase;
    let next = phase.next(&DEFAULT_LADDER);
    let proposal = match next {
        Some(n) => Some(
            crate::gates::propose_cached(&mut tx, key, &rollout, &rollout.with_phase(n), version)
                .await?,
        ),
        None => None,
    };
    let requests =
        crate::gates::requests(&mut tx, key, proposal.as_ref().map(|p| p.hash.as_str())).await?;
    let unmet = match &proposal {
        Some(p) => {
            facts.approval = crate::gates::approval(&plan.settings, &requests, &p.hash);
            flags::plan::unmet_for_change(&plan.document, &plan.gates, phase, p.to, &facts)
        }
        None => Vec::new(),
    };
    let overdue = plan
        .gates
        .iter()
        .find(|g| Some(g.phase) == next)
        .is_some_and(|g| flags::plan::decision_overdue(g, &facts));
    tx.commit().await?;
    Ok(PlanState {
        flag_key: key.to_string(),
        unmet_text: unmet.iter().map(ToString::to_string).collect(),
        document: plan.document,
        gates: plan.gates,
        guards: plan.guards,
        guard_states,
        paused: plan.paused,
        settings: plan.settings,
        phase,
        phase_since,
        next,
        unmet,
        decision_overdue: overdue,
        proposal,
        requests,
        ticks,
        signoffs,
        version: plan.version,
    })
}

/// Replaces the plan's document with one imported from Markdown (ticks and sign-offs of items
/// that still exist keep counting). Audited.
pub async fn import(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    markdown: &str,
) -> Result<PlanDocument, Error> {
    let document =
        flags::plan::import_markdown(markdown).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let before = to_json(&load_for_update(&mut tx, key).await?.document)?;
    let after = to_json(&document)?;
    write_document(
        &mut tx,
        actor,
        key,
        &after,
        "plan.import",
        before,
        after.clone(),
    )
    .await?;
    tx.commit().await?;
    Ok(document)
}

/// Stores `document` as the plan of `key` (a new plan version) and audits `action` with what
/// changed. The caller holds the row ([`load_for_update`]).
async fn write_document(
    conn: &mut PgConnection,
    actor: &Actor,
    key: &str,
    document: &serde_json::Value,
    action: &str,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE rollout_plans SET document = $2, version = version + 1, updated_at = now() WHERE flag_key = $1",
    )
    .bind(key)
    .bind(document)
    .execute(&mut *conn)
    .await?;
    actor
        .audit(conn, action, Some(key), None, Some(before), Some(after))
        .await
}

/// Ticks (or unticks) a checklist item of the plan, with an optional note. Audited; the history
/// keeps every tick.
pub async fn tick(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    checklist: &str,
    item: &str,
    ticked: bool,
    note: &str,
) -> Result<TickRow, Error> {
    if note.chars().count() > 2000 {
        return Err(Error::Invalid("a note has at most 2000 characters".into()));
    }
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let document = load(&mut tx, key).await?.document;
    let known = document
        .checklists
        .iter()
        .any(|c| c.name == checklist && c.items.iter().any(|i| i == item));
    if !known {
        return Err(Error::Invalid(format!(
            "the plan of {key:?} has no item {item:?} in checklist {checklist:?}"
        )));
    }
    let row: TickRow = sqlx::query_as(
        "INSERT INTO plan_ticks (flag_key, checklist, item, ticked, note, actor) VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING checklist, item, ticked, note, actor, at",
    )
    .bind(key)
    .bind(checklist)
    .bind(item)
    .bind(ticked)
    .bind(note)
    .bind(&actor.name)
    .fetch_one(&mut *tx)
    .await?;
    let details =
        serde_json::json!({ "checklist": checklist, "item": item, "ticked": ticked, "note": note });
    actor
        .audit(&mut tx, "plan.tick", Some(key), None, None, Some(details))
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// Signs (or withdraws) a milestone as `role`, which must own it (see [`owner_roles`]; admins
/// sign everything). Audited; the history keeps every signature.
pub async fn sign(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    milestone: &str,
    signed: bool,
    role: &str,
) -> Result<SignoffRow, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let document = load(&mut tx, key).await?.document;
    let Some(owner) = document
        .milestones
        .iter()
        .find(|m| m.name == milestone)
        .map(|m| m.owner.as_str())
    else {
        return Err(Error::Invalid(format!(
            "the plan of {key:?} has no milestone {milestone:?}"
        )));
    };
    let roles = owner_roles(owner);
    if !roles.contains(&role) {
        return Err(Error::Forbidden(format!(
            "{milestone:?} is signed by its owner ({owner}: role {}); you are {role}",
            roles.join(" or ")
        )));
    }
    let row: SignoffRow = sqlx::query_as(
        "INSERT INTO plan_signoffs (flag_key, milestone, signed, actor, role) VALUES ($1, $2, $3, $4, $5) \
         RETURNING milestone, signed, actor, role, at",
    )
    .bind(key)
    .bind(milestone)
    .bind(signed)
    .bind(&actor.name)
    .bind(role)
    .fetch_one(&mut *tx)
    .await?;
    let details = serde_json::json!({ "milestone": milestone, "signed": signed, "role": role });
    actor
        .audit(
            &mut tx,
            "plan.signoff",
            Some(key),
            None,
            None,
            Some(details),
        )
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// The roles approvals may name.
pub const APPROVER_ROLES: [&str; 4] = ["admin", "product_owner", "qa", "dba"];

/// Changes the plan's approval, automation and alert settings and, when given, its gates and its
/// guards. Audited (`plan.settings`, before and after).
pub async fn set_settings(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    settings: &Settings,
    gates: Option<&[PhaseGates]>,
    guards: Option<&[GuardSpec]>,
) -> Result<(), Error> {
    if !ON_ALERT.contains(&settings.on_alert.as_str()) {
        return Err(Error::Invalid(format!(
            "on_alert must be one of {}, got {:?}",
            ON_ALERT.join(", "),
            settings.on_alert
        )));
    }
    if let Some(guards) = guards {
        crate::guards::validate(guards)?;
    }
    if let Some(bad) = settings
        .approver_roles
        .iter()
        .find(|r| !APPROVER_ROLES.contains(&r.as_str()))
    {
        return Err(Error::Invalid(format!(
            "unknown approver role {bad:?}; roles are {}",
            APPROVER_ROLES.join(", ")
        )));
    }
    if settings.approvals_required && settings.approver_roles.is_empty() {
        return Err(Error::Invalid(
            "approvals are required but no role may approve: name at least one approver role"
                .into(),
        ));
    }
    if let Some(gates) = gates {
        let mut phases: Vec<Phase> = gates.iter().map(|g| g.phase).collect();
        phases.sort();
        if let Some(w) = phases.windows(2).find(|w| w.first() == w.get(1)) {
            return Err(Error::Invalid(format!(
                "the gates name phase {} twice",
                w.first().map(ToString::to_string).unwrap_or_default()
            )));
        }
        if let Some(g) = gates.iter().find(|g| g.phase == Phase::Off) {
            return Err(Error::Invalid(format!(
                "entering {} is never gated (it is the rollback target)",
                g.phase
            )));
        }
    }
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let before = load_for_update(&mut tx, key).await?;
    let gates_json = match gates {
        Some(g) => to_json(&g)?,
        None => to_json(&before.gates)?,
    };
    let guards_json = match guards {
        Some(g) => to_json(&g)?,
        None => to_json(&before.guards)?,
    };
    sqlx::query(
        "UPDATE rollout_plans SET approvals_required = $2, approver_roles = $3, auto_advance = $4, \
         gates = $5, guards = $6, on_alert = $7, version = version + 1, updated_at = now() WHERE flag_key = $1",
    )
    .bind(key)
    .bind(settings.approvals_required)
    .bind(&settings.approver_roles)
    .bind(settings.auto_advance)
    .bind(&gates_json)
    .bind(&guards_json)
    .bind(&settings.on_alert)
    .execute(&mut *tx)
    .await?;
    actor
        .audit(
            &mut tx,
            "plan.settings",
            Some(key),
            None,
            Some(serde_json::json!({ "settings": to_json(&before.settings)?, "gates": to_json(&before.gates)?, "guards": to_json(&before.guards)? })),
            Some(serde_json::json!({ "settings": to_json(settings)?, "gates": gates_json, "guards": guards_json })),
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces the plan's Contacts table (role and contact, each 1–200 characters, at most 50 rows).
/// Audited (`plan.contacts`).
pub async fn set_contacts(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    contacts: &[flags::plan::Contact],
) -> Result<(), Error> {
    if contacts.len() > 50 {
        return Err(Error::Invalid("a plan has at most 50 contacts".into()));
    }
    for (i, c) in contacts.iter().enumerate() {
        for (what, v) in [("role", &c.role), ("contact", &c.contact)] {
            let n = v.trim().chars().count();
            if n == 0 || n > 200 {
                return Err(Error::Invalid(format!(
                    "contact {}: the {what} must be 1-200 characters",
                    i + 1
                )));
            }
        }
    }
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let mut plan = load_for_update(&mut tx, key).await?;
    let before = to_json(&plan.document.contacts)?;
    plan.document.contacts = contacts
        .iter()
        .map(|c| flags::plan::Contact {
            role: c.role.trim().to_string(),
            contact: c.contact.trim().to_string(),
        })
        .collect();
    let after = to_json(&plan.document.contacts)?;
    let document = to_json(&plan.document)?;
    write_document(
        &mut tx,
        actor,
        key,
        &document,
        "plan.contacts",
        before,
        after,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The Rollgate roles that may sign for a plan's owner label: `DevOps` → admin; `DBA` → dba;
/// `QA` → qa; `Product` → product_owner; `Team` (and anything else) → any of them. Admins may
/// sign everything.
pub fn owner_roles(owner: &str) -> &'static [&'static str] {
    match owner.trim().to_ascii_lowercase().as_str() {
        "devops" => &["admin"],
        "dba" => &["dba", "admin"],
        "qa" => &["qa", "admin"],
        "product" => &["product_owner", "admin"],
        _ => &["admin", "product_owner", "qa", "dba"],
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn owners_map_to_roles() {
        assert_eq!(super::owner_roles("DBA"), ["dba", "admin"]);
        assert_eq!(super::owner_roles(" qa "), ["qa", "admin"]);
        assert_eq!(super::owner_roles("Product"), ["product_owner", "admin"]);
        assert_eq!(super::owner_roles("DevOps"), ["admin"]);
        assert!(super::owner_roles("Team").contains(&"qa"));
    }
}
