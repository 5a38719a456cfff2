//! Rollout plans as data: checklists, sign-off milestones and contacts (imported from a Markdown
//! plan written like the seed), the gates between phases, and their evaluation — pure functions
//! over data the caller gives (no IO, no clock: `now` is passed in).
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Phase};

/// The seed plan (`production-rollout-plan.md`), the template every new plan starts from.
pub const SEED_PLAN: &str = include_str!("seed-plan.md");

/// A checklist: a heading and its `- [ ]` items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    /// The heading, without its section number (`Smoke Test (Existing Features)`).
    pub name: String,
    /// The items, in order, without duplicates.
    pub items: Vec<String>,
}

/// A row of the sign-off table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    /// `Code deployed`, `Migrations applied`, …
    pub name: String,
    /// The owner role as the plan names it: `DevOps`, `DBA`, `QA`, `Product`, `Team`.
    pub owner: String,
}

impl Milestone {
    /// Whether `role` owns it and so may sign it ([`crate::change::owner_roles`]; an owner no
    /// role maps to owns nothing).
    pub fn signed_by(&self, role: crate::change::Role) -> bool {
        crate::change::owner_roles(&self.owner).is_ok_and(|r| r.contains(&role))
    }
}

/// A row of the contact table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// `On-call Engineer`, `Database Admin`, `Product Owner`.
    pub role: String,
    /// Who (empty until filled in).
    pub contact: String,
}

/// What a plan document holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDocument {
    /// Checklists, in document order.
    pub checklists: Vec<Checklist>,
    /// The sign-off table.
    pub milestones: Vec<Milestone>,
    /// The contact table.
    pub contacts: Vec<Contact>,
}

/// Reads a plan written like the seed: `- [ ]` / `- [x]` items under headings become checklists
/// (named after their heading, section numbers dropped), a table with `Milestone` and `Owner`
/// columns becomes the sign-offs, a table with `Role` and `Contact` columns the contacts. Code
/// blocks are skipped. A document with none of the three is refused.
///
/// ```
/// let plan = flags::plan::import_markdown(
///     "## Checks\n- [ ] Login works\n- [x] Dashboard loads\n\n| Milestone | Owner |\n|---|---|\n| Code deployed | DevOps |\n",
/// )?;
/// assert_eq!(plan.checklists[0].name, "Checks");
/// assert_eq!(plan.checklists[0].items, ["Login works", "Dashboard loads"]);
/// assert_eq!(plan.milestones[0].owner, "DevOps");
/// # Ok::<(), flags::Error>(())
/// ```
pub fn import_markdown(text: &str) -> Result<PlanDocument, Error> {
    let mut doc = PlanDocument::default();
    let mut heading = String::new();
    let mut in_code = false;
    let mut table: Option<TableKind> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if !line.starts_with('|') {
            table = None;
        }
        if let Some(h) = heading_text(line) {
            heading = h;
        } else if let Some(item) = checklist_item(line) {
            add_item(&mut doc, &heading, item);
        } else if line.starts_with('|') {
            let cells = table_cells(line);
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
            {
                continue; // the separator row
            }
            match table {
                None => table = Some(TableKind::from_header(&cells)),
                Some(kind) => kind.add_row(&mut doc, &cells),
            }
        }
    }
    for m in &doc.milestones {
        crate::change::owner_roles(&m.owner)
            .map_err(|e| Error::PlanImport(format!("milestone {:?}: {e}", m.name)))?;
    }
    if doc.checklists.is_empty() && doc.milestones.is_empty() && doc.contacts.is_empty() {
        return Err(Error::PlanImport(
            "found no checklist (`- [ ]` items under a heading), no sign-off table (Milestone | Owner) and no contact table (Role | Contact)".into(),
        ));
    }
    Ok(doc)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableKind {
    /// Columns of milestone name and owner.
    Milestones(usize, usize),
    /// Columns of role and contact.
    Contacts(usize, usize),
    Other,
}

impl TableKind {
    fn from_header(cells: &[String]) -> TableKind {
        let col = |name: &str| cells.iter().position(|c| c.eq_ignore_ascii_case(name));
        match (col("milestone"), col("owner"), col("role"), col("contact")) {
            (Some(m), Some(o), _, _) => TableKind::Milestones(m, o),
            (_, _, Some(r), Some(c)) => TableKind::Contacts(r, c),
            _ => TableKind::Other,
        }
    }

    fn add_row(self, doc: &mut PlanDocument, cells: &[String]) {
        let cell = |i: usize| cells.get(i).cloned().unwrap_or_default();
        match self {
            TableKind::Milestones(m, o) if !cell(m).is_empty() => doc.milestones.push(Milestone {
                name: cell(m),
                owner: cell(o),
            }),
            TableKind::Contacts(r, c) if !cell(r).is_empty() => doc.contacts.push(Contact {
                role: cell(r),
                contact: cell(c),
            }),
            _ => {}
        }
    }
}

/// `### 1.4 Smoke Test (Existing Features)` → `Smoke Test (Existing Features)`.
fn heading_text(line: &str) -> Option<String> {
    let rest = line.trim_start_matches('#');
    if rest.len() == line.len() || !rest.starts_with(' ') {
        return None;
    }
    let text = rest.trim();
    // Drop a leading section number such as `1.4` or `2.`.
    let text = match text.split_once(' ') {
        Some((first, tail))
            if !first.is_empty() && first.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            tail.trim()
        }
        _ => text,
    };
    Some(text.to_string())
}

/// `- [ ] Login works` / `* [x] Login works` → `Login works`.
fn checklist_item(line: &str) -> Option<String> {
    let rest = line
        .strip_prefix("- ")
        .or_else(|| line.strip_prefix("* "))?;
    let rest = rest
        .strip_prefix("[ ]")
        .or_else(|| rest.strip_prefix("[x]"))
        .or_else(|| rest.strip_prefix("[X]"))?;
    let item = rest.trim();
    (!item.is_empty()).then(|| item.to_string())
}

fn add_item(doc: &mut PlanDocument, heading: &str, item: String) {
    let name = if heading.is_empty() {
        "Checklist".to_string()
    } else {
        heading.to_string()
    };
    match doc.checklists.iter_mut().find(|c| c.name == name) {
        Some(c) if !c.items.contains(&item) => c.items.push(item),
        Some(_) => {}
        None => doc.checklists.push(Checklist {
            name,
            items: vec![item],
        }),
    }
}

fn table_cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_start_matches('|')
        .trim_end_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// What entering a phase requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseGates {
    /// The phase these gates guard the entry to.
    pub phase: Phase,
    /// The previous phase must have lasted at least this long (the monitoring window), hours.
    pub min_window_hours: u32,
    /// A decision is due once the previous phase has lasted this long, hours.
    pub decision_due_hours: Option<u32>,
    /// Checklists whose every item must be ticked.
    pub checklists: Vec<String>,
    /// Milestones that must be signed.
    pub milestones: Vec<String>,
    /// Guards that must be `ok`.
    pub guards: Vec<String>,
    /// No pending or drifted migrations.
    pub migrations: bool,
}

/// The seed's gates: into pilot after the prerequisites, the smoke test and the first three
/// sign-offs (with migrations applied); into 10% after 24 h of pilot monitoring (a decision is
/// due at 72 h) and the pilot sign-offs; into 50% and into 100% after 48 h of monitoring each,
/// 100% also after the "50% rollout" sign-off. Every phase after the pilot also needs the seed's
/// four guards ok.
pub fn seed_gates() -> Vec<PhaseGates> {
    // Widening past the pilot needs every guard of the seed's "Metrics to Watch" ok.
    let guards: Vec<String> = crate::guard::seed_guards()
        .into_iter()
        .map(|g| g.name)
        .collect();
    let gates =
        |phase, min, due: Option<u32>, checklists: &[&str], milestones: &[&str], migrations| {
            PhaseGates {
                phase,
                min_window_hours: min,
                decision_due_hours: due,
                checklists: checklists.iter().map(|s| s.to_string()).collect(),
                milestones: milestones.iter().map(|s| s.to_string()).collect(),
                guards: if phase == Phase::Pilot {
                    Vec::new()
                } else {
                    guards.clone()
                },
                migrations,
            }
        };
    vec![
        gates(
            Phase::Pilot,
            0,
            None,
            &["Prerequisites", "Smoke Test (Existing Features)"],
            &["Code deployed", "Migrations applied", "Smoke tests passed"],
            true,
        ),
        gates(
            Phase::Percent(crate::Percentage::TEN),
            24,
            Some(72),
            &["Monitor Pilot (24-72 hours)"],
            &["Pilot enabled", "Pilot validated"],
            true,
        ),
        gates(
            Phase::Percent(crate::Percentage::FIFTY),
            48,
            None,
            &["Monitor for 48 hours"],
            &[],
            true,
        ),
        gates(
            Phase::Full,
            48,
            None,
            &["Monitor for 48 hours"],
            &["50% rollout"],
            true,
        ),
    ]
}

/// The facts the gates are checked against.
#[derive(Debug, Clone, Default)]
pub struct GateFacts {
    /// Now, Unix seconds.
    pub now: i64,
    /// When the current phase began, Unix seconds.
    pub phase_since: i64,
    /// Ticked items: (checklist, item).
    pub ticked: BTreeSet<(String, String)>,
    /// Signed milestones.
    pub signed: BTreeSet<String>,
    /// Guards that are not `ok` (alert, warning, on hold, or not read recently), with their state
    /// in words.
    pub guards_not_ok: BTreeMap<String, String>,
    /// The rollout was paused (by a guard's alert) and no one resumed it: why.
    pub paused: Option<String>,
    /// No pending or drifted migrations.
    pub migrations_ready: bool,
    /// Whether the change still needs a second user's approval.
    pub approval: Approval,
}

/// The approval state of the change being gated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Approval {
    /// The plan does not require approvals.
    #[default]
    NotRequired,
    /// A second user approved this exact change.
    Approved,
    /// Needed from one of these roles (and not the requester).
    Needed(Vec<String>),
}

/// A gate that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unmet {
    /// The monitoring window has not elapsed.
    Window {
        /// Seconds left.
        remaining_secs: i64,
    },
    /// A checklist item is not ticked.
    Unticked {
        /// Checklist.
        checklist: String,
        /// Item.
        item: String,
    },
    /// The plan has no checklist of that name (a gate names it).
    MissingChecklist {
        /// Checklist.
        checklist: String,
    },
    /// A milestone is not signed.
    Unsigned {
        /// Milestone.
        milestone: String,
    },
    /// A guard is not ok.
    Guard {
        /// Guard.
        guard: String,
        /// Its state, in words.
        state: String,
    },
    /// The rollout is paused until someone resumes it.
    Paused {
        /// Why.
        reason: String,
    },
    /// Migrations are pending or drifted.
    Migrations,
    /// The exact change has not been approved by a second user.
    Approval {
        /// Roles that may approve.
        roles: Vec<String>,
    },
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmet::Window { remaining_secs } => {
                let m = (remaining_secs + 59) / 60;
                write!(
                    f,
                    "monitoring window not elapsed: {} h {} min left",
                    m / 60,
                    m % 60
                )
            }
            Unmet::Unticked { checklist, item } => write!(f, "not ticked: {checklist} — {item}"),
            Unmet::MissingChecklist { checklist } => {
                write!(f, "the plan has no checklist {checklist:?}")
            }
            Unmet::Unsigned { milestone } => write!(f, "not signed: {milestone}"),
            Unmet::Guard { guard, state } => write!(f, "guard not ok: {guard} — {state}"),
            Unmet::Paused { reason } => {
                write!(f, "the rollout is paused: {reason}; resume it first")
            }
            Unmet::Migrations => f.write_str("migrations pending or drifted"),
            Unmet::Approval { roles } => write!(
                f,
                "not approved: this exact change needs the approval of a second user ({})",
                roles.join(" or ")
            ),
        }
    }
}

/// Every gate of `gates` that does not hold, in a stable order: window, checklists, milestones,
/// guards, migrations. Empty means the phase may be entered.
pub fn unmet(plan: &PlanDocument, gates: &PhaseGates, facts: &GateFacts) -> Vec<Unmet> {
    let mut out = Vec::new();
    let window = i64::from(gates.min_window_hours) * 3600;
    let elapsed = facts.now.saturating_sub(facts.phase_since);
    if elapsed < window {
        out.push(Unmet::Window {
            remaining_secs: window - elapsed,
        });
    }
    for name in &gates.checklists {
        match plan.checklists.iter().find(|c| &c.name == name) {
            None => out.push(Unmet::MissingChecklist {
                checklist: name.clone(),
            }),
            Some(c) => {
                for item in &c.items {
                    if !facts.ticked.contains(&(name.clone(), item.clone())) {
                        out.push(Unmet::Unticked {
                            checklist: name.clone(),
                            item: item.clone(),
                        });
                    }
                }
            }
        }
    }
    for m in &gates.milestones {
        if !facts.signed.contains(m) {
            out.push(Unmet::Unsigned {
                milestone: m.clone(),
            });
        }
    }
    for g in &gates.guards {
        if let Some(state) = facts.guards_not_ok.get(g) {
            out.push(Unmet::Guard {
                guard: g.clone(),
                state: state.clone(),
            });
        }
    }
    if gates.migrations && !facts.migrations_ready {
        out.push(Unmet::Migrations);
    }
    out
}

/// Every gate a move from `from` to `to` must pass: the gates of each phase entered on the way
/// (`from < phase <= to`), the approval once. Entering a phase beyond the next one skips the
/// intermediate monitoring windows, so their windows count as not started. Duplicates (the same
/// checklist guarding two phases) are listed once. Moving down is never gated: empty.
pub fn unmet_for_change(
    plan: &PlanDocument,
    gates: &[PhaseGates],
    from: Phase,
    to: Phase,
    facts: &GateFacts,
) -> Vec<Unmet> {
    if to <= from {
        return Vec::new();
    }
    let mut entered: Vec<&PhaseGates> = gates
        .iter()
        .filter(|g| g.phase > from && g.phase <= to)
        .collect();
    entered.sort_by_key(|g| g.phase);
    let mut window: Option<i64> = None;
    let mut rest: Vec<Unmet> = Vec::new();
    for (i, g) in entered.into_iter().enumerate() {
        let skipped = GateFacts {
            phase_since: facts.now,
            ..facts.clone()
        };
        for u in unmet(plan, g, if i == 0 { facts } else { &skipped }) {
            match u {
                Unmet::Window { remaining_secs } => {
                    window = Some(window.map_or(remaining_secs, |w| w.max(remaining_secs)));
                }
                other if !rest.contains(&other) => rest.push(other),
                _ => {}
            }
        }
    }
    let mut out: Vec<Unmet> = window
        .map(|remaining_secs| Unmet::Window { remaining_secs })
        .into_iter()
        .collect();
    out.extend(rest);
    if let Some(reason) = &facts.paused {
        out.insert(
            0,
            Unmet::Paused {
                reason: reason.clone(),
            },
        );
    }
    if let Approval::Needed(roles) = &facts.approval {
        out.push(Unmet::Approval {
            roles: roles.clone(),
        });
    }
    out
}

/// Whether the decision on the current phase is overdue (it has lasted longer than
/// `decision_due_hours`).
pub fn decision_overdue(gates: &PhaseGates, facts: &GateFacts) -> bool {
    gates
        .decision_due_hours
        .is_some_and(|h| facts.now.saturating_sub(facts.phase_since) > i64::from(h) * 3600)
}

/// A checklist item as people read it: the seed's placeholders for the chosen pilots
/// (`<tenant_id_a>`, `<tenant_id_b>`, `<tenant_id_c>`) filled with the flag's pilots in order, or
/// "not chosen yet" while there are fewer. The item itself (what a tick records) is unchanged.
pub fn fill_placeholders(item: &str, pilots: &[String]) -> String {
    let mut out = item.to_string();
    for (i, letter) in ["a", "b", "c"].iter().enumerate() {
        let placeholder = format!("<tenant_id_{letter}>");
        if out.contains(&placeholder) {
            let with = pilots
                .get(i)
                .map_or_else(|| "not chosen yet".to_string(), Clone::clone);
            out = out.replace(&format!("`{placeholder}`"), &with);
            out = out.replace(&placeholder, &with);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_name_the_chosen_pilots() {
        let pilots = vec!["acme-logistics".to_string()];
        assert_eq!(
            fill_placeholders("Tenant A: `<tenant_id_a>`", &pilots),
            "Tenant A: acme-logistics"
        );
        assert_eq!(
            fill_placeholders("Tenant B: `<tenant_id_b>`", &pilots),
            "Tenant B: not chosen yet"
        );
        assert_eq!(
            fill_placeholders("No errors in logs", &pilots),
            "No errors in logs"
        );
    }

    const SEED: &str = SEED_PLAN;

    #[test]
    fn the_seed_yields_its_checklists_milestones_and_contacts() {
        let plan = import_markdown(SEED).unwrap();
        let names: Vec<&str> = plan.checklists.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Prerequisites",
                "Smoke Test (Existing Features)",
                "Select Pilot Tenants",
                "Monitor Pilot (24-72 hours)",
                "Monitor for 48 hours",
                "Day 1 Checks",
                "Week 1 Review",
            ]
        );
        assert_eq!(plan.checklists[0].items.len(), 5);
        assert_eq!(plan.checklists[1].items[0], "Login works");
        let milestones: Vec<(&str, &str)> = plan
            .milestones
            .iter()
            .map(|m| (m.name.as_str(), m.owner.as_str()))
            .collect();
        assert_eq!(
            milestones,
            [
                ("Code deployed", "DevOps"),
                ("Migrations applied", "DBA"),
                ("Smoke tests passed", "QA"),
                ("Pilot enabled", "Product"),
                ("Pilot validated", "Product"),
                ("50% rollout", "Product"),
                ("Full rollout", "Product"),
                ("Post-rollout review", "Team"),
            ]
        );
        let roles: Vec<&str> = plan.contacts.iter().map(|c| c.role.as_str()).collect();
        assert_eq!(
            roles,
            ["On-call Engineer", "Database Admin", "Product Owner"]
        );
        // Code blocks are not headings: `# Automated backup script` did not start a checklist.
        assert!(!names.iter().any(|n| n.contains("backup")));
        // Every gate of the seed names a checklist and milestones the seed has.
        for g in seed_gates() {
            for c in &g.checklists {
                assert!(names.contains(&c.as_str()), "{c}");
            }
            for m in &g.milestones {
                assert!(plan.milestones.iter().any(|x| &x.name == m), "{m}");
            }
        }
    }

    #[test]
    fn imports_refuse_documents_without_a_plan() {
        let e = import_markdown("# Notes\nJust text.\n```\n- [ ] in code\n```\n").unwrap_err();
        assert!(e.to_string().contains("found no checklist"), "{e}");
        assert!(import_markdown("").is_err());
    }

    #[test]
    fn an_owner_that_maps_to_no_role_is_refused_by_name() {
        let e = import_markdown("| Milestone | Owner |\n|---|---|\n| Legal review | Legal |\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Legal review") && e.contains("\"Legal\""), "{e}");
        assert!(import_markdown("| Milestone | Owner |\n|---|---|\n| Ship | qa |\n").is_ok());
    }

    #[test]
    fn duplicates_merge_and_loose_items_get_a_default_name() {
        let p = import_markdown("- [ ] a\n- [ ] a\n* [X] b\n").unwrap();
        assert_eq!(p.checklists.len(), 1);
        assert_eq!(p.checklists[0].name, "Checklist");
        assert_eq!(p.checklists[0].items, ["a", "b"]);
    }

    fn facts(hours_in_phase: i64) -> GateFacts {
        GateFacts {
            now: 1_000_000,
            phase_since: 1_000_000 - hours_in_phase * 3600,
            migrations_ready: true,
            ..GateFacts::default()
        }
    }

    fn tick_all(plan: &PlanDocument, checklist: &str, f: &mut GateFacts) {
        for c in plan.checklists.iter().filter(|c| c.name == checklist) {
            for i in &c.items {
                f.ticked.insert((c.name.clone(), i.clone()));
            }
        }
    }

    #[test]
    fn gates_table() {
        let plan = import_markdown(SEED).unwrap();
        let gates = seed_gates();
        let into_ten = &gates[1];
        // (hours in pilot, tick monitoring, sign both, migrations ready) → unmet kinds
        let cases: &[(i64, bool, bool, bool, &[&str])] = &[
            (0, false, false, true, &["window", "unticked", "unsigned"]),
            (23, true, true, true, &["window"]),
            (24, true, true, true, &[]),
            (30, false, true, true, &["unticked"]),
            (30, true, false, true, &["unsigned"]),
            (30, true, true, false, &["migrations"]),
        ];
        for (hours, tick, sign, ready, expected) in cases {
            let mut f = facts(*hours);
            f.migrations_ready = *ready;
            if *tick {
                tick_all(&plan, "Monitor Pilot (24-72 hours)", &mut f);
            }
            if *sign {
                f.signed.insert("Pilot enabled".into());
                f.signed.insert("Pilot validated".into());
            }
            let kinds: BTreeSet<String> = unmet(&plan, into_ten, &f)
                .iter()
                .map(|u| {
                    serde_json::to_value(u).unwrap()["kind"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                kinds, expected,
                "case {hours} h tick={tick} sign={sign} ready={ready}"
            );
        }
    }

    #[test]
    fn unmet_gates_say_what_is_missing() {
        let plan = import_markdown(SEED).unwrap();
        let gates = seed_gates();
        let u = unmet(&plan, &gates[1], &facts(3));
        assert_eq!(
            u[0].to_string(),
            "monitoring window not elapsed: 21 h 0 min left"
        );
        assert!(u.contains(&Unmet::Unticked {
            checklist: "Monitor Pilot (24-72 hours)".into(),
            item: "Errors in application logs".into()
        }));
        assert!(u.contains(&Unmet::Unsigned {
            milestone: "Pilot validated".into()
        }));
        let mut g = gates[2].clone();
        assert_eq!(g.guards.len(), 4);
        let mut f = facts(50);
        f.guards_not_ok
            .insert("api_error_rate".into(), "alert: 2% > 1%".into());
        tick_all(&plan, "Monitor for 48 hours", &mut f);
        let u = unmet(&plan, &g, &f);
        assert_eq!(
            u,
            [Unmet::Guard {
                guard: "api_error_rate".into(),
                state: "alert: 2% > 1%".into()
            }]
        );
        assert_eq!(
            u[0].to_string(),
            "guard not ok: api_error_rate — alert: 2% > 1%"
        );
        g.checklists.push("Nope".into());
        assert!(unmet(&plan, &g, &f).contains(&Unmet::MissingChecklist {
            checklist: "Nope".into()
        }));
    }

    #[test]
    fn a_change_passes_the_gates_of_every_phase_it_enters() {
        let plan = import_markdown(SEED).unwrap();
        let gates = seed_gates();
        let ten: Phase = "10%".parse().unwrap();
        let fifty: Phase = "50%".parse().unwrap();
        let mut f = facts(30);
        tick_all(&plan, "Monitor Pilot (24-72 hours)", &mut f);
        f.signed.insert("Pilot enabled".into());
        f.signed.insert("Pilot validated".into());
        // Pilot → 10%: its gates hold.
        assert_eq!(unmet_for_change(&plan, &gates, Phase::Pilot, ten, &f), []);
        // Moving down, or staying, is never gated.
        assert_eq!(unmet_for_change(&plan, &gates, fifty, Phase::Off, &f), []);
        assert_eq!(unmet_for_change(&plan, &gates, ten, ten, &f), []);
        // Pilot → 50% skips the 10% window: 48 h of it are still ahead, listed once.
        let skip = unmet_for_change(&plan, &gates, Phase::Pilot, fifty, &f);
        assert_eq!(
            skip[0],
            Unmet::Window {
                remaining_secs: 48 * 3600
            }
        );
        assert_eq!(
            skip.iter()
                .filter(|u| matches!(u, Unmet::Window { .. }))
                .count(),
            1
        );
        assert!(skip.iter().any(|u| matches!(u, Unmet::Unticked { checklist, .. } if checklist == "Monitor for 48 hours")));
        // Off → 100% needs every gate of the ladder; the shared checklist appears once.
        let all = unmet_for_change(&plan, &gates, Phase::Off, Phase::Full, &facts(0));
        for (i, u) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(u), "listed twice: {u}");
        }
        assert!(all.iter().any(|u| matches!(u, Unmet::Unticked { checklist, .. } if checklist == "Monitor for 48 hours")));
        assert!(all.contains(&Unmet::Unsigned {
            milestone: "50% rollout".into()
        }));
        // The approval is asked once, last.
        f.approval = Approval::Needed(vec!["product_owner".into(), "admin".into()]);
        let u = unmet_for_change(&plan, &gates, Phase::Pilot, ten, &f);
        assert_eq!(u.len(), 1);
        assert_eq!(
            u[0].to_string(),
            "not approved: this exact change needs the approval of a second user (product_owner or admin)"
        );
        f.approval = Approval::Approved;
        assert_eq!(unmet_for_change(&plan, &gates, Phase::Pilot, ten, &f), []);
        // A paused rollout is refused first, whatever else holds.
        f.paused = Some("guard api_error_rate alerted".into());
        assert_eq!(
            unmet_for_change(&plan, &gates, Phase::Pilot, ten, &f)[0].to_string(),
            "the rollout is paused: guard api_error_rate alerted; resume it first"
        );
    }

    #[test]
    fn a_pilot_decision_is_due_after_72_hours() {
        let gates = seed_gates();
        assert!(!decision_overdue(&gates[1], &facts(72)));
        assert!(decision_overdue(&gates[1], &facts(73)));
        assert!(!decision_overdue(&gates[2], &facts(500)));
    }
}
