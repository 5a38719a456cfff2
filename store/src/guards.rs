//! Guard readings and what an alert does. The monitor (in the server) fetches each guard's samples
//! and classifies them with `flags::guard`; this module stores the latest reading per guard, the
//! history of level changes, pauses the rollout on the first alert (and steps it back or turns it
//! off when the plan says so), and lets a person resume it. Nothing here resumes on its own.
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use flags::guard::{GuardSpec, Level, Reading};
use flags::Phase;
use serde::Serialize;
use sqlx::PgConnection;

use crate::plans::Plan;
use crate::{Actor, Error, PgPool};

/// A reading older than this does not count: the gate holds until the monitor reads again.
pub const STALE_AFTER_MINUTES: i64 = 10;

/// The latest reading of a guard.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct GuardState {
    /// Guard name.
    pub guard: String,
    /// `ok`, `warning`, `alert` or `hold`.
    pub level: String,
    /// The value the thresholds were applied to.
    pub value: Option<f64>,
    /// Per tenant: the tenants without the flag.
    pub others: Option<f64>,
    /// In words.
    pub detail: String,
    /// Since when it has been at this level.
    pub since: DateTime<Utc>,
    /// When it was read.
    pub at: DateTime<Utc>,
}

/// Checks guards before they are stored: unique names, a query, finite thresholds on the right
/// side of each other.
pub fn validate(guards: &[GuardSpec]) -> Result<(), Error> {
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

/// The latest reading of every guard of `key`.
pub(crate) async fn states(conn: &mut PgConnection, key: &str) -> Result<Vec<GuardState>, Error> {
    Ok(sqlx::query_as(
        "SELECT guard, level, value, others, detail, since, at FROM guard_state WHERE flag_key = $1 ORDER BY guard",
    )
    .bind(key)
    .fetch_all(conn)
    .await?)
}

/// The guards of `plan` that do not pass at `now`, with why: not ok, never read, read too long
/// ago, or named by a gate but not defined.
pub(crate) fn not_ok(
    plan: &Plan,
    states: &[GuardState],
    now: DateTime<Utc>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let stale = now - Duration::minutes(STALE_AFTER_MINUTES);
    for g in &plan.guards {
        let why = match states.iter().find(|s| s.guard == g.name) {
            None => Some("no reading yet (is PROMETHEUS_URL set?)".to_string()),
            Some(s) if s.at < stale => Some(format!(
                "last read {} UTC, more than {STALE_AFTER_MINUTES} min ago",
                s.at.format("%Y-%m-%d %H:%M")
            )),
            Some(s) if s.level != Level::Ok.as_str() => Some(format!("{}: {}", s.level, s.detail)),
            Some(_) => None,
        };
        if let Some(why) = why {
            out.insert(g.name.clone(), why);
        }
    }
    for gate in &plan.gates {
        for name in &gate.guards {
            if !plan.guards.iter().any(|g| &g.name == name) {
                out.insert(name.clone(), "not defined in this plan".into());
            }
        }
    }
    out
}

/// A flag the monitor watches: not OFF, with guards.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Flag.
    pub key: String,
    /// Its guards.
    pub guards: Vec<GuardSpec>,
}

/// Every flag in a monitoring window (any phase but OFF) whose plan has guards.
pub async fn watched(pool: &PgPool) -> Result<Vec<Watched>, Error> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT f.key FROM flags f JOIN rollout_plans p ON p.flag_key = f.key \
         WHERE f.rollout->>'phase' <> 'off' ORDER BY f.key",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    let mut conn = pool.acquire().await?;
    for key in keys {
        let guards = crate::plans::load(&mut conn, &key).await?.guards;
        if !guards.is_empty() {
            out.push(Watched { key, guards });
        }
    }
    Ok(out)
}

/// Stores `reading` as the latest of `guard` at `at` (and a history row when its level changed).
/// Returns the level it had before, if any.
pub async fn record(
    pool: &PgPool,
    key: &str,
    guard: &str,
    reading: &Reading,
    at: DateTime<Utc>,
) -> Result<Option<Level>, Error> {
    let mut tx = pool.begin().await?;
    let before: Option<String> = sqlx::query_scalar(
        "SELECT level FROM guard_state WHERE flag_key = $1 AND guard = $2 FOR UPDATE",
    )
    .bind(key)
    .bind(guard)
    .fetch_optional(&mut *tx)
    .await?;
    let level = reading.level.as_str();
    sqlx::query(
        "INSERT INTO guard_state (flag_key, guard, level, value, others, detail, since, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (flag_key, guard) DO UPDATE SET level = EXCLUDED.level, value = EXCLUDED.value, \
             others = EXCLUDED.others, detail = EXCLUDED.detail, at = EXCLUDED.at, \
             since = CASE WHEN guard_state.level = EXCLUDED.level THEN guard_state.since ELSE EXCLUDED.since END",
    )
    .bind(key)
    .bind(guard)
    .bind(level)
    .bind(reading.value)
    .bind(reading.others)
    .bind(&reading.detail)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    if before.as_deref() != Some(level) {
        sqlx::query(
            "INSERT INTO guard_transitions (flag_key, guard, level, value, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key)
        .bind(guard)
        .bind(level)
        .bind(reading.value)
        .bind(&reading.detail)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(before.as_deref().and_then(Level::parse))
}

/// What the monitor did about an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertAction {
    /// Already paused: nothing more (an alert acts once until someone resumes).
    AlreadyPaused,
    /// Paused.
    Paused,
    /// Paused and moved one phase down, to this phase.
    SteppedBack(Phase),
    /// Paused and turned off everywhere.
    TurnedOff,
}

/// A guard of `key` is in alert at `at`: pauses the rollout (once), writes a `guard.alert` audit
/// row, and does what the plan's `on_alert` says (`previous`: one phase down; `off`: the kill
/// switch), as Rollgate itself (`rollgate:guard`, source `system`).
pub async fn alert(
    pool: &PgPool,
    key: &str,
    guard: &GuardSpec,
    reading: &Reading,
    at: DateTime<Utc>,
) -> Result<AlertAction, Error> {
    let actor = Actor::new("rollgate:guard", crate::Source::System);
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let plan = crate::plans::load_for_update(&mut tx, key).await?;
    if plan.paused.is_some() {
        return Ok(AlertAction::AlreadyPaused);
    }
    let reason = format!("guard {} in alert: {}", guard.name, reading.detail);
    sqlx::query("UPDATE rollout_plans SET paused_at = $2, paused_reason = $3 WHERE flag_key = $1")
        .bind(key)
        .bind(at)
        .bind(&reason)
        .execute(&mut *tx)
        .await?;
    let on_alert = plan.settings.on_alert.clone();
    let details = serde_json::json!({
        "guard": guard.name, "query": guard.query, "value": reading.value, "others": reading.others,
        "detail": reading.detail, "alert_threshold": guard.alert, "action": on_alert,
    });
    actor
        .audit(&mut tx, "guard.alert", Some(key), None, None, Some(details))
        .await?;
    tx.commit().await?;
    Ok(match on_alert.as_str() {
        "previous" => {
            let (phase, _) = crate::flags::step_back(pool, &actor, key).await?;
            AlertAction::SteppedBack(phase)
        }
        "off" => {
            crate::flags::kill(pool, &actor, key).await?;
            AlertAction::TurnedOff
        }
        _ => AlertAction::Paused,
    })
}

/// A person decides the rollout may go on: clears the pause (audited as `plan.resume`). The
/// guards still gate the next advance.
pub async fn resume(pool: &PgPool, actor: &Actor, key: &str) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let Some(paused) = crate::plans::load_for_update(&mut tx, key).await?.paused else {
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
