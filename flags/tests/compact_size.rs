//! The size of the SDK snapshot at 100,000 tenants × 20 flags (half of the tenants ON through a
//! 50% rollout): the compact form (`tenantry.snapshot/v2`) must stay within 1 MB gzipped.
//! `cargo test -p flags --test compact_size -- --nocapture` prints the sizes;
//! `-- --ignored --nocapture` also measures the version-1 document and UUID ids (slower).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support/scale.rs"]
mod scale;

use flags::CompactSnapshot;
use scale::Ids;

const LIMIT: usize = 1_000_000;

fn measure_v2(ids: Ids) -> (usize, usize) {
    let tenants = scale::tenants(ids);
    let v1 = scale::snapshot(&tenants);
    let v2 = CompactSnapshot::compact(&v1, &tenants).unwrap();
    for key in v1.flags.keys() {
        let e = v2.exceptions(key).unwrap();
        // The hand-set rows (those the 50% does not already imply) and nothing else.
        assert!(e.on.len() <= 10 && e.off.is_empty(), "{key}: {e:?}");
    }
    let json = v2.to_json().unwrap();
    let (raw, gz) = (json.len(), scale::gzip_len(json.as_bytes()));
    println!(
        "v2 {ids:?} ids, {} tenants × {} flags: {raw} B raw, {gz} B gzip",
        scale::TENANTS,
        scale::FLAGS
    );
    (raw, gz)
}

#[test]
fn compact_sdk_snapshot_is_at_most_1_mb_gzipped() {
    let (_, gz) = measure_v2(Ids::Numbered);
    assert!(gz <= LIMIT, "{gz} B gzipped");
}

#[test]
#[ignore = "slow in a debug build: serialises and gzips the 15 MB version-1 document"]
fn sizes_of_both_formats() {
    let tenants = scale::tenants(Ids::Numbered);
    let v1 = scale::snapshot(&tenants);
    let json = v1.to_json().unwrap();
    println!(
        "v1 Numbered ids: {} B raw, {} B gzip",
        json.len(),
        scale::gzip_len(json.as_bytes())
    );
    for ids in [Ids::Numbered, Ids::Slugs, Ids::Uuids] {
        measure_v2(ids);
    }
}
