#!/usr/bin/env bash
# Makes a Ninaivalaigal database on the Citus cluster that cluster.sh runs:
#   deploy/citus/database.sh [NAME]          (default: ninaivalaigal)
# Creates NAME on every node with the citus extension, registers the
# coordinator and the workers in it, applies the migrations through the
# normal migrate binary (as the owner, on the coordinator), then distributes
# the tables (distribute.sql) and checks that every shard on every worker
# has row-level security forced and the policies of its table. A database
# that is already distributed is only migrated (Citus carries the DDL of a
# new migration to the shards).
#
# Settings: CITUS_SHARD_COUNT (default 8: shards per distributed table; see
# docs/scaling.md), MIGRATE_BIN (default target/release/ninaivalaigal-migrate).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DATABASE="${1:-ninaivalaigal}"
SHARD_COUNT="${CITUS_SHARD_COUNT:-8}"
MIGRATE_BIN="${MIGRATE_BIN:-$BIN_DIR/ninaivalaigal-migrate}"

log() { echo "citus-db: $*" >&2; }

create_everywhere() {
  local port
  for port in "${NODE_PORTS[@]}"; do
    node_psql "$port" postgres <<SQL
SET client_min_messages = warning;
SELECT 'CREATE DATABASE "$DATABASE" OWNER ninaivalaigal_owner'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DATABASE') \gexec
SQL
    node_psql "$port" "$DATABASE" -c 'SET client_min_messages = warning' \
      -c 'CREATE EXTENSION IF NOT EXISTS citus'
  done
}

register_nodes() {
  local port
  {
    echo "SET client_min_messages = warning;"
    echo "SELECT citus_set_coordinator_host('127.0.0.1', $COORDINATOR_PORT);"
    for port in "${WORKER_PORTS[@]}"; do
      echo "SELECT citus_add_node('127.0.0.1', $port) WHERE NOT EXISTS (SELECT FROM pg_dist_node WHERE nodeport = $port);"
    done
  } | node_psql "$COORDINATOR_PORT" "$DATABASE" >/dev/null
}

owner_url() {
  echo "postgres://ninaivalaigal_owner:$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)@127.0.0.1:$COORDINATOR_PORT/$DATABASE"
}

migrate() {
  log "migrating $DATABASE"
  # In a subshell: the URL (with its password) stays out of ps's view.
  (
    export NINAIVALAIGAL_MIGRATION_DATABASE_URL
    NINAIVALAIGAL_MIGRATION_DATABASE_URL=$(owner_url)
    "$MIGRATE_BIN"
  )
}

distribute() {
  if [ "$(node_psql "$COORDINATOR_PORT" "$DATABASE" -Atc "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'memories'::regclass")" != 0 ]; then
    return
  fi
  log "distributing $DATABASE ($SHARD_COUNT shards per table)"
  # As the owner: Citus distributes only a table's owner's tables, and the
  # shards on the workers then belong to that role too.
  PGPASSWORD=$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD) "$PG_BIN/psql" -X -q \
    -h 127.0.0.1 -p "$COORDINATOR_PORT" -U ninaivalaigal_owner -d "$DATABASE" \
    -v shard_count="$SHARD_COUNT" -f "$CITUS_ROOT/distribute.sql" >/dev/null
}

# Row-level security on the workers is what keeps users apart there: every
# shard of a user-data table must force it and carry its table's policies.
check_worker_policies() {
  local port bad
  for port in "${WORKER_PORTS[@]}"; do
    bad=$(node_psql "$port" "$DATABASE" -At <<'SQL'
SET citus.override_table_visibility = off;
SELECT c.relname
  FROM pg_class c
 WHERE c.relkind = 'r'
   AND c.relname ~ '^(recording_contexts|memories|memory_terms|memory_usage|users)_[0-9]+$'
   AND (NOT c.relrowsecurity OR NOT c.relforcerowsecurity
        OR NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid));
SQL
    )
    if [ -n "$bad" ]; then
      log "shards on worker $port without forced row-level security or policies: $bad"
      exit 1
    fi
  done
}

main() {
  create_everywhere
  register_nodes
  migrate
  distribute
  check_worker_policies
  log "$DATABASE is ready on the coordinator 127.0.0.1:$COORDINATOR_PORT"
}

main "$@"
