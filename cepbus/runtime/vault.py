"""Personal data in a store, sealed under a key per person so that erasure is destroying a key: the one
sealing primitive every store uses (the router's, the referrals', the dead letters', the ledger's).

- `PersonKeys`: a store's table of person keys (`<prefix>_person_keys`: pseudonym, key id, AES-256 key,
  creation time), looked up and created in batches, destroyed by `destroy`.
- `seal` / `unseal`: AES-256-GCM under one person's key, a fresh random nonce per seal; the associated
  data binds a ciphertext to what it is about (an intake id, an event id), so it cannot be moved to
  another row.
- `PersonVault`: the packed form the service stores keep in a column: key id (16 ASCII hex) || nonce
  (12) || ciphertext+tag. The ledger keeps the same three parts as separate fields of its leaf
  (`cepbus.auditlog.leaf.SealedPayload`), with 32-hex key ids, because leaves are its public format.

After a destroy, `Database.purge_deleted` (the SQLite WAL checkpointed and truncated, secure_delete on;
PostgreSQL vacuumed) makes sure neither the key nor the clear data survives on disk.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cepbus.runtime.sqldb import Database, PersonalData

NONCE_BYTES = 12
_IN_CHUNK = 500


class ErasedData(LookupError):
    """The person's key was destroyed: the sealed data can no longer be read."""


class PersonKey(NamedTuple):
    key_id: str
    key: bytes


def seal(key: bytes, about: str, plaintext: bytes) -> tuple[bytes, bytes]:
    """(nonce, ciphertext+tag) of `plaintext` under `key`, bound to `about`."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, about.encode())


def sealer(key: bytes) -> Callable[[str, bytes], tuple[bytes, bytes]]:
    """`seal` under one key for many items, the cipher set up once: (about, plaintext) -> (nonce, ct)."""
    cipher = AESGCM(key)

    def seal_one(about: str, plaintext: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return nonce, cipher.encrypt(nonce, plaintext, about.encode())

    return seal_one


def unseal(key: bytes, about: str, nonce: bytes, ciphertext: bytes) -> bytes:
    return AESGCM(key).decrypt(nonce, ciphertext, about.encode())


def person_keys_schema(prefix: str, dialect: str) -> list[str]:
    blob = "BYTEA" if dialect == "postgresql" else "BLOB"
    return [
        f"CREATE TABLE IF NOT EXISTS {prefix}_person_keys ("
        f"pseudonym TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, aes_key {blob} NOT NULL, "
        "created_at_ms BIGINT)"
    ]


def person_keys_personal_data(prefix: str) -> PersonalData:
    """The declaration of the `<prefix>_person_keys` table: erasing a person destroys their key there,
    which is what makes everything a store sealed under it unreadable."""
    return PersonalData(
        f"{prefix}_person_keys",
        "each person's pseudonym and AES-256 key (and its id), which every value sealed for them needs",
        "destroy_key",
        where="pseudonym = ?",
    )


class PersonKeys:
    """A store's person keys. Reads and writes run in the caller's transaction when there is one."""

    def __init__(
        self,
        db: Database,
        prefix: str,
        *,
        key_id_hex: int = 16,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._db = db
        self.table = f"{prefix}_person_keys"
        self._by_person = f"SELECT key_id, aes_key FROM {self.table} WHERE pseudonym = ?"
        self._key_id_hex = key_id_hex
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        db.add_missing_columns(self.table, [("created_at_ms", "BIGINT")])  # a table from before it

    @staticmethod
    def schema(prefix: str, dialect: str) -> list[str]:
        return person_keys_schema(prefix, dialect)

    def find(self, people: Iterable[str]) -> dict[str, PersonKey]:
        """The live keys of these people (a few chunked queries)."""
        names = sorted(set(people))
        found: dict[str, PersonKey] = {}
        for start in range(0, len(names), _IN_CHUNK):
            chunk = names[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.query(
                f"SELECT pseudonym, key_id, aes_key FROM {self.table} WHERE pseudonym IN ({marks})", chunk
            )
            found.update((person, PersonKey(key_id, bytes(key))) for person, key_id, key in rows)
        return found

    def new_key(self) -> PersonKey:
        return PersonKey(uuid.uuid4().hex[: self._key_id_hex], AESGCM.generate_key(bit_length=256))

    def store(self, keys: dict[str, PersonKey]) -> None:
        """Insert new keys (pseudonyms that have none): call it inside the transaction that uses them."""
        if not keys:
            return
        now = self._clock()
        self._db.insert_rows(
            self.table,
            ("pseudonym", "key_id", "aes_key", "created_at_ms"),
            [(person, k.key_id, k.key, now) for person, k in keys.items()],
        )

    def get(self, person: str) -> PersonKey | None:
        """One person's live key (one indexed read: the hot path of every seal)."""
        rows = self._db.query(self._by_person, (person,))
        return PersonKey(rows[0][0], bytes(rows[0][1])) if rows else None

    def get_or_create(self, person: str) -> PersonKey:
        """The person's key, created if they have none (safe against a concurrent creator)."""
        found = self.get(person)
        if found is not None:
            return found
        fresh = self.new_key()
        with self._db.transaction():
            self._db.execute(
                f"INSERT INTO {self.table} (pseudonym, key_id, aes_key, created_at_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (pseudonym) DO NOTHING",
                (person, fresh.key_id, fresh.key, self._clock()),
            )
        created = self.get(person)
        assert created is not None  # inserted above, or by a concurrent creator
        return created

    def by_key_id(self, key_id: str) -> bytes | None:
        rows = self._db.query(f"SELECT aes_key FROM {self.table} WHERE key_id = ?", (key_id,))
        return bytes(rows[0][0]) if rows else None

    def destroy(self, person: str) -> str | None:
        """Delete the person's key in the caller's transaction; its key id, or None if there was none."""
        rows = self._db.query(f"SELECT key_id FROM {self.table} WHERE pseudonym = ?", (person,))
        if not rows:
            return None
        self._db.execute(f"DELETE FROM {self.table} WHERE pseudonym = ?", (person,))
        return str(rows[0][0])


class PersonVault:
    """Sealed values packed for a column: key id || nonce || ciphertext+tag."""

    def __init__(self, db: Database, prefix: str) -> None:
        self._db = db
        self.keys = PersonKeys(db, prefix, key_id_hex=16)

    @staticmethod
    def schema(prefix: str, dialect: str) -> list[str]:
        return person_keys_schema(prefix, dialect)

    def seal(self, person: str, about: str, plaintext: bytes) -> bytes:
        key = self.keys.get_or_create(person)
        nonce, ciphertext = seal(key.key, about, plaintext)
        return key.key_id.encode() + nonce + ciphertext

    def seal_many(self, person: str, items: Sequence[tuple[str, bytes]]) -> list[bytes]:
        """`seal` for several values of one person: their key read (or created) once, one cipher."""
        key = self.keys.get_or_create(person)
        seal_one = sealer(key.key)
        prefix = key.key_id.encode()
        return [prefix + b"".join(seal_one(about, plaintext)) for about, plaintext in items]

    def open(self, blob: bytes, about: str) -> bytes:
        """The clear data, or ErasedData once the key is gone."""
        blob = bytes(blob)
        key_id = blob[:16].decode()
        key = self.keys.by_key_id(key_id)
        if key is None:
            raise ErasedData(f"the key {key_id} was destroyed (erased)")
        return unseal(key, about, blob[16 : 16 + NONCE_BYTES], blob[16 + NONCE_BYTES :])

    def erase(self, person: str, also: Sequence[tuple[str, Sequence[object]]] = ()) -> bool:
        """Destroy the person's key and run `also` (statements blanking what still names the person) in the
        same transaction, then purge the files. True when there was a key."""
        with self._db.transaction():
            had = self.keys.destroy(person) is not None
            for sql, params in also:
                self._db.execute(sql, params)
        self._db.purge_deleted()
        return had


__all__ = [
    "NONCE_BYTES",
    "ErasedData",
    "PersonKey",
    "PersonKeys",
    "PersonVault",
    "person_keys_personal_data",
    "person_keys_schema",
    "seal",
    "sealer",
    "unseal",
]
