//! Changes (`flags::delta`) against the database they describe: a model of the tables (tenants,
//! flags with their targets, `feature_flags` rows that outlive an archive) takes random changes;
//! after each step the changes of its touched keys, resolved against the compact snapshot of the
//! model, bring any older copy to exactly that snapshot — step by step, merged, from an
//! intermediate version, and through JSON. Also: the version-1 JSON written straight from the
//! compact form is its expansion.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};

use flags::compact::CompactSnapshot;
use flags::delta::Changes;
use flags::{Attribute, Constraint, FlagState, Operator, Percentage, Snapshot, Target, Tenant};
use proptest::prelude::*;

const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
const REGIONS: [&str; 2] = ["eu-west", "us-east"];
const TENANTS: usize = 24;
const FLAGS: usize = 4;

fn id(i: usize) -> String {
    format!("t{i:02}")
}

fn key(i: usize) -> String {
    format!("flag_{i}")
}

/// The tables, as the triggers see them.
#[derive(Debug, Clone, Default)]
struct Model {
    /// id → (record, live).
    tenants: BTreeMap<String, (Tenant, bool)>,
    /// key → (global row enabled, target).
    flags: BTreeMap<String, (bool, Option<Target>)>,
    /// (key, tenant) → (enabled, excluded); kept while the tenant is archived.
    rows: BTreeMap<(String, String), (bool, bool)>,
}

impl Model {
    fn snapshot(&self, version: u64) -> CompactSnapshot {
        let mut v1 = Snapshot::new(version);
        let live: Vec<Tenant> = self
            .tenants
            .values()
            .filter(|(_, live)| *live)
            .map(|(t, _)| t.clone())
            .collect();
        v1.tenants = live.iter().map(|t| t.id.clone()).collect();
        for (k, (enabled, target)) in &self.flags {
            let mut state = FlagState {
                enabled: *enabled,
                target: target.clone(),
                ..FlagState::default()
            };
            for ((fk, t), (on, ex)) in &self.rows {
                if fk == k {
                    if *on {
                        state.on.insert(t.clone());
                    }
                    if *ex {
                        state.excluded.insert(t.clone());
                    }
                }
            }
            v1.flags.insert(k.clone(), state);
        }
        CompactSnapshot::compact(&v1, &live).unwrap()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Row {
        flag: usize,
        tenant: Option<usize>,
        enabled: bool,
        excluded: bool,
    },
    Target {
        flag: usize,
        target: Option<(Vec<usize>, u32, Option<usize>)>,
    },
    Upsert {
        tenant: usize,
        plan: usize,
        region: usize,
        beta: bool,
    },
    Archive {
        tenant: usize,
    },
    DeleteTenant {
        tenant: usize,
    },
    DeleteFlag {
        flag: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let target = (
        proptest::collection::vec(0usize..TENANTS + 2, 0..3),
        prop_oneof![Just(0u32), Just(100u32), 0u32..=100],
        proptest::option::of(0usize..PLANS.len()),
    );
    prop_oneof![
        6 => (0usize..FLAGS, proptest::option::weighted(0.9, 0usize..TENANTS), any::<bool>(), proptest::bool::weighted(0.2))
            .prop_map(|(flag, tenant, enabled, excluded)| Op::Row { flag, tenant, enabled, excluded }),
        2 => (0usize..FLAGS, proptest::option::weighted(0.85, target))
            .prop_map(|(flag, target)| Op::Target { flag, target }),
        2 => (0usize..TENANTS, 0usize..PLANS.len(), 0usize..REGIONS.len(), any::<bool>())
            .prop_map(|(tenant, plan, region, beta)| Op::Upsert { tenant, plan, region, beta }),
        1 => (0usize..TENANTS).prop_map(|tenant| Op::Archive { tenant }),
        1 => (0usize..TENANTS).prop_map(|tenant| Op::DeleteTenant { tenant }),
        1 => (0usize..FLAGS).prop_map(|flag| Op::DeleteFlag { flag }),
    ]
}

/// The keys one step touched, as the outbox records them.
#[derive(Debug, Default)]
struct Touched {
    rows: BTreeSet<(String, Option<String>)>,
    flags: BTreeSet<String>,
    tenants: BTreeSet<String>,
}

impl Touched {
    fn resolve(&self, snapshot: &CompactSnapshot, from: u64) -> Changes {
        Changes::resolve(
            snapshot,
            from,
            self.rows.iter().map(|(f, t)| (f.as_str(), t.as_deref())),
            self.flags.iter().map(String::as_str),
            self.tenants.iter().map(String::as_str),
        )
    }
}

/// Applies `op` to the model (as SQL would: rows need their tenant, a row creates its flag,
/// deletions cascade) and records what it touched.
fn run(model: &mut Model, op: &Op, touched: &mut Touched) {
    match op {
        Op::Row {
            flag,
            tenant,
            enabled,
            excluded,
        } => {
            let k = key(*flag);
            match tenant {
                None => {
                    if !model.flags.contains_key(&k) {
                        touched.flags.insert(k.clone());
                    }
                    model.flags.entry(k.clone()).or_insert((false, None)).0 = *enabled;
                    touched.rows.insert((k, None));
                }
                Some(t) => {
                    let t = id(*t);
                    if !model.tenants.contains_key(&t) || !model.flags.contains_key(&k) {
                        return; // the foreign keys refuse it
                    }
                    model
                        .rows
                        .insert((k.clone(), t.clone()), (*enabled, *excluded));
                    touched.rows.insert((k, Some(t)));
                }
            }
        }
        Op::Target { flag, target } => {
            let k = key(*flag);
            let target = target.as_ref().map(|(pilots, pct, plan)| Target {
                pilots: pilots.iter().map(|i| id(*i)).collect(),
                percentage: Percentage::new(*pct).unwrap(),
                constraints: plan
                    .map(|p| Constraint {
                        attribute: Attribute::Plan,
                        operator: Operator::In,
                        values: vec![PLANS[p].to_string()],
                    })
                    .into_iter()
                    .collect(),
            });
            model.flags.entry(k.clone()).or_insert((false, None)).1 = target;
            touched.flags.insert(k);
        }
        Op::Upsert {
            tenant,
            plan,
            region,
            beta,
        } => {
            let t = Tenant {
                id: id(*tenant),
                plan: PLANS[*plan].to_string(),
                region: REGIONS[*region].to_string(),
                tags: if *beta {
                    vec!["beta".to_string()]
                } else {
                    Vec::new()
                },
            };
            touched.tenants.insert(t.id.clone());
            model.tenants.insert(t.id.clone(), (t, true));
        }
        Op::Archive { tenant } => {
            if let Some((_, live)) = model.tenants.get_mut(&id(*tenant)) {
                *live = false;
                touched.tenants.insert(id(*tenant));
            }
        }
        Op::DeleteTenant { tenant } => {
            let t = id(*tenant);
            if model.tenants.remove(&t).is_some() {
                touched.tenants.insert(t.clone());
                let gone: Vec<(String, String)> = model
                    .rows
                    .keys()
                    .filter(|(_, rt)| *rt == t)
                    .cloned()
                    .collect();
                for (k, rt) in gone {
                    model.rows.remove(&(k.clone(), rt.clone()));
                    touched.rows.insert((k, Some(rt)));
                }
            }
        }
        Op::DeleteFlag { flag } => {
            let k = key(*flag);
            if model.flags.remove(&k).is_some() {
                touched.flags.insert(k.clone());
                touched.rows.insert((k.clone(), None));
                let gone: Vec<(String, String)> = model
                    .rows
                    .keys()
                    .filter(|(fk, _)| *fk == k)
                    .cloned()
                    .collect();
                for (fk, t) in gone {
                    model.rows.remove(&(fk.clone(), t.clone()));
                    touched.rows.insert((fk, Some(t)));
                }
            }
        }
    }
}

fn initial() -> Model {
    let mut model = Model::default();
    for i in 0..TENANTS - 4 {
        let t = Tenant {
            id: id(i),
            plan: PLANS[i % PLANS.len()].to_string(),
            region: REGIONS[i % REGIONS.len()].to_string(),
            tags: Vec::new(),
        };
        model.tenants.insert(t.id.clone(), (t, i % 7 != 3));
    }
    for f in 0..FLAGS - 1 {
        let target = Target {
            pilots: BTreeSet::from([id(f)]),
            percentage: Percentage::new(30 * f as u32).unwrap(),
            constraints: Vec::new(),
        };
        model.flags.insert(key(f), (false, Some(target.clone())));
        let records: Vec<Tenant> = model.tenants.values().map(|(t, _)| t.clone()).collect();
        for t in &records {
            if target.includes(&key(f), t) {
                model.rows.insert((key(f), t.id.clone()), (true, false));
            }
        }
    }
    model
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Steps of one to three changes each; the changes of each step, resolved against the new
    /// snapshot, bring an old copy to it: one by one, all merged, from halfway, through JSON.
    #[test]
    fn changes_bring_any_older_copy_to_the_current_snapshot(
        steps in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..16),
    ) {
        let mut model = initial();
        let start = model.snapshot(1);
        let mut one_by_one = start.clone();
        let mut history: Vec<(CompactSnapshot, Changes)> = Vec::new();
        for (i, ops) in steps.iter().enumerate() {
            let from = i as u64 + 1;
            let mut touched = Touched::default();
            for op in ops {
                run(&mut model, op, &mut touched);
            }
            let now = model.snapshot(from + 1);
            let changes = touched.resolve(&now, from);
            let wire = Changes::from_json(changes.to_json().unwrap().as_bytes()).unwrap();
            prop_assert_eq!(&wire, &changes);
            // A copy shares the tenant table and the flags with the snapshot it was taken from:
            // applying changes to one leaves the other as it was.
            let before = one_by_one.clone();
            prop_assert!(one_by_one.apply(&wire).unwrap());
            prop_assert_eq!(&one_by_one, &now);
            prop_assert_eq!(&before, &history.last().map_or_else(|| start.clone(), |(s, _)| s.clone()));
            // Applying again, or to a newer snapshot, changes nothing.
            prop_assert!(!one_by_one.apply(&wire).unwrap());
            history.push((now, changes));
        }
        let (last, _) = history.last().unwrap().clone();
        let mut merged = history[0].1.clone();
        for (_, c) in &history[1..] {
            merged.merge(c).unwrap();
        }
        prop_assert_eq!((merged.from, merged.version), (1, last.version()));
        let mut copy = start.clone();
        prop_assert!(copy.apply(&merged).unwrap());
        prop_assert_eq!(&copy, &last);
        // A copy from halfway takes the same merged changes.
        let mid = history.len() / 2;
        let mut halfway = history[mid].0.clone();
        halfway.apply(&merged).unwrap();
        prop_assert_eq!(&halfway, &last);
        // Every decision agrees with the snapshot itself.
        for t in 0..TENANTS + 1 {
            for f in 0..FLAGS {
                prop_assert_eq!(copy.evaluate(&key(f), &id(t)), last.evaluate(&key(f), &id(t)));
            }
        }
        // The version-1 JSON written straight from the compact form is its expansion.
        let v1 = Snapshot::from_json(last.to_v1_json().unwrap().as_bytes()).unwrap();
        prop_assert_eq!(v1, last.expand());
    }
}

proptest! {
    /// Whatever a stream carries, reading and applying it gives a result or a typed error, never
    /// a panic.
    #[test]
    fn hostile_changes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        from in 0u64..4, version in 0u64..4,
        flag in prop_oneof![Just(String::new()), Just("flag_0".to_string()), "[a-z]{0,3}"],
        tenant in proptest::option::of(prop_oneof![Just(String::new()), Just(id(1)), "[a-z]{0,3}"]),
        removed in any::<bool>(), pct in any::<i64>(),
    ) {
        let _ = Changes::from_json(&bytes);
        let doc = serde_json::json!({
            "version": version, "from": from,
            "tenants": [{"id": tenant.clone().unwrap_or_default(), "removed": removed}],
            "rows": [{"flag": flag, "tenant": tenant, "enabled": true, "excluded": removed}],
            "flags": [{"key": flag, "removed": removed, "target": {"percentage": pct}}],
        });
        if let Ok(c) = Changes::from_json(doc.to_string().as_bytes()) {
            let mut snap = initial().snapshot(1);
            let _ = snap.apply(&c);
            let _ = snap.to_json();
        }
    }
}

/// Changes from a version the copy has not reached are refused; the copy is left alone.
#[test]
fn a_gap_is_refused() {
    let model = initial();
    let mut old = model.snapshot(1);
    let gap = Changes::new(5, 6);
    assert!(old.apply(&gap).is_err());
    assert_eq!(old, model.snapshot(1));
    let mut merged = Changes::new(1, 2);
    assert!(merged.merge(&gap).is_err());
}

/// A one-row change is small on the wire.
#[test]
fn a_one_row_change_is_a_hundred_bytes() {
    let changes = Changes::from_json(
        br#"{"version":1000001,"from":1000000,"rows":[{"flag":"multi_workspace_enabled","tenant":"acme-logistics-00042","enabled":true,"excluded":false}]}"#,
    )
    .unwrap();
    let json = changes.to_json().unwrap();
    assert!(json.len() < 160, "{json}");
}
