#!/usr/bin/env bash
# bench/scale.sh — issue 17 at scale: how fast a change reaches a running server, what the server
# holds, and what the SDK snapshot weighs, over N tenants × 20 flags at 50% (about half the
# tenants ON per flag), on its own private Postgres (127.0.0.1:15481) and server (127.0.0.1:3481).
#
#   bench/scale.sh                                   # 10,000 tenants, debug build
#   BENCH_TENANTS=100000 bench/scale.sh              # 100,000 tenants
#   BENCH_PROFILE=release BENCH_TENANTS=100000 bench/scale.sh
#   BENCH_PROFILE=release BENCH_TENANTS=1000000 BENCH_FLAGS=2 bench/scale.sh   # the 1M point of the curve
#
# Measures (a benchmark, not a test: nothing here fails on a slow number):
#   1. one raw-SQL write of one feature_flags row (psql, autocommit) → time from its commit (the
#      database's clock_timestamp() right after it) until /api/features?tenant=X shows it (polled
#      with curl; one poll's duration is printed: it is the resolution), over BENCH_CHANGES changes
#      (default 20): p50 and p99 (with 20 samples, p99 is the slowest);
#   2. a burst of 100 single-row changes in about one second (each its own statement) → time until
#      the last is visible, from the start of the burst and from its last commit;
#   3. the server's RSS after start, after the changes, after serving both snapshots;
#   4. /api/client/snapshot in v1 and v2 (?format=v2), raw and gzip (bytes on the wire, from
#      curl's size_download), and the first (written) and second (cached) fetch times;
#   plus the server's full load at start, the catch-ups it made (from /metrics), and the size of a
#   one-row event on the v2 stream.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

ADDR=${BENCH_ADDR:-127.0.0.1:3481}
PG_PORT=${BENCH_PG_PORT:-15481}
TENANTS=${BENCH_TENANTS:-10000}
FLAGS=${BENCH_FLAGS:-20}
CHANGES=${BENCH_CHANGES:-20}
PROFILE=${BENCH_PROFILE:-debug}
cleanup_on_exit

ensure_rust
ensure_postgres
command -v jq >/dev/null || apt_install jq

if [ "$PROFILE" = release ]; then
    timed "build (release)" cargo build --locked --release -p server --bin tenantry
    BIN="$ROOT/target/release/tenantry"
else
    timed "build (debug)" cargo build --locked -p server --bin tenantry
    BIN="$ROOT/target/debug/tenantry"
fi

bench_database "$BIN" pg-scale "$PG_PORT" tenantry_scale "$TENANTS"
SECRET=$(random_secret rg_server_)
"$BIN" token create --scope server --name bench --value "$SECRET" >/dev/null

timed "$FLAGS flags to 50%" bench_flags_at_half "$BIN" "$FLAGS"
ROWS=$("${PSQL[@]}" -c "SELECT count(*) FROM feature_flags")
ON=$("${PSQL[@]}" -c "SELECT count(*) FROM feature_flags WHERE enabled")
note "feature_flags: $ROWS rows, $ON enabled"
"${PSQL[@]}" -c "VACUUM ANALYZE" >/dev/null

export LEPTOS_OUTPUT_NAME=tenantry LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg
step "start the server ($PROFILE)"
t0=$(date +%s%N)
RUST_LOG=warn "$BIN" serve --no-migrate --addr "$ADDR" >"$DATA/scale-server.log" 2>&1 &
SERVER_PID=$!
wait_http "http://$ADDR/api/health" 300 || die "server not healthy (see $DATA/scale-server.log)"
note "healthy (first full load included) in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

AUTH=(-H "Authorization: Bearer $SECRET")
rss() { echo "$(( $(ps -o rss= -p "$SERVER_PID") / 1024 )) MB"; }
RSS_START=$(rss)

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# feature FLAG TENANT — true/false as the server answers now (no jq on the polling path).
feature() {
    local body
    body=$(curl -sf "${AUTH[@]}" "http://$ADDR/api/features?tenant=$2")
    if [[ $body == *"\"$1\":true"* ]]; then echo true; else echo false; fi
}
# flip FLAG TENANT — writes the tenant's row as the opposite of what the server answers, by raw
# SQL; prints the new value and the commit time (ms since the epoch, from the database's clock:
# the same machine), read right after the statement committed.
flip() {
    local now want at
    now=$(feature "$1" "$2")
    if [ "$now" = true ]; then want=false; else want=true; fi
    at=$("${PSQL[@]}" -c "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('$1', '$2', $want)
        ON CONFLICT (key, tenant_id) DO UPDATE SET enabled = EXCLUDED.enabled" \
        -c "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
    echo "$want $at"
}
# wait_for FLAG TENANT VALUE — polls until the server answers VALUE (gives up after about 60 s).
wait_for() {
    local i
    for ((i = 0; i < 20000; i++)); do
        [ "$(feature "$1" "$2")" = "$3" ] && return 0
    done
    die "$1 for $2 never became $3"
}
mapfile -t TENANT_IDS < <("${PSQL[@]}" -c "SELECT id FROM tenants ORDER BY md5(id) LIMIT 200")

step "one raw-SQL change → visible on /api/features ($CHANGES changes)"
POLL_START=$(now_ms)
for ((i = 0; i < 20; i++)); do feature "${KEYS[0]}" "${TENANT_IDS[0]}" >/dev/null; done
POLL_MS=$(( ($(now_ms) - POLL_START) / 20 ))
note "one poll (curl /api/features) takes about $POLL_MS ms: the resolution of what follows"
LAT=()
for ((i = 0; i < CHANGES; i++)); do
    key=${KEYS[$((i % ${#KEYS[@]}))]}
    tenant=${TENANT_IDS[$i]}
    read -r want committed < <(flip "$key" "$tenant")
    wait_for "$key" "$tenant" "$want"
    LAT+=($(( $(now_ms) - committed )))
    sleep 0.2
done
mapfile -t SORTED < <(printf '%s\n' "${LAT[@]}" | sort -n)
P50=${SORTED[$(( (${#SORTED[@]} - 1) / 2 ))]}
P99=${SORTED[$(( (${#SORTED[@]} * 99 + 99) / 100 - 1 ))]}
note "latencies (ms, from the commit to the first answer that shows it): ${LAT[*]}"
note "p50 $P50 ms, p99 $P99 ms"

step "a burst of 100 changes in about one second"
BURST=$(mktemp)
NOW_SQL="SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint;"
{
    echo "$NOW_SQL"
    for ((i = 0; i < 100; i++)); do
        key=${KEYS[$((i % ${#KEYS[@]}))]}
        tenant=${TENANT_IDS[$((100 + i))]}
        echo "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('$key', '$tenant', true)
            ON CONFLICT (key, tenant_id) DO UPDATE SET enabled = NOT feature_flags.enabled;"
        echo "SELECT pg_sleep(0.01);"
    done
    echo "$NOW_SQL"
} >"$BURST"
last_key=${KEYS[$((99 % ${#KEYS[@]}))]}
last_tenant=${TENANT_IDS[199]}
before_last=$(feature "$last_key" "$last_tenant")
if [ "$before_last" = true ]; then after_last=false; else after_last=true; fi
OUT=$("${PSQL[@]}" -f "$BURST")
start=$(echo "$OUT" | head -n 1)
end=$(echo "$OUT" | tail -n 1)
wait_for "$last_key" "$last_tenant" "$after_last"
seen=$(now_ms)
rm -f "$BURST"
note "burst committed over $(( end - start )) ms; last change visible $(( seen - start )) ms after the burst began, $(( seen - end )) ms after its last commit"
METRICS=$(curl -sf "http://$ADDR/metrics")
note "server: $(echo "$METRICS" | grep -E '^tenantry_snapshot_loads_total' | tr '\n' ' ')"
note "catch-up time: $(echo "$METRICS" | grep -E '^tenantry_snapshot_catch_up_seconds(_sum|_count)' | tr '\n' ' ')"
RSS_CHANGES=$(rss)

step "work per change: one statement changing K rows → the catch-up that applies it"
# The server's own timing of each catch-up (tenantry_snapshot_catch_up_seconds), read from /metrics
# before and after; the statement is one transaction, so one catch-up applies it (more only if the
# follower woke in between — the count is printed).
catch_up() { # → "sum count"
    curl -sf "http://$ADDR/metrics" | awk '/^tenantry_snapshot_catch_up_seconds_sum/ {s=$2} /^tenantry_snapshot_catch_up_seconds_count/ {c=$2} END {print s, c}'
}
CURVE=()
for k in 1 10 100 1000 10000; do
    [ "$k" -le "$TENANTS" ] || continue
    probe=$("${PSQL[@]}" -c "SELECT id FROM tenants ORDER BY md5(id || 'curve') LIMIT 1")
    want=true; [ "$(feature "${KEYS[0]}" "$probe")" = true ] && want=false
    read -r s0 c0 < <(catch_up)
    "${PSQL[@]}" -c "INSERT INTO feature_flags (key, tenant_id, enabled)
        SELECT '${KEYS[0]}', id, $want FROM (SELECT id FROM tenants ORDER BY md5(id || 'curve') LIMIT $k) t
        ON CONFLICT (key, tenant_id) DO UPDATE SET enabled = EXCLUDED.enabled"
    wait_for "${KEYS[0]}" "$probe" "$want"
    sleep 0.3
    read -r s1 c1 < <(catch_up)
    ms=$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f", (b - a) * 1000}')
    note "$k rows in one statement: catch-up $ms ms ($(awk -v a="$c0" -v b="$c1" 'BEGIN {print b - a}') catch-up(s))"
    CURVE+=("$k rows: $ms ms")
done

step "snapshot sizes"
size() { # size URL [curl args…] → bytes on the wire and time
    local url=$1; shift
    curl -s -o /dev/null "${AUTH[@]}" "$@" -w '%{size_download} bytes in %{time_total} s' "$url"
}
S="http://$ADDR/api/client/snapshot"
note "v1 raw:  $(size "$S") (first fetch: written); again: $(size "$S")"
note "v1 gzip: $(size "$S" -H 'Accept-Encoding: gzip')"
note "v2 raw:  $(size "$S?format=v2") (first fetch: written); again: $(size "$S?format=v2")"
note "v2 gzip: $(size "$S?format=v2" -H 'Accept-Encoding: gzip')"
RSS_SNAPSHOTS=$(rss)

step "one row on the v2 stream"
V=$(curl -sf "${AUTH[@]}" "http://$ADDR/api/health" | jq -r '.snapshot.version')
EVENTS=$(mktemp)
curl -sN "${AUTH[@]}" "http://$ADDR/api/client/stream?format=v2&since=$V" >"$EVENTS" &
CURL_PID=$!
sleep 0.5
flip "${KEYS[0]}" "${TENANT_IDS[0]}" >/dev/null
sleep 2
kill "$CURL_PID" 2>/dev/null || true
wait "$CURL_PID" 2>/dev/null || true
note "event: $(head -c 400 "$EVENTS" | tr '\n' ' ')"
note "bytes on the wire: $(awk 'BEGIN{RS="\n\n"} /event: changes/ {print length($0) + 2; exit}' "$EVENTS")"
rm -f "$EVENTS"

step "summary ($TENANTS tenants × ${#KEYS[@]} flags, $ROWS feature_flags rows, $PROFILE build)"
note "one raw-SQL change visible: p50 $P50 ms, p99 $P99 ms"
note "burst of 100: last visible $(( seen - start )) ms after the burst began ($(( seen - end )) ms after its last commit)"
note "catch-up per change size: ${CURVE[*]}"
note "RSS: $RSS_START after start, $RSS_CHANGES after the changes, $RSS_SNAPSHOTS after serving both snapshots"
