#!/usr/bin/env bash
# bench/http.sh — requests per second and p99 of /api/features and OFREP single evaluation,
# with wrk on 127.0.0.1 against a release build over its own private Postgres.
#
#   bench/http.sh                 # wrk -t1 -c32 -d10s (the documented setting)
#   WRK_ARGS="-t2 -c64 -d30s" bench/http.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

ADDR=${BENCH_ADDR:-127.0.0.1:3400}
WRK_ARGS=${WRK_ARGS:--t1 -c32 -d10s}
TENANTS=${BENCH_TENANTS:-10000}
cleanup_on_exit

ensure_rust
ensure_postgres
ensure_cargo_leptos
ensure_wasm_bindgen
ensure_wasm_opt
command -v wrk >/dev/null || apt_install wrk

timed "build (release)" cargo leptos build --release
pg_start pg-bench 15450
create_db "$PG_URL_BASE" rollgate_bench fresh
export DATABASE_URL="$PG_URL_BASE/rollgate_bench"
BIN="$ROOT/target/release/rollgate"
"$BIN" migrate >/dev/null
timed "seed $TENANTS tenants" "$BIN" seed-demo --tenants "$TENANTS"
SECRET=$(random_secret rg_server_)
"$BIN" token create --scope server --name bench --value "$SECRET" >/dev/null
# A realistic state: pilots, then 10% and 50% materialised (past the plan's gates: this is a
# benchmark setup, not a rollout; the override is audited like any other).
"$BIN" enable --tenant "$DEMO_TENANT" --override "bench setup" >/dev/null
"$BIN" advance --override "bench setup" >/dev/null
"$BIN" advance --override "bench setup" >/dev/null

export LEPTOS_OUTPUT_NAME=rollgate LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_ENV=PROD
RUST_LOG=warn "$BIN" serve --no-migrate --addr "$ADDR" >"$DATA/bench-server.log" 2>&1 &
SERVER_PID=$!
wait_http "http://$ADDR/api/health" 60 || die "server not healthy"

LUA=$(mktemp)
ofrep_lua "$LUA" "$SECRET"

echo
echo "== GET /api/features?tenant=$DEMO_TENANT  (wrk $WRK_ARGS --latency)"
# shellcheck disable=SC2086
wrk $WRK_ARGS --latency -H "Authorization: Bearer $SECRET" "http://$ADDR/api/features?tenant=$DEMO_TENANT" \
    | grep -E "Requests/sec|99%|50%|Socket errors|Non-2xx|requests in"
echo
echo "== POST /ofrep/v1/evaluate/flags/multi_workspace_enabled  (wrk $WRK_ARGS --latency)"
# shellcheck disable=SC2086
wrk $WRK_ARGS --latency -s "$LUA" "http://$ADDR/ofrep/v1/evaluate/flags/multi_workspace_enabled" \
    | grep -E "Requests/sec|99%|50%|Socket errors|Non-2xx|requests in"
rm -f "$LUA"
