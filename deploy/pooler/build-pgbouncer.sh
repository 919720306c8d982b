#!/usr/bin/env bash
# Prints the path of a PgBouncer >= 1.21 binary, building it first if need
# be. Debian 12's package is 1.18, which cannot carry the services' named
# prepared statements in transaction mode.
#
# The source is not downloaded here (the project's machines reach only
# package registries): give PGBOUNCER_SOURCE, an unpacked release tarball
# (pgbouncer.org/downloads) or a checkout of tag pgbouncer_1_25_2 with its
# lib/ (libusual) submodule filled in. Default:
# ~/.cache/ninaivalaigal/src/pgbouncer-1.25.2. The binary is cached in
# ~/.cache/ninaivalaigal/pgbouncer-1.25.2/.
set -euo pipefail

VERSION=1.25.2
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ninaivalaigal"
BIN="$CACHE/pgbouncer-$VERSION/bin/pgbouncer"
SOURCE="${PGBOUNCER_SOURCE:-$CACHE/src/pgbouncer-$VERSION}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
if [ ! -f "$SOURCE/configure.ac" ] || [ ! -f "$SOURCE/lib/usual/base.h" ]; then
  cat >&2 <<MSG
No PgBouncer $VERSION source at $SOURCE (with lib/usual, the libusual submodule).
Unpack pgbouncer-$VERSION.tar.gz there, or check out tag pgbouncer_1_25_2 with
'git submodule update --init', or set PGBOUNCER_SOURCE.
MSG
  exit 1
fi
echo "building PgBouncer $VERSION from $SOURCE" >&2
missing=()
for pkg in libevent-dev libssl-dev pkg-config autoconf automake libtool make gcc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp -a "$SOURCE/." "$build/"
(
  cd "$build"
  [ -x configure ] || ./autogen.sh
  ./configure --prefix="$CACHE/pgbouncer-$VERSION" --without-cares --with-pam=no --without-systemd
  # The binary only: the manual pages need pandoc.
  make -j"$(nproc)" pgbouncer
) >&2
mkdir -p "$(dirname "$BIN")"
install -m 0755 "$build/pgbouncer" "$BIN"
echo "$BIN"
