//! Every input saved under `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/` (a crash the
//! fuzzer found goes there) passes the fuzz target's checks.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::panic)]
use std::path::Path;

type Check = fn(&[u8]) -> Result<(), String>;

#[test]
fn saved_fuzz_inputs_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let checks: [(&str, Check); 4] = [
        ("snapshot", flags::fuzz_checks::snapshot),
        ("compact_snapshot", flags::fuzz_checks::compact_snapshot),
        ("plan_import", flags::fuzz_checks::plan_import),
        ("request_bodies", flags::fuzz_checks::request_bodies),
    ];
    let mut replayed = 0;
    for (target, check) in checks {
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).unwrap_or_default();
                if let Err(e) = check(&data) {
                    panic!("{target} {}: {e}", entry.path().display());
                }
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 8, "{replayed} saved inputs");
}
