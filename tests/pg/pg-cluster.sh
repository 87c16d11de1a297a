#!/bin/bash
# A scratch PostgreSQL cluster for the tests and the benchmark: its own
# data directory, a unix socket in that directory and 127.0.0.1 on a free
# port, trust authentication, one role and one database, both "fedq".
#
#   eval "$(tests/pg/pg-cluster.sh start)"   # exports FEDQ_PG_DIR,
#                                            # FEDQ_PG_CONNINFO, PGHOST, ...
#   tests/pg/pg-cluster.sh env  "$FEDQ_PG_DIR"   # the same lines again
#   tests/pg/pg-cluster.sh stop "$FEDQ_PG_DIR"   # stops and removes it
#
# start takes an optional directory (it must not exist yet); without one
# it makes /tmp/fedq-pg.XXXXXX. Debian keeps initdb and pg_ctl off PATH in
# /usr/lib/postgresql/<version>/bin (the newest is taken; PG_BIN overrides)
# and both refuse to run as root, so as root they run as the postgres user,
# which owns the directory. stop is idempotent: a directory that is gone or
# a server that is down is not an error.
set -euo pipefail

ROLE=fedq
DB=fedq

die() {
    echo "pg-cluster.sh: $*" >&2
    exit 1
}

pg_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        echo "$PG_BIN"
        return
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n "$d" && -x "$d/initdb" ]] ||
        d=$(dirname "$(command -v initdb 2>/dev/null)" 2>/dev/null) || true
    [[ -n "$d" && -x "$d/initdb" ]] ||
        die "no initdb (install postgresql, or set PG_BIN)"
    echo "$d"
}

# Runs a PostgreSQL program as the cluster's owner.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

print_env() {
    local dir=$1 port
    [[ -f "$dir/port" ]] || die "'$dir' is not a cluster of this script"
    port=$(cat "$dir/port")
    echo "export FEDQ_PG_DIR='$dir'"
    echo "export FEDQ_PG_CONNINFO='host=$dir/sock port=$port dbname=$DB user=$ROLE'"
    echo "export FEDQ_PG_TCP_CONNINFO='host=127.0.0.1 port=$port dbname=$DB user=$ROLE'"
    echo "export PGHOST='$dir/sock' PGPORT=$port PGDATABASE=$DB PGUSER=$ROLE"
}

start() {
    local dir=${1:-} bin port
    bin=$(pg_bin)
    if [[ -z "$dir" ]]; then
        dir=$(mktemp -d /tmp/fedq-pg.XXXXXX)
    else
        [[ ! -e "$dir" ]] || die "'$dir' exists"
        mkdir -p "$dir"
    fi
    # A start that fails leaves nothing behind.
    trap 'discard "$dir"' EXIT
    # The socket's path must fit in sun_path (107 bytes).
    ((${#dir} <= 80)) || die "'$dir': path too long for a unix socket"
    mkdir "$dir/sock"
    chmod 755 "$dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres: "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "the postgres user cannot reach '$dir' (a private parent" \
                "directory?); pick one under /tmp"
    fi
    port=$(free_port)
    echo "$port" >"$dir/port"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        die "initdb failed: $(tail -n 5 "$dir/initdb.log")"
    # A scratch cluster: durability off; parallel plans as perf-baselines
    # measured them (two workers per gather).
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_parallel_workers_per_gather = 2
logging_collector = off
EOF
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        start >/dev/null ||
        die "pg_ctl start failed: $(tail -n 5 "$dir/server.log")"
    as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" \
        -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE $ROLE LOGIN" \
        -c "CREATE DATABASE $DB OWNER $ROLE" >/dev/null ||
        die "cannot create the role and database"
    trap - EXIT
    print_env "$dir"
}

# Stops a half-started cluster and removes its directory.
discard() {
    local dir=$1
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate -w stop \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

stop() {
    local dir=${1:-${FEDQ_PG_DIR:-}} bin
    [[ -n "$dir" ]] || die "stop: which cluster? (a directory or FEDQ_PG_DIR)"
    [[ -d "$dir" ]] || return 0
    [[ -f "$dir/port" ]] || die "'$dir' is not a cluster of this script"
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        bin=$(pg_bin)
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop \
            >/dev/null 2>&1 ||
            as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop \
                >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
start) start "${2:-}" ;;
stop) stop "${2:-}" ;;
env) print_env "${2:-${FEDQ_PG_DIR:-}}" ;;
*)
    echo "usage: $0 start [DIR] | env DIR | stop DIR" >&2
    exit 2
    ;;
esac
