#!/usr/bin/env bash
# bench/http.sh — requests per second and p99 of /api/features and OFREP single evaluation,
# with wrk on 127.0.0.1 against a release build over its own private Postgres.
#
#   bench/http.sh                 # wrk -t1 -c32 -d10s (the documented setting)
#   WRK_ARGS="-t2 -c64 -d30s" bench/http.sh
#
# Third: /api/features again while a second wrk fails sign-ins as fast as it can, each from its own
# X-Forwarded-For address (the server trusts it here) so the throttle never answers early and
# every attempt costs a full argon2 verification.
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
# The ceiling: axum's hello-world with the same runtime, served in the same run (server/examples).
timed "build the ceiling (release)" cargo build --release --locked -p server --example ceiling \
    --no-default-features --features ssr
CEILING_ADDR=${BENCH_CEILING_ADDR:-127.0.0.1:3401}
BIN="$ROOT/target/release/tenantry"
bench_database "$BIN" pg-bench 15450 tenantry_bench "$TENANTS"
SECRET=$(random_secret rg_server_)
"$BIN" token create --scope server --name bench --value "$SECRET" >/dev/null
# A realistic state: pilots, then 10% and 50% materialised (past the plan's gates: this is a
# benchmark setup, not a rollout; the override is audited like any other).
"$BIN" enable --tenant "$DEMO_TENANT" --override "bench setup" >/dev/null
"$BIN" advance --override "bench setup" >/dev/null
"$BIN" advance --override "bench setup" >/dev/null

export LEPTOS_OUTPUT_NAME=tenantry LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_ENV=PROD
TENANTRY_TRUST_PROXY=1 RUST_LOG=warn "$BIN" serve --no-migrate --addr "$ADDR" >"$DATA/bench-server.log" 2>&1 &
SERVER_PID=$!
wait_http "http://$ADDR/api/health" 60 || die "server not healthy"

"$ROOT/target/release/examples/ceiling" "$CEILING_ADDR" &
CEILING_PID=$!
wait_http "http://$CEILING_ADDR/api/features" 30 || die "ceiling not up"

LUA=$(mktemp)
ofrep_lua "$LUA" "$SECRET"

# rps FILE — the Requests/sec figure of a wrk output.
rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"; }
echo
echo "== the ceiling: axum hello-world JSON, GET /api/features  (wrk $WRK_ARGS --latency)"
# shellcheck disable=SC2086
wrk $WRK_ARGS --latency "http://$CEILING_ADDR/api/features" >"$DATA/bench-ceiling.txt"
grep -E "Requests/sec|99%|50%|Socket errors|Non-2xx|requests in" "$DATA/bench-ceiling.txt"
kill "$CEILING_PID" 2>/dev/null; wait "$CEILING_PID" 2>/dev/null || true

echo
echo "== GET /api/features?tenant=$DEMO_TENANT  (wrk $WRK_ARGS --latency)"
# shellcheck disable=SC2086
wrk $WRK_ARGS --latency -H "Authorization: Bearer $SECRET" "http://$ADDR/api/features?tenant=$DEMO_TENANT" \
    >"$DATA/bench-features.txt"
grep -E "Requests/sec|99%|50%|Socket errors|Non-2xx|requests in" "$DATA/bench-features.txt"
echo "   ratio to the ceiling: $(awk -v a="$(rps "$DATA/bench-features.txt")" -v b="$(rps "$DATA/bench-ceiling.txt")" 'BEGIN{printf "%.2f", a/b}')"
echo
echo "== POST /ofrep/v1/evaluate/flags/multi_workspace_enabled  (wrk $WRK_ARGS --latency)"
# shellcheck disable=SC2086
wrk $WRK_ARGS --latency -s "$LUA" "http://$ADDR/ofrep/v1/evaluate/flags/multi_workspace_enabled" \
    >"$DATA/bench-ofrep.txt"
grep -E "Requests/sec|99%|50%|Socket errors|Non-2xx|requests in" "$DATA/bench-ofrep.txt"
echo "   ratio to the ceiling: $(awk -v a="$(rps "$DATA/bench-ofrep.txt")" -v b="$(rps "$DATA/bench-ceiling.txt")" 'BEGIN{printf "%.2f", a/b}')"
rm -f "$LUA"

STORM=$(mktemp)
cat >"$STORM" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  return wrk.format("POST", "/rpc/login", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Accept"] = "application/json",
    ["X-Forwarded-For"] = ip,
  }, "username=bench-nobody&password=not-the-password")
end
LUA
echo
echo "== GET /api/features?tenant=$DEMO_TENANT during a sign-in storm (wrk $WRK_ARGS --latency; storm: wrk -t1 -c8)"
SECS=$(echo "$WRK_ARGS" | sed -n 's/.*-d\([0-9]*\)s.*/\1/p')
STORM_SECS=$(( ${SECS:-10} + 2 ))
wrk -t1 -c8 -d"${STORM_SECS}s" -s "$STORM" "http://$ADDR/rpc/login" >"$DATA/bench-storm.txt" &
STORM_PID=$!
sleep 1
# shellcheck disable=SC2086
wrk $WRK_ARGS --latency -H "Authorization: Bearer $SECRET" "http://$ADDR/api/features?tenant=$DEMO_TENANT" \
    | grep -E "Requests/sec|99%|50%|Socket errors|Non-2xx|requests in"
wait "$STORM_PID"
echo "   the storm (every attempt refused, so all non-2xx):"
grep -E "Requests/sec|Non-2xx|requests in" "$DATA/bench-storm.txt"
rm -f "$STORM"
