#!/usr/bin/env bash
# pgbench against the local PostgreSQL directly and through PgBouncer
# (deploy/pooler/up.sh), in the same run, on a scratch database of its own
# (ninaivalaigal_pgbench, owned by ninaivalaigal_owner): figures, not a test.
#
# Two workloads, each direct then pooled, BENCH_SECONDS (15) each:
# - tpcb: pgbench's TPC-B-like transaction, BENCH_CLIENTS (16) clients
#   holding their connections, named prepared statements (-M prepared, as
#   diesel-async sends them);
# - connect: a new connection for every transaction (-C), select-only: what
#   a pooler saves when clients (or many service replicas) open connections
#   often.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"

POOLER_PORT="${POOLER_PORT:-6432}"
SECONDS_EACH="${BENCH_SECONDS:-15}"
CLIENTS="${BENCH_CLIENTS:-16}"
SCALE="${BENCH_SCALE:-10}"
DB=ninaivalaigal_pgbench

bash "$REPO_ROOT/deploy/pooler/up.sh"
PG_PORT="$(db_env_value NINAIVALAIGAL_PG_PORT)"
PGPASSWORD="$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)"
export PGPASSWORD PGUSER=ninaivalaigal_owner PGHOST=127.0.0.1

echo "SELECT 'CREATE DATABASE $DB' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB') \\gexec" |
  psql -X -q -p "$PG_PORT" -d ninaivalaigal
say "pgbench -i -s $SCALE ($DB, direct)"
pgbench -i -q -s "$SCALE" -p "$PG_PORT" "$DB" 2>&1 | tail -n 1

run() {
  local port=$1
  shift
  pgbench -n -T "$SECONDS_EACH" -c "$CLIENTS" -j 2 -p "$port" "$@" "$DB" 2>&1
}


printf '\n| workload | path | tps | mean latency (ms) |\n| --- | --- | --- | --- |\n'
for workload in tpcb connect; do
  case $workload in
    tpcb) flags=(-M prepared) ;;
    connect) flags=(-C -S) ;;
  esac
  for path in direct pooled; do
    port=$PG_PORT
    [ "$path" = pooled ] && port=$POOLER_PORT
    out=$(run "$port" "${flags[@]}")
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -n 1)
    latency=$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' <<<"$out" | head -n 1)
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
    if [ -z "$tps" ] || [ "${failed:-0}" != 0 ]; then
      echo "pgbench $workload $path failed:" >&2
      echo "$out" >&2
      exit 1
    fi
    printf '| %s (%s clients, %s s) | %s | %.0f | %s |\n' "$workload" "$CLIENTS" "$SECONDS_EACH" "$path" "$tps" "$latency"
  done
done
