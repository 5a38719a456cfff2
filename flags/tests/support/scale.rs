//! The SDK snapshot at scale, shared by `tests/compact_size.rs` and the criterion bench
//! (`benches/evaluate.rs`, through `#[path]`): 100,000 tenants with demo-like plans, regions and
//! tags, 20 flags each rolled out to 50% (plus a pilot) with the rows materialised, a few rows set
//! by hand and a few exclusions per flag.
#![allow(dead_code)]

use std::io::Write;

use flags::{FlagState, Percentage, Snapshot, Target, Tenant};

pub const TENANTS: usize = 100_000;
pub const FLAGS: usize = 20;

const PLANS: [&str; 6] = ["free", "starter", "starter", "pro", "pro", "enterprise"];
const REGIONS: [&str; 6] = [
    "eu-west",
    "eu-central",
    "us-east",
    "us-west",
    "ap-southeast",
    "sa-east",
];

/// How tenant ids look: they are most of the document.
#[derive(Debug, Clone, Copy)]
pub enum Ids {
    /// `tenant-000042`, as the other benches use.
    Numbered,
    /// Slugs of company names with a numeric suffix, like `store::demo`'s (`acme-logistics-7`).
    Slugs,
    /// Random UUIDs (the worst case for compression: ~122 random bits each).
    Uuids,
}

fn id(kind: Ids, i: usize) -> String {
    const FIRST: [&str; 12] = [
        "acme",
        "globex",
        "initech",
        "umbrella",
        "stark",
        "wayne",
        "hooli",
        "vandelay",
        "soylent",
        "tyrell",
        "cyberdyne",
        "wonka",
    ];
    const SECOND: [&str; 8] = [
        "logistics",
        "health",
        "labs",
        "foods",
        "legal",
        "realty",
        "capital",
        "studios",
    ];
    match kind {
        Ids::Numbered => format!("tenant-{i:06}"),
        Ids::Slugs => {
            let pairs = FIRST.len() * SECOND.len();
            let k = (i % pairs) * 7 % pairs;
            let (a, b) = (FIRST[k / SECOND.len()], SECOND[k % SECOND.len()]);
            match i / pairs {
                0 => format!("{a}-{b}"),
                n => format!("{a}-{b}-{n}"),
            }
        }
        Ids::Uuids => {
            let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut next = || {
                x ^= x >> 33;
                x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
                x ^= x >> 33;
                x
            };
            let (a, b) = (next(), next());
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                b >> 52,
                b & 0xffff_ffff_ffff
            )
        }
    }
}

/// The tenant records.
pub fn tenants(kind: Ids) -> Vec<Tenant> {
    (0..TENANTS)
        .map(|i| {
            let h = i.wrapping_mul(2_654_435_761) >> 7;
            let mut tags = Vec::new();
            if h.is_multiple_of(5) {
                tags.push("beta".to_string());
            }
            if h.is_multiple_of(11) {
                tags.push("strategic".to_string());
            }
            Tenant {
                id: id(kind, i),
                plan: PLANS[h % PLANS.len()].to_string(),
                region: REGIONS[(h / 7) % REGIONS.len()].to_string(),
                tags,
            }
        })
        .collect()
}

/// The version-1 snapshot: 20 flags at 50% (rows materialised), one pilot, 10 rows set by hand
/// and 5 exclusions each.
pub fn snapshot(tenants: &[Tenant]) -> Snapshot {
    let mut snap = Snapshot::new(1);
    snap.tenants = tenants.iter().map(|t| t.id.clone()).collect();
    for f in 0..FLAGS {
        let key = format!("flag_{f}");
        let mut target = Target::percentage(Percentage::FIFTY);
        target.pilots.insert(tenants[f * 31].id.clone());
        let mut state = FlagState::default().materialise(&key, target, tenants);
        for k in 0..10 {
            state
                .on
                .insert(tenants[(f * 977 + k * 7919) % TENANTS].id.clone());
        }
        for k in 0..5 {
            state
                .excluded
                .insert(tenants[(f * 131 + k * 104_729) % TENANTS].id.clone());
        }
        snap.flags.insert(key, state);
    }
    snap
}

/// Bytes after gzip at the default level (what an HTTP server's gzip sends).
pub fn gzip_len(bytes: &[u8]) -> usize {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap().len()
}
