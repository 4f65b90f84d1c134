"""Key files in production (issue #23, finding 8): readable by their owner only (or, owned by root, by its
group: a Kubernetes secret volume), never development material; the rule applies to every private key
file cep-bus loads: the ledger's checkpoint key (tests/unit/ledger/test_signing_key_production.py), the
services' event-id keys and the organisations' PEM keys. Development reads them all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cepbus.trust.ids import load_event_ids
from cepbus.trust.keyfiles import (
    DEVELOPMENT_MARKER,
    KeyFileError,
    mark_development,
    permission_problem,
    read_key_file,
    without_comments,
)
from cepbus.trust.keys import load_private_key, raw_public_key, write_private_key

ME, ROOT = 1000, 0


@pytest.mark.parametrize(
    ("mode", "owner", "problem"),
    [
        (0o600, ME, None),
        (0o400, ME, None),
        (0o640, ME, "group"),
        (0o660, ME, "group"),
        (0o604, ME, "every user"),
        (0o644, ME, "every user"),
        (0o440, ROOT, None),  # a secret volume: root-owned, read by the pod's fsGroup
        (0o640, ROOT, None),
        (0o660, ROOT, "group"),  # the group may write it
        (0o444, ROOT, "every user"),
        (0o644, ROOT, "every user"),
    ],
)
def test_who_may_read_a_key_file(mode: int, owner: int, problem: str | None) -> None:
    found = permission_problem(0o100000 | mode, owner)
    assert found is None if problem is None else (found is not None and problem in found)


def shared(path: Path) -> Path:
    """`path` made readable by every user (and owned by someone else when the tests run as root)."""
    path.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(path, 65534, -1)
    return path


def test_event_id_keys_others_can_read_are_refused_in_production(tmp_path: Path) -> None:
    key = tmp_path / "id.key"
    key.write_bytes(os.urandom(32).hex().encode())
    assert not load_event_ids(shared(key), production=False).development  # development reads it
    with pytest.raises(ValueError, match=r"event-id key .*every user.*chmod 600"):
        load_event_ids(key, production=True)
    key.chmod(0o600)
    assert load_event_ids(key, production=True).key == key.read_bytes().strip()


def test_pem_keys_others_can_read_are_refused_in_production(tmp_path: Path) -> None:
    key, path = Ed25519PrivateKey.generate(), tmp_path / "org.pem"
    write_private_key(key, path)  # 0600 from the start
    assert raw_public_key(load_private_key(path, production=True)) == raw_public_key(key)
    shared(path)
    with pytest.raises(KeyFileError, match=r"private key .*every user"):
        load_private_key(path, production=True)
    assert raw_public_key(load_private_key(path, production=False)) == raw_public_key(key)


def test_the_development_marker_is_skipped_by_readers_and_refused_by_production(tmp_path: Path) -> None:
    path = tmp_path / "dev.key"
    path.write_text(mark_development("PRIVATE+KEY+x+00000000+AAAA\n"))
    path.chmod(0o600)
    text = read_key_file(path, "CEPBUS_TEST_KEY", production=False)
    assert (
        text.splitlines()[0] == DEVELOPMENT_MARKER
        and without_comments(text) == "PRIVATE+KEY+x+00000000+AAAA\n"
    )
    with pytest.raises(KeyFileError, match=r"CEPBUS_TEST_KEY .*dev\.key is a development key"):
        read_key_file(path, "CEPBUS_TEST_KEY", production=True)
    with pytest.raises(KeyFileError, match="No such file"):
        read_key_file(tmp_path / "missing.key", "CEPBUS_TEST_KEY", production=True)
