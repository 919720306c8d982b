#!/usr/bin/env bash
# Generates the diesel schema (src/schema.rs) from the migrations, or with
# --check makes sure the committed file is what the migrations generate.
#
#   deploy/local/schema.sh           rewrite src/schema.rs (after adding a migration)
#   deploy/local/schema.sh --check   fail if src/schema.rs differs (test.sh runs this)
#
# Both apply migrations/ to a scratch database of the local server (as the
# owner role, which may create databases) and run `diesel print-schema` with
# the settings of diesel.toml. diesel_cli is installed once, pinned to the
# diesel version in Cargo.lock, into "$CACHE_DIR" (Debian's libpq-dev is
# installed first if it is missing); later runs reuse it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

DIESEL_CLI_VERSION=2.3.14
CACHE_DIR="${NINAIVALAIGAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ninaivalaigal}"
DIESEL_ROOT="$CACHE_DIR/diesel_cli-$DIESEL_CLI_VERSION"
DIESEL="$DIESEL_ROOT/bin/diesel"
SCHEMA_FILE=src/schema.rs

log() { echo "schema: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_diesel_cli() {
  if [ -x "$DIESEL" ]; then
    return
  fi
  if ! dpkg-query -W -f='${Status}' libpq-dev 2>/dev/null | grep -q 'install ok installed'; then
    log "installing Debian's libpq-dev (diesel_cli links libpq)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpq-dev >/dev/null
  fi
  log "installing diesel_cli $DIESEL_CLI_VERSION into $DIESEL_ROOT (once; takes a few minutes)"
  mkdir -p "$CACHE_DIR"
  # Its own target directory, so the workspace's build cache is left alone.
  cargo install diesel_cli --version "=$DIESEL_CLI_VERSION" --locked \
    --no-default-features --features postgres \
    --root "$DIESEL_ROOT" --target-dir "$CACHE_DIR/diesel_cli-build" --quiet
  rm -rf "$CACHE_DIR/diesel_cli-build"
}

# Sets SCRATCH_URL to a new, migrated database, dropped when the script exits.
migrate_scratch() {
  bash deploy/local/postgres.sh
  OWNER_PASSWORD=$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)
  PG_PORT=$(db_env_value NINAIVALAIGAL_PG_PORT)
  SCRATCH_DB="ninaivalaigal_schema_$$_$(date +%s)"
  SCRATCH_URL="postgres://ninaivalaigal_owner:$OWNER_PASSWORD@127.0.0.1:$PG_PORT/$SCRATCH_DB"
  trap cleanup EXIT
  owner_psql -c "CREATE DATABASE $SCRATCH_DB"
  # An empty config: `diesel migration run` would otherwise rewrite the schema
  # file named in diesel.toml as a side effect. The URL travels in the
  # environment, never on a command line that `ps` shows.
  DATABASE_URL="$SCRATCH_URL" "$DIESEL" migration run --config-file /dev/null \
    --migration-dir migrations >/dev/null
}

cleanup() {
  owner_psql -c "DROP DATABASE IF EXISTS $SCRATCH_DB WITH (FORCE)" || true
  rm -f "${GENERATED:-}"
}

owner_psql() {
  PGPASSWORD="$OWNER_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PG_PORT" -U ninaivalaigal_owner -d ninaivalaigal "$@" >/dev/null
}

main() {
  local check=false
  case "${1:-}" in
    --check) check=true ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
  esac
  install_diesel_cli
  migrate_scratch
  GENERATED=$(mktemp)
  DATABASE_URL="$SCRATCH_URL" "$DIESEL" print-schema >"$GENERATED"
  if ! $check; then
    cp "$GENERATED" "$SCHEMA_FILE"
    log "wrote $SCHEMA_FILE"
    return
  fi
  if ! diff -u --label "$SCHEMA_FILE (committed)" --label "$SCHEMA_FILE (from migrations/)" \
    "$SCHEMA_FILE" "$GENERATED" >&2; then
    log "$SCHEMA_FILE does not match migrations/ (diff above)."
    log "Run deploy/local/schema.sh to regenerate it, then review and commit the change."
    exit 1
  fi
  log "$SCHEMA_FILE matches migrations/"
}

main "$@"
