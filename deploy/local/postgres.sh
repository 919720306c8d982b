#!/usr/bin/env bash
# Makes sure a local PostgreSQL server is ready for Ninaivalaigal, whatever
# state the machine is in: installs Debian's `postgresql` package if it is
# missing, creates and starts a cluster if none is running, creates (or
# updates) the roles and the database, and writes their connection URLs to
# "$STATE_DIR/db.env" (mode 0600). Running it again changes nothing.
#
# Roles (cluster-wide):
#   ninaivalaigal_owner   owns the tables and runs migrations (CREATEDB, so the
#                         test harness can make a database per test)
#   ninaivalaigal_auth    the auth-service's login: owns nothing, NOBYPASSRLS
#   ninaivalaigal_memory  the memory-service's login: owns nothing, NOBYPASSRLS
# Passwords are random, generated on first run and kept only in db.env.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DB_NAME=ninaivalaigal

log() { echo "postgres: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

install_postgres() {
  if command -v pg_lsclusters >/dev/null 2>&1 && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    return
  fi
  log "installing Debian's postgresql package"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

# Sets PGPORT to the port of a running cluster, creating and starting one if needed.
start_cluster() {
  local version cluster port status
  if [ -z "$(pg_lsclusters --no-header 2>/dev/null)" ]; then
    version=$(basename "$(ls -d /usr/lib/postgresql/*/ | sort -V | tail -n 1)")
    log "creating cluster $version/main"
    as_root pg_createcluster "$version" main >/dev/null 9>&-
  fi
  # Prefer a cluster that is already online; otherwise start the newest.
  read -r version cluster port status _ < <(
    pg_lsclusters --no-header | awk '{print ($4 == "online" ? 1 : 0), $0}' | sort -k1,1n -k2,2V | tail -n 1 | cut -d' ' -f2-
  )
  if [ "$status" != "online" ]; then
    log "starting cluster $version/$cluster on port $port"
    # 9>&-: the server must not inherit (and so hold forever) our lock.
    as_root pg_ctlcluster "$version" "$cluster" start 9>&-
  fi
  PGPORT=$port
  for _ in $(seq 1 50); do
    as_postgres psql -X -q -p "$PGPORT" -d postgres -c 'SELECT 1' >/dev/null 2>&1 && return
    sleep 0.2
  done
  log "cluster $version/$cluster did not accept connections; see /var/log/postgresql/postgresql-$version-$cluster.log"
  exit 1
}

random_password() {
  tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true
}

load_or_create_passwords() {
  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"
  OWNER_PASSWORD="$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)"
  AUTH_PASSWORD="$(db_env_value NINAIVALAIGAL_AUTH_DB_PASSWORD)"
  MEMORY_PASSWORD="$(db_env_value NINAIVALAIGAL_MEMORY_DB_PASSWORD)"
  OWNER_PASSWORD="${OWNER_PASSWORD:-$(random_password)}"
  AUTH_PASSWORD="${AUTH_PASSWORD:-$(random_password)}"
  MEMORY_PASSWORD="${MEMORY_PASSWORD:-$(random_password)}"
}

create_roles_and_database() {
  # The passwords reach psql on its standard input, never on its command
  # line, where any user of the machine could read them with `ps`.
  {
    printf '\\set owner_pw %s\n\\set auth_pw %s\n\\set memory_pw %s\n' \
      "$OWNER_PASSWORD" "$AUTH_PASSWORD" "$MEMORY_PASSWORD"
    cat <<'SQL'
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY['ninaivalaigal_owner', 'ninaivalaigal_auth', 'ninaivalaigal_memory']) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE ninaivalaigal_owner  WITH LOGIN NOSUPERUSER NOBYPASSRLS CREATEDB   NOCREATEROLE PASSWORD :'owner_pw';
ALTER ROLE ninaivalaigal_auth   WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'auth_pw';
ALTER ROLE ninaivalaigal_memory WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'memory_pw';
-- Lets the owner drop per-test databases that a service is still connected to.
GRANT pg_signal_backend TO ninaivalaigal_owner;
SELECT 'CREATE DATABASE ninaivalaigal OWNER ninaivalaigal_owner'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ninaivalaigal') \gexec
SQL
  } | as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d postgres
}

write_db_env() {
  local base="127.0.0.1:$PGPORT/$DB_NAME" tmp
  tmp=$(mktemp "$STATE_DIR/db.env.XXXXXX")
  chmod 600 "$tmp"
  cat >"$tmp" <<ENV
# Written by deploy/local/postgres.sh. Holds database passwords: keep it private.
NINAIVALAIGAL_PG_PORT=$PGPORT
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
  mkdir -p "$STATE_DIR"
  # One run at a time: parallel test processes may all ask for the server.
  exec 9>"$STATE_DIR/postgres.lock"
  if ! flock -w 300 9; then
    log "another run has held $STATE_DIR/postgres.lock for 5 minutes; giving up"
    exit 1
  fi
  install_postgres
  start_cluster
  load_or_create_passwords
  create_roles_and_database
  write_db_env
  log "ready on 127.0.0.1:$PGPORT (database $DB_NAME; connection URLs in $DB_ENV)"
}

main "$@"
