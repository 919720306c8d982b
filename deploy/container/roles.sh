#!/usr/bin/env bash
# compose.yaml's one-shot "roles" step, run in the postgres image: creates or
# updates the roles and the database with deploy/kubernetes/roles.sql. The
# passwords come from the secret files (the URLs the services use, so the two
# cannot disagree) and reach psql on its standard input, never its command
# line; the superuser's password reaches it in PGPASSWORD.
set -euo pipefail

password_of() {
  # postgres://role:PASSWORD@host:port/db -> PASSWORD (make-secrets.sh writes
  # passwords of letters and digits only, so no URL decoding is needed).
  sed -E 's|^postgres(ql)?://[^:/@]+:([^@]*)@.*$|\2|' "/run/secrets/$1"
}

PGPASSWORD=$(cat /run/secrets/postgres_superuser_password)
export PGPASSWORD
{
  printf '\\set owner_pw %s\n\\set auth_pw %s\n\\set memory_pw %s\n' \
    "$(password_of migration_database_url)" \
    "$(password_of auth_database_url)" \
    "$(password_of memory_database_url)"
  cat /setup/roles.sql
} | psql -X -q -v ON_ERROR_STOP=1 --host=postgres --username=postgres --dbname=postgres
echo "roles and database ready"
