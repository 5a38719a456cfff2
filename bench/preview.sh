#!/usr/bin/env bash
# bench/preview.sh — the flag editor's preview of a percentage change over 100,000 tenants,
# measured in headless Chromium (Debian's) by the Playwright `perf` project, against a release
# build (the wasm users get). Prints the JSON the test logs: per run the Rust computation alone
# (`computeMs`, performance.now() around Rollout::apply + diff) and input event → painted frame
# (`frameMs`).
#
#   bench/preview.sh                   # 100,000 tenants
#   BENCH_TENANTS=20000 bench/preview.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

ADDR=${BENCH_ADDR:-127.0.0.1:3401}
TENANTS=${BENCH_TENANTS:-100000}
cleanup_on_exit

ensure_rust
ensure_postgres
ensure_node
ensure_chromium
ensure_cargo_leptos
ensure_wasm_bindgen
ensure_wasm_opt

timed "build (release)" cargo leptos build --release
BIN="$ROOT/target/release/tenantry"
bench_database "$BIN" pg-bench 15450 tenantry_preview "$TENANTS"
export E2E_PO_PASSWORD
E2E_PO_PASSWORD=$(random_secret po-)
TENANTRY_PASSWORD="$E2E_PO_PASSWORD" "$BIN" user add po --role product_owner >/dev/null

export LEPTOS_OUTPUT_NAME=tenantry LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_ENV=PROD
RUST_LOG=warn "$BIN" serve --no-migrate --addr "$ADDR" >"$DATA/bench-preview.log" 2>&1 &
SERVER_PID=$!
wait_http "http://$ADDR/api/health" 60 || die "server not healthy"

export TENANTRY_URL="http://$ADDR"
(cd "$ROOT/end2end" && npx --no-install playwright test --config playwright.config.ts --project=perf) \
    | grep -E "PREVIEW-100K|passed|failed"
