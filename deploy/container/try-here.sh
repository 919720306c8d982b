#!/usr/bin/env bash
# Tries the container image as far as a machine without a container registry
# allows (no Docker engine; public image registries unreachable). Results of
# the last run are in README ("Deploying", "Tried here"). Steps:
#  1. installs podman and runc from Debian (and debootstrap);
#  2. tries to pull the Dockerfile's base images (expected to fail here);
#  3. builds a Debian 12 base image with debootstrap (about 2 minutes, once;
#     cached in ~/.cache/ninaivalaigal) in place of debian:12.11-slim;
#  4. builds the Dockerfile's runtime stage on it, with the release binaries
#     built on this machine (target/release, `cargo build --release`, not in
#     a container) in place of the build stage's;
#  5. runs the migrations, the auth-service and the memory-service from that
#     image against the local PostgreSQL (a scratch database, dropped at the
#     end), as uid 10001 with a read-only root, no capabilities and the
#     signing key mounted 0440, and asks the image's HEALTHCHECK.
# It does not build the Rust code inside a container, pull the rust or
# postgres images, or run compose.yaml (both need the registry).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"
cd "$REPO_ROOT"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ninaivalaigal"
BASE=localhost/ninaivalaigal-debian:12-debootstrap
IMAGE=localhost/ninaivalaigal:try-here
work=$(mktemp -d)
db="ninaivalaigal_tryhere_$$"
containers=()
cleanup() {
  local c
  for c in "${containers[@]}"; do podman rm -f "$c" >/dev/null 2>&1 || true; done
  as_postgres psql -X -q -p "${PGPORT_LOCAL:-5432}" -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

say "1. podman, runc and debootstrap from Debian"
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
podman --version
# This sandbox refuses the open-files rlimit podman sets by default; use none.
printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"

say "2. pulling the Dockerfile's base images"
for ref in $(sed -n 's|^FROM \([^ ]*/[^ ]*\) AS .*|\1|p' deploy/container/Dockerfile); do
  if timeout 60 podman pull -q "$ref" >/dev/null 2>"$work/pull.err"; then
    echo "pulled $ref"
  else
    echo "cannot pull $ref: $(tail -n 1 "$work/pull.err")"
  fi
done

say "3. a Debian 12 base image made with debootstrap"
if ! podman image exists "$BASE"; then
  rootfs="$CACHE/rootfs-bookworm"
  if [ ! -x "$rootfs/bin/sh" ]; then
    as_root rm -rf "$rootfs"
    mkdir -p "$CACHE"
    start=$SECONDS
    as_root timeout 600 debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log"
    echo "debootstrap took $((SECONDS - start)) s"
  fi
  as_root tar -C "$rootfs" -c . | podman import -q - "$BASE" >/dev/null
fi
echo "$BASE ready"

say "4. the Dockerfile's runtime stage on it, with this machine's release binaries"
bins=(auth-service memory-service eM ninaivalaigal-migrate ninaivalaigal-health)
if [ ! -x "$BIN_DIR/ninaivalaigal-health" ] || [ ! -x "$BIN_DIR/ninaivalaigal-migrate" ] || [ ! -x "$BIN_DIR/eM" ]; then
  cargo build --release --locked --features db $(printf -- '--bin %s ' "${bins[@]}")
fi
mkdir -p "$work/context/bin"
for bin in "${bins[@]}"; do cp "$BIN_DIR/$bin" "$work/context/bin/"; done
# Everything from the runtime stage's FROM on, with the two lines that need
# the registry or the build stage replaced.
sed -n '/^FROM .* AS runtime$/,$p' deploy/container/Dockerfile \
  | sed -e "s|^FROM .* AS runtime$|FROM $BASE|" -e 's|^COPY --from=build /out/ |COPY bin/ |' \
  >"$work/context/Containerfile"
podman build -q --network host --format docker -t "$IMAGE" -f "$work/context/Containerfile" "$work/context" >/dev/null
podman image inspect "$IMAGE" --format 'user {{.Config.User}}, healthcheck {{.Config.Healthcheck.Test}}, cmd {{.Config.Cmd}}'

say "5. running it against the local PostgreSQL (scratch database $db)"
bash deploy/local/postgres.sh 2>/dev/null
PGPORT_LOCAL=$(db_env_value NINAIVALAIGAL_PG_PORT)
as_postgres psql -X -q -p "$PGPORT_LOCAL" -d postgres -c "CREATE DATABASE $db OWNER ninaivalaigal_owner"
url() { db_env_value "$1" | sed "s|/ninaivalaigal\$|/$db|"; }
# The URLs reach podman in 0600 env files, not on its command line.
umask 077
echo "NINAIVALAIGAL_MIGRATION_DATABASE_URL=$(url NINAIVALAIGAL_MIGRATION_DATABASE_URL)" >"$work/migrate.env"
echo "NINAIVALAIGAL_DATABASE_URL=$(url NINAIVALAIGAL_AUTH_DATABASE_URL)" >"$work/auth.env"
echo "NINAIVALAIGAL_DATABASE_URL=$(url NINAIVALAIGAL_MEMORY_DATABASE_URL)" >"$work/memory.env"
mkdir -p "$work/keys"
openssl genpkey -algorithm ed25519 -out "$work/keys/jwt-ed25519.pem" 2>/dev/null
# As the Kubernetes Secret volume would be: owner root, group 10001, 0440.
chmod 750 "$work/keys"; chgrp 10001 "$work/keys" "$work/keys/jwt-ed25519.pem"; chmod 440 "$work/keys/jwt-ed25519.pem"
umask 022
# No systemd here to time health checks: they are run by hand below.
hardening=(--read-only --cap-drop=ALL --security-opt=no-new-privileges --network host --health-interval=disable)
podman run --rm "${hardening[@]}" --no-healthcheck --env-file "$work/migrate.env" "$IMAGE" ninaivalaigal-migrate
auth=try-here-auth-$$ memory=try-here-memory-$$
containers+=("$auth" "$memory")
podman run -d --name "$auth" "${hardening[@]}" --env-file "$work/auth.env" \
  -e NINAIVALAIGAL_AUTH_LISTEN_ADDR=127.0.0.1:23371 -e NINAIVALAIGAL_HEALTH_URL=http://127.0.0.1:23371 \
  -e NINAIVALAIGAL_JWT_PRIVATE_KEY_FILE=/etc/ninaivalaigal/keys/jwt-ed25519.pem \
  -v "$work/keys:/etc/ninaivalaigal/keys:ro" "$IMAGE" auth-service >/dev/null 2> >(grep -v 'systemd connection' >&2)
podman run -d --name "$memory" "${hardening[@]}" --env-file "$work/memory.env" \
  -e NINAIVALAIGAL_MEMORY_LISTEN_ADDR=127.0.0.1:23370 -e NINAIVALAIGAL_HEALTH_URL=http://127.0.0.1:23370 \
  -e NINAIVALAIGAL_AUTH_URL=http://127.0.0.1:23371 "$IMAGE" >/dev/null 2> >(grep -v 'systemd connection' >&2)
for c in "$auth" "$memory"; do
  ok=false
  for _ in $(seq 1 60); do
    if podman healthcheck run "$c" >/dev/null 2>&1; then ok=true; break; fi
    sleep 0.5
  done
  if $ok; then
    echo "$c: HEALTHCHECK healthy; runs as uid $(podman exec "$c" id -u)"
  else
    echo "$c: HEALTHCHECK never healthy; its log:" >&2
    podman logs "$c" 2>&1 | tail -n 20 >&2
    exit 1
  fi
done
if podman exec "$auth" sh -c 'touch /usr/local/bin/x' 2>/dev/null; then
  echo "the root filesystem is writable" >&2; exit 1
fi
echo "root filesystem read-only; binaries not writable by the service user"
say "tried here: OK (containers and scratch database removed on exit)"
