#!/usr/bin/env bash
# bench/multi.sh — three Tenantry instances on one Postgres behind HAProxy (Debian's package),
# with health checks on /api/health. wrk runs through the proxy; mid-run one instance is killed
# (SIGKILL) and a flag is changed by raw SQL on the database. Passes when every surviving instance
# serves the change within 1 s, and reports how many requests failed and for how long.
#
#   bench/multi.sh                     # release build, 10,000 tenants, wrk -t1 -c32 -d20s
#   BENCH_TENANTS=100000 bench/multi.sh
#
# Health checks every 500 ms, down after 2 failures: an instance that dies stops getting traffic
# within ~1 s. HAProxy retries a request whose connection is refused on another instance
# (`retry-on conn-failure`, `option redispatch`), so most of that second costs nothing.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

TENANTS=${BENCH_TENANTS:-10000}
SECS=${BENCH_SECS:-20}
LB=127.0.0.1:3410
PORTS=(3411 3412 3413)
cleanup_on_exit

ensure_rust
ensure_postgres
ensure_cargo_leptos
ensure_wasm_bindgen
ensure_wasm_opt
ensure_haproxy
have wrk || apt_install wrk

BIN="$ROOT/target/release/tenantry"
if [ -z "${BENCH_NO_BUILD:-}" ] || [ ! -x "$BIN" ]; then
    timed "build (release)" cargo leptos build --release
fi
bench_database "$BIN" pg-multi 15490 tenantry_multi "$TENANTS"
SECRET=$(random_secret rg_server_)
"$BIN" token create --scope server --name bench --value "$SECRET" >/dev/null
"$BIN" enable --tenant "$DEMO_TENANT" --override "bench setup" >/dev/null
"$BIN" advance --override "bench setup" >/dev/null

export LEPTOS_OUTPUT_NAME=tenantry LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg LEPTOS_ENV=PROD
step "start ${#PORTS[@]} instances"
PIDS=()
for port in "${PORTS[@]}"; do
    RUST_LOG=warn "$BIN" serve --no-migrate --addr "127.0.0.1:$port" >"$DATA/multi-$port.log" 2>&1 &
    PIDS+=("$!")
    OTHER_PIDS+=("$!")
done
for port in "${PORTS[@]}"; do
    wait_http "http://127.0.0.1:$port/api/health" 60 || die "instance $port not healthy"
done

CFG="$DATA/haproxy.cfg"
{
    cat <<CFG
global
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout
frontend tenantry
    bind $LB
    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /api/health
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
CFG
    for port in "${PORTS[@]}"; do
        echo "    server i$port 127.0.0.1:$port check"
    done
} >"$CFG"
haproxy -c -f "$CFG" >/dev/null || die "haproxy refuses $CFG"
haproxy -f "$CFG" >"$DATA/haproxy.log" 2>&1 &
OTHER_PIDS+=("$!")
wait_http "http://$LB/api/health" 30 || die "haproxy not up"

# Which tenant to flip: one whose answer we know (the demo tenant is a pilot: ON).
FLAG=multi_workspace_enabled
on_at() { curl -fsS -H "Authorization: Bearer $SECRET" "http://127.0.0.1:$1/api/features?tenant=$DEMO_TENANT" | grep -q "\"$FLAG\":true"; }
for port in "${PORTS[@]}"; do on_at "$port" || die "instance $port does not serve the demo tenant ON"; done

step "wrk through HAProxy for ${SECS}s; instance ${PORTS[1]} is killed at 5 s, a raw-SQL change at 8 s"
WRK_OUT="$DATA/multi-wrk.txt"
wrk -t1 -c32 -d"${SECS}s" --latency -H "Authorization: Bearer $SECRET" \
    "http://$LB/api/features?tenant=$DEMO_TENANT" >"$WRK_OUT" &
WRK_PID=$!
sleep 5
kill -9 "${PIDS[1]}"
KILLED_AT=$(date +%s%N)
note "killed instance ${PORTS[1]} (pid ${PIDS[1]})"
sleep 3
# The DBA's emergency switch, verbatim in spirit: one row, raw SQL, no Tenantry in the loop.
CHANGED_AT=$(date +%s%N)
psql "$DATABASE_URL" -qAt -c \
    "UPDATE feature_flags SET enabled = false WHERE key = '$FLAG' AND tenant_id = '$DEMO_TENANT'" >/dev/null
worst=0
for port in "${PORTS[0]}" "${PORTS[2]}"; do
    while on_at "$port"; do
        [ $(( ($(date +%s%N) - CHANGED_AT) / 1000000 )) -lt 5000 ] || die "instance $port still serves the old answer after 5 s"
        sleep 0.01
    done
    ms=$(( ($(date +%s%N) - CHANGED_AT) / 1000000 ))
    note "instance $port serves the change after ${ms} ms"
    [ "$ms" -gt "$worst" ] && worst=$ms
done
wait "$WRK_PID"
grep -E "Requests/sec|99%|50%|Socket errors|Non-2xx|requests in" "$WRK_OUT"
total=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WRK_OUT")
non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$WRK_OUT")
sockerr=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$WRK_OUT" \
    | awk '{print $1+$2+$3+$4}')
failed=$(( ${non2xx:-0} + ${sockerr:-0} ))
note "requests: ${total:-?}; failed: $failed (non-2xx ${non2xx:-0}, socket errors ${sockerr:-0})"
down_ms=$(grep -m1 -o "Server instances/i${PORTS[1]} is DOWN" "$DATA/haproxy.log" >/dev/null && echo "marked DOWN" || echo "no DOWN line")
note "haproxy: instance ${PORTS[1]} $down_ms (health checks every 500 ms, fall 2); killed at $(( KILLED_AT / 1000000 )) ms epoch"
[ "$worst" -le 1000 ] || die "a surviving instance took ${worst} ms (> 1 s) to serve the change"
note "every surviving instance served the raw-SQL change within ${worst} ms"
