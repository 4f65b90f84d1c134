"""Each version of the signed referral directory the ledger runs with, appended to the log: key
transparency, as CONIKS and Go's checksum database keep theirs. An auditor reads from the log which keys
were in force when each statement was recorded, checks every version against the authority's key, and
sees a version the bus ran with even if the authority never published it.

The leaf keeps the signed document in clear (organisations and public keys: nothing of a person); its
event id derives from the document's digest, so a restart with the same version appends nothing, and the
ledger refuses to start with a version older than one it has recorded (`DirectoryHistory`).
"""

from __future__ import annotations

import uuid

from cepbus.auditlog.leaf import DIRECTORY_EVENT_TYPE
from cepbus.reference.directory import Directory, canonical_bytes, format_time
from cepbus.runtime.directory_history import DirectoryHistory
from services.ledger.records import NewRecord
from services.ledger.store import SqlLedgerStore

_NAMESPACE = uuid.UUID("0b7c4f9e-3d51-4a8e-9a57-2f1e6c8d4b10")


def directory_record(directory: Directory) -> NewRecord:
    """The leaf of one directory version; ValueError for a directory read without its document."""
    if directory.document is None or directory.issued_at is None or directory.expires_at is None:
        raise ValueError("the referral directory was not read from a document: it cannot be logged")
    return NewRecord(
        event_id=str(uuid.uuid5(_NAMESPACE, directory.digest)),
        event_type=DIRECTORY_EVENT_TYPE,
        topic="ledger",
        occurred_at_ms=int(directory.issued_at.timestamp() * 1000),
        person_pseudonym=None,
        payload=canonical_bytes(directory.document),
        facts={
            "directory_serial": str(directory.serial),
            "directory_digest": directory.digest,
            "directory_issued_at": format_time(directory.issued_at),
            "directory_expires_at": format_time(directory.expires_at),
        },
        content_digest=directory.digest,
        public=True,
    )


def record_directory(store: SqlLedgerStore, directory: Directory) -> None:
    """Refuse an older version than the newest recorded (DirectoryRollback), then append this one if the
    log does not hold it yet, in one transaction."""
    with store.transaction():
        DirectoryHistory(store.database, "ledger").admit(directory)
        store.append_checked([directory_record(directory)])


__all__ = ["directory_record", "record_directory"]
