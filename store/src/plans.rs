//! Rollout plans: the document and gates per flag, checklist ticks and sign-offs with their
//! history, and the gates of the next phase evaluated with `flags::plan`.
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use flags::plan::{GateFacts, PhaseGates, PlanDocument, Unmet};
use flags::{Phase, DEFAULT_LADDER};
use serde::Serialize;

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
    /// Plan version.
    pub version: i64,
}

fn seed_document() -> Result<PlanDocument, Error> {
    flags::plan::import_markdown(flags::plan::SEED_PLAN).map_err(|e| Error::Invalid(e.to_string()))
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::Invalid(format!("encoding the plan: {e}")))
}

/// The stored plan of `key`: its document, gates and version. A flag without one gets the seed
/// template on first use; an unknown flag is `NotFound`.
async fn load(pool: &PgPool, key: &str) -> Result<(PlanDocument, Vec<PhaseGates>, i64), Error> {
    const SELECT: &str = "SELECT document, gates, version FROM rollout_plans WHERE flag_key = $1";
    let row: Option<(serde_json::Value, serde_json::Value, i64)> = sqlx::query_as(SELECT)
        .bind(key)
        .fetch_optional(pool)
        .await?;
    let (document, gates, version) = match row {
        Some(row) => row,
        None => {
            crate::flags::get(pool, key).await?;
            sqlx::query(
                "INSERT INTO rollout_plans (flag_key, document, gates) VALUES ($1, $2, $3) \
                 ON CONFLICT (flag_key) DO NOTHING",
            )
            .bind(key)
            .bind(to_json(&seed_document()?)?)
            .bind(to_json(&flags::plan::seed_gates())?)
            .execute(pool)
            .await?;
            sqlx::query_as(SELECT).bind(key).fetch_one(pool).await?
        }
    };
    let document: PlanDocument = serde_json::from_value(document)
        .map_err(|e| Error::Invalid(format!("stored plan of {key:?} is unreadable: {e}")))?;
    let gates: Vec<PhaseGates> = serde_json::from_value(gates)
        .map_err(|e| Error::Invalid(format!("stored gates of {key:?} are unreadable: {e}")))?;
    Ok((document, gates, version))
}

/// The plan of `key` (created from the seed template on first use) with the gates of the next
/// phase evaluated at `now`.
pub async fn get(pool: &PgPool, key: &str, now: DateTime<Utc>) -> Result<PlanState, Error> {
    let (document, gates, version) = load(pool, key).await?;
    let ticks: Vec<TickRow> = sqlx::query_as(
        "SELECT DISTINCT ON (checklist, item) checklist, item, ticked, note, actor, at \
         FROM plan_ticks WHERE flag_key = $1 ORDER BY checklist, item, id DESC",
    )
    .bind(key)
    .fetch_all(pool)
    .await?;
    let signoffs: Vec<SignoffRow> = sqlx::query_as(
        "SELECT DISTINCT ON (milestone) milestone, signed, actor, role, at \
         FROM plan_signoffs WHERE flag_key = $1 ORDER BY milestone, id DESC",
    )
    .bind(key)
    .fetch_all(pool)
    .await?;
    let phase_since: DateTime<Utc> = sqlx::query_scalar(
        "SELECT coalesce((SELECT max(at) FROM audit_log WHERE flag_key = $1 \
                          AND action IN ('rollout.apply', 'rollout.kill')), \
                         (SELECT created_at FROM flags WHERE key = $1))",
    )
    .bind(key)
    .fetch_one(pool)
    .await?;
    let flag = crate::flags::get(pool, key).await?;
    let counts = crate::migrations::counts(pool).await?;
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
        guards_not_ok: BTreeSet::new(),
        migrations_ready: counts.ready(),
    };
    let phase = flag.rollout.phase;
    let next = phase.next(&DEFAULT_LADDER);
    let unmet = match next.and_then(|n| gates.iter().find(|g| g.phase == n)) {
        Some(g) => flags::plan::unmet(&document, g, &facts),
        None => Vec::new(),
    };
    Ok(PlanState {
        flag_key: key.to_string(),
        unmet_text: unmet.iter().map(ToString::to_string).collect(),
        document,
        gates,
        phase,
        phase_since,
        next,
        unmet,
        ticks,
        signoffs,
        version,
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
    load(pool, key).await?;
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let before: serde_json::Value =
        sqlx::query_scalar("SELECT document FROM rollout_plans WHERE flag_key = $1 FOR UPDATE")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
    let after = to_json(&document)?;
    sqlx::query(
        "UPDATE rollout_plans SET document = $2, version = version + 1, updated_at = now() WHERE flag_key = $1",
    )
    .bind(key)
    .bind(&after)
    .execute(&mut *tx)
    .await?;
    actor
        .audit(
            &mut tx,
            "plan.import",
            Some(key),
            None,
            Some(before),
            Some(after),
        )
        .await?;
    tx.commit().await?;
    Ok(document)
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
    let (document, _, _) = load(pool, key).await?;
    let known = document
        .checklists
        .iter()
        .any(|c| c.name == checklist && c.items.iter().any(|i| i == item));
    if !known {
        return Err(Error::Invalid(format!(
            "the plan of {key:?} has no item {item:?} in checklist {checklist:?}"
        )));
    }
    if note.chars().count() > 2000 {
        return Err(Error::Invalid("a note has at most 2000 characters".into()));
    }
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
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

/// Signs (or withdraws) a milestone as `role`. The caller checks that the role owns the
/// milestone (see [`owner_roles`]). Audited; the history keeps every signature.
pub async fn sign(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    milestone: &str,
    signed: bool,
    role: &str,
) -> Result<SignoffRow, Error> {
    let (document, _, _) = load(pool, key).await?;
    if !document.milestones.iter().any(|m| m.name == milestone) {
        return Err(Error::Invalid(format!(
            "the plan of {key:?} has no milestone {milestone:?}"
        )));
    }
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
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

/// The owner label of a milestone in the plan.
pub fn milestone_owner<'a>(plan: &'a PlanState, milestone: &str) -> Option<&'a str> {
    plan.document
        .milestones
        .iter()
        .find(|m| m.name == milestone)
        .map(|m| m.owner.as_str())
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
