#!/usr/bin/env bash
# Tries the backup and restore procedure (README, "Backup and restore") once
# against the local PostgreSQL server: dumps the database with
# `pg_dump -Fc`, restores the dump into a fresh scratch database, and checks
# that everything came back: the row count of every table, the row-level
# security policies (pg_policies), ENABLE and FORCE ROW LEVEL SECURITY on
# every table (relrowsecurity, relforcerowsecurity), table and column
# grants, and owners. The scratch databases are dropped at the end, whatever
# happens.
#
#   deploy/local/backup-restore.sh           the project database, as it is
#   deploy/local/backup-restore.sh --seed    a scratch copy of the schema
#                                            (migrations/) with rows in every
#                                            table; what test.sh runs
#
# It also confirms why the dump is taken as a superuser: the owner role is
# subject to its own tables' FORCE ROW LEVEL SECURITY, so pg_dump as the
# owner is refused. That attempt reads the owner's password from db.env
# (without sourcing it) into a temporary 0600 .pgpass file; no password is
# ever on a command line. The superuser steps use peer authentication as the
# postgres system user, which needs no password.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

seed=false
case "${1:-}" in
  --seed) seed=true ;;
  "") ;;
  *) echo "usage: $0 [--seed]" >&2; exit 2 ;;
esac

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

bash deploy/local/postgres.sh
PORT=$(db_env_value NINAIVALAIGAL_PG_PORT)
export PGPORT="$PORT"

psql_su() { # DATABASE, then psql arguments; SQL on stdin or with -c
  local db=$1; shift
  as_postgres env PGPORT="$PORT" psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"
}

suffix="$$_$(tr -dc 'a-z0-9' </dev/urandom | head -c 8 || true)"
source_db=ninaivalaigal
scratch_db="ninaivalaigal_restore_$suffix"
work=$(mktemp -d)
created=()

cleanup() {
  local db
  for db in "${created[@]}"; do
    psql_su postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

if $seed; then
  source_db="ninaivalaigal_backup_src_$suffix"
  say "seeding $source_db: migrations/ as the owner, rows in every table"
  psql_su postgres -c "CREATE DATABASE \"$source_db\" OWNER ninaivalaigal_owner TEMPLATE template0"
  created+=("$source_db")
  for migration in migrations/*/up.sql; do
    { echo 'SET ROLE ninaivalaigal_owner;'; cat "$migration"; } | psql_su "$source_db"
  done
  # As the superuser, which row-level security does not restrict.
  psql_su "$source_db" <<'SQL'
INSERT INTO users (email, name, password_hash, role)
  VALUES ('ada@example.com', 'Ada', '$2b$12$x', 'admin'), ('bob@example.com', 'Bob', '$2b$12$y', 'user');
INSERT INTO sessions (id, user_id, expires_at, access_expires_at)
  SELECT gen_random_uuid(), id, now() + interval '30 days', now() + interval '7 days' FROM users;
INSERT INTO refresh_tokens (token_hash, session_id) SELECT sha256(id::text::bytea), id FROM sessions;
INSERT INTO revoked_sessions (session_id, user_id, access_expires_at)
  SELECT id, user_id, access_expires_at FROM sessions LIMIT 1;
INSERT INTO audit_events (event, user_id, client_addr) SELECT 'login', id, '127.0.0.1' FROM users;
INSERT INTO recording_contexts (owner_id, name, is_active) SELECT id, 'project', true FROM users;
INSERT INTO memories (owner_id, context_id, memory_type, data)
  SELECT owner_id, id, 'note', '{"message": "deploy with make release", "n": 0.1}' FROM recording_contexts, generate_series(1, 3);
SQL
fi

tables=$(psql_su "$source_db" -At -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
if [ "$tables" -eq 0 ]; then
  echo "backup-restore.sh: $source_db has no tables (migrations not applied?); try --seed" >&2
  exit 1
fi

say "pg_dump as the owner role (expected to be refused under FORCE ROW LEVEL SECURITY)"
umask 077
printf '127.0.0.1:%s:%s:ninaivalaigal_owner:%s\n' "$PORT" "$source_db" \
  "$(db_env_value NINAIVALAIGAL_OWNER_DB_PASSWORD)" >"$work/pgpass"
chmod 600 "$work/pgpass"
if PGPASSFILE="$work/pgpass" pg_dump -Fc --no-password -h 127.0.0.1 -U ninaivalaigal_owner \
     -d "$source_db" -f "$work/owner.dump" 2>"$work/owner.err"; then
  echo "backup-restore.sh: pg_dump as the owner succeeded; the README says it cannot" >&2
  exit 1
fi
grep -q 'row-level security' "$work/owner.err" || { cat "$work/owner.err" >&2; exit 1; }
echo "refused as documented: $(grep -m1 'ERROR' "$work/owner.err" | sed 's/^.*ERROR: *//')"
rm -f "$work/pgpass"

say "pg_dump -Fc $source_db (as the superuser)"
as_postgres env PGPORT="$PORT" pg_dump -Fc -d "$source_db" >"$work/ninaivalaigal.dump"
echo "dump: $(du -h "$work/ninaivalaigal.dump" | cut -f1)"

say "pg_restore into the fresh database $scratch_db"
psql_su postgres -c "CREATE DATABASE \"$scratch_db\" OWNER ninaivalaigal_owner TEMPLATE template0"
created+=("$scratch_db")
as_postgres env PGPORT="$PORT" pg_restore --exit-on-error --single-transaction \
  -d "$scratch_db" <"$work/ninaivalaigal.dump"

# What must come back, as sorted text: compared with diff.
snapshot() {
  local db=$1 table
  for table in $(psql_su "$db" -At -c "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"); do
    echo "rows $table $(psql_su "$db" -At -c "SELECT count(*) FROM public.\"$table\"")"
  done
  psql_su "$db" -At <<'SQL'
SELECT 'rls ' || c.relname || ' owner=' || pg_get_userbyid(c.relowner)
       || ' enabled=' || c.relrowsecurity || ' forced=' || c.relforcerowsecurity
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S', 'v', 'm') ORDER BY 1;
SELECT 'policy ' || concat_ws(' | ', tablename, policyname, permissive, roles::text, cmd, qual, with_check)
  FROM pg_policies WHERE schemaname = 'public' ORDER BY 1;
SELECT 'grant ' || concat_ws(' ', grantee, table_name, privilege_type)
  FROM information_schema.role_table_grants WHERE table_schema = 'public' ORDER BY 1;
SELECT 'column-grant ' || concat_ws(' ', grantee, table_name, column_name, privilege_type)
  FROM information_schema.column_privileges WHERE table_schema = 'public' ORDER BY 1;
SELECT 'schema-acl ' || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'public';
SQL
}

say "comparing $source_db with $scratch_db"
snapshot "$source_db" >"$work/source.txt"
snapshot "$scratch_db" >"$work/restored.txt"
if ! diff -u "$work/source.txt" "$work/restored.txt"; then
  echo "backup-restore.sh: the restored database differs (above)" >&2
  exit 1
fi
printf '%s tables, rows in %s of them (%s rows), %s policies, %s tables with FORCE RLS, %s grants: identical\n' \
  "$(grep -c '^rows ' "$work/source.txt")" \
  "$(grep '^rows ' "$work/source.txt" | awk '$3 > 0' | wc -l)" \
  "$(grep '^rows ' "$work/source.txt" | awk '{s += $3} END {print s + 0}')" \
  "$(grep -c '^policy ' "$work/source.txt")" \
  "$(grep -c 'forced=true' "$work/source.txt")" \
  "$(grep -c 'grant ' "$work/source.txt")"
say "backup and restore: OK (scratch databases dropped on exit)"
