#!/usr/bin/env bash
# Runs the whole test suite, from any state of the machine: makes sure
# PostgreSQL is installed and running with the project's roles (the harness
# would do it too, but doing it once here keeps parallel tests from racing on
# it), lints the contracts with buf and the code with rustfmt and clippy,
# checks that src/schema.rs is what the migrations generate, runs every
# test of the workspace against real PostgreSQL over real sockets, then
# runs each fuzz target of fuzz/ briefly (deploy/local/fuzz.sh;
# NINAIVALAIGAL_FUZZ_SECONDS per target, default 10, 0 skips it).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

say "PostgreSQL"
bash deploy/local/postgres.sh

say "buf lint (proto/)"
npx --yes @bufbuild/buf@1.75.0 lint

say "cargo fmt --check"
cargo fmt --all --check

say "diesel schema (src/schema.rs matches migrations/)"
bash deploy/local/schema.sh --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo test"
cargo test --workspace --locked "$@"

say "deployment files (Kubernetes manifests, Dockerfile, compose.yaml)"
bash deploy/local/check-deploy.sh

say "backup and restore (pg_dump, pg_restore into a scratch database, compared)"
bash deploy/local/backup-restore.sh --seed

FUZZ_SECONDS="${NINAIVALAIGAL_FUZZ_SECONDS:-10}"
if [ "$FUZZ_SECONDS" != 0 ]; then
  say "fuzz targets, $FUZZ_SECONDS s each"
  bash deploy/local/fuzz.sh "$FUZZ_SECONDS"
fi
