#!/usr/bin/env bash
# Stops the pair that deploy/citus/up.sh started and the three Citus nodes.
# Data stays; deploy/citus/up.sh starts it all again.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

stop_service memory-service
stop_service auth-service
for port in "${NODE_PORTS[@]}"; do
  dir=$(node_dir "$port")
  if [ -f "$dir/postmaster.pid" ]; then
    say "stopping node $port"
    as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
  fi
done
