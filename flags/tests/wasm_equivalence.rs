//! The wasm half of the equivalence proof: run with
//! `cargo test -p flags --target wasm32-unknown-unknown --test wasm_equivalence`
//! (wasm-bindgen-test-runner under node). The native half is `vectors.rs`; both compare with the
//! same committed file, so passing both means identical buckets and decisions on both builds.
#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use wasm_bindgen_test::wasm_bindgen_test;

const COMMITTED: &str = include_str!("vectors/equivalence.txt");

#[wasm_bindgen_test]
fn wasm_build_matches_committed_vectors() {
    assert!(cfg!(target_arch = "wasm32"), "this test must run on wasm32");
    let computed = common::vectors();
    assert_eq!(computed.lines().count(), 10_000);
    if let Some((line, committed, wasm)) = common::first_difference(COMMITTED, &computed) {
        panic!("line {line}: committed {committed:?}, wasm {wasm:?}");
    }
}

/// The compact (`tenantry.snapshot/v2`) form, read from its JSON and evaluated in wasm, gives the
/// same decision on every pair.
#[wasm_bindgen_test]
fn wasm_compact_form_matches_committed_vectors() {
    let computed = common::vectors_compact();
    assert_eq!(computed.lines().count(), 10_000);
    if let Some((line, committed, wasm)) = common::first_difference(COMMITTED, &computed) {
        panic!("line {line}: committed {committed:?}, wasm compact form {wasm:?}");
    }
}
