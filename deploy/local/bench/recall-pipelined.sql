-- Recall of the newest 20 in one pipeline (pgbench -M prepared): the load
-- takes its ids from the plan as a subquery, since a pipeline cannot carry
-- one statement's result into the next. The least work and round trips
-- that give the same page: the limit the service is measured against.
\set uid :first_id + :client_id % :users
\startpipeline
BEGIN;
SELECT set_config('app.current_user_id', CAST(:uid AS text), true),
       set_config('statement_timeout', '5000', true);
SELECT "memories"."id", "memories"."context_id", "memories"."memory_type", "memories"."data", "memories"."created_at", "memories"."request_id", "recording_contexts"."name" FROM ("memories" INNER JOIN "recording_contexts" ON (("recording_contexts"."owner_id" = "memories"."owner_id") AND ("recording_contexts"."id" = "memories"."context_id"))) WHERE ("memories"."id" = ANY(ARRAY(SELECT id FROM (SELECT "memories"."created_at", "memories"."id", "memories"."context_id", "memories"."data_bytes" FROM "memories" WHERE ("memories"."context_id" = (SELECT "recording_contexts"."id" FROM "recording_contexts" WHERE ("recording_contexts"."name" = 'bench') LIMIT 1)) ORDER BY "memories"."created_at" DESC, "memories"."id" DESC LIMIT 21) plan LIMIT 20))) ORDER BY "memories"."created_at" DESC, "memories"."id" DESC;
COMMIT;
\endpipeline
