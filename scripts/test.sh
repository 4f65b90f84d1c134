#!/usr/bin/env bash
# The test suite on a fresh machine: install, start PostgreSQL (for the ledger store tests), run
# pytest. The broker is chosen by the tests themselves: KAFKA_BOOTSTRAP_SERVERS, else a Docker
# Kafka via testcontainers, else the embedded Tansu broker. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -z "${CEPBUS_TEST_POSTGRES_URL:-}" ]; then
  if url=$(bash scripts/start-postgres.sh 2>/dev/null | tail -n 1) && [ -n "$url" ]; then
    export CEPBUS_TEST_POSTGRES_URL="$url"
  elif [ "${CEPBUS_REQUIRE_POSTGRES:-0}" = 1 ]; then
    echo "PostgreSQL could not be started and CEPBUS_REQUIRE_POSTGRES=1" >&2
    bash scripts/start-postgres.sh >&2 || true
    exit 1
  else
    echo "PostgreSQL could not be started: its store tests will be skipped" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
