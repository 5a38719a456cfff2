#!/usr/bin/env bash
# scripts/check-scripts.sh — the scripts' own rules, checked (run by scripts/test):
#  1. nothing kills or stops processes it did not start (no pkill/killall, no `systemctl stop`,
#     no `disable --now`): servers are stopped by the PID the script recorded;
#  2. a failed apt-get during the Prometheus install leaves no policy-rc.d behind;
#  3. scripts/run seeds demo data only into the database it created itself, or with --demo;
#  4. (given a port) the private Postgres refuses a connection without its password.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fail() { printf 'check-scripts: %s\n' "$*" >&2; exit 1; }

# 1.
if grep -nE '\b(pkill|killall)\b|systemctl[^#]*(stop|--now)' "$ROOT"/scripts/* "$ROOT"/bench/*.sh "$ROOT"/.ci/run \
    | grep -v 'check-scripts.sh'; then
    fail "a script stops processes by name or through systemd (stop only what it started, by PID)"
fi

# 2.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if POLICY_RC="$tmp/policy-rc.d" bash -c '
    source "$1/scripts/lib.sh"
    cleanup_on_exit
    have() { return 1; }
    apt_install() { [ -x "$POLICY_RC" ] || exit 3; return 1; }
    ensure_prometheus' _ "$ROOT" >/dev/null 2>&1; then
    fail "the simulated failed install succeeded"
fi
[ ! -e "$tmp/policy-rc.d" ] || fail "a failed apt-get left policy-rc.d behind"

# 3.
want() { bash -c 'source "$1/scripts/lib.sh"; shift; wants_demo "$@"' _ "$ROOT" "$@"; }
[ "$(want 1)" = 1 ] || fail "the private database gets no demo data"
[ -z "$(want "")" ] || fail "a DATABASE_URL database gets demo data unasked"
[ "$(want "" --demo)" = 1 ] || fail "--demo is ignored"
if want "" --bogus >/dev/null 2>&1; then fail "an unknown argument is accepted"; fi

# 4.
if [ -n "${1:-}" ]; then
    if PGPASSWORD= PGPASSFILE=/dev/null psql "postgres://postgres@127.0.0.1:$1/postgres" -qAt -c 'SELECT 1' >/dev/null 2>&1; then
        fail "the private Postgres on port $1 lets anyone in without a password"
    fi
fi
echo "check-scripts: 4 rules hold"
