-- Recall of the newest 20 as the memory-service runs it (plan: which
-- memories and their sizes; load: their data), one statement per round
-- trip, as a plain SQL client sends them. The plan's ids reach the load
-- through \gset, as an array of the page's first 20.
\set uid :first_id + :client_id % :users
BEGIN;
SET LOCAL app.current_user_id = :uid;
SET LOCAL statement_timeout = 5000;
SELECT (array_agg(id))[1:20] AS ids FROM (SELECT "memories"."created_at", "memories"."id", "memories"."context_id", "memories"."data_bytes" FROM "memories" WHERE ("memories"."context_id" = (SELECT "recording_contexts"."id" FROM "recording_contexts" WHERE ("recording_contexts"."name" = 'bench') LIMIT 1)) ORDER BY "memories"."created_at" DESC, "memories"."id" DESC LIMIT 21) plan \gset
SELECT "memories"."id", "memories"."context_id", "memories"."memory_type", "memories"."data", "memories"."created_at", "memories"."request_id", "recording_contexts"."name" FROM ("memories" INNER JOIN "recording_contexts" ON (("recording_contexts"."owner_id" = "memories"."owner_id") AND ("recording_contexts"."id" = "memories"."context_id"))) WHERE ("memories"."id" = ANY(':ids'::bigint[])) ORDER BY "memories"."created_at" DESC, "memories"."id" DESC;
COMMIT;
