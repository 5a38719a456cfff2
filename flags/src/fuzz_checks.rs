//! The properties the fuzz targets (`fuzz/`) check, as functions over raw bytes so a crash the
//! fuzzer finds becomes a regression test by saving its input under `fuzz/regressions/<target>/`
//! (`flags/tests/fuzz_regressions.rs` replays every saved input). Each returns what went wrong
//! instead of panicking; the fuzz targets panic on an error.
use crate::plan::{self, GateFacts};
use crate::{Phase, Rollout, Snapshot, Tenant, DEFAULT_LADDER};

/// The SDK snapshot parser: bytes parse into a snapshot whose compiled evaluator agrees with the
/// reference evaluation and which survives writing and reading, or give a typed error.
pub fn snapshot(data: &[u8]) -> Result<(), String> {
    let Ok(snapshot) = Snapshot::from_json(data) else {
        return Ok(());
    };
    let _ = snapshot.check();
    let evaluator = crate::Evaluator::new(&snapshot);
    let mut tenants: Vec<&str> = snapshot
        .tenants
        .iter()
        .map(String::as_str)
        .take(20)
        .collect();
    tenants.extend(["", "acme-logistics", "unknown"]);
    let mut keys: Vec<&str> = snapshot.flags.keys().map(String::as_str).take(20).collect();
    keys.extend(["", "multi_workspace_enabled"]);
    for flag in &keys {
        for tenant in &tenants {
            let (a, b) = (
                snapshot.evaluate(flag, tenant),
                evaluator.evaluate(flag, tenant),
            );
            if a.on != b.on {
                return Err(format!("{flag}/{tenant}: reference {a:?}, compiled {b:?}"));
            }
        }
    }
    let json = snapshot.to_json().map_err(|e| format!("writing: {e}"))?;
    let again = Snapshot::from_json(json.as_bytes()).map_err(|e| format!("re-reading: {e}"))?;
    if again != snapshot {
        return Err("the snapshot changed through writing and reading".into());
    }
    Ok(())
}

/// The compact (v2) snapshot parser: bytes parse into a snapshot that survives writing and
/// reading, whose decisions — read directly, through the evaluator compiled from it, from its
/// v1 expansion and from that expansion compacted again — all agree, or give a typed error.
pub fn compact_snapshot(data: &[u8]) -> Result<(), String> {
    let Ok(snapshot) = crate::CompactSnapshot::from_json(data) else {
        return Ok(());
    };
    let records = snapshot.tenants();
    let expanded = snapshot.expand();
    let again = crate::CompactSnapshot::compact(&expanded, &records)
        .map_err(|e| format!("compacting the expansion: {e}"))?;
    let from_v1 = crate::Evaluator::new(&expanded);
    let from_v2 = crate::Evaluator::from_compact(&snapshot);
    let mut tenants: Vec<&str> = records.iter().map(|t| t.id.as_str()).take(20).collect();
    tenants.extend(["", "acme-logistics", "unknown"]);
    let mut keys: Vec<&str> = snapshot.flag_keys().take(20).collect();
    keys.extend(["", "multi_workspace_enabled"]);
    for flag in &keys {
        for tenant in &tenants {
            let reference = snapshot.evaluate(flag, tenant);
            let others = [
                ("expanded", expanded.evaluate(flag, tenant)),
                ("compacted again", again.evaluate(flag, tenant)),
                ("v1 evaluator", from_v1.evaluate(flag, tenant)),
                ("v2 evaluator", from_v2.evaluate(flag, tenant)),
            ];
            for (name, d) in others {
                if d != reference {
                    return Err(format!(
                        "{flag}/{tenant}: compact {reference:?}, {name} {d:?}"
                    ));
                }
            }
        }
    }
    let json = snapshot.to_json().map_err(|e| format!("writing: {e}"))?;
    let back = crate::CompactSnapshot::from_json(json.as_bytes())
        .map_err(|e| format!("re-reading: {e}"))?;
    if back != snapshot {
        return Err("the snapshot changed through writing and reading".into());
    }
    Ok(())
}

/// The Markdown plan import: text imports (with something in it) or is refused; an imported
/// plan's gates evaluate.
pub fn plan_import(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(plan) = plan::import_markdown(text) else {
        return Ok(());
    };
    if plan.checklists.is_empty() && plan.milestones.is_empty() && plan.contacts.is_empty() {
        return Err("an empty plan was accepted".into());
    }
    let facts = GateFacts::default();
    let gates = plan::seed_gates();
    for g in &gates {
        let _ = plan::unmet(&plan, g, &facts);
    }
    let _ = plan::unmet_for_change(&plan, &gates, Phase::Off, Phase::Full, &facts);
    Ok(())
}

fn tenants() -> Vec<Tenant> {
    (0..50)
        .map(|i| Tenant {
            id: format!("t-{i}"),
            plan: if i % 3 == 0 { "pro" } else { "free" }.into(),
            region: if i % 2 == 0 { "eu-west" } else { "us-east" }.into(),
            tags: vec![format!("tag{}", i % 5)],
        })
        .collect()
}

/// The JSON bodies of the admin API are made of rollouts, gates and guards: what parses, the
/// engine handles — a rollout applies and previews (the preview is the diff of the apply), gates
/// and guards evaluate.
pub fn request_bodies(data: &[u8]) -> Result<(), String> {
    if let Ok(rollout) = serde_json::from_slice::<Rollout>(data) {
        let tenants = tenants();
        let old = Rollout::default();
        let state = crate::FlagState::default();
        let after = old.apply(&state, "fuzz_flag", &rollout, &tenants);
        let preview = old.preview(&state, "fuzz_flag", &rollout, &tenants);
        let diff = crate::diff(&state, &after, tenants.iter().map(|t| t.id.as_str()));
        if preview.turned_on != diff.turned_on || preview.turned_off != diff.turned_off {
            return Err(format!(
                "preview {preview:?} differs from the apply {diff:?}"
            ));
        }
        let _ = rollout.phase.next(&DEFAULT_LADDER);
    }
    if let Ok(gates) = serde_json::from_slice::<Vec<plan::PhaseGates>>(data) {
        let doc = plan::import_markdown(plan::SEED_PLAN).map_err(|e| e.to_string())?;
        let _ =
            plan::unmet_for_change(&doc, &gates, Phase::Off, Phase::Full, &GateFacts::default());
    }
    if let Ok(guards) = serde_json::from_slice::<Vec<crate::guard::GuardSpec>>(data) {
        for g in &guards {
            for v in [
                None,
                Some(0.0),
                Some(f64::NAN),
                Some(g.warn),
                Some(g.alert),
                Some(1e308),
            ] {
                let _ = crate::guard::classify(g, v);
            }
            let samples = [crate::guard::Sample {
                tenant: Some("t-1".into()),
                value: g.alert,
            }];
            let _ = crate::guard::evaluate(g, &samples, &|t| t == "t-1");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<Phase>();
    }
    Ok(())
}
