#!/usr/bin/env bash
# Builds and installs the Citus extension from its source, for the PostgreSQL
# server installed on this machine (Debian's postgresql-15). deploy/citus/up.sh
# runs it when the extension is missing; running it again when Citus is
# installed does nothing.
#
# Citus is AGPL-3.0: its source is fetched into a build directory outside this
# repository (~/.cache/ninaivalaigal/citus) and never copied into it.
#
# Where the source comes from, in this order:
#   CITUS_GIT_MIRROR   a local git repository (bare or not) holding the tag,
#                      e.g. a mirror of github.com/citusdata/citus
#   otherwise          git clone https://github.com/citusdata/citus
#
# Settings (environment):
#   CITUS_VERSION      the tag to build (default v13.2.2)
#   CITUS_BUILD_DIR    where to build (default ~/.cache/ninaivalaigal/citus)
#   CITUS_FORCE_BUILD  1 to build even if the extension is installed
set -euo pipefail

CITUS_VERSION="${CITUS_VERSION:-v13.2.2}"
CITUS_BUILD_DIR="${CITUS_BUILD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ninaivalaigal/citus}"
CITUS_UPSTREAM=https://github.com/citusdata/citus
SOURCE_DIR="$CITUS_BUILD_DIR/citus-$CITUS_VERSION"

log() { echo "citus-build: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The extension's files land in the server's directories, so pg_config must
# describe the server that will load it.
pg_major() {
  basename "$(ls -d /usr/lib/postgresql/*/ | sort -V | tail -n 1)"
}

already_installed() {
  local major=$1 wanted=${CITUS_VERSION#v}
  [ "${CITUS_FORCE_BUILD:-0}" = 1 ] && return 1
  [ -f "/usr/lib/postgresql/$major/lib/citus.so" ] || return 1
  grep -q "default_version = '${wanted%.*}" "/usr/share/postgresql/$major/extension/citus.control" 2>/dev/null
}

install_build_dependencies() {
  local major=$1 server_version
  # The headers must be those of the server binary that loads citus.so: a
  # newer minor's headers can declare symbols the running server lacks.
  server_version=$(dpkg-query -W -f='${Version}' "postgresql-$major")
  log "installing build dependencies (postgresql-server-dev-$major=$server_version, ...)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    "postgresql-server-dev-$major=$server_version" \
    liblz4-dev libzstd-dev libkrb5-dev \
    libxslt1-dev libpam0g-dev libreadline-dev git make gcc >/dev/null
}

fetch_source() {
  mkdir -p "$CITUS_BUILD_DIR"
  if [ -d "$SOURCE_DIR/.git" ]; then
    log "source already in $SOURCE_DIR"
    return
  fi
  rm -rf "$SOURCE_DIR"
  if [ -n "${CITUS_GIT_MIRROR:-}" ]; then
    log "checking out $CITUS_VERSION from the mirror $CITUS_GIT_MIRROR"
    git clone -q --no-checkout "$CITUS_GIT_MIRROR" "$SOURCE_DIR"
  else
    log "cloning $CITUS_UPSTREAM at $CITUS_VERSION"
    git clone -q --no-checkout --filter=blob:none "$CITUS_UPSTREAM" "$SOURCE_DIR"
  fi
  git -C "$SOURCE_DIR" -c advice.detachedHead=false checkout -q "$CITUS_VERSION"
}

# PostgreSQL 15.20 declares have_createdb_privilege() in commands/dbcommands.h;
# Citus 13.2's compatibility header still defines its own static copy for
# PostgreSQL 15, which no longer compiles next to that declaration. Where the
# installed header declares it, the copy gives way to the header (in the
# build directory only).
apply_compat_fix() {
  local header compat="$SOURCE_DIR/src/include/pg_version_compat.h"
  header="$(pg_config --includedir-server)/commands/dbcommands.h"
  if ! grep -q 'have_createdb_privilege' "$header"; then
    log "$header does not declare have_createdb_privilege: no fix needed"
    return
  fi
  if ! grep -q '^have_createdb_privilege(void)' "$compat"; then
    log "compat fix already applied"
    return
  fi
  log "letting Citus's have_createdb_privilege copy give way to $header"
  perl -0pi -e 's/static inline bool\nhave_createdb_privilege\(void\)\n\{.*?\n\}\n/#include "commands\/dbcommands.h"\n/s' "$compat"
  if grep -q '^have_createdb_privilege(void)' "$compat"; then
    log "could not apply the have_createdb_privilege fix to $compat"
    exit 1
  fi
}

build_and_install() {
  local jobs
  jobs=$(nproc)
  log "building in $SOURCE_DIR with $jobs jobs (log: $CITUS_BUILD_DIR/build.log)"
  (
    cd "$SOURCE_DIR"
    # Without libcurl, which Citus uses only to send usage statistics and
    # check for updates: nothing leaves the machine (and its -dev package
    # need not match the installed libcurl).
    [ -f config.status ] || ./configure --quiet --without-libcurl
    make -s -j "$jobs"
  ) >"$CITUS_BUILD_DIR/build.log" 2>&1 || {
    log "build failed; last lines of $CITUS_BUILD_DIR/build.log:"
    tail -n 30 "$CITUS_BUILD_DIR/build.log" >&2
    exit 1
  }
  as_root make -C "$SOURCE_DIR" -s install >>"$CITUS_BUILD_DIR/build.log" 2>&1
  log "installed Citus $CITUS_VERSION into PostgreSQL $(pg_config --version)"
}

main() {
  local major
  major=$(pg_major)
  if already_installed "$major"; then
    log "Citus ${CITUS_VERSION#v} is already installed for PostgreSQL $major"
    return
  fi
  install_build_dependencies "$major"
  export PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config"
  PATH="/usr/lib/postgresql/$major/bin:$PATH"
  fetch_source
  apply_compat_fix
  build_and_install
}

main "$@"
