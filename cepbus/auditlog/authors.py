"""Who said what, checked offline from a bundle's leaves alone: each statement a leaf keeps was signed
by a key of the directory version in force when the ledger recorded it, and that key is the producer's.

The ledger logs every directory version it runs with (`fr.cepbus.DirectoryVersion` leaves: the signed
document in clear), before the events recorded under it. Reading the leaves in order, the verifier
keeps the version in force; for each leaf with a statement proof it checks that the key is that
version's, valid at the leaf's `recorded_at`, that it signed the batch the statement's digest and path
lead to, and that its organisation is the producer the leaf names (`producer_org_id`). A failure names
the entry and raises: nothing is reported from a log whose statements do not hold.

What it does not check: that the sealed event is the statement signed (its bytes are sealed under the
person's key; the leaf binds the digest to the sealed event, and the ledger checked both when it
recorded them). A status update's leaf keeps only its digest (its signer would name the person's
public, `services/ledger/facts.py`): the router's verdict, signed, names it. With the directory
authority's key pinned, each logged version's signature is checked too; without, the versions are
those the signed log holds, which only the ledger's key vouches for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cepbus.auditlog.leaf import DIRECTORY_EVENT_TYPE, LedgerRecord
from cepbus.contract.statements import StatementError
from cepbus.reference import load_reference
from cepbus.reference.directory import Directory, DirectoryError, read_document
from cepbus.trust.keys import AuthorityKey


class AuthorError(ValueError):
    """An entry whose statement does not hold against the directory in force: the message names it."""


@dataclass
class AuthorCheck:
    """What the check found: counts by kind of leaf, and the directory versions in the log."""

    signed: int = 0  # statements verified against the directory in force
    digest_only: int = 0  # statements whose signer is sealed (a status update): digest in clear
    unsigned: int = 0  # the ledger's own entries (erasures), and entries from before statements
    directory_serials: list[int] = field(default_factory=list)
    authority_checked: bool = False  # each version's signature checked against a pinned authority key


def _directory(record: LedgerRecord, authority: AuthorityKey | None) -> Directory:
    try:
        document = read_document(record.clear_payload or b"")
        directory = Directory.build(load_reference(), document, authority)
    except DirectoryError as exc:
        raise AuthorError(f"entry {record.index}: directory version: {exc}") from None
    if directory.digest != record.facts.get("directory_digest"):
        raise AuthorError(
            f"entry {record.index}: the directory version's digest is not the one its leaf names"
        )
    return directory


def check_authors(records: Iterable[LedgerRecord], authority: AuthorityKey | None = None) -> AuthorCheck:
    """Check every statement of the log, in order; AuthorError naming the first that does not hold."""
    check = AuthorCheck(authority_checked=authority is not None)
    directory: Directory | None = None
    verified: set[tuple[str, bytes, int, bytes]] = set()
    for record in records:
        if record.event_type == DIRECTORY_EVENT_TYPE:
            version = _directory(record, authority)
            if directory is not None and version.serial <= directory.serial:
                raise AuthorError(
                    f"entry {record.index}: directory serial {version.serial} logged after serial"
                    f" {directory.serial}: the bus ran with an older version"
                )
            directory = version
            check.directory_serials.append(version.serial)
            continue
        proof = record.statement
        if proof is None:
            if "statement_digest" in record.facts:
                check.digest_only += 1
            else:
                check.unsigned += 1
            continue
        where = f"entry {record.index} ({record.event_type})"
        if directory is None:
            raise AuthorError(f"{where}: a signed statement, but no directory version logged before it")
        key = directory.key_by_id(proof.key_id)
        if key is None:
            raise AuthorError(
                f"{where}: signer key {proof.key_id} is not in directory serial {directory.serial}"
            )
        recorded = datetime.fromtimestamp(record.recorded_at_ms / 1000, UTC)
        if not key.valid_at(recorded):
            raise AuthorError(
                f"{where}: key {key.key_id} of {key.org_id} could not sign when it was recorded"
            )
        producer = record.facts.get("producer_org_id")
        if producer != key.org_id:
            raise AuthorError(
                f"{where}: signed by {key.org_id} (key {key.key_id}) but produced as {producer}"
            )
        signature = proof.signature_of()
        try:
            root = signature.root(proof.digest)
            cached = (key.key_id, signature.signature, signature.size, root)
            if cached not in verified:
                signature.verify(proof.digest, directory.public_of(key))
                verified.add(cached)
        except StatementError as exc:
            raise AuthorError(f"{where}: {exc.reason}: {exc.detail}") from None
        check.signed += 1
    return check


__all__ = ["AuthorCheck", "AuthorError", "check_authors"]
