//! Property tests: nesting, stickiness, pilots, diffs, and a parser that never panics.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;

use flags::{cohort, diff, FlagState, Percentage, Reason, Snapshot, Target, Tenant};
use proptest::prelude::*;

fn tenant_ids() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::btree_set("[a-zA-Z0-9_.-]{1,24}", 1..200)
        .prop_map(|s| s.into_iter().collect())
}

fn tenants_of(ids: &[String]) -> Vec<Tenant> {
    ids.iter().map(Tenant::new).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn bucket_is_in_range(key in ".{0,40}", id in ".{0,300}") {
        let b = flags::bucket(&key, &id);
        prop_assert!((1..=100).contains(&b));
    }

    #[test]
    fn cohorts_are_nested(ids in tenant_ids(), key in "[a-z_]{1,30}", p in 0u32..=100, q in 0u32..=100,
                          pilots in proptest::collection::vec(0usize..200, 0..4)) {
        let (p, q) = (p.min(q), p.max(q));
        let tenants = tenants_of(&ids);
        let pilot_ids: BTreeSet<String> = pilots.iter().filter_map(|i| ids.get(*i).cloned()).collect();
        let mut small = Target::percentage(Percentage::new(p).unwrap());
        small.pilots = pilot_ids.clone();
        let mut large = Target::percentage(Percentage::new(q).unwrap());
        large.pilots = pilot_ids.clone();
        let a = cohort(&key, &small, &tenants);
        let b = cohort(&key, &large, &tenants);
        prop_assert!(a.is_subset(&b), "cohort({p}) not inside cohort({q})");
        for pilot in &pilot_ids {
            prop_assert!(a.contains(pilot.as_str()), "pilot {pilot} left the cohort");
        }
        // Membership is exactly bucket <= p for non-pilots.
        for t in &tenants {
            let expected = pilot_ids.contains(&t.id) || (p > 0 && flags::bucket(&key, &t.id) <= p);
            prop_assert_eq!(a.contains(t.id.as_str()), expected);
        }
    }

    #[test]
    fn preview_is_exactly_the_diff_of_apply(
        ids in tenant_ids(),
        from in 0u32..=100, to in 0u32..=100,
        pilots in proptest::collection::vec(0usize..200, 0..4),
        hand_on in proptest::collection::vec(0usize..200, 0..6),
        excluded in proptest::collection::vec(0usize..200, 0..3),
        global in any::<bool>(),
    ) {
        use flags::{Phase, Rollout};
        let tenants = tenants_of(&ids);
        let phase = |p: u32| match p { 0 => Phase::Off, 100 => Phase::Full, p => Phase::Percent(Percentage::new(p).unwrap()) };
        let pilot_ids: BTreeSet<String> = pilots.iter().filter_map(|i| ids.get(*i).cloned()).collect();
        let current = Rollout { phase: phase(from), pilots: pilot_ids.clone(), ..Rollout::default() };
        let next = Rollout { phase: phase(to), pilots: pilot_ids, ..Rollout::default() };
        let mut state = Rollout::default().apply(&FlagState::default(), "f", &current, &tenants);
        // Rows set by hand, exclusions and a global row the rollout did not set.
        for i in hand_on { if let Some(id) = ids.get(i) { state.on.insert(id.clone()); } }
        for i in excluded { if let Some(id) = ids.get(i) { state.excluded.insert(id.clone()); } }
        state.enabled |= global;
        let saved = diff(&state, &current.apply(&state, "f", &next, &tenants), ids.iter().map(String::as_str));
        prop_assert_eq!(current.preview(&state, "f", &next, &tenants), saved);
    }

    #[test]
    fn materialised_state_agrees_with_cohort_and_diff(ids in tenant_ids(), p in 0u32..=100, q in 0u32..=100) {
        let tenants = tenants_of(&ids);
        let before = FlagState::default().materialise("f", Target::percentage(Percentage::new(p).unwrap()), &tenants);
        let after = before.materialise("f", Target::percentage(Percentage::new(q).unwrap()), &tenants);
        let d = diff(&before, &after, ids.iter().map(String::as_str));
        for t in &ids {
            let was = before.is_on(t);
            let is = after.is_on(t);
            prop_assert_eq!(d.turned_on.contains(t), !was && is);
            prop_assert_eq!(d.turned_off.contains(t), was && !is);
        }
        if p <= q { prop_assert!(d.turned_off.is_empty()); } else { prop_assert!(d.turned_on.is_empty()); }
    }

    #[test]
    fn plan_import_never_panics(text in "(#{0,3} ?[0-9.]{0,4} ?[A-Za-z ()]{0,20}\n|- \\[[ xX]?\\] ?.{0,20}\n|\\|.{0,30}\\|\n|```\n|.{0,40}\n){0,40}") {
        match flags::plan::import_markdown(&text) {
            Ok(p) => prop_assert!(!p.checklists.is_empty() || !p.milestones.is_empty() || !p.contacts.is_empty()),
            Err(e) => prop_assert!(e.to_string().starts_with("plan import")),
        }
    }

    #[test]
    fn snapshot_parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Snapshot::from_json(&bytes);
    }

    #[test]
    fn snapshot_parser_never_panics_on_near_json(
        version in any::<i64>(), pct in any::<i64>(), key in ".{0,12}", tenant in ".{0,12}",
        format in prop_oneof![Just("rollgate.snapshot/v1".to_string()), ".{0,20}"],
    ) {
        let doc = serde_json::json!({
            "format": format, "version": version, "tenants": [tenant],
            "flags": { key: { "enabled": true, "on": [tenant], "target": { "percentage": pct } } }
        });
        let _ = Snapshot::from_json(doc.to_string().as_bytes());
    }

    #[test]
    fn snapshot_round_trips(ids in tenant_ids(), p in 0u32..=100) {
        let tenants = tenants_of(&ids);
        let mut snap = Snapshot::new(9);
        snap.tenants = ids.iter().cloned().collect();
        snap.flags.insert("f".into(), FlagState::default().materialise("f", Target::percentage(Percentage::new(p).unwrap()), &tenants));
        let back = Snapshot::from_json(snap.to_json().unwrap().as_bytes()).unwrap();
        prop_assert_eq!(back, snap);
    }
}

#[test]
fn reasons_follow_precedence() {
    let tenants = tenants_of(&["a".into(), "b".into(), "c".into(), "d".into()]);
    let mut target = Target::percentage(Percentage::ALL);
    target.pilots.insert("a".into());
    let mut state = FlagState::default().materialise("f", target, &tenants);
    state.excluded.insert("b".into());
    let mut snap = Snapshot::new(1);
    snap.tenants = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    snap.flags.insert("f".into(), state.clone());
    assert_eq!(snap.evaluate("f", "a").reason, Reason::Pilot);
    assert_eq!(snap.evaluate("f", "b").reason, Reason::Excluded);
    assert!(!snap.evaluate("f", "b").on);
    assert!(matches!(
        snap.evaluate("f", "c").reason,
        Reason::Cohort {
            percentage: 100,
            ..
        }
    ));
    assert_eq!(snap.evaluate("f", "zz").reason, Reason::UnknownTenant);
    assert_eq!(snap.evaluate("g", "a").reason, Reason::UnknownFlag);
    // The global row wins over everything but an exclusion.
    state.enabled = true;
    snap.flags.insert("f".into(), state);
    assert_eq!(snap.evaluate("f", "a").reason, Reason::Global);
    assert_eq!(snap.evaluate("f", "b").reason, Reason::Excluded);
}

#[test]
fn reason_names_are_stable() {
    let json = serde_json::to_string(&Reason::Cohort {
        bucket: 7,
        percentage: 10,
    })
    .unwrap();
    assert_eq!(json, r#"{"kind":"cohort","bucket":7,"percentage":10}"#);
    assert_eq!(
        serde_json::to_string(&Reason::UnknownTenant).unwrap(),
        r#"{"kind":"unknown_tenant"}"#
    );
}

#[test]
fn bad_snapshots_give_typed_errors() {
    use flags::Error;
    assert!(matches!(
        Snapshot::from_json(b""),
        Err(Error::SnapshotJson(_))
    ));
    assert!(matches!(
        Snapshot::from_json(
            br#"{"format":"rollgate.snapshot/v2","version":1,"tenants":[],"flags":{}}"#
        ),
        Err(Error::UnsupportedFormat { .. })
    ));
    assert!(matches!(
        Snapshot::from_json(br#"{"format":"rollgate.snapshot/v1","version":1,"tenants":[],"flags":{"f":{"target":{"percentage":101}}}}"#),
        Err(Error::SnapshotJson(_))
    ));
    assert!(matches!(
        Snapshot::from_json(
            br#"{"format":"rollgate.snapshot/v1","version":1,"tenants":[""],"flags":{}}"#
        ),
        Err(Error::Inconsistent(_))
    ));
}
