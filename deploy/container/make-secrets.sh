#!/usr/bin/env bash
# Writes the secret files compose.yaml mounts, into deploy/container/secrets/
# (a 0700 directory that git and the image build ignore): random passwords of
# letters and digits for the PostgreSQL superuser and the three roles, the
# services' database URLs, and an Ed25519 token-signing key. Files that
# exist are kept, so running it again changes nothing.
#
# The files are mode 0444 inside the 0700 directory: compose bind-mounts them
# as they are, and the services run as uid 10001, which must be able to read
# them; the directory keeps other users of this machine out.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets"
mkdir -p "$dir"
chmod 700 "$dir"

random_password() { tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true; }

write_once() { # NAME: writes stdin to NAME unless it exists
  local file="$dir/$1" tmp
  if [ -e "$file" ]; then cat >/dev/null; return; fi
  tmp=$(mktemp "$dir/.$1.XXXXXX")
  cat >"$tmp"
  chmod 444 "$tmp"
  mv "$tmp" "$file"
  echo "wrote $file"
}

random_password | write_once postgres_superuser_password
for role in owner auth memory; do
  name=$role
  [ "$role" = owner ] && name=migration
  printf 'postgres://ninaivalaigal_%s:%s@postgres:5432/ninaivalaigal' "$role" "$(random_password)" \
    | write_once "${name}_database_url"
done
if [ ! -e "$dir/jwt-ed25519.pem" ]; then
  command -v openssl >/dev/null || { echo "make-secrets.sh: openssl is needed for the signing key" >&2; exit 1; }
  openssl genpkey -algorithm ed25519 | write_once jwt-ed25519.pem
fi
