-- Distributes Ninaivalaigal's tables over the Citus cluster, run once by
-- deploy/citus/database.sh as the tables' owner on the coordinator, right
-- after the migrations (while the tables are still empty).
--
-- User data (recording_contexts, memories, memory_terms, memory_usage):
-- hash-distributed by owner_id and co-located, so all of one user's rows
-- live in one shard group on one worker: their primary keys, unique
-- constraints and foreign keys all include owner_id, which is what lets each worker enforce them
-- alone, and the row-level security policies are copied onto every shard.
--
-- users: a reference table (a copy on every node), because the user-data
-- tables have foreign keys to it (ON DELETE CASCADE: deleting an account
-- deletes its data on whichever worker holds it); Citus allows a foreign key
-- from a distributed table only to a co-located or a reference table.
--
-- sessions, refresh_tokens, revoked_sessions, audit_events: the
-- auth-service's tables stay on the coordinator (Citus "local" tables, kept
-- in its metadata because sessions references users): only the auth-service
-- writes them, at every login and refresh, and only the coordinator reads
-- them; as reference tables every such write would go to every node in two
-- phases, for nothing.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
-- memories has per-statement triggers that keep memory_usage current and
-- per-row triggers that fill memory_terms. They run on the worker, against
-- the caller's memory_usage row and memory_terms shard, which are co-located
-- with the memories they follow (the same shard group, on the same worker,
-- in the same transaction): the case Citus calls "unsafe" is a trigger that
-- reaches another node.
SET citus.enable_unsafe_triggers = on;
SET citus.shard_count = :shard_count;

-- A table whose foreign keys reach a local table cannot be distributed, and
-- one that references a reference table is turned into a Citus local table
-- (for good: identity columns keep it from being changed again). So the
-- user-data tables let go of their foreign keys while the tables take their
-- places, and get them back, the same, once they are distributed.
ALTER TABLE memory_terms DROP CONSTRAINT memory_terms_owner_id_memory_id_fkey;
ALTER TABLE memories DROP CONSTRAINT memories_owner_id_context_id_fkey;
ALTER TABLE recording_contexts DROP CONSTRAINT recording_contexts_owner_id_fkey;
ALTER TABLE memory_usage DROP CONSTRAINT memory_usage_owner_id_fkey;

-- sessions and refresh_tokens, which reference users, become Citus local
-- tables here (on the coordinator only).
SELECT create_reference_table('users');
SELECT create_distributed_table('recording_contexts', 'owner_id');
SELECT create_distributed_table('memories', 'owner_id', colocate_with => 'recording_contexts');
SELECT create_distributed_table('memory_usage', 'owner_id', colocate_with => 'recording_contexts');
-- The term index of memories (Recall's text queries), beside them: its
-- trigger on memories writes the same owner's shard, on the same worker.
SELECT create_distributed_table('memory_terms', 'owner_id', colocate_with => 'recording_contexts');

ALTER TABLE recording_contexts ADD CONSTRAINT recording_contexts_owner_id_fkey
    FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE memory_usage ADD CONSTRAINT memory_usage_owner_id_fkey
    FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE memories ADD CONSTRAINT memories_owner_id_context_id_fkey
    FOREIGN KEY (owner_id, context_id) REFERENCES recording_contexts (owner_id, id) ON DELETE CASCADE;
ALTER TABLE memory_terms ADD CONSTRAINT memory_terms_owner_id_memory_id_fkey
    FOREIGN KEY (owner_id, memory_id) REFERENCES memories (owner_id, id) ON DELETE CASCADE;
