#!/usr/bin/env bash
# Stops the services that deploy/local/up.sh started. PostgreSQL and the data
# are left as they are.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

stop_service memory-service
stop_service auth-service
say "stopped"
