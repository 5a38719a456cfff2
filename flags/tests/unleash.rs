//! Tenantry's buckets and cohorts equal Unleash's: checked against `unleash-yggdrasil` itself.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;

use flags::{cohort, Percentage, Target, Tenant};
use unleash_yggdrasil::{strategy_parsing::normalized_hash, Context, EngineState, UpdateMessage};

fn ids() -> Vec<String> {
    (0..10_000)
        .map(|i| match i % 4 {
            0 => format!("tenant-{i}"),
            1 => format!("{i:x}-{}", i * 31),
            2 => format!("société-{i}"),
            _ => i.to_string(),
        })
        .collect()
}

#[test]
fn buckets_equal_unleash_normalised_values() {
    for key in ["multi_workspace_enabled", "billing.v2", "a"] {
        for id in ids() {
            let theirs = normalized_hash(key, &id, 100, 0).unwrap();
            assert_eq!(flags::bucket(key, &id), theirs, "{key}:{id}");
        }
    }
}

fn engine_with(rollout: u32, allowed: &[String]) -> EngineState {
    let features = serde_json::json!({
        "version": 2,
        "features": [{
            "name": "multi_workspace_enabled",
            "enabled": true,
            "strategies": [{
                "name": "flexibleRollout",
                "parameters": {
                    "rollout": rollout.to_string(),
                    "stickiness": "tenantId",
                    "groupId": "multi_workspace_enabled"
                },
                "constraints": [{
                    "contextName": "tenantId",
                    "operator": "IN",
                    "values": allowed
                }]
            }]
        }]
    });
    let engine = EngineState::initial_state(chrono::DateTime::UNIX_EPOCH);
    let warnings = engine.take_state(UpdateMessage::FullResponse(
        serde_json::from_value(features).unwrap(),
    ));
    assert!(
        warnings.as_ref().is_none_or(|w| w.is_empty()),
        "yggdrasil rejected the feature: {warnings:?}"
    );
    engine
}

#[test]
fn cohorts_equal_unleash_flexible_rollout() {
    let ids = ids();
    let tenants: Vec<Tenant> = ids.iter().map(Tenant::new).collect();
    for pct in [0, 1, 10, 50, 99, 100] {
        let engine = engine_with(pct, &ids);
        let ours = cohort(
            "multi_workspace_enabled",
            &Target::percentage(Percentage::new(pct).unwrap()),
            &tenants,
        );
        for id in &ids {
            let ctx = Context {
                properties: Some(HashMap::from([("tenantId".to_string(), id.clone())])),
                ..Context::default()
            };
            let theirs = engine.is_enabled("multi_workspace_enabled", &ctx, &None);
            assert_eq!(ours.contains(id.as_str()), theirs, "{pct}% {id}");
        }
    }
}
