#!/usr/bin/env bash
# Measures Recall's text queries at scale against the local PostgreSQL
# server (a measurement, not a test; issue 13, "scaling with data"):
#
#   1. creates a scratch database (recall_scale), applies migrations/ as the
#      owner role, and seeds two users directly in SQL: one with 10 thousand
#      memories and one with 1 million (set SMALL and LARGE to change that),
#      with text drawn from a vocabulary with a skewed distribution (some
#      words are in most memories, others in few) and one rare "ticketN"
#      word each;
#   2. as ninaivalaigal_memory with SET LOCAL app.current_user_id, as the
#      memory-service runs them, times Recall's statements for a page of 20:
#      the newest page, a common word, a rare word, two words (AND), and two
#      common words; "before" is the filter on memories alone (the
#      statement Recall ran before memory_terms), "after" the two statements
#      of memory-service/src/db/terms.rs (the analysis, read from that file,
#      and the walk of the chosen lexeme's postings); then a page half-way
#      down each user's memories, where it starts written as the OR of two
#      comparisons (before) and as one row comparison (after);
#   3. times Remember's INSERT with pgbench, with and without the trigger
#      that fills memory_terms (the write amplification);
#   4. drops the database (keep it with --keep).
#
#   deploy/local/recall-scale.sh [--keep]   measure, then drop the database
#                                           (--keep: leave it for a --reuse)
#   deploy/local/recall-scale.sh --reuse    measure a database kept before
#
# The superuser steps use peer authentication as the postgres system user.
# Seeding a million memories takes minutes (the triggers run per row).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

keep=false
reuse=false
case "${1:-}" in
  --keep) keep=true ;;
  --reuse) keep=true reuse=true ;;
  "") ;;
  *) echo "usage: $0 [--keep | --reuse]" >&2; exit 2 ;;
esac

DB=recall_scale
SMALL=${SMALL:-10000}
LARGE=${LARGE:-1000000}
RUNS=${RUNS:-5}
INSERTS=${INSERTS:-2000}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
psql_db() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

cleanup() {
  if ! $keep; then
    as_postgres psql -X -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  fi
}

trap cleanup EXIT
if ! $reuse; then
  as_postgres psql -X -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" \
    -c "CREATE DATABASE $DB OWNER ninaivalaigal_owner"
  say "migrating $DB as ninaivalaigal_owner"
  for migration in migrations/*/; do
    psql_db -c "SET ROLE ninaivalaigal_owner" -f "$migration/up.sql" >/dev/null
  done
fi

# Seeds one user with :count memories in five contexts (the fifth, "tiny",
# holds about 1 in 200), one memory a second from 2025-01-01 on. Each text
# has 6 to 15 words of the vocabulary, word i of n drawn with probability
# growing as (i/n)^(1/3), so the first words are in most memories and the
# last in few, and a "ticketN" with N in [0, count/5], about 5 memories each.
seed_user() {
  psql_db -v email="$1" -v count="$2" <<'SQL'
SELECT setseed(0.42);
INSERT INTO users (email, name, password_hash) VALUES (:'email', 'seed', 'x') RETURNING id AS uid \gset
INSERT INTO recording_contexts (owner_id, name)
    SELECT :uid, c FROM unnest(ARRAY['work', 'home', 'research', 'ops', 'tiny']) c;
SELECT array_agg(id ORDER BY id) AS ctx_ids FROM recording_contexts WHERE owner_id = :uid \gset
CREATE TEMP TABLE vocab AS
    SELECT array_agg(w ORDER BY o) AS words, count(*) AS n
      FROM unnest(string_to_array(
          'the deploy failed again because database connection timeout error retry service '
          'user request memory context server client build test release config network cache '
          'query index latency disk backup restore migration schema token session login '
          'password email account report meeting decision design review bug fix feature '
          'branch merge commit pipeline docker kubernetes cluster node worker queue message '
          'event log metric alert dashboard incident outage customer invoice payment order '
          'product price team project plan budget deadline sprint roadmap goal risk issue '
          'ticket document note idea question answer summary draft spec api endpoint '
          'throughput capacity scaling shard replica primary failover vacuum analyze '
          'explain planner statistics rust tonic grpc postgres citus pooler bouncer kernel '
          'cpu thread async future stream channel mutex lock deadlock race panic crash '
          'restart upgrade rollback hotfix patch security audit encryption certificate key '
          'secret vault policy permission role grant revoke compliance privacy erasure '
          'export import', ' ')) WITH ORDINALITY AS v(w, o);
INSERT INTO memories (owner_id, context_id, memory_type, data, created_at)
SELECT :uid,
       (:'ctx_ids'::bigint[])[CASE WHEN random() < 0.005 THEN 5 ELSE 1 + floor(random() * 4)::int END],
       (ARRAY['note', 'decision', 'error', 'todo'])[1 + floor(random() * 4)::int],
       json_build_object(
           'text', (SELECT string_agg(v.words[1 + floor(v.n * random() ^ 3)::int + 0 * k], ' ')
                      FROM generate_series(1, 6 + (g % 10)) k WHERE g > 0),
           'ref', 'ticket' || floor(random() * (:count / 5 + 1))::int),
       timestamptz '2025-01-01' + g * interval '1 second'
  FROM vocab v, generate_series(1, :count) g;
SQL
}

if ! $reuse; then
  say "seeding $SMALL and $LARGE memories (minutes)"
  start=$(date +%s)
  seed_user small@example.com "$SMALL" >/dev/null
  seed_user large@example.com "$LARGE" >/dev/null
  psql_db -c "VACUUM ANALYZE"
  say "seeded in $(( $(date +%s) - start )) s"
fi
psql_db -c "SELECT u.email, count(DISTINCT m.id) AS memories,
                   (SELECT count(*) FROM memory_terms t WHERE t.owner_id = u.id) AS postings
              FROM users u JOIN memories m ON m.owner_id = u.id GROUP BY u.id, u.email"
psql_db -c "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) AS size
              FROM pg_class WHERE relname IN ('memories', 'memory_terms', 'memories_search_idx',
                                              'memory_terms_pkey', 'memory_terms_memory_idx')
             ORDER BY relname"

# The statements as the memory-service sends them (terms::ANALYSIS, and
# terms::WALK through the postings of one lexeme), read from its source.
TERMS_RS=memory-service/src/db/terms.rs
ANALYSIS=$(sed -n '/^const ANALYSIS: &str = r#"$/,/^"#;$/p' "$TERMS_RS" | sed '1d;$d')
WALK=$(sed -n '/^const WALK: &str = r#"$/,/^"#;$/p' "$TERMS_RS" | sed '1d;$d')
TERM_POSTINGS=$(sed -n 's/^const TERM_POSTINGS: &str = "\(.*\)";$/\1/p' "$TERMS_RS")
WALK=${WALK//\{postings\}/$TERM_POSTINGS}

# Milliseconds of the median of $RUNS runs of a statement (psql's \timing),
# as the memory role in a transaction of user $1; the statement is read
# from standard input, with :'text' and :'term' set from $2 and $3, after
# the untimed statements $4 (if any).
time_statement() {
  local user=$1 text=$2 term=$3 setup=${4:-} statement
  statement=$(cat)
  {
    for _ in $(seq "$RUNS"); do
      printf '%s\n' "BEGIN;" "SET LOCAL ROLE ninaivalaigal_memory;" \
        "SET LOCAL app.current_user_id = '$user';" "$setup" \
        "\\timing on" "$statement" "\\timing off" "COMMIT;"
    done
  } | psql_db -v text="$text" -v term="$term" -v user="$user" -o /dev/null 2>&1 \
    | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# Today's statement: memories newest first, filtered.
BEFORE_TEXT="SELECT created_at, id, data_bytes FROM memories
 WHERE search @@ websearch_to_tsquery('english'::regconfig, :'text')
 ORDER BY created_at DESC, id DESC LIMIT 21;"
BEFORE_NEWEST="SELECT created_at, id, data_bytes FROM memories
 ORDER BY created_at DESC, id DESC LIMIT 21;"
# The analysis with its parameters, then the walk of the chosen lexeme.
PREPARE_ANALYSIS="DEALLOCATE ALL; PREPARE analysis(text, bigint, timestamptz, timestamptz, timestamptz, bigint, bigint, bigint) AS
$ANALYSIS;"
AFTER_ANALYSIS="EXECUTE analysis(:'text', NULL, NULL, NULL, NULL, NULL, 1000, :user);"
PREPARE_WALK="DEALLOCATE ALL; PREPARE walk(text, bigint, text, timestamptz, timestamptz, timestamptz, bigint, text, bigint, bigint) AS
$WALK;"
AFTER_WALK="EXECUTE walk(:'term', NULL, NULL, NULL, NULL, NULL, NULL, :'text', 21, :user);"

RARE=$(psql_db -At -c "SELECT t.term FROM memory_terms t JOIN users u ON u.id = t.owner_id
  WHERE u.email = 'large@example.com' AND t.term LIKE 'ticket%'
  GROUP BY t.term HAVING count(*) BETWEEN 2 AND 8 ORDER BY t.term LIMIT 1")
declare -A QUERIES=(
  [common]="deploy"
  [rare]="$RARE"
  [and]="$RARE deploy"
  [two_common]="deploy database"
  [rare_pair]="vacuum deadlock"
)
ORDER=(newest common rare and two_common rare_pair)

say "timing (median of $RUNS runs, ms; page of 20)"
printf '| %-10s | %-24s | %-24s | %12s | %12s | %12s |\n' user query "lexeme walked" before after "(analysis)"
printf '|%s|\n' "------------|--------------------------|--------------------------|--------------|--------------|--------------"
for email in small@example.com large@example.com; do
  user=$(psql_db -At -c "SELECT id FROM users WHERE email = '$email'")
  for name in "${ORDER[@]}"; do
    if [ "$name" = newest ]; then
      before=$(time_statement "$user" "" "" <<<"$BEFORE_NEWEST")
      printf '| %-10s | %-24s | %-24s | %12s | %12s | %12s |\n' "${email%%@*}" "(newest page)" "-" "$before" "(same)" "-"
      continue
    fi
    text=${QUERIES[$name]}
    # The lexeme the memory-service walks (terms::route): the required one
    # with the fewest postings.
    term=$(psql_db -At -v text="$text" <<SQL
BEGIN;
SET LOCAL ROLE ninaivalaigal_memory;
SET LOCAL app.current_user_id = '$user';
PREPARE chooser(text, bigint, timestamptz, timestamptz, timestamptz, bigint, bigint, bigint) AS
SELECT term FROM ($ANALYSIS) analysis WHERE required ORDER BY postings, term LIMIT 1;
EXECUTE chooser(:'text', NULL, NULL, NULL, NULL, NULL, 1000, $user);
COMMIT;
SQL
)
    before=$(time_statement "$user" "$text" "" <<<"$BEFORE_TEXT")
    analysis=$(time_statement "$user" "$text" "" "$PREPARE_ANALYSIS" <<<"$AFTER_ANALYSIS")
    walk=$(time_statement "$user" "$text" "$term" "$PREPARE_WALK" <<<"$AFTER_WALK")
    after=$(awk -v a="$analysis" -v w="$walk" 'BEGIN {printf "%.3f", a + w}')
    printf '| %-10s | %-24s | %-24s | %12s | %12s | %12s |\n' "${email%%@*}" "$text" "$term" "$before" "$after" "$analysis"
  done
done

# A page deep in Recall's order (its position half-way through the user's
# memories), as memory-service/src/db/position.rs writes where it starts,
# under the generic plan the memory-service keeps (db::PLAN_ONCE); "before"
# the same position written out with OR, which the index only filters.
DEEP_BEFORE="SET LOCAL plan_cache_mode = force_generic_plan; DEALLOCATE ALL;
PREPARE deep(timestamptz, bigint) AS SELECT created_at, id, data_bytes FROM memories
 WHERE created_at < \$1 OR (created_at = \$1 AND id < \$2)
 ORDER BY created_at DESC, id DESC LIMIT 21;"
DEEP_AFTER="SET LOCAL plan_cache_mode = force_generic_plan; DEALLOCATE ALL;
PREPARE deep(timestamptz, bigint) AS SELECT created_at, id, data_bytes FROM memories
 WHERE (created_at, id) < (\$1, \$2)
 ORDER BY created_at DESC, id DESC LIMIT 21;"
say "a page half-way down (median of $RUNS runs, ms; page of 20)"
printf '| %-10s | %12s | %12s |\n' user before after
printf '|%s|\n' "------------|--------------|--------------"
for email in small@example.com large@example.com; do
  user=$(psql_db -At -c "SELECT id FROM users WHERE email = '$email'")
  middle=$(psql_db -At -c "SELECT created_at || '|' || id FROM memories WHERE owner_id = $user
                            ORDER BY created_at DESC, id DESC
                           OFFSET (SELECT count(*) / 2 FROM memories WHERE owner_id = $user) LIMIT 1")
  execute="EXECUTE deep('${middle%%|*}', ${middle##*|});"
  before=$(time_statement "$user" "" "" "$DEEP_BEFORE" <<<"$execute")
  after=$(time_statement "$user" "" "" "$DEEP_AFTER" <<<"$execute")
  printf '| %-10s | %12s | %12s |\n' "${email%%@*}" "$before" "$after"
done

say "plans for the large user (after): the rare word, then two common words"
large=$(psql_db -At -c "SELECT id FROM users WHERE email = 'large@example.com'")
for pair in "$RARE:$RARE" "deploy database:databas"; do
  psql_db -v user="$large" -v text="${pair%%:*}" -v term="${pair##*:}" <<SQL
BEGIN;
SET LOCAL ROLE ninaivalaigal_memory;
SET LOCAL app.current_user_id = '$large';
$PREPARE_WALK
EXPLAIN (ANALYZE, COSTS OFF, BUFFERS) $AFTER_WALK
COMMIT;
SQL
done

say "Remember's INSERT, $INSERTS one per transaction as the memory role (pgbench)"
small=$(psql_db -At -c "SELECT id FROM users WHERE email = 'small@example.com'")
context=$(psql_db -At -c "SELECT id FROM recording_contexts WHERE owner_id = $small AND name = 'work'")
bench=$(mktemp)
chmod 644 "$bench"
cat >"$bench" <<SQL
BEGIN;
SET LOCAL ROLE ninaivalaigal_memory;
SET LOCAL app.current_user_id = '$small';
INSERT INTO memories (owner_id, context_id, memory_type, data)
    VALUES ($small, $context, 'note', json_build_object('text',
        'deploy of build ' || md5(random()::text) || ' failed again: database connection timeout '
        'while the migration ran; retry after the backup, then review the incident report '
        'with the team and the customer', 'ref', 'ticket' || (random() * 100000)::int));
COMMIT;
SQL
insert_latency() {
  as_postgres pgbench -n -c 1 -t "$INSERTS" -f "$bench" "$DB" 2>/dev/null \
    | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}
with_terms=$(insert_latency)
psql_db -c "ALTER TABLE memories DISABLE TRIGGER memory_terms_insert"
without_terms=$(insert_latency)
psql_db -c "ALTER TABLE memories ENABLE TRIGGER memory_terms_insert"
rm -f "$bench"
printf '| %-36s | %10s |\n' "INSERT of one memory (17 lexemes)" "ms (avg)"
printf '| %-36s | %10s |\n' "without memory_terms (trigger off)" "$without_terms" "with memory_terms" "$with_terms"
