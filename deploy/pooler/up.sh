#!/usr/bin/env bash
# Starts PgBouncer in transaction mode on its own port (POOLER_PORT, 6432)
# in front of the local PostgreSQL server (deploy/local/postgres.sh), for
# every database on it (including the test harness's per-test ones) and the
# three roles. Restarts it if it runs already.
#
# PgBouncer >= 1.21 is needed: diesel-async (tokio-postgres) uses named
# protocol-level prepared statements, which PgBouncer tracks per server
# connection in transaction mode only from 1.21 on (max_prepared_statements).
# Debian 12 ships 1.18, so build-pgbouncer.sh builds 1.25.2 from source.
#
#   deploy/pooler/up.sh        then   postgres://...@127.0.0.1:6432/DATABASE
#   deploy/pooler/down.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"

POOLER_PORT="${POOLER_PORT:-6432}"
POOLER_DIR="$STATE_DIR/pooler"
. "$REPO_ROOT/deploy/pooler/run-dir.sh"
PGBOUNCER="$("$REPO_ROOT/deploy/pooler/build-pgbouncer.sh")"

[ -f "$DB_ENV" ] || bash "$REPO_ROOT/deploy/local/postgres.sh"
PG_PORT="$(db_env_value NINAIVALAIGAL_PG_PORT)"

"$REPO_ROOT/deploy/pooler/down.sh" >/dev/null

# Config and passwords stay private to this user; only the log and pid
# directory belongs to the user PgBouncer runs as.
mkdir -p "$POOLER_DIR" "$POOLER_RUN"
chmod 700 "$POOLER_DIR"
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  # PgBouncer refuses to run as root: it reads its files first, then
  # becomes `postgres`.
  run_as=(-u postgres)
  chown postgres "$POOLER_RUN"
fi

# PgBouncer logs in to PostgreSQL with these passwords (SCRAM), and checks
# its clients against them.
umask 077
{
  printf '"ninaivalaigal_owner" "%s"\n' "$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)"
  printf '"ninaivalaigal_auth" "%s"\n' "$(db_env_value NINAIVALAIGAL_AUTH_DB_PASSWORD)"
  printf '"ninaivalaigal_memory" "%s"\n' "$(db_env_value NINAIVALAIGAL_MEMORY_DB_PASSWORD)"
} >"$POOLER_DIR/userlist.txt"

cat >"$POOLER_DIR/pgbouncer.ini" <<INI
[databases]
; Every database of the server, by the name the client asks for (the test
; harness makes one per test).
* = host=127.0.0.1 port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $POOLER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $POOLER_DIR/userlist.txt
; A server connection serves one transaction at a time, then goes back to
; the pool: the services' set_config(..., true) settings end with their
; transaction, so nothing of one user's request reaches the next.
pool_mode = transaction
; Named prepared statements (tokio-postgres), re-prepared per server
; connection as needed.
max_prepared_statements = 200
max_client_conn = 2000
; Server connections per database and role: test databases are many and
; small, and the server's max_connections is shared with the direct users.
default_pool_size = ${POOLER_POOL_SIZE:-10}
; Per-test databases come and go: close what they leave behind soon.
server_idle_timeout = 10
autodb_idle_timeout = 30
; The harness drops a test's database WITH (FORCE) while PgBouncer may hold
; server connections to it; those are then found closed and replaced.
server_check_delay = 0
logfile = $POOLER_RUN/pgbouncer.log
pidfile = $POOLER_RUN/pgbouncer.pid
log_connections = 0
; SHOW STATS and friends on the admin console (database pgbouncer).
stats_users = ninaivalaigal_owner
log_disconnections = 0
INI

"$PGBOUNCER" -d "${run_as[@]}" "$POOLER_DIR/pgbouncer.ini"
for _ in $(seq 1 50); do
  if PGPASSWORD="$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)" psql -X -q -h 127.0.0.1 -p "$POOLER_PORT" \
    -U ninaivalaigal_owner -d ninaivalaigal -c 'SELECT 1' >/dev/null 2>&1; then
    say "PgBouncer $("$PGBOUNCER" --version | head -n 1 | cut -d' ' -f2) in transaction mode on 127.0.0.1:$POOLER_PORT -> 127.0.0.1:$PG_PORT (log: $POOLER_RUN/pgbouncer.log)"
    exit 0
  fi
  sleep 0.2
done
echo "PgBouncer did not accept connections on 127.0.0.1:$POOLER_PORT; see $POOLER_RUN/pgbouncer.log" >&2
exit 1
