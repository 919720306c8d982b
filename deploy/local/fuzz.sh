#!/usr/bin/env bash
# Builds the fuzz targets of fuzz/ (libFuzzer, through cargo-fuzz) and runs
# each for a while, starting from the seeds committed in fuzz/corpus/:
#
#   deploy/local/fuzz.sh           20 s per target
#   deploy/local/fuzz.sh 600       10 minutes per target (a longer hunt)
#   deploy/local/fuzz.sh 15 json   only the named targets
#
# test.sh runs a short round of every target. A crash, a panic or an input
# slower than 30 s fails the run; libFuzzer saves the input in
# fuzz/artifacts/<target>/ (replay it with `cargo fuzz run <target> FILE`,
# with the environment and flags below). Keep it as a seed in
# fuzz/corpus/<target>/ once the bug is fixed, so every later run tries it.
#
# What each run finds beyond the seeds is kept outside the repository, in
# "$CACHE_DIR/fuzz-corpus/<target>", and reused by the next run.
#
# Needs: cargo-fuzz, installed once into "$CACHE_DIR" (pinned below) and
# reused; a C++ compiler, which libfuzzer-sys uses to build libFuzzer
# itself (Debian's g++ is installed if there is none; clang is not needed).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

SECONDS_PER_TARGET="${1:-20}"
shift || true
CARGO_FUZZ_VERSION=0.13.2
CACHE_DIR="${NINAIVALAIGAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ninaivalaigal}"
CARGO_FUZZ_ROOT="$CACHE_DIR/cargo-fuzz-$CARGO_FUZZ_VERSION"
CARGO_FUZZ="$CARGO_FUZZ_ROOT/bin/cargo-fuzz"

# cargo-fuzz passes the compiler nightly-only flags (`-Z` options for the
# sanitizer-coverage instrumentation libFuzzer needs). This machine, the
# developers' and CI's have only stable Rust and cannot download another
# toolchain, so the stable compiler is told to accept them. This applies
# to the fuzz build only, which has its own target directory
# (fuzz/target); the services are built and tested with plain stable.
export RUSTC_BOOTSTRAP=1
# No address sanitizer: every crate of the workspace forbids `unsafe`, so
# what the targets hunt is panics, failed assertions and overflows (debug
# assertions are on), which libFuzzer catches without it; builds and runs
# are about twice as fast.
FUZZ_FLAGS=(--sanitizer none --debug-assertions)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_tools() {
  if ! command -v c++ >/dev/null; then
    say "installing Debian's g++ (libfuzzer-sys compiles libFuzzer)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
  fi
  if [ ! -x "$CARGO_FUZZ" ]; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT (once; takes a few minutes)"
    mkdir -p "$CACHE_DIR"
    cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked \
      --root "$CARGO_FUZZ_ROOT" --target-dir "$CACHE_DIR/cargo-fuzz-build" --quiet
    rm -rf "$CACHE_DIR/cargo-fuzz-build"
  fi
}

install_tools
say "cargo fuzz build (fuzz/, release with coverage instrumentation)"
"$CARGO_FUZZ" fuzz build "${FUZZ_FLAGS[@]}"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("$CARGO_FUZZ" fuzz list)
fi

summary=()
for target in "${targets[@]}"; do
  say "fuzzing $target for $SECONDS_PER_TARGET s"
  work_corpus="$CACHE_DIR/fuzz-corpus/$target"
  mkdir -p "$work_corpus"
  log="$(mktemp)"
  # New inputs go to the first corpus directory (outside the repository);
  # the committed seeds are read from the second.
  if ! "$CARGO_FUZZ" fuzz run "${FUZZ_FLAGS[@]}" "$target" \
    "$work_corpus" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -print_final_stats=1 \
    >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
    rm -f "$log"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | tr -d 'cov: ')
  corpus=$(find "$work_corpus" -type f | wc -l)
  summary+=("$(printf '%-12s %12s runs %8s/s  cov %6s  corpus %5s' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$corpus")")
  rm -f "$log"
done

say "fuzzing done: nothing found"
printf '  %s\n' "${summary[@]}"
