# Shared by the local scripts: where state lives and how services are found.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${NINAIVALAIGAL_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/ninaivalaigal}"
RUN_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/logs"
BIN_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"

AUTH_ADDR="${NINAIVALAIGAL_AUTH_LISTEN_ADDR:-127.0.0.1:13371}"
MEMORY_ADDR="${NINAIVALAIGAL_MEMORY_LISTEN_ADDR:-127.0.0.1:13370}"
AUTH_URL="http://$AUTH_ADDR"
MEMORY_URL="http://$MEMORY_ADDR"

DB_ENV="$STATE_DIR/db.env"

say() { echo "==> $*"; }

# One value of db.env, read without sourcing it: the scripts never export
# the database passwords, so each process is handed only its own.
db_env_value() {
  [ -f "$DB_ENV" ] || return 0
  sed -n "s/^$1=//p" "$DB_ENV" | tail -n 1
}

# The pid of a running service started by up.sh, or nothing.
service_pid() {
  local pid_file="$RUN_DIR/$1.pid" pid
  [ -f "$pid_file" ] || return 0
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

# Sends SIGTERM and waits for a graceful stop (SIGKILL after 20 s).
stop_service() {
  local name=$1 pid
  pid=$(service_pid "$name")
  if [ -z "$pid" ]; then
    rm -f "$RUN_DIR/$name.pid"
    return
  fi
  say "stopping $name (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name did not stop within 20 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/$name.pid"
}
