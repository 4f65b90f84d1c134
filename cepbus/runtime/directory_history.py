"""The directory versions a service has run with: it refuses to start with one older than the newest it
has seen, or with another document under a serial it has seen (a rollback to a version from before a
key was revoked, or an authority equivocating), as Go's checksum database and CONIKS clients pin the
newest tree head they saw.

Each service keeps the history in its own store (`<name>_directory_versions`: serial, digest of the
signed body, first seen), written at start before it reads anything: one row per version, nothing of a
person. The ledger also appends each version to the log (`services.ledger`), so an auditor sees every
version the bus ran with and checks each statement against the one in force when it was recorded.
"""

from __future__ import annotations

import time

from cepbus.reference.directory import Directory
from cepbus.runtime.sqldb import Database, Dialect, PersonalData


class DirectoryRollback(ValueError):
    """The directory given is older than (or differs at the serial of) one this service has seen."""


def directory_history_schema(name: str, dialect: Dialect) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {name}_directory_versions (
            serial BIGINT NOT NULL,
            digest TEXT NOT NULL,
            first_seen_ms BIGINT NOT NULL,
            PRIMARY KEY (serial, digest)
        )"""
    ]


def directory_history_personal_data(name: str) -> PersonalData:
    return PersonalData(
        f"{name}_directory_versions",
        "the referral directory versions the service ran with (serial, digest, time): organisations only",
        "nothing_personal",
    )


class DirectoryHistory:
    def __init__(self, db: Database, name: str) -> None:
        self._db = db
        self._table = f"{name}_directory_versions"

    def newest(self) -> tuple[int, str] | None:
        rows = self._db.query(
            f"SELECT serial, digest FROM {self._table} ORDER BY serial DESC, digest LIMIT 1"
        )
        return None if not rows else (int(rows[0][0]), str(rows[0][1]))

    def admit(self, directory: Directory) -> bool:
        """Record `directory` as seen; DirectoryRollback if it is older than the newest seen, or another
        document under a serial seen. Returns True when the version is new to this service."""
        digest = directory.digest
        with self._db.transaction():
            newest = self.newest()
            if newest is not None:
                serial, seen = newest
                if directory.serial < serial:
                    raise DirectoryRollback(
                        f"the referral directory has serial {directory.serial}, older than serial {serial}"
                        " this service already ran with: install the authority's current directory"
                        " (CEPBUS_DIRECTORY_PATH); an older version may list keys revoked since"
                    )
                if directory.serial == serial and digest != seen:
                    raise DirectoryRollback(
                        f"the referral directory's serial {serial} names another document than the one"
                        f" this service ran with (digest {digest[:16]}..., seen {seen[:16]}...): the"
                        " authority issues one document per serial; ask it which is genuine"
                    )
                if directory.serial == serial:
                    return False
            self._db.execute(
                f"INSERT INTO {self._table} (serial, digest, first_seen_ms) VALUES (?, ?, ?)",
                (directory.serial, digest, time.time_ns() // 1_000_000),
            )
        return True


__all__ = [
    "DirectoryHistory",
    "DirectoryRollback",
    "directory_history_personal_data",
    "directory_history_schema",
]
