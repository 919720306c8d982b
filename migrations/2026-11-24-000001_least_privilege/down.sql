DO $$
BEGIN
    IF to_regclass('__diesel_schema_migrations') IS NOT NULL THEN
        REVOKE SELECT ON __diesel_schema_migrations FROM ninaivalaigal_auth, ninaivalaigal_memory;
    END IF;
END
$$;
REVOKE ALL ON revoked_sessions FROM ninaivalaigal_memory;
GRANT SELECT ON users, revoked_sessions TO ninaivalaigal_memory;
CREATE POLICY memory_service_own_user ON users FOR SELECT TO ninaivalaigal_memory
    USING (id = NULLIF(current_setting('app.current_user_id', true), '')::bigint);
