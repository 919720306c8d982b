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
KEY_FILE="$STATE_DIR/jwt-ed25519.pem"

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

# Starts a service that up.sh built, in the background, with the environment
# given as NAME=VALUE arguments on top of the caller's, and records its pid.
start_service() {
  local name=$1
  shift
  say "starting $name (log: $LOG_DIR/$name.log)"
  # Settings are exported in a subshell rather than passed to env(1), whose
  # command line (a database URL with its password) `ps` would show.
  (
    export "$@"
    exec setsid "$BIN_DIR/$name" >>"$LOG_DIR/$name.log" 2>&1 </dev/null
  ) &
  echo $! >"$RUN_DIR/$name.pid"
}

# The two services as up.sh runs them; extra NAME=VALUE settings may follow.
start_auth_service() {
  start_service auth-service \
    NINAIVALAIGAL_AUTH_LISTEN_ADDR="$AUTH_ADDR" \
    NINAIVALAIGAL_DATABASE_URL="$(db_env_value NINAIVALAIGAL_AUTH_DATABASE_URL)" \
    NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE="$KEY_FILE" "$@"
}
start_memory_service() {
  start_service memory-service \
    NINAIVALAIGAL_MEMORY_LISTEN_ADDR="$MEMORY_ADDR" \
    NINAIVALAIGAL_DATABASE_URL="$(db_env_value NINAIVALAIGAL_MEMORY_DATABASE_URL)" \
    NINAIVALAIGAL_AUTH_URL="$AUTH_URL" "$@"
}

# Waits until both services report SERVING; shows a log tail otherwise.
wait_until_serving() {
  local name url
  for name in auth-service memory-service; do
    url=$AUTH_URL
    [ "$name" = memory-service ] && url=$MEMORY_URL
    if ! "$BIN_DIR/ninaivalaigal-health" "$url" --wait-seconds 30; then
      echo "$name did not become healthy; last lines of its log:" >&2
      tail -n 20 "$LOG_DIR/$name.log" >&2
      return 1
    fi
  done
}
