#!/usr/bin/env bash
# Makes sure the local PostgreSQL and Redis are installed, configured for
# development and running, and that the service's database exists.
# Safe to run any number of times; the second run changes nothing.
#
# - Both come from Debian's packages (the release's default versions),
#   installed here when absent: as root, or through sudo.
# - PostgreSQL listens on 127.0.0.1 only and trusts local connections (Debian
#   defaults to peer and scram, so `createdb -U postgres` would fail); it is
#   started through pg_ctlcluster, which needs no systemd.
# - Redis runs without persistence (no RDB, no AOF): it holds live status and
#   caches that the processes rebuild.
set -euo pipefail

PG_PORT="${PG_PORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
DB="${MMS_DB_NAME:-mms}"
MARK="# written by mms scripts/services.sh"

say() { echo "services: $*"; }
die() { echo "services: $*" >&2; exit 1; }

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@" || die "needs root for: $* (sudo refused; run 'sudo bash scripts/services.sh' once)"
  else
    die "needs root for: $* (run this script as root once, or install sudo)"
  fi
}

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install_missing() {
  local packages=()
  [[ -n "$(pg_bindir)" && -x "$(pg_bindir)/postgres" ]] || packages+=(postgresql)
  command -v pg_ctlcluster >/dev/null 2>&1 || packages+=(postgresql-common)
  command -v psql >/dev/null 2>&1 || packages+=(postgresql-client)
  command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
  ((${#packages[@]})) || return 0
  say "installing ${packages[*]} from Debian's packages"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${packages[*]} by hand"
  # No service starts during the install: a container has no systemd, and the
  # packages' own start would fail or start servers we configure below anyway.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
    added_policy=1
  fi
  local status=0
  as_root apt-get update -qq || status=$?
  if ((status == 0)); then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${packages[@]}" >/dev/null || status=$?
  fi
  ((added_policy)) && as_root rm -f "$policy"
  # A post-install step that failed (a start without systemd) leaves the files in place.
  for tool in postgres redis-server; do
    if [[ $tool == postgres ]]; then [[ -x "$(pg_bindir)/postgres" ]] && continue
    else command -v redis-server >/dev/null 2>&1 && continue; fi
    die "the install of ${packages[*]} failed (apt-get exit ${status}); see the lines above"
  done
}

pg_version() { basename "$(dirname "$(pg_bindir)")"; }

configure_postgres() {
  local version conf_dir hba
  version="$(pg_version)"
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "${version} main"; then
    say "creating PostgreSQL ${version} cluster main"
    as_root pg_createcluster --port "$PG_PORT" "$version" main >/dev/null
  fi
  conf_dir="/etc/postgresql/${version}/main"
  local settings="${MARK}
listen_addresses = '127.0.0.1'
port = ${PG_PORT}
max_connections = 200"
  if [[ "$(cat "${conf_dir}/conf.d/mms.conf" 2>/dev/null)" != "$settings" ]]; then
    as_root sh -c "printf '%s\n' \"\$1\" >'${conf_dir}/conf.d/mms.conf'" _ "$settings"
    PG_RESTART=1
  fi
  hba="${MARK}
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust"
  if [[ "$(cat "${conf_dir}/pg_hba.conf")" != "$hba" ]]; then
    say "PostgreSQL: trust for local connections (development)"
    as_root sh -c "printf '%s\n' \"\$1\" >'${conf_dir}/pg_hba.conf'" _ "$hba"
    PG_RESTART=1
  fi
}

start_postgres() {
  local version status
  version="$(pg_version)"
  status="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}')"
  if [[ $status == online* ]]; then
    if ((PG_RESTART)); then
      say "restarting PostgreSQL for its new settings"
      as_root pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    fi
  else
    say "starting PostgreSQL ${version}"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  for _ in $(seq 100); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && return 0
    sleep 0.1
  done
  die "PostgreSQL is not ready on 127.0.0.1:${PG_PORT}; see /var/log/postgresql/"
}

start_redis() {
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --logfile "" >/dev/null
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "Redis is not answering on 127.0.0.1:${REDIS_PORT}"
}

PG_RESTART=0
install_missing
configure_postgres
start_postgres
start_redis

if ! psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
  "select 1 from pg_database where datname='${DB}'" | grep -q 1; then
  say "creating database ${DB}"
  createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB"
fi
