-- A term index for Recall's text queries that row-level security lets the
-- planner use.
--
-- memories.search has a GIN index, but under the owner_isolation policy the
-- planner must apply the policy's qual before any qual that is not
-- leakproof, and `@@` (ts_match_vq) is not: the GIN index is never used,
-- and a text Recall scans the caller's memories newest first, testing each.
-- A rare word at a million memories reads all of them. Marking operators
-- leakproof takes a superuser (and managed PostgreSQL forbids it).
--
-- memory_terms holds one row per distinct lexeme of each memory's `search`,
-- in Recall's order within (owner, term). Equality on `term` (texteq) is
-- leakproof, so under the same policy as memories its primary key is an
-- index PostgreSQL does use: Recall walks the postings of one lexeme that
-- every match must contain, newest first, and keeps `search @@ query` on
-- the memories it reaches as the exact test (see memory-service
-- src/db/terms.rs). context_id rides along in the index so that a Recall in
-- one context skips other contexts' postings without visiting memories.
CREATE TABLE memory_terms (
    owner_id    BIGINT      NOT NULL,
    term        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    memory_id   BIGINT      NOT NULL,
    context_id  BIGINT      NOT NULL,
    PRIMARY KEY (owner_id, term, created_at, memory_id) INCLUDE (context_id),
    -- Forget, DeleteContext, an account's deletion and its erasure all take
    -- the postings along. The cascade runs as the table's owner, outside
    -- the policies (as PostgreSQL runs every foreign key action), so the
    -- auth-service's erasure needs no grant or policy here.
    FOREIGN KEY (owner_id, memory_id) REFERENCES memories (owner_id, id) ON DELETE CASCADE
);
-- For the cascade: one lookup per deleted memory.
CREATE INDEX memory_terms_memory_idx ON memory_terms (owner_id, memory_id);

ALTER TABLE memory_terms ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_terms FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_isolation ON memory_terms FOR ALL TO ninaivalaigal_memory
    USING (owner_id = NULLIF(current_setting('app.current_user_id', true), '')::bigint)
    WITH CHECK (owner_id = NULLIF(current_setting('app.current_user_id', true), '')::bigint);
-- Read by Recall; written by the triggers below, which run as the invoker
-- (no SECURITY DEFINER), so the memory-service writes only its caller's
-- postings. No UPDATE: a changed memory's postings are replaced.
GRANT SELECT, INSERT, DELETE ON memory_terms TO ninaivalaigal_memory;

-- The postings of a memory as it is stored. Per row rather than per
-- statement over a transition table: on Citus (deploy/citus/distribute.sql)
-- the trigger fires on the worker of the memory's shard, where a statement
-- on a distributed table cannot read a transition table; the memory-service
-- inserts one memory per statement anyway.
CREATE FUNCTION memory_terms_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_terms (owner_id, term, created_at, memory_id, context_id)
        SELECT NEW.owner_id, term, NEW.created_at, NEW.id, NEW.context_id
          FROM unnest(tsvector_to_array(NEW.search)) AS term;
    RETURN NULL;
END
$$;

-- The memory-service never changes a memory, but its role may: a change of
-- what is searched, or of where the memory sits in Recall's order, replaces
-- its postings. (Its key cannot change while postings reference it.)
CREATE FUNCTION memory_terms_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.search, NEW.created_at, NEW.context_id)
       IS DISTINCT FROM (OLD.search, OLD.created_at, OLD.context_id) THEN
        DELETE FROM memory_terms WHERE owner_id = OLD.owner_id AND memory_id = OLD.id;
        INSERT INTO memory_terms (owner_id, term, created_at, memory_id, context_id)
            SELECT NEW.owner_id, term, NEW.created_at, NEW.id, NEW.context_id
              FROM unnest(tsvector_to_array(NEW.search)) AS term;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER memory_terms_insert AFTER INSERT ON memories
    FOR EACH ROW EXECUTE FUNCTION memory_terms_insert();
CREATE TRIGGER memory_terms_update AFTER UPDATE ON memories
    FOR EACH ROW EXECUTE FUNCTION memory_terms_update();

-- The postings of the memories stored so far. The owner role sees no rows
-- while the tables force row security, so it lifts that for this statement
-- (inside the migration's transaction, which holds both tables locked).
ALTER TABLE memories NO FORCE ROW LEVEL SECURITY;
ALTER TABLE memory_terms NO FORCE ROW LEVEL SECURITY;
INSERT INTO memory_terms (owner_id, term, created_at, memory_id, context_id)
    SELECT m.owner_id, term, m.created_at, m.id, m.context_id
      FROM memories m, unnest(tsvector_to_array(m.search)) AS term;
ALTER TABLE memory_terms FORCE ROW LEVEL SECURITY;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;
