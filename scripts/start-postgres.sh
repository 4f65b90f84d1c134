#!/usr/bin/env bash
# Start the local PostgreSQL 15 cluster for the ledger tests (Debian, run as root).
# Idempotent: safe to run again when the cluster is already up or the database exists.
# Prints the URL to export as CEPBUS_TEST_POSTGRES_URL on its last line of stdout.
set -euo pipefail

PG_VERSION=15
PG_CLUSTER=main
DB_NAME=cepbus_test
PG_PASSWORD=postgres

log() { echo "start-postgres: $*" >&2; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "pg_ctlcluster not found, installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y postgresql >&2
fi

if ! pg_lsclusters --no-header 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c' | grep -q .; then
    log "cluster $PG_VERSION/$PG_CLUSTER missing, creating it"
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" >&2
fi

if pg_lsclusters --no-header | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c {print $4}' | grep -qx online; then
    log "cluster $PG_VERSION/$PG_CLUSTER already running"
else
    log "starting cluster $PG_VERSION/$PG_CLUSTER"
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start >&2
fi

# The init script returns before the server accepts connections on a slow machine.
for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p 5432; then
        break
    fi
    sleep 1
done
pg_isready -h 127.0.0.1 -p 5432 >&2 || { log "PostgreSQL did not become ready within 60 s"; exit 1; }

as_postgres() {
    # runuser exists on Debian as root; su is the fallback on minimal images.
    if command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
}

# Peer authentication over the Unix socket; TCP (127.0.0.1) uses scram-sha-256 by default on Debian.
as_postgres psql -v ON_ERROR_STOP=1 -qAt -d postgres \
    -c "ALTER USER postgres WITH PASSWORD '$PG_PASSWORD'" >&2

if [ "$(as_postgres psql -qAt -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
    log "creating database $DB_NAME"
    as_postgres createdb "$DB_NAME" >&2
fi

echo "postgresql://postgres:${PG_PASSWORD}@127.0.0.1:5432/${DB_NAME}"
