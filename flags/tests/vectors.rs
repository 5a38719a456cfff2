//! The native half of the native/wasm equivalence proof: the committed vectors
//! (`tests/vectors/equivalence.txt`) are what the native build computes. The wasm test
//! (`wasm_equivalence.rs`) checks the wasm build against the same file. Both also check the
//! compact snapshot (`tenantry.snapshot/v2`) of the same state against it.
//!
//! Regenerate after an intended change of semantics: `UPDATE_VECTORS=1 cargo test -p flags --test vectors`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

const COMMITTED: &str = include_str!("vectors/equivalence.txt");

#[test]
fn native_build_matches_committed_vectors() {
    let computed = common::vectors();
    assert_eq!(computed.lines().count(), 10_000);
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/equivalence.txt");
        std::fs::write(path, &computed).unwrap();
        return;
    }
    if let Some((line, committed, native)) = common::first_difference(COMMITTED, &computed) {
        panic!("line {line}: committed {committed:?}, native {native:?}");
    }
}

/// The compact (`tenantry.snapshot/v2`) form of the same snapshot gives the same decision on
/// every pair.
#[test]
fn native_compact_form_matches_committed_vectors() {
    let computed = common::vectors_compact();
    assert_eq!(computed.lines().count(), 10_000);
    if let Some((line, committed, native)) = common::first_difference(COMMITTED, &computed) {
        panic!("line {line}: committed {committed:?}, native compact form {native:?}");
    }
}

#[test]
fn vectors_cover_every_reason() {
    for reason in [
        "global",
        "tenant_enabled",
        "pilot",
        "cohort",
        "excluded",
        "unknown_flag",
        "unknown_tenant",
        "off",
    ] {
        assert!(
            COMMITTED
                .lines()
                .any(|l| l.split(' ').nth(2) == Some(reason)),
            "no vector with reason {reason}"
        );
    }
}
