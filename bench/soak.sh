#!/usr/bin/env bash
# bench/soak.sh — evaluation through a database outage: 60 s of wrk at 256 connections (128 on
# /api/features, 128 on OFREP) against a release build, while its Postgres is stopped at 10 s and
# started again at 40 s. Passes when no evaluation failed (no non-2xx), no socket error, health
# went degraded and back to ok by itself, and the server's RSS stayed flat.
#
#   bench/soak.sh                          # the documented run (60 s, 256 connections)
#   SOAK_SECS=20 SOAK_DOWN_AT=5 SOAK_UP_AT=12 bench/soak.sh   # the short mode scripts/test runs
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

ADDR=${SOAK_ADDR:-127.0.0.1:3410}
SECS=${SOAK_SECS:-60}
DOWN_AT=${SOAK_DOWN_AT:-10}
UP_AT=${SOAK_UP_AT:-40}
CONNS=${SOAK_CONNECTIONS:-256}
PORT=${SOAK_PG_PORT:-15470}
BIN=${SOAK_BIN:-$ROOT/target/release/tenantry}
cleanup_on_exit

ensure_rust
ensure_postgres
command -v wrk >/dev/null || apt_install wrk
if [ -z "${SOAK_BIN:-}" ]; then
    ensure_cargo_leptos
    ensure_wasm_bindgen
    ensure_wasm_opt
    timed "build (release)" cargo leptos build --release
fi

pg_start pg-soak "$PORT"
create_db "$PG_URL_BASE" tenantry_soak fresh
export DATABASE_URL="$PG_URL_BASE/tenantry_soak"
"$BIN" migrate >/dev/null
"$BIN" seed-demo --tenants 10000 >/dev/null
SECRET=$(random_secret rg_server_)
"$BIN" token create --scope server --name soak --value "$SECRET" >/dev/null
"$BIN" enable --tenant "$DEMO_TENANT" --override "soak setup" >/dev/null
"$BIN" advance --override "soak setup" >/dev/null

export LEPTOS_OUTPUT_NAME=tenantry LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_ENV=PROD
RUST_LOG=warn "$BIN" serve --no-migrate --addr "$ADDR" >"$DATA/soak-server.log" 2>&1 &
SERVER_PID=$!
wait_http "http://$ADDR/api/health" 60 || die "server not healthy"

OUT=$(mktemp -d)
LUA="$OUT/ofrep.lua"
ofrep_lua "$LUA" "$SECRET"
half=$((CONNS / 2))
step "wrk: ${SECS} s, $CONNS connections; Postgres stops at ${DOWN_AT} s and starts at ${UP_AT} s"
wrk -t1 -c"$half" -d"${SECS}s" --latency -H "Authorization: Bearer $SECRET" \
    "http://$ADDR/api/features?tenant=$DEMO_TENANT" >"$OUT/features.txt" 2>&1 &
W1=$!
wrk -t1 -c"$half" -d"${SECS}s" --latency -s "$LUA" \
    "http://$ADDR/ofrep/v1/evaluate/flags/multi_workspace_enabled" >"$OUT/ofrep.txt" 2>&1 &
W2=$!

# Every second or so: RSS (kB) and health status, while the outage happens on schedule (times are
# seconds since wrk started; a health check may take up to the pool's 3 s acquire timeout).
: >"$OUT/samples.txt"
start=$SECONDS stopped="" started=""
while (( SECONDS - start < SECS )); do
    t=$((SECONDS - start))
    if [ -z "$stopped" ] && (( t >= DOWN_AT )); then
        pg_ctl_cluster pg-soak stop "$PORT"; stopped=1; echo "$t postgres-stopped" >>"$OUT/samples.txt"
    fi
    if [ -z "$started" ] && (( t >= UP_AT )); then
        pg_ctl_cluster pg-soak start "$PORT"; started=1; echo "$t postgres-started" >>"$OUT/samples.txt"
    fi
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://$ADDR/api/health" || true)
    echo "$t rss=$rss health=$code" >>"$OUT/samples.txt"
    sleep 1
done
wait "$W1" "$W2" || true
# After the run the health must be back to ok (the reconnect may take a few seconds).
wait_http "http://$ADDR/api/health" 30 200 || die "health did not return to 200 after the outage"

summary() {
    local f=$1 name=$2 non2xx sock rps p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$f")
    p99=$(awk '$1 == "99%" {print $2}' "$f")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$f"); non2xx=${non2xx:-0}
    sock=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$f"); sock=${sock:-0}
    total=$(awk '/requests in/ {print $1}' "$f")
    echo "$name: $total requests, $rps req/s, p99 $p99, non-2xx $non2xx, socket errors $sock"
    [ "$non2xx" = 0 ] && [ "$sock" = 0 ]
}
ok=1
summary "$OUT/features.txt" "GET /api/features" || ok=0
summary "$OUT/ofrep.txt" "POST OFREP /evaluate/flags/{key}" || ok=0
degraded=$(grep -c 'health=503' "$OUT/samples.txt" || true)
unanswered=$(grep -c 'health=000' "$OUT/samples.txt" || true)
recovered=$(awk -v up="$UP_AT" '$1 > up && /health=200/' "$OUT/samples.txt" | head -n 1 | cut -d' ' -f1)
echo "health: 503 in $degraded samples during the outage ($unanswered unanswered within 5 s); back to 200 at ${recovered:-never} s (Postgres started at ${UP_AT} s)"
[ "$degraded" -gt 0 ] || { echo "health never reported the outage"; ok=0; }
[ -n "$recovered" ] || { echo "health did not recover during the run"; ok=0; }
# RSS: the median of the first and of the last ten samples (after warm-up) may differ by < 25%.
first=$(grep -o 'rss=[0-9]*' "$OUT/samples.txt" | cut -d= -f2 | sed -n '3,12p' | sort -n | sed -n '5p')
last=$(grep -o 'rss=[0-9]*' "$OUT/samples.txt" | cut -d= -f2 | tail -n 10 | sort -n | sed -n '5p')
echo "RSS: ${first} kB early, ${last} kB at the end"
if [ -n "$first" ] && [ -n "$last" ] && [ "$last" -gt $((first * 125 / 100)) ]; then
    echo "RSS grew by more than 25%"
    ok=0
fi
echo "SOAK $(printf '{"secs":%s,"connections":%s,"rss_start_kb":%s,"rss_end_kb":%s,"degraded_secs":%s,"ok":%s}' \
    "$SECS" "$CONNS" "${first:-0}" "${last:-0}" "$degraded" "$ok")"
cp "$OUT/samples.txt" "$DATA/soak-samples.txt"
rm -rf "$OUT"
[ "$ok" = 1 ] || die "soak failed"
