#!/usr/bin/env bash
# Brings the whole system up on this machine and shows it working:
# PostgreSQL (installed and started if needed, roles and database created),
# migrations, a signing key, release builds of both services and the eM CLI,
# both services started in the background, checked until they report SERVING,
# then a short smoke run through the CLI. Running it again restarts the
# services with the current code and leaves the data alone.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

mkdir -p "$RUN_DIR" "$LOG_DIR"
chmod 700 "$STATE_DIR"

say "PostgreSQL"
bash "$REPO_ROOT/deploy/local/postgres.sh"
# Not exported: each process below gets only the URL of its own role
# (start_auth_service and start_memory_service in common.sh read theirs),
# and the build gets none.
MIGRATION_DATABASE_URL=$(db_env_value NINAIVALAIGAL_MIGRATION_DATABASE_URL)

if [ ! -s "$KEY_FILE" ]; then
  say "generating the Ed25519 token-signing key ($KEY_FILE)"
  command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
  (umask 077 && openssl genpkey -algorithm ed25519 -out "$KEY_FILE")
fi

say "building (cargo build --release)"
(cd "$REPO_ROOT" && cargo build --release --locked --features db \
  --bin ninaivalaigal-migrate --bin ninaivalaigal-health \
  --bin auth-service --bin memory-service --bin eM)

say "migrating the database"
NINAIVALAIGAL_MIGRATION_DATABASE_URL="$MIGRATION_DATABASE_URL" "$BIN_DIR/ninaivalaigal-migrate"

stop_service memory-service
stop_service auth-service

start_auth_service
start_memory_service
wait_until_serving

# Each service holds its own database password and no other.
for name in auth-service memory-service; do
  pid=$(service_pid "$name")
  for other in NINAIVALAIGAL_OWNER_DB_PASSWORD NINAIVALAIGAL_AUTH_DB_PASSWORD NINAIVALAIGAL_MEMORY_DB_PASSWORD; do
    [ "$name:$other" = auth-service:NINAIVALAIGAL_AUTH_DB_PASSWORD ] && continue
    [ "$name:$other" = memory-service:NINAIVALAIGAL_MEMORY_DB_PASSWORD ] && continue
    if tr '\0' '\n' <"/proc/$pid/environ" | grep -qF -- "$(db_env_value "$other")"; then
      echo "$name holds $other in its environment" >&2
      exit 1
    fi
  done
done

bash "$REPO_ROOT/deploy/local/smoke.sh"

cat <<MSG

Ninaivalaigal is up.
  memory-service  $MEMORY_URL   (grpcurl -plaintext $MEMORY_ADDR list)
  auth-service    $AUTH_URL   (grpcurl -plaintext $AUTH_ADDR list)
  eM CLI          $BIN_DIR/eM   (add it to PATH: export PATH="$BIN_DIR:\$PATH")
  logs            $LOG_DIR
  stop it with    deploy/local/down.sh

Try:
  eM register                 # create your account (asks for email, name, password)
  eM context create my-project
  eM start --context my-project
  eM remember '{"type": "note", "data": {"message": "Important information"}}'
  eM recall --query important
MSG
