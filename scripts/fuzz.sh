#!/usr/bin/env bash
# scripts/fuzz.sh — runs each fuzz target (fuzz/fuzz_targets: the snapshot parsers (v1 and v2), the Markdown
# plan import, the JSON request bodies) for a while, starting from fuzz/seeds and the local corpus.
# A crash stops the run and leaves its input in fuzz/artifacts/<target>/: copy it to
# fuzz/regressions/<target>/ and `cargo test -p flags --test fuzz_regressions` replays it forever.
#
#   scripts/fuzz.sh          # 20 s per target (scripts/test)
#   FUZZ_SECS=600 scripts/fuzz.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS=${FUZZ_SECS:-20}
ensure_rust
ensure_cargo_fuzz
export RUSTC_BOOTSTRAP=1
cd "$ROOT"
timed "fuzz build" cargo fuzz build --sanitizer none -O
for target in snapshot compact_snapshot plan_import request_bodies; do
    mkdir -p "fuzz/corpus/$target"
    out=$(cargo fuzz run --sanitizer none -O "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
        -- -max_total_time="$SECS" -print_final_stats=1 2>&1) || {
        echo "$out" | tail -n 30
        die "fuzz target $target crashed; the input is in fuzz/artifacts/$target/"
    }
    runs=$(echo "$out" | sed -n 's/^Done \([0-9]*\) runs.*/\1/p')
    cov=$(echo "$out" | grep -o 'cov: [0-9]*' | tail -n 1)
    note "$target: $runs runs in ${SECS} s, $cov, no crash"
done
