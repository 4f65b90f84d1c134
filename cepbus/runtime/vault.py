"""Personal data in a service's store, sealed under a key per person so that erasure is destroying a key.

A store keeps what identifies a person or reveals health data (a profile with its BOETH flag, the rules
that fired on it) only as `seal(person, ...)` output: AES-256-GCM under that person's key, which lives
in the same database (`<prefix>_person_keys`). `erase(person)` deletes the key and then purges the
database files (`Database.purge_deleted`: the SQLite WAL checkpointed and truncated, secure_delete on;
PostgreSQL vacuumed), so that neither the key nor the clear data survives on disk.

Blob format: key id (16 ASCII hex) || nonce (12) || ciphertext+tag; the associated data binds a blob to
what it is about (e.g. the intake id), so a blob cannot be moved to another row.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cepbus.runtime.sqldb import Database

_KEY_ID_LEN = 16
_NONCE_LEN = 12


class ErasedData(LookupError):
    """The person's key was destroyed: the sealed data can no longer be read."""


class PersonVault:
    def __init__(self, db: Database, prefix: str) -> None:
        self._db = db
        self._table = f"{prefix}_person_keys"

    @staticmethod
    def schema(prefix: str, dialect: str) -> list[str]:
        blob = "BYTEA" if dialect == "postgresql" else "BLOB"
        return [
            f"CREATE TABLE IF NOT EXISTS {prefix}_person_keys ("
            f"pseudonym TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, aes_key {blob} NOT NULL)"
        ]

    def _key(self, person: str, *, create: bool) -> tuple[str, bytes] | None:
        rows = self._db.query(f"SELECT key_id, aes_key FROM {self._table} WHERE pseudonym = ?", (person,))
        if rows:
            return rows[0][0], bytes(rows[0][1])
        if not create:
            return None
        key_id, key = uuid.uuid4().hex[:_KEY_ID_LEN], AESGCM.generate_key(bit_length=256)
        with self._db.transaction():
            self._db.execute(
                f"INSERT INTO {self._table} (pseudonym, key_id, aes_key) VALUES (?, ?, ?) "
                "ON CONFLICT (pseudonym) DO NOTHING",
                (person, key_id, key),
            )
        return self._key(person, create=False)

    def seal(self, person: str, about: str, plaintext: bytes) -> bytes:
        found = self._key(person, create=True)
        assert found is not None
        key_id, key = found
        nonce = os.urandom(_NONCE_LEN)
        return key_id.encode() + nonce + AESGCM(key).encrypt(nonce, plaintext, about.encode())

    def open(self, blob: bytes, about: str) -> bytes:
        """The clear data, or ErasedData once the key is gone."""
        blob = bytes(blob)
        key_id = blob[:_KEY_ID_LEN].decode()
        rows = self._db.query(f"SELECT aes_key FROM {self._table} WHERE key_id = ?", (key_id,))
        if not rows:
            raise ErasedData(f"the key {key_id} was destroyed (erased)")
        nonce = blob[_KEY_ID_LEN : _KEY_ID_LEN + _NONCE_LEN]
        return AESGCM(bytes(rows[0][0])).decrypt(nonce, blob[_KEY_ID_LEN + _NONCE_LEN :], about.encode())

    def erase(self, person: str, also: Sequence[tuple[str, Sequence[object]]] = ()) -> bool:
        """Destroy the person's key and run `also` (statements blanking what still names the person) in the
        same transaction, then purge the files. True when there was a key."""
        with self._db.transaction():
            had = bool(self._db.query(f"SELECT 1 FROM {self._table} WHERE pseudonym = ?", (person,)))
            self._db.execute(f"DELETE FROM {self._table} WHERE pseudonym = ?", (person,))
            for sql, params in also:
                self._db.execute(sql, params)
        self._db.purge_deleted()
        return had


__all__ = ["ErasedData", "PersonVault"]
