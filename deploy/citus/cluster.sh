#!/usr/bin/env bash
# Starts a Citus cluster on this machine, whatever state it is in: a
# coordinator and two workers, three PostgreSQL clusters of their own on
# 127.0.0.1 (ports 5440, 5441, 5442 unless CITUS_*_PORT say otherwise; the
# local server on 5432 is never touched), each with
# shared_preload_libraries = 'citus'. Creates the project's roles on every
# node, with passwords of the cluster's own written to
# "$NINAIVALAIGAL_STATE_DIR/db.env" (the Citus state directory, see
# common.sh) in the format deploy/local/postgres.sh uses, so the services
# and the test harness read it unchanged. Running it again changes nothing.
#
# The nodes talk to each other as the role that runs a query (Citus opens
# its own connections to the workers), with the passwords from a pgpass
# file readable only by the servers' OS user. Needs the Citus extension
# installed (deploy/citus/build.sh).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

log() { echo "citus: $*" >&2; }

random_password() {
  tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true
}

load_or_create_passwords() {
  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"
  OWNER_PASSWORD="$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)"
  AUTH_PASSWORD="$(db_env_value NINAIVALAIGAL_AUTH_DB_PASSWORD)"
  MEMORY_PASSWORD="$(db_env_value NINAIVALAIGAL_MEMORY_DB_PASSWORD)"
  SUPERUSER_PASSWORD="$(db_env_value CITUS_SUPERUSER_PASSWORD)"
  OWNER_PASSWORD="${OWNER_PASSWORD:-$(random_password)}"
  AUTH_PASSWORD="${AUTH_PASSWORD:-$(random_password)}"
  MEMORY_PASSWORD="${MEMORY_PASSWORD:-$(random_password)}"
  SUPERUSER_PASSWORD="${SUPERUSER_PASSWORD:-$(random_password)}"
}

# What a node's server may use to log in to the others (and itself: a
# worker's trigger or the coordinator's own placements connect over TCP).
write_pgpass() {
  local file="$CITUS_DATA_ROOT/pgpass" tmp role_password
  tmp=$(mktemp)
  for role_password in "postgres:$SUPERUSER_PASSWORD" "ninaivalaigal_owner:$OWNER_PASSWORD" \
    "ninaivalaigal_auth:$AUTH_PASSWORD" "ninaivalaigal_memory:$MEMORY_PASSWORD"; do
    # localhost too: a node reaches itself by citus.local_hostname
    # (default localhost), e.g. for a query's intermediate results.
    echo "127.0.0.1:*:*:$role_password"
    echo "localhost:*:*:$role_password"
  done >"$tmp"
  install -m 600 "$tmp" "$file"
  rm -f "$tmp"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$file"
  return 0
}

init_node() {
  local port=$1 dir
  dir=$(node_dir "$port")
  [ -f "$dir/PG_VERSION" ] && return
  log "initdb node $port ($dir)"
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$CITUS_DATA_ROOT" "$dir"
  chmod 700 "$dir"
  as_pg "$PG_BIN/initdb" -D "$dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --no-locale -E UTF8 >/dev/null
  # Only the servers' OS user can reach the socket (it lives in the data
  # directory), so `trust` there is that user's, as with peer auth.
  cat >>"$dir/postgresql.conf" <<CONF

# deploy/citus/cluster.sh
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = 'citus'
# Citus keeps connections to the workers; every database with the extension
# has a maintenance daemon (one per test database in the test runs).
max_connections = 300
max_worker_processes = 64
# Transactions that write on more than one worker commit in two phases.
max_prepared_transactions = 200
logging_collector = off
CONF
}

start_node() {
  local port=$1 dir
  dir=$(node_dir "$port")
  if as_pg "$PG_BIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    return
  fi
  log "starting node $port"
  # PGPASSFILE: Citus's connections to the other nodes log in with it.
  as_pg env PGPASSFILE="$CITUS_DATA_ROOT/pgpass" "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" \
    -w -t 60 start >/dev/null 9>&-
}

create_roles() {
  local port=$1
  {
    printf '\\set owner_pw %s\n\\set auth_pw %s\n\\set memory_pw %s\n\\set super_pw %s\n' \
      "$OWNER_PASSWORD" "$AUTH_PASSWORD" "$MEMORY_PASSWORD" "$SUPERUSER_PASSWORD"
    cat <<'SQL'
SET client_min_messages = warning;
-- Roles are made on each node by hand, not propagated by the coordinator:
-- a node gets them before it joins any database's cluster.
SET citus.enable_create_role_propagation = off;
SET citus.enable_alter_role_propagation = off;
SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY['ninaivalaigal_owner', 'ninaivalaigal_auth', 'ninaivalaigal_memory']) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE postgres PASSWORD :'super_pw';
ALTER ROLE ninaivalaigal_owner  WITH LOGIN NOSUPERUSER NOBYPASSRLS CREATEDB   NOCREATEROLE PASSWORD :'owner_pw';
ALTER ROLE ninaivalaigal_auth   WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'auth_pw';
ALTER ROLE ninaivalaigal_memory WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'memory_pw';
GRANT pg_signal_backend TO ninaivalaigal_owner;
-- The services set the RLS user with SET LOCAL; this makes Citus forward
-- it (and the statement_timeout beside it) to the workers, inside the
-- same transaction. Per role, so every database (the test clones too) has it.
ALTER ROLE ninaivalaigal_auth   SET citus.propagate_set_commands = 'local';
ALTER ROLE ninaivalaigal_memory SET citus.propagate_set_commands = 'local';
ALTER ROLE ninaivalaigal_owner  SET citus.propagate_set_commands = 'local';
SELECT 'CREATE DATABASE ninaivalaigal OWNER ninaivalaigal_owner'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ninaivalaigal') \gexec
SQL
  } | node_psql "$port" postgres
}

write_db_env() {
  local base="127.0.0.1:$COORDINATOR_PORT/ninaivalaigal" tmp
  tmp=$(mktemp "$STATE_DIR/db.env.XXXXXX")
  chmod 600 "$tmp"
  cat >"$tmp" <<ENV
# Written by deploy/citus/cluster.sh. Holds database passwords: keep it private.
# The coordinator of the Citus cluster; the workers are on ports ${WORKER_PORTS[*]}.
NINAIVALAIGAL_PG_PORT=$COORDINATOR_PORT
CITUS_WORKER_PORTS=${WORKER_PORTS[*]}
CITUS_SUPERUSER_PASSWORD=$SUPERUSER_PASSWORD
NINAIVALAIGAL_OWNER_DB_PASSWORD=$OWNER_PASSWORD
NINAIVALAIGAL_AUTH_DB_PASSWORD=$AUTH_PASSWORD
NINAIVALAIGAL_MEMORY_DB_PASSWORD=$MEMORY_PASSWORD
NINAIVALAIGAL_MIGRATION_DATABASE_URL=postgres://ninaivalaigal_owner:$OWNER_PASSWORD@$base
NINAIVALAIGAL_AUTH_DATABASE_URL=postgres://ninaivalaigal_auth:$AUTH_PASSWORD@$base
NINAIVALAIGAL_MEMORY_DATABASE_URL=postgres://ninaivalaigal_memory:$MEMORY_PASSWORD@$base
ENV
  mv "$tmp" "$DB_ENV"
}

main() {
  mkdir -p "$STATE_DIR" "$CITUS_DATA_ROOT"
  exec 9>"$STATE_DIR/cluster.lock"
  flock -w 300 9 || { log "another run holds $STATE_DIR/cluster.lock"; exit 1; }
  if [ ! -f "$PG_BIN/../lib/citus.so" ]; then
    log "Citus is not installed; run deploy/citus/build.sh first"
    exit 1
  fi
  load_or_create_passwords
  write_pgpass
  local port
  for port in "${NODE_PORTS[@]}"; do
    init_node "$port"
    start_node "$port"
    create_roles "$port"
  done
  write_db_env
  log "coordinator 127.0.0.1:$COORDINATOR_PORT, workers ${WORKER_PORTS[*]} (URLs in $DB_ENV)"
}

main "$@"
