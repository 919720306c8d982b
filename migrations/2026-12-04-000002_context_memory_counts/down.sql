-- memory_usage_count() as it was before, counting owners only.
CREATE OR REPLACE FUNCTION memory_usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed RECORD;
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
        FOR changed IN
            SELECT owner_id, count(*) AS memories, coalesce(sum(data_bytes), 0) AS bytes
              FROM old_rows GROUP BY owner_id
        LOOP
            UPDATE memory_usage u
               SET memories = u.memories - changed.memories, bytes = u.bytes - changed.bytes
             WHERE u.owner_id = changed.owner_id;
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
    END IF;
    RETURN NULL;
END
$$;

ALTER TABLE recording_contexts DROP COLUMN memory_count;
