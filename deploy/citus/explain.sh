#!/usr/bin/env bash
# EXPLAIN ANALYZE of the statements of Recall and Remember, as the
# memory-service runs them (its role, a user set with SET LOCAL), on each
# database named (default: ninaivalaigal), for one of the users that
# deploy/citus/figures.sh's load registered:
#   deploy/citus/explain.sh [DATABASE...]
# On Citus the plan shows the routing (Task Count: 1 for a query that names
# the owner, every shard otherwise) and the time on the worker against the
# time seen on the coordinator; psql's \timing adds the round trip to it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ $# -gt 0 ] || set -- ninaivalaigal

# Where the time goes: the statements of Recall (plan a page, load it) and
# of Remember (lock the usage row, insert), for one of the load's users, as
# the memory-service runs them.
{
  for database in "$@"; do
    # The auth role reads accounts (the owner role sees no rows: FORCE RLS).
    owner=$(PGPASSWORD=$(db_env_value NINAIVALAIGAL_AUTH_DB_PASSWORD) "$PG_BIN/psql" -X -At \
      -h 127.0.0.1 -p "$COORDINATOR_PORT" -U ninaivalaigal_auth -d "$database" \
      -c "SELECT max(id) FROM users WHERE email LIKE 'overload-%@overload.example' AND email NOT LIKE '%login%' AND email NOT LIKE '%victim%'")
    echo "=== $database (user $owner)"
    PGPASSWORD=$(db_env_value NINAIVALAIGAL_MEMORY_DB_PASSWORD) "$PG_BIN/psql" -X -q \
      -h 127.0.0.1 -p "$COORDINATOR_PORT" -U ninaivalaigal_memory -d "$database" <<SQL
\\pset pager off
\\timing on
BEGIN;
SET LOCAL app.current_user_id = '$owner';
SELECT id AS ctx FROM recording_contexts WHERE name LIKE 'overload-%' LIMIT 1 \\gset
-- Recall: plan a page of the newest 20 (+1) in a context, then load it.
EXPLAIN (ANALYZE, VERBOSE, COSTS OFF)
SELECT created_at, id, data_bytes FROM memories
 WHERE context_id = :ctx ORDER BY created_at DESC, id DESC LIMIT 21;
-- The same, naming the owner: on Citus, routed to the owner's one shard
-- instead of sent to all of them (RLS decides either way).
EXPLAIN (ANALYZE, VERBOSE, COSTS OFF)
SELECT created_at, id, data_bytes FROM memories
 WHERE owner_id = $owner AND context_id = :ctx ORDER BY created_at DESC, id DESC LIMIT 21;
SELECT string_agg(id::text, ',') AS ids FROM (SELECT id FROM memories WHERE context_id = :ctx
 ORDER BY created_at DESC, id DESC LIMIT 20) AS page \\gset
EXPLAIN (ANALYZE, COSTS OFF)
SELECT m.id, m.data, c.name FROM memories m
  JOIN recording_contexts c ON c.owner_id = m.owner_id AND c.id = m.context_id
 WHERE m.id IN (:ids) ORDER BY m.created_at DESC, m.id DESC;
-- Remember: lock the usage row, insert.
EXPLAIN (ANALYZE, COSTS OFF)
INSERT INTO memory_usage (owner_id) VALUES ($owner)
    ON CONFLICT (owner_id) DO UPDATE SET owner_id = excluded.owner_id RETURNING memories;
EXPLAIN (ANALYZE, COSTS OFF)
INSERT INTO memories (owner_id, context_id, memory_type, data)
VALUES ($owner, :ctx, 'note', '{"text": "explain"}');
ROLLBACK;
SQL
  done
} 2>&1

