#!/usr/bin/env bash
# A throwaway local PostgreSQL for the tests: `source scripts/postgres.sh start` installs the
# server from Debian's packages when it is missing (needs root), starts a fresh cluster in a
# temporary folder on 127.0.0.1:${PGPORT:-55432} (trust authentication, fsync off: test data
# only) and exports TEST_DATABASE_URL; `scripts/postgres.sh stop` stops it and removes the
# folder. Run as root, the server runs as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail
PGPORT=${PGPORT:-55432}
STATE=${TMPDIR:-/tmp}/vietartview-postgres-$PGPORT

bin_dir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$found" ] && echo "$found"
}

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if [ -z "$(bin_dir)" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL is not installed (apt-get install postgresql as root)." >&2
      return 1
    fi
    echo "Installing PostgreSQL from Debian's packages…" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      postgresql >/dev/null
    # Debian's package starts its own cluster; the tests use their own one.
    service postgresql stop >/dev/null 2>&1 || true
  fi
  local bin
  bin=$(bin_dir)
  stop_server 2>/dev/null || true
  rm -rf "$STATE"
  mkdir -p "$STATE"
  [ "$(id -u)" = 0 ] && chown postgres "$STATE"
  as_server_user "$bin/initdb" -D "$STATE/data" -U postgres -A trust -E UTF8 --no-locale \
    >"$STATE/initdb.log"
  as_server_user "$bin/pg_ctl" -D "$STATE/data" -l "$STATE/server.log" -w -o \
    "-p $PGPORT -k $STATE -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
     -c synchronous_commit=off -c max_connections=300" start >/dev/null
  export TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/postgres"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PGPORT" >&2
}

stop_server() {
  local bin
  bin=$(bin_dir)
  [ -d "$STATE/data" ] && as_server_user "$bin/pg_ctl" -D "$STATE/data" -m immediate stop \
    >/dev/null
}

stop() {
  stop_server 2>/dev/null || true
  rm -rf "$STATE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: source scripts/postgres.sh start | bash scripts/postgres.sh stop" >&2; exit 2 ;;
esac
