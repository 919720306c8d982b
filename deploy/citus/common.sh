# Shared by the Citus scripts: where the three nodes live and how to reach
# them. The local scripts' state (STATE_DIR, db.env, logs, pids, key) is
# moved to a directory of its own, so the Citus pair never touches the
# single-server one (or its PostgreSQL on 5432).
# shellcheck shell=bash

CITUS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Exported, so that the scripts these scripts run find the same directory.
if [ -z "${NINAIVALAIGAL_CITUS_STATE_DIR:-}" ]; then
  export NINAIVALAIGAL_CITUS_STATE_DIR="${NINAIVALAIGAL_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/ninaivalaigal}/citus"
fi
export NINAIVALAIGAL_STATE_DIR="$NINAIVALAIGAL_CITUS_STATE_DIR"
# The pair against the cluster listens beside, not instead of, the local one.
export NINAIVALAIGAL_AUTH_LISTEN_ADDR="${NINAIVALAIGAL_CITUS_AUTH_ADDR:-127.0.0.1:13381}"
export NINAIVALAIGAL_MEMORY_LISTEN_ADDR="${NINAIVALAIGAL_CITUS_MEMORY_ADDR:-127.0.0.1:13380}"
. "$CITUS_ROOT/../local/common.sh"

# Coordinator first, then the workers.
COORDINATOR_PORT="${CITUS_COORDINATOR_PORT:-5440}"
WORKER_PORTS=("${CITUS_WORKER1_PORT:-5441}" "${CITUS_WORKER2_PORT:-5442}")
NODE_PORTS=("$COORDINATOR_PORT" "${WORKER_PORTS[@]}")
PG_BIN="/usr/lib/postgresql/$(basename "$(ls -d /usr/lib/postgresql/*/ | sort -V | tail -n 1)")/bin"

# The servers refuse to run as root: as root they run as `postgres`, with
# their data in its home; otherwise as the caller, in the state directory.
if [ "$(id -u)" -eq 0 ]; then
  CITUS_DATA_ROOT="${CITUS_DATA_ROOT:-/var/lib/postgresql/ninaivalaigal-citus}"
  as_pg() { runuser -u postgres -- "$@"; }
else
  CITUS_DATA_ROOT="${CITUS_DATA_ROOT:-$NINAIVALAIGAL_STATE_DIR/nodes}"
  as_pg() { "$@"; }
fi

node_dir() { echo "$CITUS_DATA_ROOT/node-$1"; }

# psql as the superuser on one node, over the node's own socket.
node_psql() {
  local port=$1 database=$2
  shift 2
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$(node_dir "$port")" -p "$port" -d "$database" "$@"
}
