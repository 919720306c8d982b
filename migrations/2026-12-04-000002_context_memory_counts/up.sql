-- Each context's number of memories, kept beside it. ListContexts,
-- GetContext, StartRecording and StopRecording answer it, and counting the
-- memories every time made them as slow as the contexts are large: 176 ms
-- (warm; 881 ms cold) to list the five contexts of an account with a
-- million memories (deploy/local/recall-scale.sh's data).
ALTER TABLE recording_contexts ADD COLUMN memory_count BIGINT NOT NULL DEFAULT 0;

-- The counts of the memories stored so far. The owner role sees no rows
-- while the tables force row security, so it lifts that for this statement
-- (inside the migration's transaction, which holds both tables locked).
ALTER TABLE recording_contexts NO FORCE ROW LEVEL SECURITY;
ALTER TABLE memories NO FORCE ROW LEVEL SECURITY;
UPDATE recording_contexts c
   SET memory_count = m.memories
  FROM (SELECT owner_id, context_id, count(*) AS memories
          FROM memories GROUP BY owner_id, context_id) m
 WHERE c.owner_id = m.owner_id AND c.id = m.context_id;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;
ALTER TABLE recording_contexts FORCE ROW LEVEL SECURITY;

-- memory_usage_count() keeps the contexts' counts too, in the same
-- statement-level triggers, so every way a memory goes (Forget,
-- DeleteContext, an import, a cascade) is counted once per statement and
-- context. Each context's row is written by its owner_id and id: on Citus
-- (deploy/citus/distribute.sql) that is the co-located shard, on the
-- worker where the trigger fires, as for memory_usage. A Remember has
-- locked its owner's usage row before it inserts, so Remembers of one
-- owner update their contexts' rows one at a time.
CREATE OR REPLACE FUNCTION memory_usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed RECORD;
BEGIN
    -- Only the memory-service keeps counts. Another role deletes memories
    -- only through an account's deletion (the auth-service's DeleteUser, a
    -- cascade whose triggers fire as that role), which takes the account's
    -- usage row and contexts with it: nothing to count, and no privilege to
    -- do it with.
    IF NOT has_table_privilege('memory_usage', 'UPDATE') THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        -- Only UPDATE: a row that is gone needs no count (an insert here
        -- could even name an account being deleted). A context deleted by
        -- this same statement (DeleteContext's cascade) is gone already
        -- and matches nothing.
        FOR changed IN
            SELECT owner_id, count(*) AS memories, coalesce(sum(data_bytes), 0) AS bytes
              FROM old_rows GROUP BY owner_id
        LOOP
            UPDATE memory_usage u
               SET memories = u.memories - changed.memories, bytes = u.bytes - changed.bytes
             WHERE u.owner_id = changed.owner_id;
        END LOOP;
        FOR changed IN
            SELECT owner_id, context_id, count(*) AS memories
              FROM old_rows GROUP BY owner_id, context_id
        LOOP
            UPDATE recording_contexts c
               SET memory_count = c.memory_count - changed.memories
             WHERE c.owner_id = changed.owner_id AND c.id = changed.context_id;
        END LOOP;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        FOR changed IN
            SELECT owner_id, count(*) AS memories, coalesce(sum(data_bytes), 0) AS bytes
              FROM new_rows GROUP BY owner_id
        LOOP
            INSERT INTO memory_usage AS u (owner_id, memories, bytes)
                VALUES (changed.owner_id, changed.memories, changed.bytes)
            ON CONFLICT (owner_id) DO UPDATE
               SET memories = u.memories + EXCLUDED.memories, bytes = u.bytes + EXCLUDED.bytes;
        END LOOP;
        -- The foreign key from memories holds: every context exists.
        FOR changed IN
            SELECT owner_id, context_id, count(*) AS memories
              FROM new_rows GROUP BY owner_id, context_id
        LOOP
            UPDATE recording_contexts c
               SET memory_count = c.memory_count + changed.memories
             WHERE c.owner_id = changed.owner_id AND c.id = changed.context_id;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
