//! `cargo bench -p flags --bench evaluate`
//!
//! * `evaluate/tenantry`: one decision on a snapshot of 1,000 flags, each with a materialised 50%
//!   rollout over 1,000 tenants plus a pilot list.
//! * `evaluate/yggdrasil`: the equivalent Unleash feature evaluated by `unleash-yggdrasil` 0.21.7 —
//!   flexibleRollout 50% with stickiness on a `tenantId` property and a `tenantId IN [...]`
//!   constraint — in the same run.
//! * `cohort/100k`: the 50% cohort of 100,000 tenants.
//! * `compact/*`: the compact SDK snapshot (`tenantry.snapshot/v2`) at 100,000 tenants × 20 flags,
//!   each at 50% with its rows materialised (`tests/support/scale.rs`): compacting the v1
//!   snapshot, expanding it back, writing and reading its JSON, compiling an `Evaluator` from
//!   it, and one decision from it. The sizes of both documents (raw and gzip) are printed first.
//! * `delta/*`: what a server does per change at that scale — copy the published compact snapshot
//!   (sharing its flags and tenant table) and apply one row, a new tenant, a new target — and the
//!   version-1 document written straight from the compact form.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use flags::delta::{Changes, FlagChange, RowChange, TenantChange};
use flags::{
    cohort, CompactSnapshot, Evaluator, FlagState, Percentage, Phase, Rollout, Snapshot, Target,
    Tenant,
};
use unleash_yggdrasil::{Context, EngineState, UpdateMessage};

#[path = "../tests/support/scale.rs"]
mod scale;

const FLAGS: usize = 1_000;
const TENANTS: usize = 1_000;

fn tenant_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("tenant-{i:06}")).collect()
}

fn tenantry_snapshot(ids: &[String]) -> Snapshot {
    let tenants: Vec<Tenant> = ids.iter().map(Tenant::new).collect();
    let mut snap = Snapshot::new(1);
    snap.tenants = ids.iter().cloned().collect();
    for f in 0..FLAGS {
        let key = format!("flag_{f}");
        let mut target = Target::percentage(Percentage::new(50).unwrap());
        target.pilots.insert(ids[f % ids.len()].clone());
        let state = FlagState::default().materialise(&key, target, &tenants);
        snap.flags.insert(key, state);
    }
    snap
}

fn yggdrasil_engine(ids: &[String]) -> EngineState {
    let features: Vec<serde_json::Value> = (0..FLAGS)
        .map(|f| {
            serde_json::json!({
                "name": format!("flag_{f}"),
                "enabled": true,
                "strategies": [{
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "50", "stickiness": "tenantId", "groupId": format!("flag_{f}")},
                    "constraints": [{"contextName": "tenantId", "operator": "IN", "values": ids}]
                }]
            })
        })
        .collect();
    let engine = EngineState::initial_state(chrono::DateTime::UNIX_EPOCH);
    let state =
        serde_json::from_value(serde_json::json!({"version": 2, "features": features})).unwrap();
    engine.take_state(UpdateMessage::FullResponse(state));
    engine
}

fn bench_evaluate(c: &mut Criterion) {
    let ids = tenant_ids(TENANTS);
    let snap = tenantry_snapshot(&ids);
    let compiled = Evaluator::new(&snap);
    let engine = yggdrasil_engine(&ids);
    let keys: Vec<String> = (0..FLAGS).map(|f| format!("flag_{f}")).collect();
    let contexts: Vec<Context> = ids
        .iter()
        .map(|id| Context {
            properties: Some(HashMap::from([("tenantId".to_string(), id.clone())])),
            ..Context::default()
        })
        .collect();
    // Both engines must agree before their speed is compared.
    for (i, id) in ids.iter().enumerate().take(200) {
        let k = &keys[(i * 7) % FLAGS];
        let ours = snap.evaluate(k, id).on;
        let theirs = engine.is_enabled(k, &contexts[i], &None);
        let pilot = snap.flags[k].target.as_ref().unwrap().pilots.contains(id);
        assert!(
            pilot || ours == theirs,
            "{k} {id}: tenantry {ours}, yggdrasil {theirs}"
        );
    }

    let mut g = c.benchmark_group("evaluate");
    let mut i = 0usize;
    g.bench_function("tenantry", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let k = &keys[i % FLAGS];
            let t = &ids[(i / 3) % TENANTS];
            black_box(compiled.evaluate(black_box(k), black_box(t)))
        })
    });
    let mut i = 0usize;
    g.bench_function("tenantry_reference_snapshot", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let k = &keys[i % FLAGS];
            let t = &ids[(i / 3) % TENANTS];
            black_box(snap.evaluate(black_box(k), black_box(t)))
        })
    });
    let mut i = 0usize;
    g.bench_function("yggdrasil", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let k = &keys[i % FLAGS];
            let ctx = &contexts[(i / 3) % TENANTS];
            black_box(engine.is_enabled(black_box(k), black_box(ctx), &None))
        })
    });
    g.finish();
}

fn bench_cohort(c: &mut Criterion) {
    let tenants: Vec<Tenant> = tenant_ids(100_000).into_iter().map(Tenant::new).collect();
    let target = Target::percentage(Percentage::new(50).unwrap());
    let mut g = c.benchmark_group("cohort");
    g.sample_size(20);
    g.bench_function("100k_tenants_50pct", |b| {
        b.iter(|| black_box(cohort("multi_workspace_enabled", &target, black_box(&tenants)).len()))
    });
    let before = FlagState::default().materialise(
        "multi_workspace_enabled",
        Target::percentage(Percentage::new(10).unwrap()),
        &tenants,
    );
    let after = before.materialise("multi_workspace_enabled", target.clone(), &tenants);
    g.bench_function("100k_tenants_diff_10_to_50pct", |b| {
        b.iter(|| {
            black_box(
                flags::diff(&before, &after, tenants.iter().map(|t| t.id.as_str()))
                    .turned_on
                    .len(),
            )
        })
    });
    // What the flag editor computes in the browser on every keystroke: Rollout::preview,
    // from a 10% rollout to 50% (and from OFF to 50%) over 100,000 tenants.
    let ten = Rollout {
        phase: Phase::Percent(Percentage::new(10).unwrap()),
        ..Rollout::default()
    };
    let fifty = Rollout {
        phase: Phase::Percent(Percentage::new(50).unwrap()),
        ..Rollout::default()
    };
    let at_ten = Rollout::default().apply(
        &FlagState::default(),
        "multi_workspace_enabled",
        &ten,
        &tenants,
    );
    g.bench_function("preview_100k_10_to_50pct", |b| {
        b.iter(|| {
            let d = ten.preview(
                &at_ten,
                "multi_workspace_enabled",
                &fifty,
                black_box(&tenants),
            );
            black_box(d.turned_on.len())
        })
    });
    let off = FlagState::default();
    g.bench_function("preview_100k_off_to_50pct", |b| {
        b.iter(|| {
            let d = Rollout::default().preview(
                &off,
                "multi_workspace_enabled",
                &fifty,
                black_box(&tenants),
            );
            black_box(d.turned_on.len())
        })
    });
    // The same change computed the long way (apply, then diff): what the preview replaces.
    g.bench_function("apply_then_diff_100k_10_to_50pct", |b| {
        b.iter(|| {
            let after = ten.apply(
                &at_ten,
                "multi_workspace_enabled",
                &fifty,
                black_box(&tenants),
            );
            let d = flags::diff(&at_ten, &after, tenants.iter().map(|t| t.id.as_str()));
            black_box(d.turned_on.len())
        })
    });
    g.finish();
}

fn bench_compact(c: &mut Criterion) {
    let tenants = scale::tenants(scale::Ids::Numbered);
    let v1 = scale::snapshot(&tenants);
    let v2 = CompactSnapshot::compact(&v1, &tenants).unwrap();
    let v1_json = v1.to_json().unwrap();
    let v2_json = v2.to_json().unwrap();
    eprintln!(
        "SDK snapshot, {} tenants × {} flags at 50%: v1 {} B raw, {} B gzip; v2 {} B raw, {} B gzip",
        scale::TENANTS,
        scale::FLAGS,
        v1_json.len(),
        scale::gzip_len(v1_json.as_bytes()),
        v2_json.len(),
        scale::gzip_len(v2_json.as_bytes()),
    );
    let mut g = c.benchmark_group("compact");
    g.sample_size(10);
    g.bench_function("compact_100k_x20", |b| {
        b.iter(|| black_box(CompactSnapshot::compact(black_box(&v1), &tenants).unwrap()))
    });
    g.bench_function("expand_100k_x20", |b| b.iter(|| black_box(v2.expand())));
    g.bench_function("to_json_v2_100k_x20", |b| {
        b.iter(|| black_box(v2.to_json().unwrap().len()))
    });
    g.bench_function("from_json_v2_100k_x20", |b| {
        b.iter(|| black_box(CompactSnapshot::from_json(black_box(v2_json.as_bytes())).unwrap()))
    });
    g.bench_function("to_json_v1_100k_x20", |b| {
        b.iter(|| black_box(v1.to_json().unwrap().len()))
    });
    g.bench_function("evaluator_from_compact_100k_x20", |b| {
        b.iter(|| black_box(Evaluator::from_compact(black_box(&v2))))
    });
    g.bench_function("evaluator_new_v1_100k_x20", |b| {
        b.iter(|| black_box(Evaluator::new(black_box(&v1))))
    });
    g.finish();

    let compiled = Evaluator::from_compact(&v2);
    let keys: Vec<String> = (0..scale::FLAGS).map(|f| format!("flag_{f}")).collect();
    for (i, t) in tenants.iter().enumerate().step_by(997) {
        let k = &keys[i % scale::FLAGS];
        assert_eq!(v2.evaluate(k, &t.id), v1.evaluate(k, &t.id));
        assert_eq!(compiled.evaluate(k, &t.id), v1.evaluate(k, &t.id));
    }
    let mut g = c.benchmark_group("evaluate_compact");
    let mut i = 0usize;
    g.bench_function("compact_snapshot_direct", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let k = &keys[i % scale::FLAGS];
            let t = &tenants[(i / 3) % scale::TENANTS].id;
            black_box(v2.evaluate(black_box(k), black_box(t)))
        })
    });
    let mut i = 0usize;
    g.bench_function("evaluator_from_compact", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let k = &keys[i % scale::FLAGS];
            let t = &tenants[(i / 3) % scale::TENANTS].id;
            black_box(compiled.evaluate(black_box(k), black_box(t)))
        })
    });
    g.finish();

    // What a server does per change: copy the published snapshot (sharing its flags and tenant
    // table) and apply the changes to the copy.
    let version = v2.version();
    let t = tenants[12_345].id.clone();
    let one_row = Changes {
        version: version + 1,
        from: version,
        rows: vec![RowChange {
            flag: keys[3].clone(),
            tenant: Some(t.clone()),
            enabled: !v2.evaluate(&keys[3], &t).on,
            excluded: false,
        }],
        ..Changes::default()
    };
    let new_tenant = Changes {
        version: version + 1,
        from: version,
        tenants: vec![TenantChange::present(Tenant::new("tenant-new"))],
        ..Changes::default()
    };
    let retarget = Changes {
        version: version + 1,
        from: version,
        flags: vec![FlagChange {
            key: keys[3].clone(),
            removed: false,
            target: Some(Target::percentage(Percentage::new(60).unwrap())),
        }],
        ..Changes::default()
    };
    let mut g = c.benchmark_group("delta");
    g.sample_size(20);
    for (name, changes) in [
        ("apply_one_row_to_a_shared_copy_100k_x20", &one_row),
        ("apply_new_tenant_to_a_shared_copy_100k_x20", &new_tenant),
        ("apply_new_target_to_a_shared_copy_100k_x20", &retarget),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut next = v2.clone();
                next.apply(black_box(changes)).unwrap();
                black_box(next)
            })
        });
    }
    g.bench_function("to_v1_json_from_compact_100k_x20", |b| {
        b.iter(|| black_box(v2.to_v1_json().unwrap().len()))
    });
    g.finish();
}

criterion_group!(benches, bench_evaluate, bench_cohort, bench_compact);
criterion_main!(benches);
