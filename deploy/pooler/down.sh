#!/usr/bin/env bash
# Stops the PgBouncer that deploy/pooler/up.sh started.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"

. "$REPO_ROOT/deploy/pooler/run-dir.sh"
pid_file="$POOLER_RUN/pgbouncer.pid"
[ -f "$pid_file" ] || exit 0
pid=$(cat "$pid_file")
if kill -0 "$pid" 2>/dev/null; then
  say "stopping PgBouncer (pid $pid)"
  kill -INT "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
fi
rm -f "$pid_file"
