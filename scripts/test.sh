#!/usr/bin/env bash
# The test suite on a fresh machine: install (.venv, then the Debian packages and npm modules the tests
# use: scripts/install-system-packages.sh), start PostgreSQL (for the store tests), run pytest. The
# broker is chosen by the tests themselves: KAFKA_BOOTSTRAP_SERVERS, else a Docker Kafka via
# testcontainers, else the embedded Tansu broker. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/install-system-packages.sh
# Everything the tests need is installed now, so a test that finds its tool missing fails instead of
# skipping: nothing skips silently. A caller may still set one of these to 0.
export CEPBUS_REQUIRE_NODE=${CEPBUS_REQUIRE_NODE:-1}
export CEPBUS_REQUIRE_BROWSER=${CEPBUS_REQUIRE_BROWSER:-1}
export CEPBUS_REQUIRE_POSTGRES=${CEPBUS_REQUIRE_POSTGRES:-1}
if [ -z "${CEPBUS_TEST_POSTGRES_URL:-}" ]; then
  if url=$(bash scripts/start-postgres.sh 2>/dev/null | tail -n 1) && [ -n "$url" ]; then
    export CEPBUS_TEST_POSTGRES_URL="$url"
  elif [ "$CEPBUS_REQUIRE_POSTGRES" = 1 ]; then
    echo "PostgreSQL could not be started and CEPBUS_REQUIRE_POSTGRES=1" >&2
    bash scripts/start-postgres.sh >&2 || true
    exit 1
  else
    echo "PostgreSQL could not be started: its store tests will be skipped" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
