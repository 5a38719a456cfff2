//! Rollout plan rows: the document, gates, guards and settings per flag, checklist ticks and
//! sign-offs with their history, the pause. Reading a plan never writes: a flag without a stored
//! plan reads as the seed template, and the first change of it stores the template first as an
//! audited `plan.create` with its actor. Evaluating the gates is the write path's job
//! (`crate::rollout`); this module only reads and writes its own rows.
use chrono::{DateTime, Utc};
use flags::change::{OnAlert, Role};
use flags::guard::GuardSpec;
use flags::plan::{PhaseGates, PlanDocument};
use flags::Phase;
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

/// How a plan's phase changes are approved, whether Tenantry advances on its own, and what a
/// guard's alert does.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Settings {
    /// Raising the phase needs a second user's approval of the exact change.
    pub approvals_required: bool,
    /// Roles that may approve (a user other than the requester).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub approver_roles: Vec<Role>,
    /// Advance on its own once every gate holds (audited as Tenantry's own change).
    pub auto_advance: bool,
    /// On a guard's alert, besides pausing: `pause` (nothing more), `previous` (one phase down) or
    /// `off` (the kill switch).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub on_alert: OnAlert,
}

impl Default for Settings {
    /// A new plan's settings (the column defaults): approvals by a product owner or an admin, no
    /// automatic advance, an alert pauses.
    fn default() -> Self {
        Settings {
            approvals_required: true,
            approver_roles: vec![Role::ProductOwner, Role::Admin],
            auto_advance: false,
            on_alert: OnAlert::Pause,
        }
    }
}

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

/// The stored plan of `key`; a flag without one reads as the seed template (nothing is written).
/// An unknown flag is `NotFound`.
pub(crate) async fn load(conn: &mut PgConnection, key: &str) -> Result<Plan, Error> {
    match load_row(conn, key, false).await? {
        Some(plan) => Ok(plan),
        None => seed_plan(conn, key).await,
    }
}

/// [`load`], with the plan's row locked for the rest of the transaction: for read-modify-write
/// changes of the plan, so two of them never both read the old row. A flag without a stored plan
/// gets the seed template stored first, audited as `plan.create` by `actor`.
pub(crate) async fn load_for_update(
    conn: &mut PgConnection,
    actor: &Actor,
    key: &str,
) -> Result<Plan, Error> {
    hold_flag(conn, key).await?;
    if let Some(plan) = load_row(conn, key, true).await? {
        return Ok(plan);
    }
    let seed = seed_plan(conn, key).await?;
    let inserted = sqlx::query(
        "INSERT INTO rollout_plans (flag_key, document, gates) VALUES ($1, $2, $3) \
         ON CONFLICT (flag_key) DO NOTHING",
    )
    .bind(key)
    .bind(to_json(&seed.document)?)
    .bind(to_json(&seed.gates)?)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        actor
            .audit(
                conn,
                "plan.create",
                Some(key),
                None,
                None,
                Some(serde_json::json!({ "template": "seed" })),
            )
            .await?;
    }
    load_row(conn, key, true)
        .await?
        .ok_or_else(|| Error::NotFound(format!("flag {key:?}")))
}

/// Holds the flag's row (`FOR SHARE`) for the rest of the transaction. The write path holds it
/// `FOR UPDATE` while it decides on the plan's facts, so a change of those facts (a tick, a
/// sign-off, the gates, a pause) and a change of who is ON never interleave: one waits for the
/// other. An unknown flag is `NotFound`.
async fn hold_flag(conn: &mut PgConnection, key: &str) -> Result<(), Error> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT key FROM flags WHERE key = $1 FOR SHARE")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    found
        .map(|_| ())
        .ok_or_else(|| Error::NotFound(format!("flag {key:?}")))
}

/// The seed template as the plan of `key`, in memory.
async fn seed_plan(conn: &mut PgConnection, key: &str) -> Result<Plan, Error> {
    let exists: Option<String> = sqlx::query_scalar("SELECT key FROM flags WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(Error::NotFound(format!("flag {key:?}")));
    }
    Ok(Plan {
        document: seed_document()?,
        gates: flags::plan::seed_gates(),
        guards: flags::guard::seed_guards(),
        settings: Settings::default(),
        paused: None,
        version: 0,
    })
}

async fn load_row(conn: &mut PgConnection, key: &str, lock: bool) -> Result<Option<Plan>, Error> {
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
    let Some(row) = row else {
        return Ok(None);
    };
    let unreadable = |what: &str, e: &dyn std::fmt::Display| {
        Error::Invalid(format!("stored {what} of {key:?} is unreadable: {e}"))
    };
    let document: PlanDocument =
        serde_json::from_value(row.document).map_err(|e| unreadable("plan", &e))?;
    let gates: Vec<PhaseGates> =
        serde_json::from_value(row.gates).map_err(|e| unreadable("gates", &e))?;
    let guards: Vec<GuardSpec> = match row.guards {
        None => flags::guard::seed_guards(),
        Some(g) => serde_json::from_value(g).map_err(|e| unreadable("guards", &e))?,
    };
    let approver_roles = row
        .approver_roles
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable("approver roles", &e))?;
    let on_alert = row
        .on_alert
        .parse::<OnAlert>()
        .map_err(|e| unreadable("alert action", &e))?;
    Ok(Some(Plan {
        document,
        gates,
        guards,
        settings: Settings {
            approvals_required: row.approvals_required,
            approver_roles,
            auto_advance: row.auto_advance,
            on_alert,
        },
        paused: row.paused_at.map(|at| Paused {
            at,
            reason: row.paused_reason.unwrap_or_default(),
        }),
        version: row.version,
    }))
}

/// The current state of every checklist item ticked or unticked (latest row per item).
pub(crate) async fn current_ticks(
    conn: &mut PgConnection,
    key: &str,
) -> Result<Vec<TickRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (checklist, item) checklist, item, ticked, note, actor, at \
         FROM plan_ticks WHERE flag_key = $1 ORDER BY checklist, item, id DESC",
    )
    .bind(key)
    .fetch_all(&mut *conn)
    .await?)
}

/// The current state of every milestone signed or withdrawn (latest row per milestone).
pub(crate) async fn current_signoffs(
    conn: &mut PgConnection,
    key: &str,
) -> Result<Vec<SignoffRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT DISTINCT ON (milestone) milestone, signed, actor, role, at \
         FROM plan_signoffs WHERE flag_key = $1 ORDER BY milestone, id DESC",
    )
    .bind(key)
    .fetch_all(&mut *conn)
    .await?)
}

/// When the flag's current phase began: the last audited change of its phase (a rollout change
/// whose phase differs, or the kill switch), else the flag's creation. Edits within a phase —
/// pilots, constraints — do not restart its monitoring window.
pub(crate) async fn phase_since(
    conn: &mut PgConnection,
    key: &str,
) -> Result<DateTime<Utc>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce((SELECT max(at) FROM audit_log WHERE flag_key = $1 \
                          AND (action = 'rollout.kill' \
                               OR (action = 'rollout.apply' AND before->>'phase' IS DISTINCT FROM after->>'phase'))), \
                         (SELECT created_at FROM flags WHERE key = $1))",
    )
    .bind(key)
    .fetch_one(&mut *conn)
    .await?)
}

/// Pauses the plan of `key` at `at` for `reason` (the caller holds the row).
pub(crate) async fn pause(
    conn: &mut PgConnection,
    key: &str,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE rollout_plans SET paused_at = $2, paused_reason = $3 WHERE flag_key = $1")
        .bind(key)
        .bind(at)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// A person decides the rollout may go on: clears the pause (audited as `plan.resume`). The
/// guards still gate the next widening.
pub async fn resume(pool: &PgPool, actor: &Actor, key: &str) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let Some(paused) = load_for_update(&mut tx, actor, key).await?.paused else {
        return Err(Error::Conflict(format!(
            "the rollout of {key:?} is not paused"
        )));
    };
    sqlx::query(
        "UPDATE rollout_plans SET paused_at = NULL, paused_reason = NULL WHERE flag_key = $1",
    )
    .bind(key)
    .execute(&mut *tx)
    .await?;
    actor
        .audit(
            &mut tx,
            "plan.resume",
            Some(key),
            None,
            Some(serde_json::json!({ "paused_at": paused.at, "reason": paused.reason })),
            None,
        )
        .await?;
    tx.commit().await?;
    Ok(())
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
    let before = to_json(&load_for_update(&mut tx, actor, key).await?.document)?;
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
    hold_flag(&mut tx, key).await?;
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
    role: Role,
) -> Result<SignoffRow, Error> {
    sign_noting(pool, actor, key, milestone, signed, role, &[]).await
}

/// [`sign`], recording in the audit entry the checklist items that were still open when the
/// signer confirmed signing anyway (the web app asks first).
pub async fn sign_noting(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    milestone: &str,
    signed: bool,
    role: Role,
    open_items: &[String],
) -> Result<SignoffRow, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    hold_flag(&mut tx, key).await?;
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
    let roles = flags::change::owner_roles(owner).map_err(|e| Error::Invalid(e.to_string()))?;
    if !roles.contains(&role) {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return Err(Error::Forbidden(format!(
            "{milestone:?} is signed by its owner ({owner}: role {}); you are {role}",
            names.join(" or ")
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
    .bind(role.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let mut details =
        serde_json::json!({ "milestone": milestone, "signed": signed, "role": role.as_str() });
    if !open_items.is_empty() {
        details["signed_with_open_items"] = serde_json::json!(open_items);
    }
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

/// A change of [`Settings`]: each field given replaces the stored one, each absent one is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    /// [`Settings::approvals_required`].
    pub approvals_required: Option<bool>,
    /// [`Settings::approver_roles`].
    pub approver_roles: Option<Vec<Role>>,
    /// [`Settings::auto_advance`].
    pub auto_advance: Option<bool>,
    /// [`Settings::on_alert`].
    pub on_alert: Option<OnAlert>,
}

impl From<Settings> for SettingsPatch {
    fn from(s: Settings) -> Self {
        SettingsPatch {
            approvals_required: Some(s.approvals_required),
            approver_roles: Some(s.approver_roles),
            auto_advance: Some(s.auto_advance),
            on_alert: Some(s.on_alert),
        }
    }
}

impl SettingsPatch {
    fn over(&self, before: &Settings) -> Settings {
        Settings {
            approvals_required: self.approvals_required.unwrap_or(before.approvals_required),
            approver_roles: self
                .approver_roles
                .clone()
                .unwrap_or_else(|| before.approver_roles.clone()),
            auto_advance: self.auto_advance.unwrap_or(before.auto_advance),
            on_alert: self.on_alert.unwrap_or(before.on_alert),
        }
    }
}

/// Changes the plan's approval, automation and alert settings (those `patch` gives; the others
/// are kept) and, when given, its gates and its guards. Audited (`plan.settings`, before and
/// after).
pub async fn set_settings(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    patch: &SettingsPatch,
    gates: Option<&[PhaseGates]>,
    guards: Option<&[GuardSpec]>,
) -> Result<(), Error> {
    if let Some(guards) = guards {
        validate_guards(guards)?;
    }
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let before = load_for_update(&mut tx, actor, key).await?;
    let settings = &patch.over(&before.settings);
    if let Some(bad) = settings
        .approver_roles
        .iter()
        .find(|r| !Role::APPROVERS.contains(r))
    {
        return Err(Error::Invalid(format!(
            "a {bad} approves nothing; approver roles are admin, product_owner, qa and dba"
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
    .bind(
        settings
            .approver_roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(settings.auto_advance)
    .bind(&gates_json)
    .bind(&guards_json)
    .bind(settings.on_alert.as_str())
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
    let mut plan = load_for_update(&mut tx, actor, key).await?;
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

/// Checks guards before they are stored: unique names, a query, finite thresholds on the right
/// side of each other.
pub fn validate_guards(guards: &[GuardSpec]) -> Result<(), Error> {
    let mut names = std::collections::BTreeSet::new();
    for g in guards {
        let bad = |why: &str| Err(Error::Invalid(format!("guard {:?}: {why}", g.name)));
        if g.name.trim().is_empty() || g.name.len() > 100 {
            return bad("the name must be 1-100 characters");
        }
        if !names.insert(g.name.as_str()) {
            return bad("the name is used twice");
        }
        if g.query.trim().is_empty() || g.query.len() > 4000 {
            return bad("the query must be 1-4000 characters of PromQL");
        }
        if !g.warn.is_finite() || !g.alert.is_finite() {
            return bad("thresholds must be numbers");
        }
        let ordered = match g.direction {
            flags::guard::Direction::HigherIsWorse => g.warn <= g.alert,
            flags::guard::Direction::LowerIsWorse => g.warn >= g.alert,
        };
        if !ordered {
            return bad("the normal-range edge (warn) must come before the alert threshold");
        }
    }
    Ok(())
}
