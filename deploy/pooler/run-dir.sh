# Where PgBouncer keeps its log and pid file (sourced by up.sh and down.sh).
# As root it runs as `postgres`, which cannot enter root's home.
# shellcheck shell=bash
if [ "$(id -u)" -eq 0 ]; then
  POOLER_RUN=/run/ninaivalaigal-pooler
else
  POOLER_RUN="$STATE_DIR/pooler/run"
fi
