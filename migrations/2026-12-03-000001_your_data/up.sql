-- Your data, your way: retry-safe writes, import, and erasure of an account.

-- Idempotent Remember: the client's request id, unique per owner. A plain
-- unique constraint (NULLs are distinct) so that INSERT ... ON CONFLICT
-- names it without a predicate; racing retries resolve to one row. Keyed by
-- owner first: one user's ids never collide with another's.
ALTER TABLE memories ADD COLUMN request_id UUID;
ALTER TABLE memories ADD CONSTRAINT memories_owner_request_id_key UNIQUE (owner_id, request_id);

-- Erasure (DeleteAccount, AdminService.DeleteUser) runs in the auth-service,
-- which may already delete any account, and with it (ON DELETE CASCADE)
-- every context and memory of it. To tell the user what was erased it
-- deletes them itself and counts them: it gets DELETE and the one column a
-- DELETE ... WHERE owner_id needs, never the data, and only on the rows of
-- the account named for the transaction in app.erasing_user_id (unset:
-- nothing, fail closed). The cascade would reach these rows anyway, so this
-- grants no power over data beyond what deleting the account already had.
--
-- It starts with the account's memory_usage row: every writer of the
-- memory-service locks that row before it touches the user's memories
-- (Remember, RememberMany, ImportMemories, Forget, DeleteContext), so taking
-- it first puts the erasure in the same order and it never deadlocks with
-- them; writes that come after it find the account gone.
GRANT SELECT (owner_id), DELETE ON memory_usage, recording_contexts, memories TO ninaivalaigal_auth;
CREATE POLICY auth_service_erase_read ON memory_usage FOR SELECT TO ninaivalaigal_auth
    USING (owner_id = NULLIF(current_setting('app.erasing_user_id', true), '')::bigint);
CREATE POLICY auth_service_erase ON memory_usage FOR DELETE TO ninaivalaigal_auth
    USING (owner_id = NULLIF(current_setting('app.erasing_user_id', true), '')::bigint);
CREATE POLICY auth_service_erase_read ON recording_contexts FOR SELECT TO ninaivalaigal_auth
    USING (owner_id = NULLIF(current_setting('app.erasing_user_id', true), '')::bigint);
CREATE POLICY auth_service_erase ON recording_contexts FOR DELETE TO ninaivalaigal_auth
    USING (owner_id = NULLIF(current_setting('app.erasing_user_id', true), '')::bigint);
CREATE POLICY auth_service_erase_read ON memories FOR SELECT TO ninaivalaigal_auth
    USING (owner_id = NULLIF(current_setting('app.erasing_user_id', true), '')::bigint);
CREATE POLICY auth_service_erase ON memories FOR DELETE TO ninaivalaigal_auth
    USING (owner_id = NULLIF(current_setting('app.erasing_user_id', true), '')::bigint);

-- The audit trail of an erased account keeps only its numeric id and the
-- events: the auth-service blanks the email, the client address and the
-- details of its rows. Only those columns; rows are still never rewritten
-- otherwise.
GRANT UPDATE (email, client_addr, detail) ON audit_events TO ninaivalaigal_auth;
