//! What a change of "who is ON" does, and whether the plan lets it through — the decision of the
//! one write path, as a pure function of (plan, facts, effect, override). The store computes the
//! effect with [`crate::Rollout::apply`] and [`crate::diff`], reads the facts, and writes only
//! when [`decide`] says so.
//!
//! The rule is on the *effect*, not on the door: a change that turns at least one tenant ON, or
//! raises the phase, is a widening and passes the gates of the phase the flag will be in — a
//! higher phase, more pilots, fewer constraints, fewer exclusions and a per-tenant enable alike.
//! A narrowing (rollback, kill, fewer pilots, more exclusions) is never gated.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::plan::{unmet, unmet_for_change, Approval, GateFacts, PhaseGates, PlanDocument, Unmet};
use crate::{Error, Phase};

/// What a change does, as the gates see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// Phase before.
    pub from: Phase,
    /// Phase after.
    pub to: Phase,
    /// Tenants the change turns ON.
    pub turned_on: usize,
    /// Tenants the change turns OFF.
    pub turned_off: usize,
    /// Live tenants ON after the change.
    pub on_after: usize,
    /// Live tenants.
    pub tenants: usize,
}

impl Effect {
    /// Whether the change widens the rollout: it turns a tenant ON or raises the phase (a rise
    /// that turns nobody ON still starts the next phase's clock, so it is gated too).
    pub fn widens(&self) -> bool {
        self.turned_on > 0 || self.to > self.from
    }

    /// The share of live tenants ON after the change, in whole percent (rounded down).
    pub fn share_after(&self) -> u32 {
        self.on_after
            .saturating_mul(100)
            .checked_div(self.tenants)
            .map_or(0, |p| u32::try_from(p).unwrap_or(100))
    }
}

/// The gated phase whose gates guard `phase`: the lowest phase with gates at or above it (a phase
/// between two rungs, such as 37%, needs the gates of the rung above it, 50%), or `phase` itself
/// when no gated phase is at or above it. OFF is its own rung: nothing is needed to be OFF.
pub fn rung(gates: &[PhaseGates], phase: Phase) -> Phase {
    if phase == Phase::Off {
        return Phase::Off;
    }
    gates
        .iter()
        .map(|g| g.phase)
        .filter(|p| *p >= phase)
        .min()
        .unwrap_or(phase)
}

/// The phase a change reaches: its phase, or — when it turns more tenants ON than its phase says
/// (50,000 pilots in the pilot phase) — the highest gated phase whose share it reaches. Pilots are
/// meant to be a few named tenants; a change does not pass the pilot's gates to reach half of
/// the customers.
pub fn reach(gates: &[PhaseGates], effect: &Effect) -> Phase {
    let share = effect.share_after();
    let by_share = gates
        .iter()
        .map(|g| g.phase)
        .filter(|p| *p != Phase::Off && effect.on_after > 0)
        .filter(|p| p.percentage().get() <= share)
        .max()
        .unwrap_or(Phase::Off);
    effect.to.max(by_share)
}

/// The decision on a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The change widens nothing: never gated, never waits for an approval.
    Narrowing,
    /// A widening whose every gate holds.
    Pass,
    /// A widening whose gates do not hold, let through by an admin's written reason (the caller
    /// audits it with these gates).
    Overridden(Vec<Unmet>),
    /// Refused: a guard paused the rollout and no person resumed it. An override does not pass a
    /// pause: a person resumes first.
    Paused(String),
    /// Refused: these gates do not hold.
    Refused(Vec<Unmet>),
}

/// Every gate `effect` must pass. The change reaches [`reach`]; both ends are taken to their
/// [`rung`]. Reaching a higher rung passes the gates of each rung entered on the way with their
/// monitoring windows ([`unmet_for_change`]); a widening within a rung (or into a lower one)
/// passes the gates of the rung the flag will be in, without its window (the window was passed,
/// or overridden, on entering it). Then the approval of the exact change when the plan asks for
/// one. The pause is not listed: [`decide`] refuses it first.
pub fn gates_for(
    plan: &PlanDocument,
    gates: &[PhaseGates],
    effect: &Effect,
    facts: &GateFacts,
) -> Vec<Unmet> {
    if !effect.widens() {
        return Vec::new();
    }
    let unpaused = GateFacts {
        paused: None,
        ..facts.clone()
    };
    let (from, to) = (rung(gates, effect.from), rung(gates, reach(gates, effect)));
    if to > from {
        return unmet_for_change(plan, gates, from, to, &unpaused);
    }
    let mut out: Vec<Unmet> = gates
        .iter()
        .find(|g| g.phase == to)
        .map(|g| unmet(plan, g, &unpaused))
        .unwrap_or_default()
        .into_iter()
        .filter(|u| !matches!(u, Unmet::Window { .. }))
        .collect();
    if let Approval::Needed(roles) = &facts.approval {
        out.push(Unmet::Approval {
            roles: roles.clone(),
        });
    }
    out
}

/// Decides a change: narrowing passes untouched; a widening is refused while the rollout is
/// paused, passes when [`gates_for`] is empty, and otherwise passes only with an admin's override
/// (`override_given`).
///
/// ```
/// use flags::change::{decide, Effect, Verdict};
/// use flags::plan::{seed_gates, GateFacts, PlanDocument};
/// use flags::Phase;
/// let more_pilots = Effect {
///     from: Phase::Pilot, to: Phase::Pilot, turned_on: 2, turned_off: 0, on_after: 3, tenants: 240,
/// };
/// let facts = GateFacts::default();
/// let v = decide(&PlanDocument::default(), &seed_gates(), &more_pilots, &facts, false);
/// assert!(matches!(v, Verdict::Refused(_)));
/// let rollback = Effect {
///     from: Phase::Pilot, to: Phase::Off, turned_on: 0, turned_off: 3, on_after: 0, tenants: 240,
/// };
/// assert_eq!(decide(&PlanDocument::default(), &seed_gates(), &rollback, &facts, false), Verdict::Narrowing);
/// ```
pub fn decide(
    plan: &PlanDocument,
    gates: &[PhaseGates],
    effect: &Effect,
    facts: &GateFacts,
    override_given: bool,
) -> Verdict {
    if !effect.widens() {
        return Verdict::Narrowing;
    }
    if let Some(reason) = &facts.paused {
        return Verdict::Paused(reason.clone());
    }
    let unmet = gates_for(plan, gates, effect, facts);
    if unmet.is_empty() {
        Verdict::Pass
    } else if override_given {
        Verdict::Overridden(unmet)
    } else {
        Verdict::Refused(unmet)
    }
}

/// Where a rollback goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTarget {
    /// The seed's Quick Rollback: every row OFF, the rollout back to OFF (pilots kept).
    #[default]
    Off,
    /// One rung down the ladder.
    Previous,
}

/// What a guard's alert does besides pausing the rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAlert {
    /// Pause only.
    #[default]
    Pause,
    /// Pause and move one phase down.
    Previous,
    /// Pause and turn the flag off everywhere (the kill switch).
    Off,
}

impl OnAlert {
    /// Every choice, in the order a form lists them.
    pub const ALL: [OnAlert; 3] = [OnAlert::Pause, OnAlert::Previous, OnAlert::Off];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnAlert::Pause => "pause",
            OnAlert::Previous => "previous",
            OnAlert::Off => "off",
        }
    }
}

impl RollbackTarget {
    /// The serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackTarget::Off => "off",
            RollbackTarget::Previous => "previous",
        }
    }
}

macro_rules! named {
    ($t:ty, $what:literal, $expected:literal, $($name:literal => $v:expr),+) => {
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s.trim() {
                    $($name => Ok($v),)+
                    other => Err(Error::InvalidValue {
                        what: $what,
                        value: other.to_string(),
                        expected: $expected,
                    }),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named!(OnAlert, "on_alert", "pause, previous or off",
    "pause" => OnAlert::Pause, "previous" => OnAlert::Previous, "off" => OnAlert::Off);
named!(RollbackTarget, "rollback target", "off or previous",
    "off" => RollbackTarget::Off, "previous" => RollbackTarget::Previous);
named!(Role, "role", "admin, product_owner, qa, dba or viewer",
    "admin" => Role::Admin, "product_owner" => Role::ProductOwner, "qa" => Role::Qa,
    "dba" => Role::Dba, "viewer" => Role::Viewer);

/// A person's role in a rollout: who signs which milestone and who may approve a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including the break-glass override.
    Admin,
    /// Moves flags along the ladder.
    ProductOwner,
    /// Ticks checklists, signs QA milestones.
    Qa,
    /// Database pages, signs DBA milestones.
    Dba,
    /// Reads.
    Viewer,
}

impl Role {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ProductOwner => "product_owner",
            Role::Qa => "qa",
            Role::Dba => "dba",
            Role::Viewer => "viewer",
        }
    }

    /// The roles a plan may name as approvers (a viewer approves nothing).
    pub const APPROVERS: [Role; 4] = [Role::Admin, Role::ProductOwner, Role::Qa, Role::Dba];

    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::ProductOwner,
        Role::Qa,
        Role::Dba,
        Role::Viewer,
    ];

    /// Who may change flags, phases and tenants, and roll back.
    pub const FLAG_EDITORS: &'static [Role] = &[Role::Admin, Role::ProductOwner];

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// A label for people.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::ProductOwner => "Product owner",
            Role::Qa => "QA",
            Role::Dba => "DBA",
            Role::Viewer => "Viewer",
        }
    }

    /// Whether this role may change flags.
    pub fn edits_flags(self) -> bool {
        Role::FLAG_EDITORS.contains(&self)
    }
}

/// The roles that may sign for a plan's milestone owner label: `DevOps` → admin; `DBA` → dba;
/// `QA` → qa; `Product` → product_owner; `Team` → any approver role. Admins sign everything. An
/// unknown label is an error naming it (an imported plan with it is refused, instead of letting
/// every role sign).
pub fn owner_roles(owner: &str) -> Result<&'static [Role], Error> {
    match owner.trim().to_ascii_lowercase().as_str() {
        "devops" => Ok(&[Role::Admin]),
        "dba" => Ok(&[Role::Dba, Role::Admin]),
        "qa" => Ok(&[Role::Qa, Role::Admin]),
        "product" => Ok(&[Role::ProductOwner, Role::Admin]),
        "team" => Ok(&Role::APPROVERS),
        _ => Err(Error::InvalidValue {
            what: "milestone owner",
            value: owner.trim().to_string(),
            expected: "DevOps, DBA, QA, Product or Team",
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::plan::{import_markdown, seed_gates, SEED_PLAN};
    use crate::Percentage;

    const TEN: Phase = Phase::Percent(Percentage::TEN);
    const FIFTY: Phase = Phase::Percent(Percentage::FIFTY);

    /// Facts under which every gate of every phase holds (windows long past).
    fn all_met(plan: &PlanDocument) -> GateFacts {
        let mut f = GateFacts {
            now: 1_000_000,
            phase_since: 0,
            migrations_ready: true,
            ..GateFacts::default()
        };
        for c in &plan.checklists {
            for i in &c.items {
                f.ticked.insert((c.name.clone(), i.clone()));
            }
        }
        for m in &plan.milestones {
            f.signed.insert(m.name.clone());
        }
        f
    }

    /// An effect over 100,000 tenants whose ON share stays within what `to` says.
    fn effect(from: Phase, to: Phase, on: usize, off: usize) -> Effect {
        let tenants = 100_000;
        let share = usize::try_from(to.percentage().get()).unwrap();
        Effect {
            from,
            to,
            turned_on: on,
            turned_off: off,
            on_after: (tenants * share / 100).max(on),
            tenants,
        }
    }

    fn kind(v: &Verdict) -> &'static str {
        match v {
            Verdict::Narrowing => "narrowing",
            Verdict::Pass => "pass",
            Verdict::Overridden(_) => "overridden",
            Verdict::Paused(_) => "paused",
            Verdict::Refused(_) => "refused",
        }
    }

    /// Every kind of change × (gates met, gates unmet, paused, override, approval missing).
    #[test]
    fn decision_table() {
        let plan = import_markdown(SEED_PLAN).unwrap();
        let gates = seed_gates();
        let met = all_met(&plan);
        let unmet_facts = GateFacts {
            now: 1_000_000,
            phase_since: 1_000_000,
            ..GateFacts::default()
        };
        let paused = GateFacts {
            paused: Some("guard api_error_rate in alert".into()),
            ..met.clone()
        };
        let needs_approval = GateFacts {
            approval: Approval::Needed(vec!["product_owner".into()]),
            ..met.clone()
        };
        let cases: &[(&str, Effect)] = &[
            ("advance off→pilot", effect(Phase::Off, Phase::Pilot, 1, 0)),
            ("advance pilot→10%", effect(Phase::Pilot, TEN, 900, 0)),
            (
                "more pilots at pilot",
                effect(Phase::Pilot, Phase::Pilot, 5, 0),
            ),
            ("fewer constraints at 10%", effect(TEN, TEN, 120, 0)),
            ("fewer exclusions at 50%", effect(FIFTY, FIFTY, 1, 0)),
            ("per-tenant enable at 10%", effect(TEN, TEN, 1, 0)),
            (
                "new pilot on the way down",
                effect(FIFTY, Phase::Pilot, 1, 400),
            ),
            (
                "rise that turns nobody on",
                effect(Phase::Off, Phase::Pilot, 0, 0),
            ),
            ("rollback one rung", effect(FIFTY, TEN, 0, 400)),
            ("kill", effect(TEN, Phase::Off, 0, 900)),
            ("fewer pilots", effect(Phase::Pilot, Phase::Pilot, 0, 2)),
            ("more exclusions", effect(TEN, TEN, 0, 5)),
            ("no-op save", effect(TEN, TEN, 0, 0)),
        ];
        for (name, e) in cases {
            let widens = e.widens();
            let expect = |when_widening: &'static str| {
                if widens {
                    when_widening
                } else {
                    "narrowing"
                }
            };
            let rows: [(&str, &GateFacts, bool, &str); 5] = [
                ("met", &met, false, expect("pass")),
                ("unmet", &unmet_facts, false, expect("refused")),
                ("unmet+override", &unmet_facts, true, expect("overridden")),
                ("paused+override", &paused, true, expect("paused")),
                (
                    "approval missing",
                    &needs_approval,
                    false,
                    expect("refused"),
                ),
            ];
            for (facts_name, facts, ovr, want) in rows {
                let v = decide(&plan, &gates, e, facts, ovr);
                assert_eq!(kind(&v), want, "{name} with {facts_name}: {v:?}");
            }
        }
    }

    #[test]
    fn a_widening_within_a_phase_checks_that_phase_without_its_window() {
        let plan = import_markdown(SEED_PLAN).unwrap();
        let gates = seed_gates();
        // At 10% for an hour, everything else met: adding pilots passes (the 24 h window was for
        // entering 10%), advancing to 50% does not (its 48 h window).
        let facts = GateFacts {
            phase_since: 1_000_000 - 3600,
            ..all_met(&plan)
        };
        let more = effect(TEN, TEN, 3, 0);
        assert_eq!(gates_for(&plan, &gates, &more, &facts), []);
        let rise = effect(TEN, FIFTY, 4000, 0);
        assert!(matches!(
            gates_for(&plan, &gates, &rise, &facts)[0],
            Unmet::Window { .. }
        ));
        // Unticked items of the phase the flag is in still hold a same-phase widening back.
        let mut partly = facts.clone();
        partly.ticked.clear();
        let u = gates_for(&plan, &gates, &more, &partly);
        assert!(u
            .iter()
            .any(|u| matches!(u, Unmet::Unticked { checklist, .. } if checklist == "Monitor Pilot (24-72 hours)")));
        assert!(!u.iter().any(|u| matches!(u, Unmet::Window { .. })));
        // A phase without gates lets same-phase widenings through (a plan with `gates: []`).
        assert_eq!(gates_for(&plan, &[], &more, &partly), []);
        // A pause is a refusal of its own, never listed as a gate.
        let p = GateFacts {
            paused: Some("why".into()),
            ..facts
        };
        assert!(!gates_for(&plan, &gates, &rise, &p)
            .iter()
            .any(|u| matches!(u, Unmet::Paused { .. })));
        assert_eq!(
            decide(&plan, &gates, &more, &p, false),
            Verdict::Paused("why".into())
        );
    }

    #[test]
    fn phases_between_rungs_and_crowds_of_pilots_need_the_higher_rungs_gates() {
        let plan = import_markdown(SEED_PLAN).unwrap();
        let gates = seed_gates();
        let nine: Phase = "9%".parse().unwrap();
        let thirty_seven: Phase = "37%".parse().unwrap();
        let ninety_nine: Phase = "99%".parse().unwrap();
        assert_eq!(rung(&gates, nine), TEN);
        assert_eq!(rung(&gates, thirty_seven), FIFTY);
        assert_eq!(rung(&gates, ninety_nine), Phase::Full);
        assert_eq!(rung(&gates, Phase::Off), Phase::Off);
        let facts = GateFacts {
            now: 1_000_000,
            phase_since: 1_000_000,
            ..GateFacts::default()
        };
        let has = |u: &[Unmet], checklist: &str| {
            u.iter()
                .any(|x| matches!(x, Unmet::Unticked { checklist: c, .. } if c == checklist))
        };
        // Pilot → 9%: the 10% rung's gates, with the pilot's window.
        let u = gates_for(&plan, &gates, &effect(Phase::Pilot, nine, 9000, 0), &facts);
        assert!(has(&u, "Monitor Pilot (24-72 hours)"), "{u:?}");
        assert!(matches!(u[0], Unmet::Window { .. }));
        // 50% → 99%: the 100% rung's gates ("50% rollout" signed).
        let u = gates_for(
            &plan,
            &gates,
            &effect(FIFTY, ninety_nine, 49_000, 0),
            &facts,
        );
        assert!(
            u.contains(&Unmet::Unsigned {
                milestone: "50% rollout".into()
            }),
            "{u:?}"
        );
        // Pilots added at 37%: the 50% rung's gates, without the window.
        let u = gates_for(
            &plan,
            &gates,
            &effect(thirty_seven, thirty_seven, 2, 0),
            &facts,
        );
        assert!(has(&u, "Monitor for 48 hours"), "{u:?}");
        assert!(!u.iter().any(|x| matches!(x, Unmet::Window { .. })));
        // 50,000 of 100,000 tenants as pilots: the change reaches 50%, it needs the gates of 10%
        // and 50% with their windows, not the pilot's.
        let crowd = Effect {
            on_after: 50_003,
            ..effect(Phase::Pilot, Phase::Pilot, 50_000, 0)
        };
        assert_eq!(reach(&gates, &crowd), FIFTY);
        let u = gates_for(&plan, &gates, &crowd, &facts);
        assert!(
            has(&u, "Monitor for 48 hours") && has(&u, "Monitor Pilot (24-72 hours)"),
            "{u:?}"
        );
        assert!(matches!(u[0], Unmet::Window { .. }));
        // Three pilots of 240 tenants stay a pilot.
        let few = Effect {
            on_after: 3,
            tenants: 240,
            ..effect(Phase::Pilot, Phase::Pilot, 1, 0)
        };
        assert_eq!(reach(&gates, &few), Phase::Pilot);
    }

    #[test]
    fn vocabulary_parses_once_with_clear_errors() {
        assert_eq!("previous".parse::<OnAlert>().unwrap(), OnAlert::Previous);
        assert_eq!(
            "sideways".parse::<OnAlert>().unwrap_err().to_string(),
            "unknown on_alert \"sideways\": expected pause, previous or off"
        );
        assert_eq!(
            "previous".parse::<RollbackTarget>().unwrap(),
            RollbackTarget::Previous
        );
        assert!("back".parse::<RollbackTarget>().is_err());
        assert_eq!("qa".parse::<Role>().unwrap(), Role::Qa);
        assert_eq!(owner_roles(" DBA ").unwrap(), [Role::Dba, Role::Admin]);
        assert_eq!(owner_roles("DevOps").unwrap(), [Role::Admin]);
        assert!(owner_roles("Team").unwrap().contains(&Role::Qa));
        assert_eq!(
            owner_roles("Legal").unwrap_err().to_string(),
            "unknown milestone owner \"Legal\": expected DevOps, DBA, QA, Product or Team"
        );
        for r in Role::APPROVERS {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
    }
}
