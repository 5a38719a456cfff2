//! A deterministic corpus of (flag, tenant) pairs and the snapshot they are evaluated against,
//! shared by the native test and the wasm test so both builds answer the same questions.
use flags::{Attribute, Constraint, FlagState, Operator, Percentage, Snapshot, Target, Tenant};

/// A tiny deterministic generator (no RNG crate, no clock).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
const REGIONS: [&str; 4] = ["eu-west", "us-east", "ap-southeast", "us-gov"];

/// 500 tenants: plain, uuid-like, non-ASCII and very long ids.
pub fn tenants() -> Vec<Tenant> {
    let mut rng = Lcg(7);
    (0..500)
        .map(|i| {
            let id = match i % 5 {
                0 => format!("tenant-{i}"),
                1 => format!(
                    "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                    rng.next() as u32,
                    rng.next() as u16,
                    rng.next() % 0x1000,
                    rng.next() % 0x1000,
                    rng.next() % 0x1_0000_0000_0000
                ),
                2 => format!("société-{i}-ß"),
                3 => format!("{i}"),
                _ => format!("org_{}_{}", "x".repeat(i % 250), i),
            };
            let mut t = Tenant::new(id);
            t.plan = PLANS[(rng.next() % 4) as usize].to_string();
            t.region = REGIONS[(rng.next() % 4) as usize].to_string();
            if rng.next().is_multiple_of(3) {
                t.tags.push("beta".into());
            }
            t
        })
        .collect()
}

/// 20 flag keys.
pub fn flag_keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..19)
        .map(|i| format!("flag_{i}.variant-{}", i * 7))
        .collect();
    keys.push("multi_workspace_enabled".into());
    keys
}

/// A snapshot exercising every reason: percentages, pilots, constraints, exclusions, global
/// rows, a flag missing from the snapshot, and tenants unknown to it.
pub fn snapshot() -> Snapshot {
    let tenants = tenants();
    let mut snap = Snapshot::new(1);
    // Every 50th tenant is unknown to the snapshot (archived, say).
    snap.tenants = tenants
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 50 != 49)
        .map(|(_, t)| t.id.clone())
        .collect();
    let mut rng = Lcg(11);
    // The last key is left out of the snapshot: UnknownFlag.
    let keys = flag_keys();
    for (i, key) in keys.iter().enumerate().take(keys.len() - 1) {
        let pct = Percentage::new([0, 1, 5, 10, 25, 50, 75, 99, 100][i % 9]).unwrap_or_default();
        let mut target = Target::percentage(pct);
        for _ in 0..(i % 4) {
            let t = &tenants[(rng.next() % 500) as usize];
            target.pilots.insert(t.id.clone());
        }
        if i % 3 == 1 {
            target.constraints.push(Constraint {
                attribute: Attribute::Plan,
                operator: Operator::In,
                values: vec!["pro".into(), "enterprise".into()],
            });
        }
        if i % 4 == 2 {
            target.constraints.push(Constraint {
                attribute: Attribute::Region,
                operator: Operator::NotIn,
                values: vec!["us-gov".into()],
            });
        }
        let mut base = FlagState {
            enabled: i % 7 == 6,
            ..FlagState::default()
        };
        for _ in 0..3 {
            base.excluded
                .insert(tenants[(rng.next() % 500) as usize].id.clone());
        }
        let mut state = base.materialise(key, target, &tenants);
        // A few hand-enabled rows outside the target: TenantEnabled.
        for _ in 0..2 {
            state
                .on
                .insert(tenants[(rng.next() % 500) as usize].id.clone());
        }
        snap.flags.insert(key.clone(), state);
    }
    snap
}

/// One line per (flag, tenant): `bucket on reason`.
pub fn vectors() -> String {
    let snap = snapshot();
    let compiled = flags::Evaluator::new(&snap);
    let mut out = String::new();
    for key in flag_keys() {
        for t in tenants() {
            let b = flags::bucket(&key, &t.id);
            let d = snap.evaluate(&key, &t.id);
            // The compiled evaluator the server uses must agree with the reference path.
            assert_eq!(compiled.evaluate(&key, &t.id), d, "{key} {}", t.id);
            out.push_str(&line(b, d));
        }
    }
    out
}

/// The same lines computed from the compact (v2) form of the same snapshot: compacted with the
/// tenants' records, written to JSON and read back, then evaluated on the compact form directly
/// and through the evaluator compiled from it (which must agree on every pair).
pub fn vectors_compact() -> String {
    let v1 = snapshot();
    let compacted = flags::CompactSnapshot::compact(&v1, &tenants()).unwrap();
    let json = compacted.to_json().unwrap();
    let snap = flags::CompactSnapshot::from_json(json.as_bytes()).unwrap();
    assert_eq!(snap, compacted, "the compact form changed through JSON");
    let compiled = flags::Evaluator::from_compact(&snap);
    let mut out = String::new();
    for key in flag_keys() {
        for t in tenants() {
            let b = flags::bucket(&key, &t.id);
            let d = snap.evaluate(&key, &t.id);
            assert_eq!(compiled.evaluate(&key, &t.id), d, "{key} {}", t.id);
            out.push_str(&line(b, d));
        }
    }
    out
}

/// One vector line: `bucket on reason[ bucket/percentage]`.
fn line(b: u32, d: flags::Decision) -> String {
    let extra = match d.reason {
        flags::Reason::Cohort { bucket, percentage } => format!(" {bucket}/{percentage}"),
        _ => String::new(),
    };
    format!("{b} {} {}{extra}\n", u8::from(d.on), d.reason.code())
}

/// The first line where two vector files differ, for a readable failure.
pub fn first_difference(a: &str, b: &str) -> Option<(usize, String, String)> {
    let mut la = a.lines();
    let mut lb = b.lines();
    let mut n = 0;
    loop {
        n += 1;
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x != y => {
                return Some((
                    n,
                    x.unwrap_or("<end>").to_string(),
                    y.unwrap_or("<end>").to_string(),
                ))
            }
            _ => {}
        }
    }
}
