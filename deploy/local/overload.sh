#!/usr/bin/env bash
# Measures load shedding of the pair running as release processes on this
# machine (README, Reliability, "Overload"): capacity, 3x overload, recovery,
# and a login flood beside normal traffic. Not part of the test suite; about
# two minutes of load after the build.
#
# It runs up.sh (build, PostgreSQL, both services), then restarts the
# services for the measurement with two settings changed, and restarts them
# as up.sh runs them when it ends:
#   - memory-service: NINAIVALAIGAL_MAX_IN_FLIGHT_REQUESTS=$OVERLOAD_MEMORY_MAX_IN_FLIGHT
#     (default 32). The default of 256 is never reached on a small machine:
#     3x the concurrency that reaches capacity is far below it, so without
#     this the overload would only queue and nothing would be shed.
#   - auth-service: NINAIVALAIGAL_TRUSTED_PROXIES=127.0.0.1/32, so that each
#     login of the flood can name its own client address in x-forwarded-for;
#     from one address the flood would be throttled after 20 failed logins.
#     Trusting the local host as a proxy lets any local process choose its
#     address, which is why the services are restarted without it afterwards.
# OVERLOAD_AUTH_ENV may add settings of the auth-service, e.g.
#   OVERLOAD_AUTH_ENV="NINAIVALAIGAL_HASHING_CONCURRENCY=1" deploy/local/overload.sh
# Arguments are passed to the load generator (tests/examples/overload.rs;
# `--help` lists them). The JSON report goes to target/overload.json.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LIMIT="${OVERLOAD_MEMORY_MAX_IN_FLIGHT:-32}"
JSON="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/overload.json"
read -r -a AUTH_EXTRA <<<"${OVERLOAD_AUTH_ENV:-}"

bash "$REPO_ROOT/deploy/local/up.sh"

say "building the load generator (cargo build --release --example overload)"
(cd "$REPO_ROOT" && cargo build --release --locked -p ninaivalaigal-tests --example overload)

restore() {
  say "restarting the services as up.sh runs them"
  stop_service memory-service
  stop_service auth-service
  start_auth_service
  start_memory_service
  wait_until_serving
}
trap restore EXIT

say "restarting the services for the measurement"
stop_service memory-service
stop_service auth-service
start_auth_service NINAIVALAIGAL_TRUSTED_PROXIES=127.0.0.1/32 "${AUTH_EXTRA[@]}"
start_memory_service NINAIVALAIGAL_MAX_IN_FLIGHT_REQUESTS="$LIMIT"
wait_until_serving

say "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
"${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/examples/overload" \
  --memory-url "$MEMORY_URL" --auth-url "$AUTH_URL" --run-dir "$RUN_DIR" \
  --max-in-flight "$LIMIT" --forwarded-for --json "$JSON" "$@"
