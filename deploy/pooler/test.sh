#!/usr/bin/env bash
# Runs the isolation suites with every connection of the services under
# test going through PgBouncer in transaction mode (deploy/pooler/up.sh),
# while the harness's fixtures and assertions still use the server
# directly; then shows that the services' transactions did pass through it.
#
#   deploy/pooler/test.sh                    # isolation_api, isolation_db, isolation_random
#   deploy/pooler/test.sh --test metrics     # other cargo test arguments instead
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"
cd "$REPO_ROOT"

POOLER_PORT="${POOLER_PORT:-6432}"
bash deploy/pooler/up.sh

pooler_stat() {
  # Transactions PgBouncer has carried for the service roles' databases.
  PGPASSWORD="$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)" psql -X -q -A -t -h 127.0.0.1 -p "$POOLER_PORT" \
    -U ninaivalaigal_owner -d pgbouncer -c 'SHOW TOTALS' | awk -F'|' '$1 == "total_xact_count" { print $2 }'
}

before="$(pooler_stat)"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--test isolation_api --test isolation_db --test isolation_random)
say "cargo test -p ninaivalaigal-tests ${args[*]} (services through 127.0.0.1:$POOLER_PORT)"
NINAIVALAIGAL_TEST_SERVICE_DB_PORT="$POOLER_PORT" cargo test -p ninaivalaigal-tests "${args[@]}"
after="$(pooler_stat)"
carried=$((after - before))
say "PgBouncer carried $carried transactions of the services under test"
if [ "$carried" -le 0 ]; then
  echo "no transaction went through the pooler: the services connected elsewhere" >&2
  exit 1
fi
