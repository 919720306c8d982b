-- Recall of the newest 20 as the memory-service runs it
-- (memory-service/src/db/page_named.sql: plan, cut to the byte budget and
-- load in one statement), one statement per round trip, as a plain SQL
-- client sends them.
\set uid :first_id + :client_id % :users
BEGIN;
SET LOCAL app.current_user_id = :uid;
SET LOCAL statement_timeout = 5000;
WITH selected_context AS (SELECT "recording_contexts"."id", "recording_contexts"."name" FROM "recording_contexts" WHERE ("recording_contexts"."name" = 'bench') LIMIT 1), planned AS (SELECT "memories"."created_at", "memories"."id", "memories"."context_id", "memories"."data_bytes", "memories"."owner_id", "memories"."memory_type", "memories"."data", "memories"."request_id" FROM "memories" WHERE ("memories"."context_id" = (SELECT selected_context.id FROM selected_context)) ORDER BY "memories"."created_at" DESC, "memories"."id" DESC LIMIT 21) SELECT planned.created_at, planned.id, planned.context_id, planned.data_bytes, planned.memory_type, planned.request_id, (SELECT selected_context.name FROM selected_context) AS context_name, CASE WHEN row_number() OVER newest <= 20 AND (row_number() OVER newest = 1 OR sum(planned.data_bytes::bigint + 256) OVER newest <= 3145728) THEN planned.data END AS data FROM planned WINDOW newest AS (ORDER BY planned.created_at DESC, planned.id DESC ROWS UNBOUNDED PRECEDING) ORDER BY planned.created_at DESC, planned.id DESC;
COMMIT;
