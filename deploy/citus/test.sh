#!/usr/bin/env bash
# Runs the isolation suite, the CLI's end-to-end tests and the Citus checks
# (tests/tests/citus_workers.rs) against a Citus cluster on this machine:
#   deploy/citus/test.sh [extra cargo test arguments]
# Builds and installs Citus if it is missing (build.sh), starts the
# coordinator and two workers (cluster.sh), makes a distributed template
# database (database.sh), then runs the tests with the harness pointed at
# the cluster: its db.env (NINAIVALAIGAL_STATE_DIR) names the coordinator
# and the workers, and NINAIVALAIGAL_TEST_TEMPLATE the template, which each
# test clones on every node (tests/src/db.rs). The tests themselves are the
# ones deploy/local/test.sh runs on one server, unchanged.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TEMPLATE=ninaivalaigal_citus_template

bash "$CITUS_ROOT/build.sh"
bash "$CITUS_ROOT/cluster.sh"

say "building the migrate binary"
(cd "$REPO_ROOT" && cargo build --locked -p ninaivalaigal --features db --bin ninaivalaigal-migrate)

say "distributed template database $TEMPLATE"
for port in "${NODE_PORTS[@]}"; do
  node_psql "$port" postgres -c "DROP DATABASE IF EXISTS $TEMPLATE WITH (FORCE)"
done
MIGRATE_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/ninaivalaigal-migrate" \
  bash "$CITUS_ROOT/database.sh" "$TEMPLATE"
# A template must have no sessions when it is cloned; Citus keeps a
# maintenance daemon (and cached connections) in every database that has
# the extension, so the template takes no more connections, and those it
# has are ended.
for port in "${NODE_PORTS[@]}"; do
  node_psql "$port" postgres \
    -c "ALTER DATABASE $TEMPLATE WITH ALLOW_CONNECTIONS false" \
    -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$TEMPLATE'" >/dev/null
done

say "tests against the cluster (coordinator 127.0.0.1:$COORDINATOR_PORT, workers ${WORKER_PORTS[*]})"
cd "$REPO_ROOT"
export NINAIVALAIGAL_TEST_TEMPLATE="$TEMPLATE"
cargo test --locked -p ninaivalaigal-tests \
  --test isolation_api --test isolation_db --test isolation_random "$@"
# Ignored by the default run, which has no cluster.
cargo test --locked -p ninaivalaigal-tests --test citus_workers "$@" -- --include-ignored
cargo test --locked -p ninaivalaigal-cli --test cli_account --test cli_memory "$@"
