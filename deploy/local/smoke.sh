#!/usr/bin/env bash
# Shows the running system working end to end through the eM CLI: logs in as
# a smoke-test account of its own (registering it the first time), records a
# memory and recalls it. Your own `eM login` is left untouched: this uses a
# separate config directory.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

EM="$BIN_DIR/eM"
export XDG_CONFIG_HOME="$STATE_DIR/smoke-config"
export NINAIVALAIGAL_SERVER_URL="$MEMORY_URL" NINAIVALAIGAL_AUTH_URL="$AUTH_URL"
unset NINAIVALAIGAL_USER_TOKEN
EMAIL="smoke-test@ninaivalaigal.example"
PASSWORD_FILE="$STATE_DIR/smoke-password"
if [ ! -s "$PASSWORD_FILE" ]; then
  (umask 077 && tr -dc 'A-Za-z0-9' </dev/urandom | head -c 24 >"$PASSWORD_FILE" || true)
fi

say "smoke test through eM (account $EMAIL)"
if ! "$EM" login --email "$EMAIL" --password-stdin <"$PASSWORD_FILE" >/dev/null 2>&1; then
  "$EM" register --email "$EMAIL" --name "Smoke test" --password-stdin <"$PASSWORD_FILE"
fi
"$EM" whoami
"$EM" context show smoke >/dev/null 2>&1 ||
  "$EM" context create smoke --description "written by deploy/local/smoke.sh"
"$EM" start --context smoke
"$EM" remember "{\"type\": \"note\", \"data\": {\"message\": \"up.sh smoke test at $(date -u +%Y-%m-%dT%H:%M:%SZ)\"}}"
"$EM" recall --query "smoke test" --limit 3
"$EM" stop --context smoke
