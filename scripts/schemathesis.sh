#!/usr/bin/env bash
# scripts/schemathesis.sh — Schemathesis against /api/openapi.json of a Tenantry started here on a
# database of its own: every operation, generated valid and invalid inputs, with valid tokens
# (an admin token for the admin API, a server token for evaluation, the SDK snapshot and
# activity). Fails on any 5xx, undocumented status code, wrong content type or response that does
# not match its documented schema.
#
#   scripts/schemathesis.sh                      # short mode (scripts/test): 10 examples per operation
#   ST_EXAMPLES=100 scripts/schemathesis.sh      # full mode (docs/RELIABILITY.md)
#
# The server binary is $ST_BIN (default target/debug/tenantry; scripts/test builds it).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EXAMPLES=${ST_EXAMPLES:-10}
ADDR=${ST_ADDR:-127.0.0.1:3420}
PORT=${TENANTRY_TEST_PG_PORT:-15430}
BIN=${ST_BIN:-$ROOT/target/debug/tenantry}
cleanup_on_exit
ensure_postgres
ensure_schemathesis
[ -x "$BIN" ] || die "$BIN is missing: build first (cargo build -p server)"

pg_start pg-test "$PORT"
create_db "$PG_URL_BASE" tenantry_schemathesis fresh
export DATABASE_URL="$PG_URL_BASE/tenantry_schemathesis"
"$BIN" migrate >/dev/null
"$BIN" seed-demo --tenants 40 >/dev/null
# Token ids far above anything generated, so revoking "token 1…N" does not pull the run's own
# tokens from under it.
psql "$DATABASE_URL" -qAt -c "SELECT setval('api_tokens_id_seq', 1000000000)" >/dev/null
ADMIN=$(random_secret rg_admin_)
SERVER=$(random_secret rg_server_)
"$BIN" token create --scope admin --name schemathesis-admin --value "$ADMIN" >/dev/null
"$BIN" token create --scope server --name schemathesis-server --value "$SERVER" >/dev/null

export LEPTOS_OUTPUT_NAME=tenantry LEPTOS_SITE_ROOT="$ROOT/target/site" LEPTOS_SITE_PKG_DIR=pkg
RUST_LOG=warn "$BIN" serve --no-migrate --addr "$ADDR" >"$DATA/schemathesis-server.log" 2>&1 &
SERVER_PID=$!
wait_http "http://$ADDR/api/health" 60 || die "server not healthy"

OUT=$(mktemp -d)
run() {
    local name=$1 token=$2; shift 2
    step "schemathesis ($name, $EXAMPLES examples per operation)"
    schemathesis run "http://$ADDR/api/openapi.json" -H "Authorization: Bearer $token" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --phases examples,coverage,fuzzing -n "$EXAMPLES" --seed 20261125 --request-timeout 10 \
        --no-color --output-truncate false --warnings off --generation-database none "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    grep -E "generated|failures|passed|Undocumented|Server error|Response violates" "$OUT/$name.txt" | tail -n 6
    if [ "$rc" != 0 ]; then
        sed -n '/FAILURES/,/SUMMARY/p' "$OUT/$name.txt" | head -n 80
        return 1
    fi
}
ok=1
# The SSE stream never ends: it is exercised by the HTTP tests instead.
run admin "$ADMIN" --exclude-path-regex '^/api/(activity|client/stream)$' || ok=0
run server "$SERVER" --include-path-regex '^/(api/features|api/client/snapshot|api/activity|ofrep/.*)$' || ok=0
total=$(grep -ho '[0-9]* generated' "$OUT"/*.txt | awk '{s += $1} END {print s + 0}')
echo "SCHEMATHESIS {\"examples_per_operation\":$EXAMPLES,\"cases\":$total,\"ok\":$ok}"
rm -rf "$OUT"
[ "$ok" = 1 ] || die "schemathesis found failures"
