//! The compact snapshot (`tenantry.snapshot/v2`) against the version-1 snapshot it stands for:
//! same rows, same decisions (on and reason) for every tenant and flag, incremental updates equal
//! to compacting again, a parser that never panics.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};

use flags::compact::{CompactSnapshot, Exceptions};
use flags::{
    Attribute, Constraint, Error, Evaluator, FlagState, IdSet, Operator, Percentage, Phase, Reason,
    Rollout, Snapshot, Target, Tenant,
};
use proptest::prelude::*;

const PLANS: [&str; 4] = ["", "free", "pro", "enterprise"];
const REGIONS: [&str; 3] = ["", "eu-west", "us-gov"];
const TAGS: [&str; 3] = ["beta", "strategic", "eu"];
/// An id no tenant has: rows, pilots and exclusions of unknown tenants.
const GHOST: &str = "ghost";

fn attributes() -> impl Strategy<Value = (usize, usize, Vec<usize>)> {
    (
        0..PLANS.len(),
        0..REGIONS.len(),
        proptest::collection::vec(0..TAGS.len(), 0..3),
    )
}

fn tenant(id: &str, (plan, region, tags): &(usize, usize, Vec<usize>)) -> Tenant {
    Tenant {
        id: id.to_string(),
        plan: PLANS[*plan].to_string(),
        region: REGIONS[*region].to_string(),
        tags: tags.iter().map(|t| TAGS[*t].to_string()).collect(),
    }
}

/// Tenant records; about one in eight is archived (not in the snapshot, but its rows may be).
fn records() -> impl Strategy<Value = (Vec<Tenant>, Vec<bool>)> {
    proptest::collection::btree_set("[a-z0-9]{1,6}", 1..40)
        .prop_flat_map(|ids| {
            let n = ids.len();
            (
                Just(ids),
                proptest::collection::vec(attributes(), n),
                proptest::collection::vec(proptest::bool::weighted(0.88), n),
            )
        })
        .prop_map(|(ids, attrs, known)| {
            let records = ids
                .iter()
                .zip(&attrs)
                .map(|(id, a)| tenant(id, a))
                .collect();
            (records, known)
        })
}

fn constraint() -> impl Strategy<Value = Constraint> {
    (
        prop_oneof![
            Just(Attribute::Plan),
            Just(Attribute::Region),
            Just(Attribute::Tag)
        ],
        prop_oneof![Just(Operator::In), Just(Operator::NotIn)],
        proptest::collection::vec(0usize..4, 0..3),
    )
        .prop_map(|(attribute, operator, values)| {
            let pool: &[&str] = match attribute {
                Attribute::Plan => &PLANS,
                Attribute::Region => &REGIONS,
                Attribute::Tag => &TAGS,
            };
            Constraint {
                attribute,
                operator,
                values: values
                    .iter()
                    .map(|v| pool.get(*v).copied().unwrap_or("other").to_string())
                    .collect(),
            }
        })
}

/// A target: pilots by index into the records (an index past them is an unknown tenant),
/// a percentage biased to the edges, constraints over the attributes.
#[derive(Debug, Clone)]
struct TargetSpec {
    pilots: Vec<usize>,
    percentage: u32,
    constraints: Vec<Constraint>,
}

fn target_spec() -> impl Strategy<Value = TargetSpec> {
    (
        proptest::collection::vec(0usize..48, 0..4),
        prop_oneof![Just(0u32), Just(100u32), 0u32..=100],
        proptest::collection::vec(constraint(), 0..3),
    )
        .prop_map(|(pilots, percentage, constraints)| TargetSpec {
            pilots,
            percentage,
            constraints,
        })
}

fn id_at(records: &[Tenant], i: usize) -> String {
    records
        .get(i)
        .map(|t| t.id.clone())
        .unwrap_or_else(|| GHOST.to_string())
}

fn build_target(spec: &TargetSpec, records: &[Tenant]) -> Target {
    Target {
        pilots: spec.pilots.iter().map(|i| id_at(records, *i)).collect(),
        percentage: Percentage::new(spec.percentage).unwrap(),
        constraints: spec.constraints.clone(),
    }
}

/// One flag's state: the rows materialised from its target (or none), then perturbed.
#[derive(Debug, Clone)]
struct FlagSpec {
    target: Option<TargetSpec>,
    materialised: bool,
    extra_on: Vec<usize>,
    dropped: Vec<usize>,
    excluded: Vec<usize>,
    enabled: bool,
}

fn flag_spec() -> impl Strategy<Value = FlagSpec> {
    (
        proptest::option::weighted(0.85, target_spec()),
        proptest::bool::weighted(0.7),
        proptest::collection::vec(0usize..48, 0..5),
        proptest::collection::vec(0usize..48, 0..5),
        proptest::collection::vec(0usize..48, 0..3),
        proptest::bool::weighted(0.15),
    )
        .prop_map(
            |(target, materialised, extra_on, dropped, excluded, enabled)| FlagSpec {
                target,
                materialised,
                extra_on,
                dropped,
                excluded,
                enabled,
            },
        )
}

fn flag_state(key: &str, spec: &FlagSpec, records: &[Tenant]) -> FlagState {
    let target = spec.target.as_ref().map(|t| build_target(t, records));
    let mut state = match (&target, spec.materialised) {
        // Rows over every record, archived ones included (as the vectors do).
        (Some(t), true) => FlagState::default().materialise(key, t.clone(), records),
        _ => FlagState {
            target,
            ..FlagState::default()
        },
    };
    for i in &spec.extra_on {
        state.on.insert(id_at(records, *i));
    }
    for i in &spec.dropped {
        state.on.remove(&id_at(records, *i));
    }
    for i in &spec.excluded {
        state.excluded.insert(id_at(records, *i));
    }
    state.enabled = spec.enabled;
    state
}

fn snapshot_of(records: &[Tenant], known: &[bool], flags: &[FlagSpec]) -> Snapshot {
    let mut snap = Snapshot::new(17);
    snap.tenants = records
        .iter()
        .zip(known)
        .filter(|(_, k)| **k)
        .map(|(t, _)| t.id.clone())
        .collect();
    for (i, spec) in flags.iter().enumerate() {
        let key = format!("flag_{i}.k");
        let state = flag_state(&key, spec, records);
        snap.flags.insert(key, state);
    }
    snap
}

/// `snapshot` without the rows and exclusions of tenants it does not know: what the compact form
/// keeps (those tenants evaluate as unknown either way).
fn known_only(snapshot: &Snapshot) -> Snapshot {
    let mut out = snapshot.clone();
    for state in out.flags.values_mut() {
        let keep = |set: &IdSet| -> IdSet {
            set.iter()
                .filter(|id| snapshot.tenants.contains(*id))
                .cloned()
                .collect()
        };
        state.on = keep(&state.on);
        state.excluded = keep(&state.excluded);
    }
    out
}

/// Every flag (and one unknown) for every record (and one unknown id): the compact form, the v1
/// snapshot and both compiled evaluators give the same decision, reason included.
fn same_decisions(
    v1: &Snapshot,
    v2: &CompactSnapshot,
    records: &[Tenant],
) -> Result<(), TestCaseError> {
    let from_v1 = Evaluator::new(v1);
    let from_v2 = Evaluator::from_compact(v2);
    let keys: Vec<String> = v1
        .flags
        .keys()
        .cloned()
        .chain(["no_such_flag".to_string()])
        .collect();
    for key in &keys {
        for id in records.iter().map(|t| t.id.as_str()).chain([GHOST]) {
            let expected = v1.evaluate(key, id);
            prop_assert_eq!(v2.evaluate(key, id), expected, "compact {} {}", key, id);
            prop_assert_eq!(
                from_v1.evaluate(key, id),
                expected,
                "v1 evaluator {} {}",
                key,
                id
            );
            prop_assert_eq!(
                from_v2.evaluate(key, id),
                expected,
                "v2 evaluator {} {}",
                key,
                id
            );
        }
    }
    Ok(())
}

/// One change the server's delta path applies.
#[derive(Debug, Clone)]
enum Op {
    /// A `feature_flags` row as it now stands (`tenant: None` = the global row).
    Row {
        flag: usize,
        tenant: Option<usize>,
        enabled: bool,
        excluded: bool,
    },
    /// A flag's rollout target.
    Target {
        flag: usize,
        target: Option<TargetSpec>,
    },
    /// A tenant created, updated or brought back (index past the initial records: a new one).
    Upsert {
        tenant: usize,
        attributes: (usize, usize, Vec<usize>),
    },
    /// A tenant archived.
    Remove { tenant: usize },
    /// A flag deleted.
    RemoveFlag { flag: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..5, proptest::option::weighted(0.9, 0usize..56), any::<bool>(), proptest::bool::weighted(0.2))
            .prop_map(|(flag, tenant, enabled, excluded)| Op::Row { flag, tenant, enabled, excluded }),
        2 => (0usize..5, proptest::option::weighted(0.85, target_spec()))
            .prop_map(|(flag, target)| Op::Target { flag, target }),
        2 => (0usize..56, attributes()).prop_map(|(tenant, attributes)| Op::Upsert { tenant, attributes }),
        1 => (0usize..56).prop_map(|tenant| Op::Remove { tenant }),
        1 => (0usize..5).prop_map(|flag| Op::RemoveFlag { flag }),
    ]
}

/// The id of tenant `i` in an op: a record's, or a new tenant's past them.
fn op_id(records: &[Tenant], i: usize) -> String {
    records
        .get(i)
        .map(|t| t.id.clone())
        .unwrap_or_else(|| format!("new-{i}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `expand(compact(s)) == s` (rows of known tenants), and the decisions agree everywhere.
    #[test]
    fn compact_form_expands_back_and_decides_the_same(
        (records, known) in records(),
        flags in proptest::collection::vec(flag_spec(), 1..5),
    ) {
        let v1 = snapshot_of(&records, &known, &flags);
        let v2 = CompactSnapshot::compact(&v1, &records).unwrap();
        prop_assert_eq!(v2.expand(), known_only(&v1));
        same_decisions(&v1, &v2, &records)?;
        // Every listed exception is a real difference from the target.
        for key in v1.flags.keys() {
            let e = v2.exceptions(key).unwrap();
            let state = &v1.flags[key];
            let target = state.target.clone().unwrap_or_default();
            for id in &e.on {
                let t = records.iter().find(|t| t.id == *id).unwrap();
                prop_assert!(state.on.contains(*id) && (state.target.is_none() || !target.includes(key, t)));
            }
            for id in &e.off {
                let t = records.iter().find(|t| t.id == *id).unwrap();
                prop_assert!(!state.on.contains(*id) && target.includes(key, t));
            }
        }
        // The counts the dashboard shows: what counting decisions and rows one by one gives.
        let known_v1 = known_only(&v1);
        for (key, state) in &known_v1.flags {
            let c = v2.counts(key).unwrap();
            let on = known_v1.tenants.iter().filter(|id| v2.evaluate(key, id).on).count();
            prop_assert_eq!(c.on, on);
            prop_assert_eq!(c.rows_on, state.on.len());
            prop_assert_eq!(c.excluded, state.excluded.len());
        }
        prop_assert!(v2.counts("no such flag").is_none());
        let all = v2.count_all(None);
        prop_assert_eq!(all.tenants, known_v1.tenants.len());
        prop_assert_eq!(all.flags.len(), known_v1.flags.len());
        // Reusing counts keeps the unchanged flags and counts the changed ones again.
        let mut stale = all.clone();
        for c in stale.flags.values_mut() {
            c.on += 1;
        }
        let changed: Vec<String> = all.flags.keys().take(1).cloned().collect();
        let mixed = v2.count_all(Some((&stale, &changed)));
        for (key, c) in &mixed.flags {
            let want = if changed.contains(key) { all.flags[key] } else { stale.flags[key] };
            prop_assert_eq!(*c, want);
        }
        // Through JSON and back, and compacting the expansion again: the same snapshot.
        let back = CompactSnapshot::from_json(v2.to_json().unwrap().as_bytes()).unwrap();
        prop_assert_eq!(&back, &v2);
        same_decisions(&v1, &back, &records)?;
        prop_assert_eq!(&CompactSnapshot::compact(&v2.expand(), &records).unwrap(), &v2);
        prop_assert_eq!(back.tenants(), {
            let mut live: Vec<Tenant> = records.iter().zip(&known).filter(|(_, k)| **k).map(|(t, _)| t.clone()).collect();
            live.sort_by(|a, b| a.id.cmp(&b.id));
            live
        });
    }

    /// Rows materialised from a rollout's phases (and nothing set by hand) compact to no
    /// exceptions at all.
    #[test]
    fn materialised_rows_compact_to_empty_on_and_off(
        (records, known) in records(),
        phases in proptest::collection::vec(prop_oneof![Just(0u32), Just(100u32), 1u32..100], 1..4),
        pilots in proptest::collection::vec(0usize..48, 0..4),
        constraints in proptest::collection::vec(constraint(), 0..3),
        excluded in proptest::collection::vec(0usize..48, 0..3),
    ) {
        let mut v1 = snapshot_of(&records, &known, &[]);
        let key = "multi_workspace_enabled";
        let pilots: BTreeSet<String> = pilots.iter().map(|i| id_at(&records, *i)).collect();
        let mut rollout = Rollout { phase: Phase::Off, pilots, constraints };
        let mut state = FlagState::default();
        for i in &excluded {
            state.excluded.insert(id_at(&records, *i));
        }
        for p in phases {
            let next = rollout.with_phase(match p {
                0 => Phase::Pilot,
                100 => Phase::Full,
                p => Phase::Percent(Percentage::new(p).unwrap()),
            });
            state = rollout.apply(&state, key, &next, &records);
            rollout = next;
        }
        v1.flags.insert(key.to_string(), state);
        let v2 = CompactSnapshot::compact(&v1, &records).unwrap();
        let e = v2.exceptions(key).unwrap();
        prop_assert!(e.on.is_empty() && e.off.is_empty(), "{:?}", e);
        same_decisions(&v1, &v2, &records)?;
    }

    /// Applying a sequence of changes to `compact(s)` gives `compact(s after the changes)`.
    #[test]
    fn incremental_updates_equal_compacting_again(
        (records, known) in records(),
        flags in proptest::collection::vec(flag_spec(), 1..4),
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let mut v1 = snapshot_of(&records, &known, &flags);
        let mut live: BTreeMap<String, Tenant> = records
            .iter()
            .zip(&known)
            .filter(|(_, k)| **k)
            .map(|(t, _)| (t.id.clone(), t.clone()))
            .collect();
        let mut v2 = CompactSnapshot::compact(&v1, &records).unwrap();
        for op in ops {
            match op {
                Op::Row { flag, tenant, enabled, excluded } => {
                    let key = format!("flag_{flag}.k");
                    let state = v1.flags.entry(key.clone()).or_default();
                    let id = tenant.map(|i| op_id(&records, i));
                    match &id {
                        None => state.enabled = enabled,
                        Some(id) => {
                            if enabled { state.on.insert(id.clone()); } else { state.on.remove(id); }
                            if excluded { state.excluded.insert(id.clone()); } else { state.excluded.remove(id); }
                        }
                    }
                    let recorded = v2.set_row(&key, id.as_deref(), enabled, excluded).unwrap();
                    prop_assert_eq!(recorded, id.as_ref().is_none_or(|id| live.contains_key(id)));
                }
                Op::Target { flag, target } => {
                    let key = format!("flag_{flag}.k");
                    let target = target.map(|t| build_target(&t, &records));
                    v1.flags.entry(key.clone()).or_default().target = target.clone();
                    v2.set_target(&key, target).unwrap();
                }
                Op::Upsert { tenant, attributes } => {
                    let t = self::tenant(&op_id(&records, tenant), &attributes);
                    let new = !live.contains_key(&t.id);
                    live.insert(t.id.clone(), t.clone());
                    v1.tenants.insert(t.id.clone());
                    v2.upsert_tenant(t.clone()).unwrap();
                    if new {
                        // The server then applies the tenant's rows (an archived tenant's rows
                        // stayed in the table while the snapshot forgot them).
                        for (key, state) in &v1.flags {
                            let (on, ex) = (state.on.contains(&t.id), state.excluded.contains(&t.id));
                            if on || ex {
                                prop_assert!(v2.set_row(key, Some(&t.id), on, ex).unwrap());
                            }
                        }
                    }
                }
                Op::Remove { tenant } => {
                    let id = op_id(&records, tenant);
                    let was = live.remove(&id).is_some();
                    v1.tenants.remove(&id);
                    prop_assert_eq!(v2.remove_tenant(&id), was);
                }
                Op::RemoveFlag { flag } => {
                    let key = format!("flag_{flag}.k");
                    prop_assert_eq!(v2.remove_flag(&key), v1.flags.remove(&key).is_some());
                }
            }
        }
        let records_after: Vec<Tenant> = live.values().cloned().collect();
        let again = CompactSnapshot::compact(&v1, &records_after).unwrap();
        prop_assert_eq!(&v2, &again);
        prop_assert_eq!(v2.to_json().unwrap(), again.to_json().unwrap());
        let mut probe = records_after.clone();
        probe.extend(records.iter().cloned());
        same_decisions(&v1, &v2, &probe)?;
    }

    #[test]
    fn compact_parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = CompactSnapshot::from_json(&bytes);
    }

    #[test]
    fn compact_parser_never_panics_on_near_json(
        version in any::<i64>(), pct in any::<i64>(), key in ".{0,6}", id in ".{0,6}",
        index in prop_oneof![Just(0i64), Just(1), any::<i64>()],
        column in proptest::collection::vec(prop_oneof![Just(0i64), Just(1), any::<i64>()], 0..3),
        format in prop_oneof![Just("tenantry.snapshot/v2".to_string()), ".{0,20}"],
    ) {
        let doc = serde_json::json!({
            "format": format, "version": version,
            "tenants": {"ids": [id], "plans": ["pro"], "plan": column.clone(),
                        "tag_sets": [["beta"]], "tags": column},
            "flags": { key.clone(): { "enabled": false, "on": [index], "off": [index], "excluded": [index],
                              "target": { "percentage": pct } } }
        });
        if let Ok(snap) = CompactSnapshot::from_json(doc.to_string().as_bytes()) {
            // What parses evaluates, expands and writes back to itself.
            let _ = snap.evaluate(&key, &id);
            let _ = snap.expand();
            let back = CompactSnapshot::from_json(snap.to_json().unwrap().as_bytes()).unwrap();
            prop_assert_eq!(back, snap);
        }
    }
}

/// The documented JSON shape, exactly: sorted ids and dictionaries, positions, empty lists left
/// out, a column left out when every tenant has the empty value.
#[test]
fn writes_the_documented_shape() {
    let mut acme = Tenant::new("acme");
    acme.plan = "pro".into();
    acme.tags = vec!["beta".into()];
    let mut globex = Tenant::new("globex");
    globex.plan = "enterprise".into();
    let mut initech = Tenant::new("initech");
    initech.plan = "pro".into();
    let records = [initech, globex, acme];
    let mut target = Target::percentage(Percentage::ZERO);
    target.pilots.insert("acme".into());
    let mut v1 = Snapshot::new(42);
    v1.tenants = ["acme", "globex", "initech"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut state = FlagState::default().materialise("multi_workspace_enabled", target, &records);
    state.on.insert("initech".into());
    state.excluded.insert("globex".into());
    v1.flags.insert("multi_workspace_enabled".into(), state);
    let v2 = CompactSnapshot::compact(&v1, &records).unwrap();
    assert_eq!(
        v2.to_json().unwrap(),
        concat!(
            r#"{"format":"tenantry.snapshot/v2","version":42,"tenants":{"ids":["acme","globex","initech"],"#,
            r#""plans":["enterprise","pro"],"plan":[1,0,1],"tag_sets":[[],["beta"]],"tags":[1,0,0]},"#,
            r#""flags":{"multi_workspace_enabled":{"enabled":false,"#,
            r#""target":{"pilots":["acme"],"percentage":0,"constraints":[]},"on":[2],"excluded":[1]}}}"#
        )
    );
    assert_eq!(
        v2.exceptions("multi_workspace_enabled").unwrap(),
        Exceptions {
            on: vec!["initech"],
            off: vec![],
            excluded: vec!["globex"],
        }
    );
    assert_eq!(
        v2.evaluate("multi_workspace_enabled", "acme").reason,
        Reason::Pilot
    );
    assert_eq!(
        v2.evaluate("multi_workspace_enabled", "initech").reason,
        Reason::TenantEnabled
    );
    assert_eq!(
        v2.evaluate("multi_workspace_enabled", "globex").reason,
        Reason::Excluded
    );
}

#[test]
fn bad_compact_snapshots_give_typed_errors() {
    let inconsistent = |doc: &str| {
        let r = CompactSnapshot::from_json(doc.as_bytes());
        assert!(matches!(r, Err(Error::Inconsistent(_))), "{doc}: {r:?}");
    };
    assert!(matches!(
        CompactSnapshot::from_json(b""),
        Err(Error::SnapshotJson(_))
    ));
    assert!(matches!(
        CompactSnapshot::from_json(
            br#"{"format":"rollgate.snapshot/v1","version":1,"tenants":[],"flags":{}}"#
        ),
        Err(Error::UnsupportedFormat { .. })
    ));
    // And the v1 reader refuses a v2 document.
    assert!(matches!(
        Snapshot::from_json(
            br#"{"format":"tenantry.snapshot/v2","version":1,"tenants":{"ids":[]}}"#
        ),
        Err(Error::UnsupportedFormat { .. })
    ));
    assert!(matches!(
        CompactSnapshot::from_json(br#"{"format":"tenantry.snapshot/v2","version":1}"#),
        Err(Error::SnapshotJson(_))
    ));
    assert!(matches!(
        CompactSnapshot::from_json(
            br#"{"format":"tenantry.snapshot/v2","version":1,"tenants":{"ids":["a"]},"flags":{"f":{"target":{"percentage":101}}}}"#
        ),
        Err(Error::SnapshotJson(_))
    ));
    let v2 = r#"{"format":"tenantry.snapshot/v2","version":1,"tenants":"#;
    inconsistent(&format!(r#"{v2}{{"ids":[""]}}}}"#));
    inconsistent(&format!(r#"{v2}{{"ids":["a","a"]}}}}"#));
    inconsistent(&format!(r#"{v2}{{"ids":["a"]}},"flags":{{"":{{}}}}}}"#));
    for list in ["on", "off", "excluded"] {
        inconsistent(&format!(
            r#"{v2}{{"ids":["a"]}},"flags":{{"f":{{"{list}":[1]}}}}}}"#
        ));
    }
    // A column must have one position per tenant, each within its dictionary.
    inconsistent(&format!(
        r#"{v2}{{"ids":["a","b"],"plans":["pro"],"plan":[0]}}}}"#
    ));
    inconsistent(&format!(
        r#"{v2}{{"ids":["a"],"plans":["pro"],"plan":[1]}}}}"#
    ));
    inconsistent(&format!(r#"{v2}{{"ids":["a"],"plan":[0]}}}}"#));
    inconsistent(&format!(
        r#"{v2}{{"ids":["a"],"regions":["eu"],"region":[]}}}}"#
    ));
    inconsistent(&format!(
        r#"{v2}{{"ids":["a"],"tag_sets":[[]],"tags":[4294967295]}}}}"#
    ));
    // The smallest valid documents.
    assert!(CompactSnapshot::from_json(format!(r#"{v2}{{"ids":[]}}}}"#).as_bytes()).is_ok());
    assert!(CompactSnapshot::from_json(
        format!(r#"{v2}{{"ids":["a"],"plans":["pro"],"plan":[0]}},"flags":{{"f":{{"on":[0]}}}}}}"#)
            .as_bytes()
    )
    .is_ok());
}

#[test]
fn compaction_needs_one_record_per_tenant() {
    let mut v1 = Snapshot::new(1);
    v1.tenants = ["a", "b"].iter().map(|s| s.to_string()).collect();
    let a = Tenant::new("a");
    let b = Tenant::new("b");
    assert!(matches!(
        CompactSnapshot::compact(&v1, std::slice::from_ref(&a)),
        Err(Error::Inconsistent(m)) if m.contains("\"b\" has no record")
    ));
    assert!(matches!(
        CompactSnapshot::compact(&v1, &[a.clone(), b.clone(), a.clone()]),
        Err(Error::Inconsistent(m)) if m.contains("two records")
    ));
    // Records of tenants the snapshot does not know are ignored.
    let v2 = CompactSnapshot::compact(&v1, &[a, Tenant::new("archived"), b]).unwrap();
    assert_eq!(v2.tenant_count(), 2);
    assert!(v2.tenant("archived").is_none());
}

#[test]
fn updates_refuse_empty_names_and_skip_unknown_tenants() {
    let mut v2 = CompactSnapshot::new(1);
    assert!(v2.set_row("", None, true, false).is_err());
    assert!(v2.set_target("", None).is_err());
    assert!(v2.upsert_tenant(Tenant::new("")).is_err());
    // A row of a tenant the snapshot does not know creates the flag but records nothing.
    assert!(!v2.set_row("f", Some("nobody"), true, false).unwrap());
    assert_eq!(v2.evaluate("f", "nobody").reason, Reason::UnknownTenant);
    v2.upsert_tenant(Tenant::new("acme")).unwrap();
    assert_eq!(v2.evaluate("f", "acme").reason, Reason::Off);
    assert!(v2.set_row("f", Some("acme"), true, false).unwrap());
    assert_eq!(v2.evaluate("f", "acme").reason, Reason::TenantEnabled);
    // A 100% target implies the tenant: its row is no longer an exception.
    v2.set_target("f", Some(Target::percentage(Percentage::ALL)))
        .unwrap();
    assert_eq!(v2.flag("f").unwrap().on_len(), 0);
    assert!(matches!(
        v2.evaluate("f", "acme").reason,
        Reason::Cohort {
            percentage: 100,
            ..
        }
    ));
    // A new tenant the target implies has no row yet: listed in `off` until its row comes.
    v2.upsert_tenant(Tenant::new("globex")).unwrap();
    assert_eq!(v2.exceptions("f").unwrap().off, vec!["globex"]);
    assert_eq!(v2.evaluate("f", "globex").reason, Reason::Off);
    assert!(v2.set_row("f", Some("globex"), true, false).unwrap());
    assert_eq!(v2.flag("f").unwrap().off_len(), 0);
    assert!(v2.remove_tenant("acme"));
    assert!(!v2.remove_tenant("acme"));
    assert_eq!(v2.evaluate("f", "acme").reason, Reason::UnknownTenant);
    assert!(v2.evaluate("f", "globex").on);
    v2.set_version(2);
    assert_eq!(v2.version(), 2);
    assert_eq!(v2.expand().flags["f"].on.len(), 1);
}

/// The fuzz seeds are valid documents (so the replay in `fuzz_regressions.rs` exercises the
/// checks, not just the parser's refusal): one canonical, one that lists a dictionary value
/// twice and tenants the target already implies in `on` and `off`.
#[test]
fn fuzz_seeds_parse_and_evaluate() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/seeds/compact_snapshot"
    );
    let small =
        CompactSnapshot::from_json(&std::fs::read(format!("{dir}/small.json")).unwrap()).unwrap();
    assert_eq!(
        small.evaluate("multi_workspace_enabled", "acme").reason,
        Reason::Pilot
    );
    assert_eq!(
        small
            .evaluate("multi_workspace_enabled", "acme-logistics")
            .reason,
        Reason::Excluded
    );
    assert_eq!(
        small.evaluate("multi_workspace_enabled", "globex").reason,
        Reason::Off
    );
    assert_eq!(small.evaluate("global", "globex").reason, Reason::Global);
    let hostile =
        CompactSnapshot::from_json(&std::fs::read(format!("{dir}/hostile.json")).unwrap()).unwrap();
    assert!(hostile.evaluate("f", "a").on);
    assert_eq!(hostile.evaluate("f", "b").reason, Reason::Off);
    for name in ["small.json", "hostile.json"] {
        let data = std::fs::read(format!("{dir}/{name}")).unwrap();
        flags::fuzz_checks::compact_snapshot(&data).unwrap();
    }
}
