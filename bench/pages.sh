#!/usr/bin/env bash
# bench/pages.sh — issue 18 at scale: how long each page of the admin app takes the server to
# render over N tenants × 20 flags at 50%, on its own private Postgres (127.0.0.1:15482) and server
# (127.0.0.1:3482). A benchmark, not a test: nothing fails on a slow number.
#
#   bench/pages.sh                            # 100,000 tenants, release build
#   BENCH_TENANTS=10000 bench/pages.sh
#
# Each page is fetched as a signed-in admin with curl, 1 warm-up and 5 timed fetches (the median
# and the slowest are printed): the whole server-side render — the page's data, its HTML — from
# the request until the last byte. Also the flag editor's data (`/rpc/flag_editor`, what the wasm
# preview loads), raw and gzip.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

ADDR=${BENCH_ADDR:-127.0.0.1:3482}
PG_PORT=${BENCH_PG_PORT:-15482}
TENANTS=${BENCH_TENANTS:-100000}
FLAGS=${BENCH_FLAGS:-20}
FLAG_KEY=multi_workspace_enabled
cleanup_on_exit

ensure_rust
ensure_postgres

timed "build (release)" cargo build --locked --release -p server --bin tenantry
BIN="$ROOT/target/release/tenantry"

bench_database "$BIN" pg-pages "$PG_PORT" tenantry_pages "$TENANTS"
PASSWORD=$(random_secret bench_)
TENANTRY_PASSWORD="$PASSWORD" "$BIN" user add bench-admin --role admin --replace >/dev/null
timed "$FLAGS flags to 50%" bench_flags_at_half "$BIN" "$FLAGS"
"${PSQL[@]}" -c "VACUUM ANALYZE" >/dev/null
note "feature_flags: $("${PSQL[@]}" -c "SELECT count(*) FROM feature_flags") rows"

export LEPTOS_OUTPUT_NAME=tenantry LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg
step "start the server (release)"
"$BIN" serve --no-migrate --addr "$ADDR" >"$DATA/pages-server.log" 2>&1 &
SERVER_PID=$!
wait_http "http://$ADDR/api/health" 300 || die "server not healthy (see $DATA/pages-server.log)"

JAR=$(mktemp)

curl -sf -o /dev/null -c "$JAR" -H "Origin: http://$ADDR" -H 'Accept: application/json' \
    --data-urlencode "username=bench-admin" --data-urlencode "password=$PASSWORD" \
    "http://$ADDR/rpc/login" || die "sign-in failed"

# time URL [curl args…] → "median / slowest ms, bytes"
time_page() {
    local url=$1 t bytes
    shift
    curl -s -o /dev/null -b "$JAR" "$@" "$url" >/dev/null
    local times=()
    for _ in 1 2 3 4 5; do
        read -r t bytes < <(curl -s -o /dev/null -b "$JAR" "$@" -w '%{time_total} %{size_download}\n' "$url")
        times+=("$(awk -v t="$t" 'BEGIN {printf "%d", t * 1000}')")
    done
    mapfile -t sorted < <(printf '%s\n' "${times[@]}" | sort -n)
    echo "${sorted[2]} / ${sorted[4]} ms, $bytes bytes"
}

# once URL → "ms, bytes" of one fetch (no warm-up)
once() {
    local t bytes
    read -r t bytes < <(curl -s -o /dev/null -b "$JAR" -w '%{time_total} %{size_download}\n' "$1")
    echo "$(awk -v t="$t" 'BEGIN {printf "%d", t * 1000}') ms, $bytes bytes"
}

step "the dashboard's first render (every flag's advance computed once, over shared tenants)"
note "$(printf '%-36s' "/ (first)") $(once "http://$ADDR/")"

step "pages ($TENANTS tenants × ${#KEYS[@]} flags), median / slowest of 5"
for path in / /flags "/flags/$FLAG_KEY" /tenants "/tenants/$DEMO_TENANT" /audit /monitoring /dba/migrations /dba/health; do
    note "$(printf '%-36s' "$path") $(time_page "http://$ADDR$path")"
done
step "the dashboard's first render after a change (that change's flags computed again)"
"${PSQL[@]}" -c "UPDATE feature_flags SET enabled = NOT enabled WHERE key = '${KEYS[1]}' AND tenant_id = '$DEMO_TENANT'" >/dev/null
sleep 0.5
note "$(printf '%-36s' "/ after one flag's row (raw SQL)") $(once "http://$ADDR/")"
"${PSQL[@]}" -c "UPDATE tenants SET tags = tags || '{bench}' WHERE id = '$DEMO_TENANT'" >/dev/null
sleep 0.5
note "$(printf '%-36s' "/ after a tenant's attributes") $(once "http://$ADDR/")"
note "$(printf '%-36s' "/ again") $(once "http://$ADDR/")"

step "the flag editor's data (/rpc/flag_editor: every live tenant and the flag's rows, as a one-flag v2 snapshot)"
E=(-X POST -H "Origin: http://$ADDR" -H 'Accept: application/json' --data-urlencode "key=$FLAG_KEY")
note "raw:  $(time_page "http://$ADDR/rpc/flag_editor" "${E[@]}")"
note "gzip: $(time_page "http://$ADDR/rpc/flag_editor" "${E[@]}" -H 'Accept-Encoding: gzip')"
rm -f "$JAR"
