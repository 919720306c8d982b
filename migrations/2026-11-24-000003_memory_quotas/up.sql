-- What each owner keeps in the memory-service, for its per-user quotas.
-- Triggers on memories keep the counts, so every way a memory goes (Forget,
-- DeleteContext, the cascade from a context or an account) frees its share;
-- the memory-service locks the owner's row while it checks a Remember
-- against the limits, so concurrent Remembers take turns at the edge.
-- The size of each memory as stored, kept beside it: Recall plans a page by
-- size before it loads any data, and the counts below add sizes up, neither
-- of which should have to read (and decompress) the JSON itself.
ALTER TABLE memories
    ADD COLUMN data_bytes INTEGER NOT NULL GENERATED ALWAYS AS (octet_length(data::text)) STORED;

CREATE TABLE memory_usage (
    owner_id  BIGINT NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- Number of memories.
    memories  BIGINT NOT NULL DEFAULT 0,
    -- Sum of memories.data_bytes: the bytes of JSON stored.
    bytes     BIGINT NOT NULL DEFAULT 0
);

-- Usage of the memories stored so far. The owner role sees no memories
-- while the table forces row security, so it lifts that for this statement
-- (inside the migration's transaction, which holds the table locked).
ALTER TABLE memories NO FORCE ROW LEVEL SECURITY;
INSERT INTO memory_usage (owner_id, memories, bytes)
    SELECT owner_id, count(*), coalesce(sum(data_bytes), 0)
      FROM memories GROUP BY owner_id;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;

ALTER TABLE memory_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_isolation ON memory_usage FOR ALL TO ninaivalaigal_memory
    USING (owner_id = NULLIF(current_setting('app.current_user_id', true), '')::bigint)
    WITH CHECK (owner_id = NULLIF(current_setting('app.current_user_id', true), '')::bigint);
-- Create the row, lock it (a no-op upsert), read it and change it; never delete.
GRANT SELECT, INSERT, UPDATE ON memory_usage TO ninaivalaigal_memory;

-- Runs as the invoker (no SECURITY DEFINER): the memory-service's changes
-- reach only its caller's usage row under the policy above.
CREATE FUNCTION memory_usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only the memory-service keeps counts. Another role deletes memories
    -- only through an account's deletion (the auth-service's DeleteUser, a
    -- cascade whose triggers fire as that role), which takes the account's
    -- usage row with it: nothing to count, and no privilege to do it with.
    IF NOT has_table_privilege('memory_usage', 'UPDATE') THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        -- Only UPDATE: a row that is gone needs no count (an insert here
        -- could even name an account being deleted).
        UPDATE memory_usage u
           SET memories = u.memories - gone.memories, bytes = u.bytes - gone.bytes
          FROM (SELECT owner_id, count(*) AS memories,
                       coalesce(sum(data_bytes), 0) AS bytes
                  FROM old_rows GROUP BY owner_id) gone
         WHERE u.owner_id = gone.owner_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO memory_usage AS u (owner_id, memories, bytes)
            SELECT owner_id, count(*), coalesce(sum(data_bytes), 0)
              FROM new_rows GROUP BY owner_id
        ON CONFLICT (owner_id) DO UPDATE
           SET memories = u.memories + EXCLUDED.memories, bytes = u.bytes + EXCLUDED.bytes;
    END IF;
    RETURN NULL;
END
$$;

-- Per statement, so DeleteContext updates the row once, not once per memory.
CREATE TRIGGER memory_usage_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memory_usage_count();
CREATE TRIGGER memory_usage_update AFTER UPDATE ON memories
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memory_usage_count();
CREATE TRIGGER memory_usage_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION memory_usage_count();
