-- Initial schema. Run as the owner role (ninaivalaigal_owner), which owns every
-- table. The services log in as ninaivalaigal_auth and ninaivalaigal_memory:
-- they own nothing, lack BYPASSRLS, and every table forces row-level security,
-- so each sees exactly the rows its policies allow. The roles themselves are
-- cluster-wide and created by deploy/local/postgres.sh (or your DBA).
--
-- Every user-data table is keyed by owner_id first, so the data can later be
-- distributed by owner (Citus co-location) without a rewrite.

-- Accounts. Only the auth-service reads and writes them; the memory-service
-- may read the caller's own row.
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT        NOT NULL CHECK (email = lower(btrim(email)) AND email <> ''),
    name          TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    account_type  TEXT        NOT NULL DEFAULT 'individual',
    role          TEXT        NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    disabled_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);

-- A session is one login: a family of refresh tokens, each used once.
CREATE TABLE sessions (
    id                 UUID        PRIMARY KEY,
    user_id            BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    refreshed_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When the refresh token family stops being usable.
    expires_at         TIMESTAMPTZ NOT NULL,
    -- Expiry of the newest access token issued in this session.
    access_expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at         TIMESTAMPTZ,
    revoked_reason     TEXT
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

-- Refresh tokens, stored only as SHA-256 hashes of the random token.
CREATE TABLE refresh_tokens (
    token_hash  BYTEA       PRIMARY KEY,
    session_id  UUID        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at     TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

-- Sessions whose access tokens must no longer be honored, kept until those
-- tokens expire. No foreign key: a deleted user's revocations must outlive
-- the user. The memory-service polls this table.
CREATE TABLE revoked_sessions (
    session_id         UUID        PRIMARY KEY,
    user_id            BIGINT      NOT NULL,
    revoked_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    access_expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX revoked_sessions_access_expires_at_idx ON revoked_sessions (access_expires_at);

-- Audit trail of the auth-service. Never holds a password or a token.
CREATE TABLE audit_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    event        TEXT        NOT NULL,
    -- The account concerned, if known (no foreign key: it outlives deletion).
    user_id      BIGINT,
    -- The admin who acted, for admin actions.
    actor_id     BIGINT,
    -- The email that was presented, for failures on unknown accounts.
    email        TEXT,
    client_addr  TEXT,
    detail       JSONB       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_user_id_idx ON audit_events (user_id, occurred_at);

-- Recording contexts: one per project, names unique per owner.
CREATE TABLE recording_contexts (
    owner_id     BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id           BIGINT GENERATED ALWAYS AS IDENTITY,
    name         TEXT        NOT NULL,
    description  TEXT        NOT NULL DEFAULT '',
    visibility   TEXT        NOT NULL DEFAULT 'private' CHECK (visibility IN ('private')),
    is_active    BOOLEAN     NOT NULL DEFAULT false,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, id),
    UNIQUE (owner_id, name)
);
-- At most one recording context per owner.
CREATE UNIQUE INDEX recording_contexts_one_active_idx
    ON recording_contexts (owner_id) WHERE is_active;

-- Memories. `data` is `json`, not `jsonb`, so it comes back byte for byte as
-- it was stored; `search` indexes its text for Recall's query.
CREATE TABLE memories (
    owner_id     BIGINT      NOT NULL,
    id           BIGINT GENERATED ALWAYS AS IDENTITY,
    context_id   BIGINT      NOT NULL,
    memory_type  TEXT        NOT NULL,
    data         JSON        NOT NULL,
    search       TSVECTOR    NOT NULL GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, memory_type), 'A') ||
        setweight(json_to_tsvector('english'::regconfig, data, '["string"]'::jsonb), 'B')
    ) STORED,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (owner_id, id),
    FOREIGN KEY (owner_id, context_id)
        REFERENCES recording_contexts (owner_id, id) ON DELETE CASCADE
);
CREATE INDEX memories_context_recent_idx ON memories (owner_id, context_id, created_at DESC, id DESC);
CREATE INDEX memories_owner_recent_idx ON memories (owner_id, created_at DESC, id DESC);
CREATE INDEX memories_search_idx ON memories USING GIN (search);

-- Row-level security: every table forces it, so even the owner role sees
-- nothing without a policy. The memory-service's policies compare against
-- the per-transaction setting app.current_user_id; when it is missing the
-- comparison is NULL and nothing is visible or writable (fail closed).
ALTER TABLE users              ENABLE ROW LEVEL SECURITY;
ALTER TABLE users              FORCE ROW LEVEL SECURITY;
ALTER TABLE sessions           ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions           FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens     ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens     FORCE ROW LEVEL SECURITY;
ALTER TABLE revoked_sessions   ENABLE ROW LEVEL SECURITY;
ALTER TABLE revoked_sessions   FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_events       ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events       FORCE ROW LEVEL SECURITY;
ALTER TABLE recording_contexts ENABLE ROW LEVEL SECURITY;
ALTER TABLE recording_contexts FORCE ROW LEVEL SECURITY;
ALTER TABLE memories           ENABLE ROW LEVEL SECURITY;
ALTER TABLE memories           FORCE ROW LEVEL SECURITY;

-- The auth-service is the identity authority: it must find accounts by email
-- before anyone is authenticated, so it sees all of its own tables.
CREATE POLICY auth_service_all ON users            FOR ALL TO ninaivalaigal_auth USING (true) WITH CHECK (true);
CREATE POLICY auth_service_all ON sessions         FOR ALL TO ninaivalaigal_auth USING (true) WITH CHECK (true);
CREATE POLICY auth_service_all ON refresh_tokens   FOR ALL TO ninaivalaigal_auth USING (true) WITH CHECK (true);
CREATE POLICY auth_service_all ON revoked_sessions FOR ALL TO ninaivalaigal_auth USING (true) WITH CHECK (true);
CREATE POLICY auth_service_all ON audit_events     FOR ALL TO ninaivalaigal_auth USING (true) WITH CHECK (true);

-- The memory-service sees the caller's own account row and the revocation
-- list (which holds no user data beyond ids).
CREATE POLICY memory_service_own_user ON users FOR SELECT TO ninaivalaigal_memory
    USING (id = NULLIF(current_setting('app.current_user_id', true), '')::bigint);
CREATE POLICY memory_service_read ON revoked_sessions FOR SELECT TO ninaivalaigal_memory
    USING (true);

-- The caller's own contexts and memories, nothing else.
CREATE POLICY owner_isolation ON recording_contexts FOR ALL TO ninaivalaigal_memory
    USING (owner_id = NULLIF(current_setting('app.current_user_id', true), '')::bigint)
    WITH CHECK (owner_id = NULLIF(current_setting('app.current_user_id', true), '')::bigint);
CREATE POLICY owner_isolation ON memories FOR ALL TO ninaivalaigal_memory
    USING (owner_id = NULLIF(current_setting('app.current_user_id', true), '')::bigint)
    WITH CHECK (owner_id = NULLIF(current_setting('app.current_user_id', true), '')::bigint);

-- Privileges: what each service may do at all; RLS then narrows the rows.
GRANT USAGE ON SCHEMA public TO ninaivalaigal_auth, ninaivalaigal_memory;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, sessions, refresh_tokens, revoked_sessions TO ninaivalaigal_auth;
GRANT SELECT, INSERT ON audit_events TO ninaivalaigal_auth;
GRANT SELECT ON users, revoked_sessions TO ninaivalaigal_memory;
GRANT SELECT, INSERT, UPDATE, DELETE ON recording_contexts, memories TO ninaivalaigal_memory;
