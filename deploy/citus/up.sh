#!/usr/bin/env bash
# Brings Ninaivalaigal up on a Citus cluster on this machine and shows it
# working: builds and installs Citus from its source if it is missing
# (build.sh; Citus is AGPL-3.0 and never enters this repository), starts a
# coordinator and two workers (cluster.sh, ports 5440-5442), makes the
# `ninaivalaigal` database on them, migrated with the normal migrate binary
# and distributed by owner (database.sh, distribute.sql), then starts the
# auth-service and the memory-service against the coordinator
# (127.0.0.1:13381 and :13380, beside any pair deploy/local/up.sh runs) and
# runs the CLI smoke test against them. Running it again restarts the
# services and keeps the data; deploy/citus/down.sh stops everything.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mkdir -p "$RUN_DIR" "$LOG_DIR"

say "Citus"
bash "$CITUS_ROOT/build.sh"
bash "$CITUS_ROOT/cluster.sh"
chmod 700 "$STATE_DIR"

if [ ! -s "$KEY_FILE" ]; then
  say "generating the Ed25519 token-signing key ($KEY_FILE)"
  (umask 077 && openssl genpkey -algorithm ed25519 -out "$KEY_FILE")
fi

say "building (cargo build --release)"
(cd "$REPO_ROOT" && cargo build --release --locked --features db \
  --bin ninaivalaigal-migrate --bin ninaivalaigal-health \
  --bin auth-service --bin memory-service --bin eM)

say "database on the cluster"
bash "$CITUS_ROOT/database.sh" ninaivalaigal

stop_service memory-service
stop_service auth-service
start_auth_service
start_memory_service
wait_until_serving

bash "$REPO_ROOT/deploy/local/smoke.sh"

cat <<MSG

Ninaivalaigal is up on Citus.
  memory-service  $MEMORY_URL
  auth-service    $AUTH_URL
  coordinator     127.0.0.1:$COORDINATOR_PORT, workers ${WORKER_PORTS[*]} (data in $CITUS_DATA_ROOT)
  logs            $LOG_DIR
  use it with     NINAIVALAIGAL_SERVER_URL=$MEMORY_URL NINAIVALAIGAL_AUTH_URL=$AUTH_URL $BIN_DIR/eM ...
  stop it with    deploy/citus/down.sh
MSG
