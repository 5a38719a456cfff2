# Shared helpers for scripts/run and scripts/test. Source it; do not run it.
# Every step prints one line, and slow steps print how long they took.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CARGO_LEPTOS_VERSION=0.3.10
BINARYEN_VERSION=132
TOOLS="$ROOT/.data/tools"
export PATH="$HOME/.cargo/bin:$TOOLS/node_modules/.bin:$PATH"
# Unix-socket-free, loopback-only private Postgres clusters live here (see pg_start).
DATA="$ROOT/.data"

_t0=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

# timed "label" cmd args… — runs a command and reports its wall time.
timed() {
    local label=$1; shift
    local t=$(date +%s)
    step "$label"
    "$@"
    note "done in $(( $(date +%s) - t ))s"
}

elapsed() { echo "$(( $(date +%s) - _t0 ))s"; }

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        step "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    step "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    echo "$d"
}

# The wasm-bindgen version Cargo.lock resolved: the CLI must be exactly this version.
locked_wasm_bindgen() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

# check_disk GB — say how much room the build has, and warn (not fail: the estimate is a
# measurement, not a law) when there is less than it needs. A fresh build of everything
# scripts/test compiles took 4.1 GB at its peak (target/, .data/, fuzz/target/; CARGO_INCREMENTAL=0).
check_disk() {
    local need_gb=$1 free_kb
    free_kb=$(df -Pk "$ROOT" | awk 'NR == 2 { print $4 }')
    note "free disk at $ROOT: $(( free_kb / 1024 / 1024 )) GB (a fresh build needs about $need_gb GB)"
    if [ "$free_kb" -lt $(( need_gb * 1024 * 1024 )) ]; then
        printf '    WARNING: less than %s GB free — the build may fail with "No space left on device".\n' "$need_gb" >&2
        printf '    Old build artifacts can go: cargo clean (or rm -rf target/debug/incremental).\n' >&2
    fi
}

ensure_rust() {
    command -v cargo >/dev/null || die "cargo is not installed (Rust toolchain required)"
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        timed "rustup target add wasm32-unknown-unknown" rustup target add wasm32-unknown-unknown
    fi
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
}

ensure_cargo_leptos() {
    if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
        timed "cargo install cargo-leptos $CARGO_LEPTOS_VERSION (once; ~30 min)" \
            cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
    fi
}

ensure_wasm_bindgen() {
    local want
    want=$(locked_wasm_bindgen)
    [ -n "$want" ] || die "could not read the wasm-bindgen version from Cargo.lock"
    if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$\| $want "; then
        # --locked fails: one locked dependency of the CLI is not on the registry any more.
        timed "cargo install wasm-bindgen-cli $want (once; ~3 min)" \
            cargo install wasm-bindgen-cli --version "$want" --force
    fi
}

ensure_node() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        apt_install nodejs npm
    fi
}

# wasm-opt for release builds: binaryen from npm (Debian's binaryen 108 breaks the wasm).
ensure_wasm_opt() {
    ensure_node
    if ! "$TOOLS/node_modules/.bin/wasm-opt" --version 2>/dev/null | grep -q "version $BINARYEN_VERSION"; then
        mkdir -p "$TOOLS"
        timed "npm install binaryen@$BINARYEN_VERSION (wasm-opt)" \
            npm install --prefix "$TOOLS" --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION"
    fi
}

ensure_postgres() {
    if [ -z "$(pg_bindir)" ] || [ ! -x "$(pg_bindir)/initdb" ]; then
        apt_install postgresql postgresql-contrib
    fi
    command -v psql >/dev/null || apt_install postgresql-client
}

# Debian's prometheus package starts a service listening on every interface. While it installs, a
# policy-rc.d keeps every service from starting (removed by `cleanup` too, so a failed apt-get
# does not leave the machine unable to start services); afterwards the service the install
# enabled is disabled — only when this script installed the package, and without stopping or
# killing anything on the host. Tests run their own Prometheus on 127.0.0.1 and stop it by PID.
POLICY_RC=${POLICY_RC:-/usr/sbin/policy-rc.d}
POLICY_RC_CREATED=""
have() { command -v "$1" >/dev/null; }
# install_without_service PKG — installs a Debian package whose service must not start here (it
# would listen on all interfaces with the packaged configuration): policy-rc.d refuses the start
# during the install, and the unit is disabled afterwards.
install_without_service() {
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
        chmod +x "$POLICY_RC"
        POLICY_RC_CREATED=$POLICY_RC
    fi
    apt_install --no-install-recommends "$1"
    remove_policy_rc
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable "$1" >/dev/null 2>&1 || true
    fi
}
ensure_prometheus() {
    have prometheus && have promtool && return
    install_without_service prometheus
}
# prometheus_start NAME PORT TARGET… — a private Prometheus on 127.0.0.1:PORT (data in
# $DATA/NAME), scraping each TARGET (host:port) every 5 s with Tenantry's rule file; its pid joins
# OTHER_PIDS, so `cleanup` stops it. Prints its URL once it answers.
prometheus_start() {
    local name=$1 port=$2 dir="$DATA/$1" targets="" t
    shift 2
    for t in "$@"; do targets+="${targets:+, }'$t'"; done
    mkdir -p "$dir/data"
    cat >"$dir/prometheus.yml" <<YML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files: ['$ROOT/deploy/prometheus/rules.yml']
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: [$targets]
YML
    prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$port" \
        >"$dir/prometheus.log" 2>&1 &
    OTHER_PIDS+=($!)
    wait_http "http://127.0.0.1:$port/-/ready" 30 || die "Prometheus did not start (see $dir/prometheus.log)"
}
# bench_database BIN CLUSTER PORT NAME TENANTS — for the benchmarks: a fresh database NAME on the
# private Postgres CLUSTER (127.0.0.1:PORT), migrated, with TENANTS demo tenants. Exports
# DATABASE_URL and sets PSQL (an array: psql on it, quiet, stopping at the first error).
bench_database() {
    local bin=$1 cluster=$2 port=$3 name=$4 tenants=$5
    pg_start "$cluster" "$port"
    create_db "$PG_URL_BASE" "$name" fresh
    export DATABASE_URL="$PG_URL_BASE/$name"
    PSQL=(psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1)
    "$bin" migrate >/dev/null
    timed "seed $tenants tenants" "$bin" seed-demo --tenants "$tenants"
}
# bench_flags_at_half BIN N — for the benchmarks over $DATABASE_URL: N flags in all (the seed's
# and N-1 more, each created by a raw-SQL global row), each taken to 50% with one pilot through
# the write path (past the plan's gates: a benchmark setup, audited). Leaves the keys in KEYS.
bench_flags_at_half() {
    local bin=$1 n=$2 key
    psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 -c "INSERT INTO feature_flags (key, tenant_id, enabled)
        SELECT 'bench_' || lpad(i::text, 2, '0'), NULL, false FROM generate_series(1, $((n - 1))) AS i"
    mapfile -t KEYS < <(psql "$DATABASE_URL" -qAtX -v ON_ERROR_STOP=1 -c "SELECT key FROM flags ORDER BY key")
    for key in "${KEYS[@]}"; do
        "$bin" enable --flag "$key" --tenant "$DEMO_TENANT" --override "bench setup" >/dev/null
        "$bin" advance --flag "$key" --override "bench setup" >/dev/null
        "$bin" advance --flag "$key" --override "bench setup" >/dev/null
    done
}
# HAProxy for bench/multi.sh.
ensure_haproxy() {
    have haproxy && return
    install_without_service haproxy
}
remove_policy_rc() {
    if [ -n "$POLICY_RC_CREATED" ]; then
        rm -f "$POLICY_RC_CREATED"
        POLICY_RC_CREATED=""
    fi
}

# cargo-fuzz, pinned. The fuzz build runs on the stable toolchain with RUSTC_BOOTSTRAP=1 (for the
# -Z flags cargo-fuzz passes) and without a sanitizer: `flags` has no unsafe code, panics are what
# the targets look for.
CARGO_FUZZ_VERSION=0.13.2
ensure_cargo_fuzz() {
    if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
        timed "cargo install cargo-fuzz $CARGO_FUZZ_VERSION (once; ~2 min)" \
            cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
    fi
}

# Schemathesis (PyPI), pinned, in a virtualenv under .data/tools.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
    local venv="$TOOLS/st-venv"
    if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        command -v python3 >/dev/null || apt_install python3 python3-venv
        python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
        timed "pip install schemathesis==$SCHEMATHESIS_VERSION" \
            "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    export PATH="$venv/bin:$PATH"
}

ensure_chromium() {
    command -v chromium >/dev/null || apt_install chromium
}

ensure_e2e_deps() {
    ensure_node
    local stamp="$ROOT/end2end/node_modules/.tenantry-stamp"
    if [ ! -f "$stamp" ] || [ "$ROOT/end2end/package-lock.json" -nt "$stamp" ]; then
        timed "npm ci (end2end)" npm ci --prefix "$ROOT/end2end" --no-audit --no-fund --silent
        touch "$stamp"
    fi
}

# pg_start NAME PORT — starts (or reuses) a private cluster and exports PG_URL_BASE.
# The cluster listens on 127.0.0.1 only, without Unix sockets, with password (scram-sha-256) auth.
# Its data lives in .data/NAME when the postgres user can reach the checkout, otherwise in a
# folder under /var/tmp that .data/NAME points to.
PG_STARTED=()
pg_start() {
    local name=$1 port=$2 bindir dir password
    bindir=$(pg_bindir)
    mkdir -p "$DATA"
    password=$(pg_password)
    dir="$DATA/$name"
    if [ ! -e "$dir" ]; then
        if runuser -u postgres -- test -x "$DATA" 2>/dev/null; then
            mkdir -p "$dir"
        else
            local alt
            alt=$(mktemp -d "/var/tmp/tenantry-$name.XXXXXX")
            ln -s "$alt" "$dir"
        fi
    fi
    dir=$(readlink -f "$dir")
    chown postgres:postgres "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
        # Password authentication (scram-sha-256) over TCP, the only way in (no Unix socket):
        # another local user cannot connect as the superuser.
        local pwfile
        pwfile=$(runuser -u postgres -- mktemp)
        printf '%s\n' "$password" >"$pwfile"
        _initdb() {
            runuser -u postgres -- "$bindir/initdb" -D "$dir" -U postgres -E UTF8 --no-locale \
                --auth-host=scram-sha-256 --auth-local=peer --pwfile="$pwfile" >/dev/null
        }
        timed "initdb private Postgres ($name)" _initdb
        rm -f "$pwfile"
    fi
    if runuser -u postgres -- "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1 \
        && [ "$(sed -n 4p "$dir/postmaster.pid" 2>/dev/null)" != "$port" ]; then
        step "Postgres ($name) runs on port $(sed -n 4p "$dir/postmaster.pid"), not $port: restarting it"
        runuser -u postgres -- "$bindir/pg_ctl" -D "$dir" -w -m fast stop >/dev/null
    fi
    if runuser -u postgres -- "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        note "Postgres ($name) already running on 127.0.0.1:$port"
    else
        step "start private Postgres ($name) on 127.0.0.1:$port"
        runuser -u postgres -- "$bindir/pg_ctl" -D "$dir" -w -t 60 -l "$dir/server.log" \
            -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c shared_preload_libraries=pg_stat_statements -c fsync=off" \
            start >/dev/null || { tail -n 20 "$dir/server.log" >&2; die "Postgres ($name) did not start"; }
        PG_STARTED+=("$dir")
    fi
    # The password travels in the environment (PGPASSWORD, read by psql, pg_dump and sqlx), never
    # in a URL on a command line, where every local user could read it in the process list.
    PG_URL_BASE="postgres://postgres@127.0.0.1:$port"
    export PG_URL_BASE PGPASSWORD="$password"
    pg_require_password "$dir" "$port" "$password"
}

# The private clusters' superuser password: generated once, kept in .data/pg-password (0600).
pg_password() {
    local file="$DATA/pg-password"
    if [ ! -s "$file" ]; then
        (umask 077; random_secret pg- >"$file")
    fi
    chmod 600 "$file"
    cat "$file"
}

# A cluster made by an older version of these scripts trusted every local connection: give the
# superuser the password and require it (scram-sha-256) from now on.
pg_require_password() {
    local dir=$1 port=$2 password=$3 hba
    hba="$dir/pg_hba.conf"
    if grep -Eq '^[[:space:]]*host.*[[:space:]]trust[[:space:]]*$' "$hba"; then
        step "private Postgres ($(basename "$dir")): switching from trust to password authentication"
        # Through stdin (a bash builtin writes it): not on a command line.
        printf "SET password_encryption = 'scram-sha-256';\nALTER USER postgres PASSWORD '%s';\n" "$password" \
            | PGPASSWORD= psql "postgres://postgres@127.0.0.1:$port/postgres" -qAt -v ON_ERROR_STOP=1 >/dev/null
        sed -i -E 's/^([[:space:]]*host.*[[:space:]])trust[[:space:]]*$/\1scram-sha-256/' "$hba"
        runuser -u postgres -- "$(pg_bindir)/pg_ctl" -D "$dir" reload >/dev/null
    fi
}

# The server a script started (its pid), stopped by `cleanup`; more processes in OTHER_PIDS.
SERVER_PID=""
OTHER_PIDS=()

# Stops the server in $SERVER_PID and every Postgres this script started.
cleanup() {
    trap - EXIT INT TERM
    remove_policy_rc
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    local pid
    for pid in "${OTHER_PIDS[@]:-}"; do
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pg_stop_started
}

# Runs `cleanup` when the script ends, Ctrl-C included.
cleanup_on_exit() {
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

pg_stop_started() {
    local bindir dir
    bindir=$(pg_bindir)
    for dir in "${PG_STARTED[@]:-}"; do
        [ -n "$dir" ] || continue
        runuser -u postgres -- "$bindir/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    done
    PG_STARTED=()
}

# pg_ctl_cluster NAME start|stop — used by the outage checks.
pg_ctl_cluster() {
    local dir bindir port
    dir=$(readlink -f "$DATA/$1"); bindir=$(pg_bindir); port=$3
    if [ "$2" = stop ]; then
        runuser -u postgres -- "$bindir/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    else
        runuser -u postgres -- "$bindir/pg_ctl" -D "$dir" -w -t 60 -l "$dir/server.log" \
            -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c shared_preload_libraries=pg_stat_statements -c fsync=off" \
            start >/dev/null
    fi
}

# create_db URL_BASE NAME [fresh] — creates the database (dropping it first when "fresh").
create_db() {
    local base=$1 name=$2 fresh=${3:-}
    if [ "$fresh" = fresh ]; then
        psql "$base/postgres" -qAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
    fi
    if [ "$(psql "$base/postgres" -qAt -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]; then
        psql "$base/postgres" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$name\"" >/dev/null
    fi
}

# wait_http URL SECONDS [STATUS] — polls until the URL answers (with STATUS, default 200).
wait_http() {
    local url=$1 secs=$2 want=${3:-200} i code
    for ((i = 0; i < secs * 4; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)
        [ "$code" = "$want" ] && return 0
        sleep 0.25
    done
    return 1
}

# random_secret PREFIX — a token secret with 256 random bits.
# ofrep_lua FILE SECRET — a wrk script posting one OFREP evaluation for the demo tenant.
ofrep_lua() {
    cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '{"context":{"targetingKey":"$DEMO_TENANT"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $2"
LUA
}

random_secret() {
    printf '%s%s' "$1" "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
}

# wants_demo OWN_DB [ARGS…] — prints 1 when scripts/run should load demo data, tokens and users:
# into the database it created itself, or when asked with --demo. A database given through
# DATABASE_URL may hold real users and tokens: it is never seeded (nor its passwords replaced)
# unasked. Dies on an unknown argument.
wants_demo() {
    local own=$1 want=""
    shift
    [ -n "$own" ] && want=1
    local arg
    for arg in "$@"; do
        case $arg in
            --demo) want=1 ;;
            *) die "unknown argument $arg (usage: scripts/run [--demo])" ;;
        esac
    done
    echo "$want"
}

# demo_tokens BIN — registers the demo tokens (kept in .data/demo-tokens.env) and exports them.
DEMO_TENANT=acme-logistics
demo_tokens() {
    local bin=$1 file="$DATA/demo-tokens.env"
    if [ ! -f "$file" ]; then
        umask 077
        {
            echo "SAAS_ADMIN_TOKEN=$(random_secret rg_admin_)"
            echo "SERVER_TOKEN=$(random_secret rg_server_)"
            echo "TOKEN=$(random_secret rg_tenant_)"
        } >"$file"
    fi
    # shellcheck disable=SC1090
    source "$file"
    export SAAS_ADMIN_TOKEN SERVER_TOKEN TOKEN
    "$bin" token create --scope admin --name demo-admin --value "$SAAS_ADMIN_TOKEN" --if-missing >/dev/null
    "$bin" token create --scope server --name demo-server --value "$SERVER_TOKEN" --if-missing >/dev/null
    "$bin" token create --scope tenant --tenant "$DEMO_TENANT" --name demo-tenant --value "$TOKEN" --if-missing >/dev/null
}

# demo_users BIN — one demo user per role, passwords kept in .data/demo-users.env.
demo_users() {
    local bin=$1 file="$DATA/demo-users.env" role
    if [ ! -f "$file" ]; then
        umask 077
        for role in admin product_owner qa dba viewer; do
            echo "DEMO_PASSWORD_${role^^}=$(head -c 12 /dev/urandom | base64 | tr -d '+/=')"
        done >"$file"
    fi
    # shellcheck disable=SC1090
    source "$file"
    for role in admin product_owner qa dba viewer; do
        local var="DEMO_PASSWORD_${role^^}"
        TENANTRY_PASSWORD="${!var}" "$bin" user add "${role//_/-}" --role "$role" --replace >/dev/null
    done
}
