"""PostgreSQL for store tests: each test gets a schema of its own in the database that
`CEPBUS_TEST_POSTGRES_URL` names (scripts/start-postgres.sh prints one); without it, the test skips."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

POSTGRES_URL_ENV = "CEPBUS_TEST_POSTGRES_URL"


def with_search_path(url: str, schema: str) -> str:
    """`url` whose connections put `schema` first on the search path."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextmanager
def fresh_schema(prefix: str) -> Iterator[str]:
    """The URL of a new, empty schema, dropped afterwards; skips the test without PostgreSQL."""
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        pytest.skip(f"PostgreSQL backend: set {POSTGRES_URL_ENV} (scripts/start-postgres.sh prints one)")
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def store_url(kind: str, sqlite_path: Path, schema_prefix: str) -> Iterator[str]:
    """The URL of an empty store: a SQLite file at `sqlite_path` ("sqlite"), or a fresh PostgreSQL schema
    ("postgres", skipped without PostgreSQL): what a store test parametrised on both backends opens."""
    if kind == "sqlite":
        yield f"sqlite:///{sqlite_path}"
        return
    with fresh_schema(schema_prefix) as url:
        yield url
