"""The codec's per-message lookups are cached (profiled as the router's top cost) without going stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cepbus.contract import codec, schemas
from tests.support.factories import intake


def test_fingerprint_index_is_built_once_per_schema_directory() -> None:
    assert schemas.by_fingerprint() is schemas.by_fingerprint()
    assert schemas.event_schemas() is schemas.event_schemas()


def test_a_configured_schema_directory_is_still_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default_index = schemas.by_fingerprint()
    copy = tmp_path / "avro"
    shutil.copytree(schemas.schema_dir(), copy)
    (copy / "fr.cepbus.DeadLetter.avsc").unlink()  # so that the copy's contract differs
    monkeypatch.setenv("CEPBUS_SCHEMA_DIR", str(copy))
    assert schemas.schema_dir() == copy
    assert "fr.cepbus.DeadLetter" not in schemas.event_schemas()
    assert schemas.by_fingerprint() is not default_index
    event = intake()
    assert codec.decode(codec.encode(event)) == event


def test_the_codec_writes_the_same_bytes_as_a_plain_fastavro_writer() -> None:
    """The codec's pre-parsed schema is an optimisation only: the frame must not change."""
    import io

    import fastavro

    event = intake()
    schema = schemas.event_schema(event.avro_name)
    plain = io.BytesIO()
    fastavro.schemaless_writer(plain, schema.parsed, event.model_dump(mode="python"))
    assert codec.encode(event) == codec.MARKER + schema.fingerprint + plain.getvalue()
