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

# TLS: a CA of this deployment and one certificate per service (for its
# compose name, localhost and 127.0.0.1, usable as server and client), signed
# by it. The CA's key stays in this directory and is mounted nowhere; a
# service's key is mounted into that service only. Renew a certificate by
# deleting its two files, running this again and restarting the service
# (compose mounts a file by its inode: a replaced file is not seen inside).
tls_ca() {
  [ -e "$dir/tls-ca.crt" ] && return
  local tmp
  tmp=$(mktemp -d "$dir/.tls.XXXXXX")
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=ninaivalaigal compose CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tmp/key" -out "$tmp/crt" 2>/dev/null
  chmod 400 "$tmp/key"; mv "$tmp/key" "$dir/tls-ca.key"
  write_once tls-ca.crt <"$tmp/crt"
  rm -rf "$tmp"
}
tls_service() { # NAME: NAME-tls.crt and NAME-tls.key for the compose service NAME
  local name=$1 tmp
  [ -e "$dir/$name-tls.crt" ] && [ -e "$dir/$name-tls.key" ] && return
  tmp=$(mktemp -d "$dir/.tls.XXXXXX")
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$tmp/key" -out "$tmp/csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' "$name" >"$tmp/ext"
  openssl x509 -req -in "$tmp/csr" -CA "$dir/tls-ca.crt" -CAkey "$dir/tls-ca.key" -CAcreateserial \
    -days 397 -extfile "$tmp/ext" -out "$tmp/crt" 2>/dev/null
  rm -f "$dir/$name-tls.crt" "$dir/$name-tls.key"
  write_once "$name-tls.key" <"$tmp/key"
  write_once "$name-tls.crt" <"$tmp/crt"
  rm -rf "$tmp"
}
tls_ca
tls_service auth-service
tls_service memory-service
