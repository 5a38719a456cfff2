//! Fuzz target: the properties of `flags::fuzz_checks::compact_snapshot`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = flags::fuzz_checks::compact_snapshot(data) {
        panic!("{e}");
    }
});
