#!/usr/bin/env bash
# The pair against a plain SQL client doing the same work (docs/performance.md).
#
# Runs, interleaved in every round (pair, plain, pipelined, pair, ...), for
# Remember and for Recall of the newest 20:
#   pair       em-bench (tests/src/bin/em-bench) over gRPC to the running pair;
#   plain      pgbench, simple protocol: the memory-service's own statements
#              (deploy/local/bench/<work>.sql), one round trip each;
#   pipelined  pgbench -M prepared: the same statements prepared and sent
#              as one pipeline (deploy/local/bench/<work>-pipelined.sql).
# All three act as the same accounts, on the same data, with the same number
# of clients, as the memory-service's role under row-level security, over TCP
# on 127.0.0.1, in plaintext (pgbench's libpq would otherwise take TLS when
# the server offers it, which the memory-service's local URL does not ask
# for). It prints each run, then the medians and their ratios, and
# writes them to target/bench.json.
#
# It starts the system with up.sh first. Settings (environment):
#   BENCH_ROUNDS (3), BENCH_SECONDS (10), BENCH_CLIENTS (16),
#   BENCH_CONNECTIONS (4, the pair's HTTP/2 connections), BENCH_USERS (8),
#   BENCH_MEMORIES (200 per account), BENCH_WORK ("remember recall"),
#   BENCH_PREFIX ("em-bench", the accounts' emails; their ids must follow
#   one another, so a prefix whose accounts were made piecemeal needs a new one).
# Memories the load stores are deleted after each run, so that repeated
# runs start from the same data and stay within the per-user quota.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROUNDS="${BENCH_ROUNDS:-3}"
RUN_SECONDS="${BENCH_SECONDS:-10}"
CLIENTS="${BENCH_CLIENTS:-16}"
CONNECTIONS="${BENCH_CONNECTIONS:-4}"
USERS="${BENCH_USERS:-8}"
MEMORIES="${BENCH_MEMORIES:-200}"
PREFIX="${BENCH_PREFIX:-em-bench}"
read -r -a WORK <<<"${BENCH_WORK:-remember recall}"
SCRIPTS="$REPO_ROOT/deploy/local/bench"
OUT="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
EM_BENCH="$OUT/release/em-bench"
RESULTS="$OUT/bench-runs.tsv"
PGBENCH="$(ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -n 1)"

bash "$REPO_ROOT/deploy/local/up.sh"

say "building the load generator (cargo build --release --bin em-bench)"
(cd "$REPO_ROOT" && cargo build --release --locked --bin em-bench)

pair_args=(--memory-url "$MEMORY_URL" --auth-url "$AUTH_URL" --prefix "$PREFIX" --users "$USERS"
  --memories-per-user "$MEMORIES" --clients "$CLIENTS" --connections "$CONNECTIONS")

say "setting up $USERS accounts with $MEMORIES memories each"
setup="$("$EM_BENCH" "${pair_args[@]}" --setup-only)"
# pgbench gives client k the account first_id + k mod USERS, as em-bench
# gives client k account k mod USERS: the ids must follow one another.
read -r FIRST_ID LAST_ID < <(python3 -c '
import json, sys
ids = [u["id"] for u in json.load(sys.stdin)["users"]]
if ids != list(range(ids[0], ids[0] + len(ids))):
    sys.exit("the accounts ids are not consecutive: %s; set another BENCH_PREFIX" % ids)
print(ids[0], ids[-1])' <<<"$setup")

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
PGPORT="$(db_env_value NINAIVALAIGAL_PG_PORT)"

# Back to the set-up's data: the memories the load stored go (as the
# superuser, past row-level security; the usage trigger counts them out).
# Prints how many went, so that a run that stored nothing is caught.
reset_data() {
  local deleted
  deleted="$(as_postgres psql -X -q -At -p "$PGPORT" -d ninaivalaigal -v ON_ERROR_STOP=1 <<SQL
WITH gone AS (
  DELETE FROM memories
   WHERE owner_id BETWEEN $FIRST_ID AND $LAST_ID
     AND (data::jsonb -> 'tags') ? 'em-bench-load'
  RETURNING 1)
SELECT count(*) FROM gone;
SQL
)"
  as_postgres psql -X -q -p "$PGPORT" -d ninaivalaigal -c 'VACUUM (ANALYZE) memories, memory_terms, memory_usage, recording_contexts' >/dev/null
  echo "$deleted"
}

# After a Remember run: the load's memories must be there.
check_stored() {
  local stored
  stored="$(reset_data)"
  if [ "$1" = remember ] && [ "$stored" -eq 0 ]; then
    echo "bench: the $2 Remember run stored nothing; is the context 'bench' there?" >&2
    exit 1
  fi
}

run_pair() {
  local work=$1 json
  json="$(mktemp)"
  "$EM_BENCH" "${pair_args[@]}" --scenario "$work" --seconds "$RUN_SECONDS" \
    --warmup-seconds 2 --json "$json" >&2
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ok_per_second"])' "$json"
  rm -f "$json"
}

run_pgbench() {
  local script=$1 mode=$2 output
  output="$(PGSSLMODE=disable PGPASSWORD="$(db_env_value NINAIVALAIGAL_MEMORY_DB_PASSWORD)" "$PGBENCH" \
    -h 127.0.0.1 -p "$PGPORT" -U ninaivalaigal_memory -n -M "$mode" \
    -c "$CLIENTS" -j 2 -T "$RUN_SECONDS" -D first_id="$FIRST_ID" -D users="$USERS" \
    -f "$script" ninaivalaigal 2>&1)" || {
    echo "$output" >&2
    return 1
  }
  grep -E '^(number of failed|latency average|tps)' <<<"$output" >&2
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$output"
}

say "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
printf 'round\twork\tclient\tper_second\n' >"$RESULTS"
reset_data >/dev/null
for round in $(seq 1 "$ROUNDS"); do
  for work in "${WORK[@]}"; do
    say "round $round, $work: the pair"
    printf '%s\t%s\tpair\t%s\n' "$round" "$work" "$(run_pair "$work")" >>"$RESULTS"
    check_stored "$work" pair
    say "round $round, $work: pgbench, plain"
    printf '%s\t%s\tplain\t%s\n' "$round" "$work" \
      "$(run_pgbench "$SCRIPTS/$work.sql" simple)" >>"$RESULTS"
    check_stored "$work" plain
    say "round $round, $work: pgbench, prepared and pipelined"
    printf '%s\t%s\tpipelined\t%s\n' "$round" "$work" \
      "$(run_pgbench "$SCRIPTS/$work-pipelined.sql" prepared)" >>"$RESULTS"
    check_stored "$work" pipelined
  done
done

python3 - "$RESULTS" "$OUT/bench.json" <<'PY'
import csv, json, statistics, sys
runs = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
summary = {}
print("\nper second, median of %d rounds (each round: pair, plain, pipelined)" %
      len({r["round"] for r in runs}))
print("%-10s %10s %10s %10s %12s %14s" % ("work", "pair", "plain", "pipelined",
                                          "pair/plain", "pair/pipelined"))
for work in dict.fromkeys(r["work"] for r in runs):
    median = {c: statistics.median(float(r["per_second"]) for r in runs
                                   if r["work"] == work and r["client"] == c)
              for c in ("pair", "plain", "pipelined")}
    per_round = [
        {c: float(r["per_second"]) for r in runs if r["work"] == work and r["round"] == n
         for c in [r["client"]]}
        for n in dict.fromkeys(r["round"] for r in runs)]
    ratios = {"pair/plain": median["pair"] / median["plain"],
              "pair/pipelined": median["pair"] / median["pipelined"]}
    print("%-10s %10.0f %10.0f %10.0f %11.2fx %13.2fx" % (
        work, median["pair"], median["plain"], median["pipelined"],
        ratios["pair/plain"], ratios["pair/pipelined"]))
    print("%-10s round by round, pair/plain: %s" % ("", ", ".join(
        "%.2fx" % (r["pair"] / r["plain"]) for r in per_round)))
    summary[work] = {"median": median, "ratios": ratios, "rounds": per_round}
json.dump(summary, open(sys.argv[2], "w"), indent=2)
print("\nwritten to %s" % sys.argv[2])
PY
