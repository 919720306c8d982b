-- The roles and the database, for a PostgreSQL server of your own. Run it as
-- a superuser (or your provider's role-creating admin), once per server and
-- again whenever you change a password: it is idempotent. The passwords
-- reach psql as variables on its standard input, never on its command line:
--
--   { printf '\\set owner_pw %s\n\\set auth_pw %s\n\\set memory_pw %s\n' \
--       "$OWNER_PW" "$AUTH_PW" "$MEMORY_PW"; cat deploy/kubernetes/roles.sql; } \
--     | psql -X -v ON_ERROR_STOP=1 "host=db.example user=postgres dbname=postgres"
--
-- The services log in as roles that own nothing and cannot bypass row-level
-- security; the owner role runs the migrations. Roles are cluster-wide (a
-- dump of the database does not carry them). deploy/local/postgres.sh sets up
-- the same roles on a developer machine, and deploy/container/compose.yaml
-- runs this file.
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I', r)
  FROM unnest(ARRAY['ninaivalaigal_owner', 'ninaivalaigal_auth', 'ninaivalaigal_memory']) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE ninaivalaigal_owner  WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'owner_pw';
ALTER ROLE ninaivalaigal_auth   WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'auth_pw';
ALTER ROLE ninaivalaigal_memory WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD :'memory_pw';
SELECT 'CREATE DATABASE ninaivalaigal OWNER ninaivalaigal_owner'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ninaivalaigal') \gexec
