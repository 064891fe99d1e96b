#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests, on loopback only: installs Debian's `postgresql` when
# no server binaries are present, makes a fresh cluster (trust auth, no fsync) and starts it.
#   scripts/postgres.sh start   prints the URL to export as MMDSHOT_TEST_DATABASE_URL
#   scripts/postgres.sh stop    stops it and removes the cluster
# MMDSHOT_PG_DIR (default /tmp/mmdshot-postgres) and MMDSHOT_PG_PORT (default 55432) move it.
set -euo pipefail
DIR=${MMDSHOT_PG_DIR:-/tmp/mmdshot-postgres}
PORT=${MMDSHOT_PG_PORT:-55432}
URL="postgresql://mmdshot@127.0.0.1:${PORT}/mmdshot"

bin_dir() {
    find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1
}

# initdb and postgres refuse to run as root: run them as the `postgres` user then.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "${1:-start}" in
start)
    if [ -z "$(bin_dir)" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
    BIN=$(bin_dir)
    if [ -f "$DIR/data/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null; then
        echo "$URL"
        exit 0
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$DIR"
    fi
    as_owner "$BIN/initdb" -D "$DIR/data" -U mmdshot -A trust --no-sync -E UTF8 >"$DIR/initdb.log"
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
        -o "-h 127.0.0.1 -p $PORT -k $DIR -F -c max_connections=200" start >/dev/null
    as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U mmdshot mmdshot
    echo "$URL"
    ;;
stop)
    BIN=$(bin_dir)
    if [ -n "$BIN" ] && [ -f "$DIR/data/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
    fi
    rm -rf "$DIR"
    ;;
*)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
