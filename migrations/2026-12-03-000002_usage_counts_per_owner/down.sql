-- The function as migration 2026-11-24-000003_memory_quotas made it.
CREATE OR REPLACE FUNCTION memory_usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
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
