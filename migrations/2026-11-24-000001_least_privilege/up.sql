-- Least privilege for the memory-service's role. It never reads accounts,
-- and the users table holds every password hash: it loses the table
-- entirely (its old policy trusted a setting the role sets itself). Of the
-- revocation list it reads which session and until when, nothing more.
-- Foreign keys to users still hold: PostgreSQL checks them as the owner.
DROP POLICY memory_service_own_user ON users;
REVOKE ALL ON users FROM ninaivalaigal_memory;
REVOKE ALL ON revoked_sessions FROM ninaivalaigal_memory;
GRANT SELECT (session_id, access_expires_at) ON revoked_sessions TO ninaivalaigal_memory;

-- Readiness: each service checks that the schema has the migrations it was
-- built with before it reports SERVING. (The table is diesel's bookkeeping;
-- a database migrated by other means has none, and is then never ready.)
DO $$
BEGIN
    IF to_regclass('__diesel_schema_migrations') IS NOT NULL THEN
        GRANT SELECT ON __diesel_schema_migrations TO ninaivalaigal_auth, ninaivalaigal_memory;
    END IF;
END
$$;
