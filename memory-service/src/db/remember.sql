WITH usage AS (
    INSERT INTO memory_usage AS u (owner_id) VALUES ($1)
    ON CONFLICT (owner_id) DO UPDATE SET owner_id = EXCLUDED.owner_id
    RETURNING u.owner_id, u.memories, u.bytes
), context AS (
    SELECT usage.owner_id, c.id, c.name
      FROM recording_contexts c, usage
     WHERE (c.name = $2 OR ($3 AND c.is_active))
       AND usage.memories < $4
       AND usage.bytes <= $5 - $6
       FOR SHARE OF c
), stored AS (
    INSERT INTO memories (owner_id, context_id, memory_type, data, request_id)
    SELECT context.owner_id, context.id, $7, $8, $9 FROM context
    ON CONFLICT (owner_id, request_id) DO NOTHING
    RETURNING id, context_id, memory_type, data, created_at, request_id
)
SELECT stored.id, stored.context_id, stored.memory_type, stored.data,
       stored.created_at, stored.request_id, context.name AS context_name
  FROM stored JOIN context ON context.id = stored.context_id
