-- Remember as the memory-service runs it, its statements prepared and sent
-- together in one pipeline (pgbench -M prepared): what PostgreSQL can do
-- with the same work in one round trip. SET takes no parameters, so the
-- transaction-local settings are made with set_config(..., true).
\set uid :first_id + :client_id % :users
\startpipeline
BEGIN;
SELECT set_config('app.current_user_id', CAST(:uid AS text), true),
       set_config('statement_timeout', '5000', true);
WITH usage AS (
    INSERT INTO memory_usage AS u (owner_id) VALUES (:uid)
    ON CONFLICT (owner_id) DO UPDATE SET owner_id = EXCLUDED.owner_id
    RETURNING u.owner_id, u.memories, u.bytes
), context AS (
    SELECT usage.owner_id, c.id, c.name
      FROM recording_contexts c, usage
     WHERE (c.name = 'bench' OR (false AND c.is_active))
       AND usage.memories < 100000
       AND usage.bytes <= 1073741824 - 95
       FOR SHARE OF c
), stored AS (
    INSERT INTO memories (owner_id, context_id, memory_type, data, request_id)
    SELECT context.owner_id, context.id, 'note',
           '{"n":7,"tags":["em-bench-load"],"text":"note 7: schema token and index"}', NULL
      FROM context
    ON CONFLICT (owner_id, request_id) DO NOTHING
    RETURNING id, context_id, memory_type, data, created_at, request_id
)
SELECT stored.id, stored.context_id, stored.memory_type, stored.data,
       stored.created_at, stored.request_id, context.name AS context_name
  FROM stored JOIN context ON context.id = stored.context_id;
COMMIT;
\endpipeline
