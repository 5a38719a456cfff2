//! The one write path for every change of who is ON. The web app, REST, the seed's endpoint, the
//! CLI, automatic advance, guard actions and the per-tenant switch all call [`change`]:
//!
//! 1. lock the flag and check its version;
//! 2. compute the effect with `flags` — the state before, the state after, the tenants turned ON
//!    and OFF ([`Spec`] says what is asked for);
//! 3. decide with `flags::change::decide` — a pure function of the plan, the facts (ticks,
//!    sign-offs, windows, guards, migrations, pause, approval of this exact change), the effect
//!    and the override;
//! 4. write only the differing rows, store the rollout, audit, and commit (the row triggers audit
//!    each row and `NOTIFY` every instance).
//!
//! The gates are on the effect, not on the door: any change that turns a tenant ON, or raises the
//! phase, passes them; narrowing never waits. Raw SQL stays outside (ungated, audited by the
//! triggers). This module sits above the row modules (`flags`, `plans`, `guards`, `approvals`),
//! which never call each other.
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use flags::change::{decide, Effect, OnAlert, Role, RollbackTarget, Verdict};
use flags::guard::{GuardSpec, Level, Reading};
use flags::plan::{Approval, GateFacts, PhaseGates, PlanDocument, Unmet};
use flags::{FlagState, Phase, Rollout, Tenant, DEFAULT_LADDER};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::approvals::{self, ChangeRequest, NewRequest};
use crate::flags::{self as rows, Change};
use crate::guards::{self, GuardState, STALE_AFTER_MINUTES};
use crate::plans::{self, Paused, Plan, Settings, SignoffRow, TickRow};
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

/// A change of who is ON, as a door asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spec {
    /// One rung up the default ladder (OFF → pilot → 10% → 50% → 100%).
    Advance,
    /// A rollback (`off`: every row OFF, the seed's Quick Rollback; `previous`: one rung down).
    Rollback(RollbackTarget),
    /// A whole rollout: phase, pilots, constraints (the editor, `PUT …/rollout`).
    Rollout(Rollout),
    /// The per-tenant switch: enabling makes the tenant a pilot (and moves an OFF flag to the pilot
    /// phase with this tenant as its only pilot); disabling removes it from the pilots and turns its
    /// row off; `excluded` quarantines or releases it.
    Tenant {
        /// The tenant.
        tenant: String,
        /// ON or OFF.
        enabled: bool,
        /// Quarantine (true), release (false), or keep (absent).
        #[serde(default)]
        excluded: Option<bool>,
    },
}

/// What a change did: the phase the flag is now in, and the tenants it flipped.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The phase after the change.
    pub phase: Phase,
    /// The version and the tenants turned ON and OFF.
    pub change: Change,
}

/// A change computed on the locked flag: its target, both states and their diff.
struct Planned {
    old: Rollout,
    version: i64,
    target: Rollout,
    after: FlagState,
    tenants: Arc<Vec<Tenant>>,
    diff: flags::Diff,
    before: FlagState,
}

impl Planned {
    fn effect(&self) -> Effect {
        Effect {
            from: self.old.phase,
            to: self.target.phase,
            turned_on: self.diff.turned_on.len(),
            turned_off: self.diff.turned_off.len(),
            on_after: self.on_after(),
            tenants: self.tenants.len(),
        }
    }

    /// Live tenants ON after the change.
    fn on_after(&self) -> usize {
        self.tenants
            .iter()
            .filter(|t| self.after.is_on(&t.id))
            .count()
    }

    /// SHA-256 of (flag, version, target rollout, tenants turned on, tenants turned off, every
    /// tenant ON after): what an approval binds to. Any row change bumps the version, so any edit
    /// voids an approval.
    fn hash(&self, key: &str) -> Result<String, Error> {
        let target =
            serde_json::to_string(&self.target).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut h = Sha256::new();
        h.update(b"rollgate-change-v1\n");
        for part in [key, &self.version.to_string(), &target] {
            h.update(part.as_bytes());
            h.update(b"\n");
        }
        for (label, ids) in [("on", &self.diff.turned_on), ("off", &self.diff.turned_off)] {
            h.update(label.as_bytes());
            for id in ids {
                h.update(b"\x1f");
                h.update(id.as_bytes());
            }
            h.update(b"\n");
        }
        h.update(b"after");
        for t in self.tenants.iter().filter(|t| self.after.is_on(&t.id)) {
            h.update(b"\x1f");
            h.update(t.id.as_bytes());
        }
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    fn proposal(&self, key: &str) -> Result<Proposal, Error> {
        Ok(Proposal {
            from: self.old.phase,
            to: self.target.phase,
            version: self.version,
            hash: self.hash(key)?,
            turned_on: self.diff.turned_on.len(),
            turned_off: self.diff.turned_off.len(),
            on_after: self.on_after(),
            tenants: self.tenants.len(),
        })
    }
}

/// Computes what `spec` does to `key` (at rollout `old`, `version`) without writing anything.
async fn plan(
    conn: &mut PgConnection,
    key: &str,
    old: &Rollout,
    version: i64,
    spec: &Spec,
) -> Result<Planned, Error> {
    plan_over(conn, key, old, version, spec, None).await
}

/// [`plan`] over `tenants` (the live tenants, loaded by the caller) when given.
async fn plan_over(
    conn: &mut PgConnection,
    key: &str,
    old: &Rollout,
    version: i64,
    spec: &Spec,
    tenants: Option<Arc<Vec<Tenant>>>,
) -> Result<Planned, Error> {
    let target = match spec {
        Spec::Advance => {
            let next = old.phase.next(&DEFAULT_LADDER).ok_or_else(|| {
                Error::Invalid(format!("flag {key:?} is already at {}", old.phase))
            })?;
            old.with_phase(next)
        }
        Spec::Rollback(RollbackTarget::Off) => old.with_phase(Phase::Off),
        Spec::Rollback(RollbackTarget::Previous) => {
            old.with_phase(old.phase.previous(&DEFAULT_LADDER).unwrap_or(Phase::Off))
        }
        Spec::Rollout(r) => {
            rows::check_pilots(conn, r).await?;
            r.clone()
        }
        Spec::Tenant {
            tenant, enabled, ..
        } => {
            if !rows::tenant_is_live(conn, tenant).await? {
                return Err(Error::NotFound(format!("tenant {tenant:?}")));
            }
            let mut r = old.clone();
            if *enabled {
                if r.phase == Phase::Off {
                    // Starting a pilot from OFF: exactly this tenant, not the pilots of an
                    // earlier, rolled-back attempt.
                    r.pilots.clear();
                    r.phase = Phase::Pilot;
                }
                r.pilots.insert(tenant.clone());
            } else {
                r.pilots.remove(tenant);
            }
            r
        }
    };
    let tenants = match tenants {
        Some(t) => t,
        None => Arc::new(rows::live_tenants(conn).await?),
    };
    let before = rows::flag_state(conn, key, old).await?;
    let mut after = match spec {
        // The seed's Quick Rollback: every row OFF (`UPDATE feature_flags SET enabled = false`).
        Spec::Rollback(RollbackTarget::Off) => FlagState {
            enabled: false,
            on: flags::IdSet::default(),
            excluded: before.excluded.clone(),
            target: Some(target.target()),
        },
        _ => old.apply(&before, key, &target, &tenants),
    };
    // A rollback and the per-tenant switch touch nobody else: a tenant switched off by hand
    // inside both the old and the new target stays off (re-materialising the target would turn
    // it back on — and a rollback must never turn anyone ON).
    if matches!(spec, Spec::Rollback(_) | Spec::Tenant { .. }) {
        after.on.retain(|id| before.on.contains(id));
    }
    if let Spec::Tenant {
        tenant,
        enabled,
        excluded,
    } = spec
    {
        if *enabled {
            after.on.insert(tenant.clone());
        } else {
            after.on.remove(tenant);
        }
        match excluded {
            Some(true) => {
                after.excluded.insert(tenant.clone());
            }
            Some(false) => {
                after.excluded.remove(tenant);
            }
            None => {}
        }
    }
    if let Spec::Tenant {
        tenant,
        enabled: false,
        ..
    } = spec
    {
        if after.is_on(tenant) {
            return Err(Error::Invalid(format!(
                "{tenant:?} stays ON: at {} the flag is ON for every tenant through its global row; exclude the tenant (\"excluded\": true) or roll the flag back",
                target.phase
            )));
        }
    }
    let diff = flags::diff(&before, &after, tenants.iter().map(|t| t.id.as_str()));
    Ok(Planned {
        old: old.clone(),
        version,
        target,
        after,
        tenants,
        diff,
        before,
    })
}

/// Makes the change `spec` asks for, through the gates (see the module documentation). With
/// `expected_version`, refuses with [`Error::Conflict`] when someone changed the flag since.
/// Refuses a widening with [`Error::Paused`] while a guard's pause stands, with [`Error::Gated`]
/// when a gate does not hold and no override was given; an override is audited as
/// `gate.override` with the gates it passed.
pub async fn change(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    spec: &Spec,
    expected_version: Option<i64>,
    gating: &Gating,
) -> Result<Applied, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let (old, version) = rows::lock_flag(&mut tx, key).await?;
    if let Some(expected) = expected_version {
        if expected != version {
            return Err(Error::Conflict(format!(
                "flag {key:?} changed meanwhile: it is at version {version}, the edit was made on version {expected}"
            )));
        }
    }
    let p = plan(&mut tx, key, &old, version, spec).await?;
    let effect = p.effect();
    if effect.widens() {
        let plan = plans::load(&mut tx, key).await?;
        let ready = migrations_ready(&mut tx).await?;
        let mut facts = gate_facts(&mut tx, key, &plan, gating.now, ready)
            .await?
            .facts;
        let hash = p.hash(key)?;
        facts.approval = approval_of(&mut tx, key, &plan.settings, &hash).await?;
        let verdict = decide(
            &plan.document,
            &plan.gates,
            &effect,
            &facts,
            gating.override_reason.is_some(),
        );
        match verdict {
            Verdict::Narrowing | Verdict::Pass => {}
            Verdict::Paused(reason) => return Err(Error::Paused { reason }),
            Verdict::Refused(unmet) => {
                return Err(Error::Gated {
                    phase: p.target.phase.to_string(),
                    approval_only: !unmet.is_empty()
                        && unmet.iter().all(|u| matches!(u, Unmet::Approval { .. })),
                    unmet: unmet.iter().map(ToString::to_string).collect(),
                })
            }
            Verdict::Overridden(unmet) => {
                let reason = gating.override_reason.as_deref().unwrap_or_default();
                if reason.chars().count() > 1000 {
                    return Err(Error::Invalid(
                        "an override reason has at most 1000 characters".into(),
                    ));
                }
                let details = serde_json::json!({
                    "from": p.old.phase.to_string(),
                    "to": p.target.phase.to_string(),
                    "reason": reason.trim(),
                    "unmet": unmet.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "change_hash": hash,
                    "turned_on": effect.turned_on,
                });
                actor
                    .audit(
                        &mut tx,
                        "gate.override",
                        Some(key),
                        None,
                        None,
                        Some(details),
                    )
                    .await?;
            }
        }
        approvals::mark_applied(&mut tx, key, &hash).await?;
    }
    rows::write_rows(&mut tx, key, &p.before, &p.after).await?;
    rows::set_rollout(&mut tx, key, &p.target).await?;
    let action = match spec {
        Spec::Rollback(RollbackTarget::Off) => Some("rollout.kill"),
        _ if p.old != p.target => Some("rollout.apply"),
        _ => None,
    };
    if let Some(action) = action {
        actor
            .audit(
                &mut tx,
                action,
                Some(key),
                None,
                serde_json::to_value(&p.old).ok(),
                serde_json::to_value(&p.target).ok(),
            )
            .await?;
    }
    let version = rows::version(&mut tx, key).await?;
    tx.commit().await?;
    Ok(Applied {
        phase: p.target.phase,
        change: Change {
            version,
            turned_on: p.diff.turned_on,
            turned_off: p.diff.turned_off,
        },
    })
}

fn role_names(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_string()).collect()
}

// ------------------------------------------------------------------------------------- facts

/// What the gates are checked against, read from the plan's history: ticks, sign-offs, the start
/// of the current phase, guards, migrations, the pause. The approval is the caller's (it depends
/// on the change).
pub(crate) struct Facts {
    pub facts: GateFacts,
    pub ticks: Vec<TickRow>,
    pub signoffs: Vec<SignoffRow>,
    pub phase_since: DateTime<Utc>,
    pub guard_states: Vec<GuardState>,
}

/// The migrations gate's fact: no pending or drifted migration (the same for every flag).
async fn migrations_ready(conn: &mut PgConnection) -> Result<bool, Error> {
    Ok(crate::migrations::counts_in(conn).await?.ready())
}

async fn gate_facts(
    conn: &mut PgConnection,
    key: &str,
    plan: &Plan,
    now: DateTime<Utc>,
    migrations_ready: bool,
) -> Result<Facts, Error> {
    let ticks = plans::current_ticks(conn, key).await?;
    let signoffs = plans::current_signoffs(conn, key).await?;
    let phase_since = plans::phase_since(conn, key).await?;
    let guard_states = guards::states(conn, key).await?;
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
            .collect(),
        guards_not_ok: not_ok(plan, &guard_states, now),
        paused: plan.paused.as_ref().map(|p| p.reason.clone()),
        migrations_ready,
        approval: Approval::NotRequired,
    };
    Ok(Facts {
        facts,
        ticks,
        signoffs,
        phase_since,
        guard_states,
    })
}

/// The guards of `plan` that do not pass at `now`, with why: not ok, never read, read too long
/// ago, or named by a gate but not defined.
fn not_ok(plan: &Plan, states: &[GuardState], now: DateTime<Utc>) -> BTreeMap<String, String> {
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

/// The gates the next rung needs, as the write path would judge advancing now (the pause first,
/// then [`flags::change::gates_for`]).
fn next_unmet(
    document: &PlanDocument,
    gates: &[PhaseGates],
    effect: &Effect,
    facts: &GateFacts,
) -> Vec<Unmet> {
    let mut out: Vec<Unmet> = facts
        .paused
        .iter()
        .map(|reason| Unmet::Paused {
            reason: reason.clone(),
        })
        .collect();
    out.extend(flags::change::gates_for(document, gates, effect, facts));
    out
}

// ----------------------------------------------------------------------- proposals and views

/// A change as the gates see it: where it goes and exactly what it flips.
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
    /// SHA-256 of (flag, version, target rollout, tenants turned on, tenants turned off, tenants ON
    /// after): what an approval binds to.
    pub hash: String,
    /// Tenants the change turns on.
    pub turned_on: usize,
    /// Tenants the change turns off.
    pub turned_off: usize,
    /// Live tenants ON after the change.
    pub on_after: usize,
    /// Live tenants.
    pub tenants: usize,
}

impl Proposal {
    fn effect(&self) -> Effect {
        Effect {
            from: self.from,
            to: self.to,
            turned_on: self.turned_on,
            turned_off: self.turned_off,
            on_after: self.on_after,
            tenants: self.tenants,
        }
    }
}

/// Proposals already computed, by (flag, flag version, [`state_version`]): any change to the flag,
/// its rows or the tenants bumps one of the two, so an entry is exact while its key matches.
type ProposalCache = Vec<((String, i64, i64), Proposal)>;
static PROPOSALS: tokio::sync::Mutex<ProposalCache> = tokio::sync::Mutex::const_new(Vec::new());

/// The newest change version that can change what a change of `key` does — the flag's own rows
/// and rollout, or any tenant — and the newest that changed a tenant, from `change_marks` (kept
/// by a trigger on the outbox; pruning does not move them). Both only grow, so a result cached
/// under an older value is never taken for a newer state, and a change to another flag leaves
/// the first as it is: the other flags' results stay cached.
async fn state_version(conn: &mut PgConnection, key: &str) -> Result<(i64, i64), Error> {
    let (flag, tenants): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT version FROM change_marks WHERE subject = 'flag:' || $1), \
                (SELECT version FROM change_marks WHERE subject = 'tenants')",
    )
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    let (flag, tenants) = (flag.unwrap_or_default(), tenants.unwrap_or_default());
    Ok((flag.max(tenants), tenants))
}

/// The live tenants loaded once for several flags' proposals (the dashboard lists every flag),
/// with the tenant version read before they were loaded: a later tenant change makes the next
/// flag load them again, so no proposal is computed over older tenants than its cache key says.
#[derive(Default)]
struct SharedTenants(Option<(i64, Arc<Vec<Tenant>>)>);

impl SharedTenants {
    async fn get(
        &mut self,
        conn: &mut PgConnection,
        tenants_version: i64,
    ) -> Result<Arc<Vec<Tenant>>, Error> {
        if let Some((v, t)) = &self.0 {
            if *v == tenants_version {
                return Ok(t.clone());
            }
        }
        let t = Arc::new(rows::live_tenants(conn).await?);
        self.0 = Some((tenants_version, t.clone()));
        Ok(t)
    }
}

/// Adds `entry` to a cache of at most `cap` entries, dropping the oldest.
fn remember<K, V>(cache: &mut Vec<(K, V)>, cap: usize, entry: (K, V)) {
    if cache.len() >= cap {
        cache.remove(0);
    }
    cache.push(entry);
}

/// The proposal of advancing, computed once per state: every view of the plan needs the change's
/// hash, and over 100,000 tenants computing it is the expensive part of the page. Computations
/// are serialised, so concurrent views wait for one result instead of each loading every tenant.
async fn propose_advance_cached(
    conn: &mut PgConnection,
    key: &str,
    old: &Rollout,
    version: i64,
    shared: &mut SharedTenants,
) -> Result<Proposal, Error> {
    let (state, tenants_version) = state_version(conn, key).await?;
    let id = (key.to_string(), version, state);
    let mut cache = PROPOSALS.lock().await;
    if let Some((_, p)) = cache.iter().find(|(k, _)| *k == id) {
        return Ok(p.clone());
    }
    let tenants = shared.get(conn, tenants_version).await?;
    let p = plan_over(conn, key, old, version, &Spec::Advance, Some(tenants))
        .await?
        .proposal(key)?;
    cache.retain(|(k, _)| k.0 != key);
    remember(&mut cache, 64, (id, p.clone()));
    Ok(p)
}

/// The stored change of a request (older requests were all for advancing).
fn spec_of(r: &ChangeRequest) -> Result<Spec, Error> {
    match &r.change {
        None => Ok(Spec::Advance),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| Error::Invalid(format!("change request {} is unreadable: {e}", r.id))),
    }
}

/// The latest requests of `key`, each marked `current` when it was not applied and is still the
/// change the flag would make now (`advance_hash`: advancing's hash, already computed).
async fn requests_marked(
    conn: &mut PgConnection,
    key: &str,
    old: &Rollout,
    version: i64,
    advance_hash: Option<&str>,
) -> Result<Vec<ChangeRequest>, Error> {
    let mut list = approvals::fetch(conn, key, None).await?;
    for r in &mut list {
        if r.applied_at.is_some() || r.flag_version.is_some_and(|v| v != version) {
            continue;
        }
        r.current = match spec_of(r) {
            Err(_) => false,
            Ok(Spec::Advance) => advance_hash == Some(r.change_hash.as_str()),
            Ok(spec) => current_cached(conn, key, old, version, r, &spec).await?,
        };
    }
    Ok(list)
}

/// Whether request `r` (for `spec`) is the change the flag would make now, computed once per
/// (request, flag version, [`state_version`]): a plan view lists up to 20 requests, and each check
/// computes the change over every tenant.
async fn current_cached(
    conn: &mut PgConnection,
    key: &str,
    old: &Rollout,
    version: i64,
    r: &ChangeRequest,
    spec: &Spec,
) -> Result<bool, Error> {
    type Cache = Vec<((i64, i64, i64), bool)>;
    static CURRENT: tokio::sync::Mutex<Cache> = tokio::sync::Mutex::const_new(Vec::new());
    let id = (r.id, version, state_version(conn, key).await?.0);
    let mut cache = CURRENT.lock().await;
    if let Some((_, c)) = cache.iter().find(|(k, _)| *k == id) {
        return Ok(*c);
    }
    let current = match plan(conn, key, old, version, spec).await {
        Ok(p) => p.hash(key)? == r.change_hash,
        Err(_) => false,
    };
    remember(&mut cache, 256, (id, current));
    Ok(current)
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
    /// When the current phase began (the last change of the phase, else the flag's creation).
    pub phase_since: DateTime<Utc>,
    /// Next phase of the ladder.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub next: Option<Phase>,
    /// What stands between the flag and its next phase, as advancing now would be judged (empty:
    /// it may be entered).
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
    pub guard_states: Vec<GuardState>,
    /// Set when a guard's alert paused the rollout (until someone resumes it).
    pub paused: Option<Paused>,
    /// The current phase has lasted longer than its decision is due (the pilot's 72 h).
    pub decision_overdue: bool,
    /// The change advancing would make now, with its hash.
    pub proposal: Option<Proposal>,
    /// The latest change requests (newest first), each marked whether it is the current change.
    pub requests: Vec<ChangeRequest>,
    /// Plan version (0: the seed template, not stored yet).
    pub version: i64,
    /// The flag's pilots, sorted (they fill the plan's `<tenant_id_a>` placeholders).
    pub pilots: Vec<String>,
}

/// The plan of `key` (the seed template while none is stored; reading writes nothing) with the
/// gates of the next phase evaluated at `now` exactly as the write path would, the change
/// advancing would make and its approval.
pub async fn plan_state(pool: &PgPool, key: &str, now: DateTime<Utc>) -> Result<PlanState, Error> {
    let mut tx = pool.begin().await?;
    let plan = plans::load(&mut tx, key).await?;
    let Facts {
        mut facts,
        ticks,
        signoffs,
        phase_since,
        guard_states,
    } = {
        let ready = migrations_ready(&mut tx).await?;
        gate_facts(&mut tx, key, &plan, now, ready).await?
    };
    let (rollout, version) = rows::read_flag(&mut tx, key).await?;
    let phase = rollout.phase;
    let next = phase.next(&DEFAULT_LADDER);
    let proposal = match next {
        Some(_) => Some(
            propose_advance_cached(
                &mut tx,
                key,
                &rollout,
                version,
                &mut SharedTenants::default(),
            )
            .await?,
        ),
        None => None,
    };
    let requests = requests_marked(
        &mut tx,
        key,
        &rollout,
        version,
        proposal.as_ref().map(|p| p.hash.as_str()),
    )
    .await?;
    let unmet = match &proposal {
        Some(p) => {
            facts.approval = approval_of(&mut tx, key, &plan.settings, &p.hash).await?;
            next_unmet(&plan.document, &plan.gates, &p.effect(), &facts)
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
        pilots: rollout.pilots.iter().cloned().collect(),
    })
}

/// The approval state of the change with `hash`: the write path's own rule (an approved,
/// unapplied request for exactly this hash).
async fn approval_of(
    conn: &mut PgConnection,
    key: &str,
    settings: &Settings,
    hash: &str,
) -> Result<Approval, Error> {
    Ok(if !settings.approvals_required {
        Approval::NotRequired
    } else if approvals::approved(conn, key, hash).await? {
        Approval::Approved
    } else {
        Approval::Needed(role_names(&settings.approver_roles))
    })
}

/// One flag's next phase and what stands before it, for the dashboard.
#[derive(Debug, Clone)]
pub struct NextGates {
    /// Flag.
    pub key: String,
    /// Its phase.
    pub phase: Phase,
    /// The next rung, if any.
    pub next: Option<Phase>,
    /// What advancing now would be refused for: the write path's own decision on the change
    /// advancing would make (computed once per state and cached, as on the flag page).
    pub unmet: Vec<Unmet>,
    /// The gates into the next rung, if the plan has any.
    pub gates: Option<PhaseGates>,
    /// The plan's checklists and milestones.
    pub document: PlanDocument,
    /// The plan's guards.
    pub guards: Vec<GuardSpec>,
    /// The plan's settings.
    pub settings: Settings,
    /// Set when a guard's alert paused the rollout.
    pub paused: Option<Paused>,
}

impl NextGates {
    /// [`NextGates::unmet`] in words (what a refusal lists).
    pub fn unmet_text(&self) -> Vec<String> {
        self.unmet.iter().map(ToString::to_string).collect()
    }
}

/// [`NextGates`] of each of `flags` (as the dashboard listed them) at `now`, in their order. The
/// migrations are read once for all of them.
pub async fn next_gates(
    pool: &PgPool,
    flags: &[rows::FlagRow],
    now: DateTime<Utc>,
) -> Result<Vec<NextGates>, Error> {
    let mut conn = pool.acquire().await?;
    let ready = migrations_ready(&mut conn).await?;
    let mut out = Vec::with_capacity(flags.len());
    let mut shared = SharedTenants::default();
    for f in flags {
        let next = f.rollout.phase.next(&DEFAULT_LADDER);
        let plan = plans::load(&mut conn, &f.key).await?;
        let mut unmet = Vec::new();
        if next.is_some() {
            let mut facts = gate_facts(&mut conn, &f.key, &plan, now, ready)
                .await?
                .facts;
            let p = propose_advance_cached(&mut conn, &f.key, &f.rollout, f.version, &mut shared)
                .await?;
            facts.approval = approval_of(&mut conn, &f.key, &plan.settings, &p.hash).await?;
            unmet = next_unmet(&plan.document, &plan.gates, &p.effect(), &facts);
        }
        out.push(NextGates {
            key: f.key.clone(),
            phase: f.rollout.phase,
            next,
            unmet,
            gates: plan.gates.iter().find(|g| Some(g.phase) == next).cloned(),
            document: plan.document,
            guards: plan.guards,
            settings: plan.settings,
            paused: plan.paused,
        });
    }
    Ok(out)
}

// --------------------------------------------------------------------------------- approvals

/// Asks a second person to approve `spec` (advancing, a rollout, a per-tenant switch): records the
/// exact change and its hash. A pending identical request by the same person is returned instead
/// of a new one. A change that widens nothing needs no approval and is refused.
pub async fn request(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    spec: &Spec,
) -> Result<ChangeRequest, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let (rollout, version) = rows::read_flag(&mut tx, key).await?;
    let p = plan(&mut tx, key, &rollout, version, spec).await?;
    if !p.effect().widens() {
        return Err(Error::Invalid(
            "this change turns no tenant on and raises no phase: it needs no approval".into(),
        ));
    }
    let hash = p.hash(key)?;
    let existing = approvals::fetch(&mut tx, key, None).await?;
    if let Some(mut same) = existing
        .into_iter()
        .find(|r| r.applied_at.is_none() && r.change_hash == hash && r.requested_by == actor.name)
    {
        tx.commit().await?;
        same.current = true;
        return Ok(same);
    }
    let new = NewRequest {
        from_phase: p.old.phase.to_string(),
        to_phase: p.target.phase.to_string(),
        rollout: serde_json::to_value(&p.target).map_err(|e| Error::Invalid(e.to_string()))?,
        change: serde_json::to_value(spec).map_err(|e| Error::Invalid(e.to_string()))?,
        flag_version: version,
        hash: &hash,
        turned_on: p.diff.turned_on.len(),
        turned_off: p.diff.turned_off.len(),
    };
    let id = approvals::insert(&mut tx, actor, key, &new).await?;
    let mut row = approvals::one(&mut tx, key, id).await?;
    row.current = true;
    tx.commit().await?;
    Ok(row)
}

/// Approves request `id` as `role`. Refused when the role may not approve for this plan, when the
/// approver is the person who asked for the change (compared by person — [`Actor::person`] — so
/// neither the same token, nor a token it or its owner minted, nor the owner's own session may
/// approve), when it was already approved or applied, and when the change is no longer the one the
/// flag would make (the flag or its tenants changed since: ask again).
pub async fn approve(
    pool: &PgPool,
    actor: &Actor,
    key: &str,
    id: i64,
    role: Role,
) -> Result<ChangeRequest, Error> {
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    let plan = plans::load(&mut tx, key).await?;
    if !plan.settings.approver_roles.contains(&role) {
        return Err(Error::Forbidden(format!(
            "approving changes of {key:?} needs the role {}; you act as {role}",
            role_names(&plan.settings.approver_roles).join(" or ")
        )));
    }
    let (rollout, version) = rows::lock_flag(&mut tx, key).await?;
    let mut req = approvals::one(&mut tx, key, id).await?;
    if req.requester() == actor.person || req.requested_by == actor.name {
        return Err(Error::Forbidden(format!(
            "{} asked for this change: a second user must approve it (not the same person, nor a token made by them or their tokens)",
            req.requester()
        )));
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
    let current = if req.flag_version.is_some_and(|v| v != version) {
        false
    } else {
        let planned = match spec_of(&req) {
            Ok(spec) => self::plan(&mut tx, key, &rollout, version, &spec).await,
            Err(e) => Err(e),
        };
        match planned {
            Ok(p) => p.hash(key)? == req.change_hash,
            Err(_) => false,
        }
    };
    if !current {
        return Err(Error::Conflict(format!(
            "change request {id} is stale: the flag or its tenants changed since it was asked for, so the change it describes is not the one that would be made now; ask again"
        )));
    }
    approvals::set_approved(&mut tx, actor, key, &req, role.as_str()).await?;
    tx.commit().await?;
    req.approved_by = Some(actor.name.clone());
    req.approved_at = Some(Utc::now());
    req.current = true;
    Ok(req)
}

// -------------------------------------------------------------------------------- automation

/// One pass of automatic advance at `now`: every flag whose plan says `auto_advance` and whose
/// next phase's gates (and approval) all hold is advanced, as Tenantry itself (source `system`,
/// actor `tenantry:auto-advance`). Returns the flags advanced and their new phase. A flag whose
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
    let actor = Actor::new("tenantry:auto-advance", crate::Source::System);
    let gating = Gating {
        now,
        override_reason: None,
    };
    let mut advanced = Vec::new();
    for key in keys {
        match change(pool, &actor, &key, &Spec::Advance, None, &gating).await {
            Ok(a) => advanced.push((key, a.phase)),
            Err(Error::Gated { .. })
            | Err(Error::Paused { .. })
            | Err(Error::Invalid(_))
            | Err(Error::Conflict(_)) => {}
            Err(e) => tracing::warn!(flag = %key, error = %e, "automatic advance failed"),
        }
    }
    Ok(advanced)
}

/// A flag the guard monitor watches: not OFF, with guards.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Flag.
    pub key: String,
    /// Its guards.
    pub guards: Vec<GuardSpec>,
}

/// Every flag in a monitoring window (any phase but OFF) whose plan has guards (the seed's when
/// no plan is stored).
pub async fn watched(pool: &PgPool) -> Result<Vec<Watched>, Error> {
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT key FROM flags WHERE rollout->>'phase' <> 'off' ORDER BY key")
            .fetch_all(pool)
            .await?;
    let mut out = Vec::new();
    let mut conn = pool.acquire().await?;
    for key in keys {
        let guards = plans::load(&mut conn, &key).await?.guards;
        if !guards.is_empty() {
            out.push(Watched { key, guards });
        }
    }
    Ok(out)
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
/// switch) through the write path, as Tenantry itself (`tenantry:guard`, source `system`).
pub async fn alert(
    pool: &PgPool,
    key: &str,
    guard: &GuardSpec,
    reading: &Reading,
    at: DateTime<Utc>,
) -> Result<AlertAction, Error> {
    let actor = Actor::new("tenantry:guard", crate::Source::System);
    let mut tx = pool.begin().await?;
    actor.apply(&mut tx).await?;
    // The flag first, as the write path locks it: a widening that read the plan before this pause
    // commits first, one that comes after sees the pause.
    rows::lock_flag(&mut tx, key).await?;
    let plan = plans::load_for_update(&mut tx, &actor, key).await?;
    if plan.paused.is_some() {
        return Ok(AlertAction::AlreadyPaused);
    }
    let reason = format!("guard {} in alert: {}", guard.name, reading.detail);
    plans::pause(&mut tx, key, at, &reason).await?;
    let on_alert = plan.settings.on_alert;
    let details = serde_json::json!({
        "guard": guard.name, "query": guard.query, "value": reading.value, "others": reading.others,
        "detail": reading.detail, "alert_threshold": guard.alert, "action": on_alert.as_str(),
    });
    actor
        .audit(&mut tx, "guard.alert", Some(key), None, None, Some(details))
        .await?;
    tx.commit().await?;
    let to = match on_alert {
        OnAlert::Pause => return Ok(AlertAction::Paused),
        OnAlert::Previous => RollbackTarget::Previous,
        OnAlert::Off => RollbackTarget::Off,
    };
    let a = change(pool, &actor, key, &Spec::Rollback(to), None, &Gating::now()).await?;
    Ok(match to {
        RollbackTarget::Previous => AlertAction::SteppedBack(a.phase),
        RollbackTarget::Off => AlertAction::TurnedOff,
    })
}
