#!/usr/bin/env bash
# Remember and Recall, one server against Citus, in the same run on this
# machine (docs/scaling.md, "Citus"): not a test, figures.
#
# Both databases live on the nodes cluster.sh starts, with the same server
# settings:
#   single  `ninaivalaigal_single` on the coordinator, without the citus
#           extension: plain PostgreSQL (Citus's library is loaded but does
#           nothing in a database without the extension);
#   citus   `ninaivalaigal` distributed over the two workers (database.sh).
# For each, the pair is started against it (release builds, on the ports of
# deploy/citus/up.sh) and the load generator of deploy/local/overload.sh
# (tests/examples/overload.rs) runs its ramp only: closed-loop clients on a
# mixed load (90% Recall of the newest 20, 10% Remember) until throughput
# stops growing, with Recall and Remember reported each on its own. Then
# EXPLAIN ANALYZE of Recall's and Remember's statements, as the
# memory-service's role with a user set, shows where the time goes
# (planning and routing on the coordinator, the round trip to a worker, the
# work on the worker). Arguments go to the load generator. Reports:
# target/citus-figures/{single,citus}.json and explain.txt.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OUT="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/citus-figures"
SINGLE_DB=ninaivalaigal_single
mkdir -p "$OUT" "$RUN_DIR" "$LOG_DIR"

bash "$CITUS_ROOT/build.sh"
bash "$CITUS_ROOT/cluster.sh"
chmod 700 "$STATE_DIR"
if [ ! -s "$KEY_FILE" ]; then
  (umask 077 && openssl genpkey -algorithm ed25519 -out "$KEY_FILE")
fi

# FIGURES_PROFILE=debug measures debug builds (quicker to build, slower
# services: only for trying the script out).
PROFILE="${FIGURES_PROFILE:-release}"
PROFILE_FLAG=(--release)
if [ "$PROFILE" = debug ]; then
  PROFILE_FLAG=()
fi
BIN_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/$PROFILE"
say "building ($PROFILE: the pair, the migrate binary, the load generator)"
(cd "$REPO_ROOT" && cargo build "${PROFILE_FLAG[@]}" --locked --features db \
  --bin ninaivalaigal-migrate --bin ninaivalaigal-health \
  --bin auth-service --bin memory-service &&
  cargo build "${PROFILE_FLAG[@]}" --locked -p ninaivalaigal-tests --example overload)

say "databases: $SINGLE_DB (one server) and ninaivalaigal (Citus)"
MIGRATE_BIN="$BIN_DIR/ninaivalaigal-migrate" bash "$CITUS_ROOT/database.sh" ninaivalaigal
node_psql "$COORDINATOR_PORT" postgres <<SQL
SET client_min_messages = warning;
SELECT 'CREATE DATABASE $SINGLE_DB OWNER ninaivalaigal_owner'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$SINGLE_DB') \gexec
SQL
(
  export NINAIVALAIGAL_MIGRATION_DATABASE_URL
  NINAIVALAIGAL_MIGRATION_DATABASE_URL="postgres://ninaivalaigal_owner:$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)@127.0.0.1:$COORDINATOR_PORT/$SINGLE_DB"
  "$BIN_DIR/ninaivalaigal-migrate"
)

url_of() { # role database
  local role=$1 database=$2 key
  key=NINAIVALAIGAL_${role^^}_DB_PASSWORD
  echo "postgres://ninaivalaigal_$role:$(db_env_value "$key")@127.0.0.1:$COORDINATOR_PORT/$database"
}

measure() { # name database [load generator arguments]
  local name=$1 database=$2
  shift 2
  say "$name: the pair against $database"
  stop_service memory-service
  stop_service auth-service
  start_service auth-service NINAIVALAIGAL_AUTH_LISTEN_ADDR="$AUTH_ADDR" \
    NINAIVALAIGAL_DATABASE_URL="$(url_of auth "$database")" \
    NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE="$KEY_FILE"
  start_service memory-service NINAIVALAIGAL_MEMORY_LISTEN_ADDR="$MEMORY_ADDR" \
    NINAIVALAIGAL_DATABASE_URL="$(url_of memory "$database")" \
    NINAIVALAIGAL_AUTH_URL="$AUTH_URL"
  wait_until_serving
  "$BIN_DIR/examples/overload" \
    --memory-url "$MEMORY_URL" --auth-url "$AUTH_URL" --run-dir "$RUN_DIR" \
    --ramp-only --max-in-flight 64 --json "$OUT/$name.json" "$@" | tee "$OUT/$name.txt"
}

say "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
measure single "$SINGLE_DB" "$@"
measure citus ninaivalaigal "$@"

bash "$CITUS_ROOT/explain.sh" "$SINGLE_DB" ninaivalaigal | tee "$OUT/explain.txt"

say "figures in $OUT; the pair is left running against the Citus database"
stop_service memory-service
stop_service auth-service
start_auth_service
start_memory_service
wait_until_serving
