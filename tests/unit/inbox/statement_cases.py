"""Status updates for the checks of the browser's statement encoder (`services/inbox/static/statement.js`)
against fastavro, in Chromium (`test_browser_crypto.py`) and in Node.js (`test_statement_node.py`, which
runs `tests/node/inbox-statement.js`): every status, each optional field present and absent, long and
non-ASCII text, times around the epoch and at the varints' byte boundaries. Each comes with what the
contract computes for it in Python: the statement (fastavro), its digest, the message a key signs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cepbus.auditlog import merkle
from cepbus.contract import codec
from cepbus.contract.models import Envelope, ReferralStatus, ReferralStatusChanged
from cepbus.contract.statements import signed_message, statement_digest
from services.inbox.steps import browser_fields, writer_fingerprint

ORG = "transitions-pro-r76"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def update(status: ReferralStatus = ReferralStatus.RECEIVED, **fields: Any) -> ReferralStatusChanged:
    envelope = {
        "event_id": uuid.UUID("0c5ad3b6-2f5e-4c4e-9a51-8d2b7e0f1a93"),
        "event_type": ReferralStatusChanged.avro_name,
        "occurred_at": datetime(2026, 3, 2, 9, 30, 15, 123000, tzinfo=UTC),
        "producer_org_id": ORG,
        "correlation_id": "corr-1",
        "person_pseudonym": "p-1",
        "causation_id": "5b0e8f0e-6a43-4b1e-8a43-0f6b1c2d3e4f",
        **fields.pop("envelope", {}),
    }
    return ReferralStatusChanged(
        envelope=Envelope(**envelope),
        referral_id=fields.pop("referral_id", "ref-1"),
        status=status,
        actor_org_id=ORG,
        **fields,
    )


def _at(ms: int) -> dict[str, Any]:
    return {"envelope": {"occurred_at": EPOCH + timedelta(milliseconds=ms)}}


def _without_person() -> ReferralStatusChanged:
    """The envelope's optional pseudonym absent (a person event needs one: the model refuses it, so it
    is copied in unvalidated; the encoder must still write the union's null branch)."""
    base = update()
    return base.model_copy(update={"envelope": base.envelope.model_copy(update={"person_pseudonym": None})})


#: `expired` is the bus's own step (fr.cepbus.ReferralExpired), never one a partner signs, but the encoder
#: writes every symbol of the enum. Its index (12, the last) has no partner under the Node check's
#: one-bit flip of the index (tests/node/inbox-statement.js: 12 ^ 1 = 13, past the last symbol), so the
#: Node check leaves it out and the browser check (test_browser_crypto.py) adds it: BROWSER_ONLY_CASES.
_NODE_STATUSES = [s for s in ReferralStatus if s is not ReferralStatus.EXPIRED]

CASES: list[tuple[str, ReferralStatusChanged]] = [
    *((f"status-{s.value}", update(s)) for s in _NODE_STATUSES),
    ("declined-with-reason", update(ReferralStatus.DECLINED, reason_code="session_full")),
    ("completed-reason-and-note", update(ReferralStatus.COMPLETED, reason_code="other", note="Fin.")),
    ("empty-note", update(ReferralStatus.INTERIM_UPDATE, note="")),
    ("no-causation", update(envelope={"causation_id": None})),
    ("no-person", _without_person()),
    ("in-body-signer", update(signer_org_id=ORG)),
    (
        "french-note",
        update(ReferralStatus.DECLINED, reason_code="other", note="Pas de place avant l'été — désolé"),
    ),
    (
        "non-ascii-note",
        update(
            ReferralStatus.INTERIM_UPDATE,
            note="Rendez-vous décalé ☕ 🚲 à Besançon, œuvre, ß, 日本, عربى, e\u0301, \u00a0fin\n\tligne",
        ),
    ),
    ("long-ascii-note", update(ReferralStatus.INTERIM_UPDATE, note="x" * 2000)),
    ("long-accented-note", update(ReferralStatus.ACCEPTED, note="é" * 2000)),  # 4000 UTF-8 bytes
    ("long-emoji-note", update(ReferralStatus.INTERIM_UPDATE, note="🚲" * 2000)),  # surrogate pairs in JS
    ("note-of-63-bytes", update(ReferralStatus.INTERIM_UPDATE, note="n" * 63)),  # zigzag 126: one byte
    ("note-of-64-bytes", update(ReferralStatus.INTERIM_UPDATE, note="n" * 64)),  # zigzag 128: two bytes
    ("long-ids", update(referral_id="r" * 128, envelope={"correlation_id": "c" * 128})),
    ("at-the-epoch", update(**_at(0))),
    ("one-ms-before-the-epoch", update(**_at(-1))),
    ("ms-63", update(**_at(63))),
    ("ms-64", update(**_at(64))),
    ("ms-minus-64", update(**_at(-64))),
    ("ms-minus-65", update(**_at(-65))),
    ("before-1970", update(envelope={"occurred_at": datetime(1969, 7, 20, 20, 17, 40, 999999, tzinfo=UTC)})),
    (
        "microseconds-floored",
        update(envelope={"occurred_at": datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)}),
    ),
    ("year-2100", update(envelope={"occurred_at": datetime(2100, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)})),
]


BROWSER_ONLY_CASES: list[tuple[str, ReferralStatusChanged]] = [
    ("status-expired", update(ReferralStatus.EXPIRED)),
]


def case_document(name: str, event: ReferralStatusChanged) -> dict[str, Any]:
    """A case as the browser's encoder gets it (`fields`, `fingerprint`: the sign page's data), with
    what Python computes: the statement (fastavro), its digest d, and the batch-of-one message."""
    statement = codec.encode(event)
    digest = statement_digest(statement)
    return {
        "name": name,
        "fields": browser_fields(event),
        "fingerprint": writer_fingerprint(),
        "statement_hex": statement.hex(),
        "digest_hex": digest.hex(),
        "message_hex": signed_message(1, merkle.leaf_hash(digest)).hex(),
    }


def case_documents(cases: list[tuple[str, ReferralStatusChanged]] = CASES) -> list[dict[str, Any]]:
    return [case_document(name, event) for name, event in cases]
