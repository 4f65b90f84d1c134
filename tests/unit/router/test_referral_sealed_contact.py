"""The person's contact on a referral (issue #24), from the requester's SDK to the recipient's, through the
router's route and into the ledger, without a broker: the recipient opens it and nobody else can; the SDK
refuses it without consent or without a valid recipient key; the router refuses a box its recipient could
not open (sealed to another organisation, to a revoked key, or altered); the ledger keeps its digest and
not its ciphertext."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cepbus.contract import codec
from cepbus.contract.contact import ContactError
from cepbus.contract.models import ReferralRequested, ReferralStatus, SealedContact
from cepbus.contract.topics import referral_inbox
from cepbus.reference import load_reference
from cepbus.reference.directory import Directory, format_time, load_directory, packaged_directory_text
from cepbus.runtime.messages import Incoming, Received, Rejected
from cepbus.sdk.contact import ContactRefused, attach_contact, open_referral_contact
from cepbus.trust.development import dev_encryption_key
from cepbus_app.vectors.sealed import example_contact
from services.ledger.writer import kept_payload
from services.router.referrals.auth import TokenBook, issue_token
from services.router.referrals.handlers import RequestRouting
from services.router.referrals.http import build_read_side
from services.router.referrals.store import ReferralStore
from tests.support.authorship import Admitted
from tests.support.factories import MONDAY, referral, update
from tests.support.fakes import MovableClock

PARTNER = "transitions-pro-r11"
OTHER = "transitions-pro-r24"


def _consenting(recipient: str = PARTNER) -> ReferralRequested:
    plain = referral(recipient=recipient)
    return plain.model_copy(update={"consent_to_share": True})


def _routing(tmp_path: Path, directory: Directory) -> tuple[RequestRouting, ReferralStore]:
    store = ReferralStore(f"sqlite:///{tmp_path / 'r.db'}")
    lifecycle = Admitted(store, directory, load_reference(), clock=MovableClock(MONDAY))
    return RequestRouting(lifecycle, route_to_operator=lambda r: [], operator_ids=frozenset()), store


def _directory_with_revoked(org_id: str, revoked_at: str) -> Directory:
    body: dict[str, Any] = json.loads(packaged_directory_text())["signed"]
    for entry in body["encryption_keys"]:
        if entry["org_id"] == org_id:
            entry["revoked_at"] = revoked_at
    return Directory.build(load_reference(), body)


def test_the_recipient_opens_the_contact_the_router_delivered_and_another_partner_cannot(
    tmp_path: Path,
) -> None:
    directory = load_directory()
    sent = attach_contact(_consenting(), example_contact(), directory, at=MONDAY)
    assert sent.sealed_contact is not None
    assert b"Camille" not in codec.encode(sent) and b"example.org" not in codec.encode(sent)
    routing, store = _routing(tmp_path, directory)
    outputs = routing.on_requested(sent)
    [delivered] = [out for out in outputs if out.topic == referral_inbox(PARTNER).name]
    received = codec.decode(codec.encode(delivered.event))
    assert isinstance(received, ReferralRequested)
    assert open_referral_contact(received, dev_encryption_key(PARTNER)) == example_contact()
    with pytest.raises(ContactError, match=r"sealed to key .* not to this key"):
        open_referral_contact(received, dev_encryption_key(OTHER))
    store.close()


def test_the_sdk_refuses_a_contact_without_consent_or_without_a_recipient_key() -> None:
    directory = load_directory()
    with pytest.raises(ContactRefused, match="did not consent to share") as refused:
        attach_contact(referral(recipient=PARTNER), example_contact(), directory, at=MONDAY)
    assert refused.value.reason == "no_consent"
    revoked = _directory_with_revoked(PARTNER, format_time(MONDAY - timedelta(days=1)))
    [key] = revoked.encryption_keys_of(PARTNER)
    with pytest.raises(
        ContactRefused, match=f"{PARTNER} has no encryption key valid at .*{key.key_id}"
    ) as no_key:
        attach_contact(_consenting(), example_contact(), revoked, at=MONDAY)
    assert no_key.value.reason == "no_encryption_key"


def test_the_router_refuses_a_contact_sealed_to_another_organisation(tmp_path: Path) -> None:
    directory = load_directory()
    for_other = attach_contact(_consenting(OTHER), example_contact(), directory, at=MONDAY)
    moved = _consenting().model_copy(update={"sealed_contact": for_other.sealed_contact})
    routing, store = _routing(tmp_path, directory)
    with pytest.raises(Rejected, match=f"contact_not_for_recipient: .* of {OTHER}, not to an encryption key"):
        routing.on_requested(moved)
    assert store.get(moved.referral_id) is None  # neither delivered nor followed
    store.close()


def test_the_router_refuses_a_contact_sealed_to_a_revoked_key(tmp_path: Path) -> None:
    sent = attach_contact(_consenting(), example_contact(), load_directory(), at=MONDAY)
    revoked = _directory_with_revoked(PARTNER, format_time(MONDAY - timedelta(hours=1)))
    routing, store = _routing(tmp_path, revoked)
    with pytest.raises(Rejected, match=r"contact_key_not_valid: .* revoked or expired"):
        routing.on_requested(sent)
    store.close()


def test_the_router_refuses_a_box_that_does_not_match_its_digest(tmp_path: Path) -> None:
    sent = attach_contact(_consenting(), example_contact(), load_directory(), at=MONDAY)
    assert sent.sealed_contact is not None
    box = bytearray(sent.sealed_contact.ciphertext)
    box[-1] ^= 1
    altered = sent.model_copy(
        update={
            "sealed_contact": SealedContact(**(sent.sealed_contact.model_dump() | {"ciphertext": bytes(box)}))
        }
    )
    emptied = sent.model_copy(
        update={"sealed_contact": SealedContact(**(sent.sealed_contact.model_dump() | {"ciphertext": b""}))}
    )
    routing, store = _routing(tmp_path, load_directory())
    for bad in (altered, emptied):
        with pytest.raises(Rejected, match=r"contact_digest_mismatch: .* empty or does not match"):
            routing.on_requested(bad)
    store.close()


def test_the_ledger_keeps_the_contacts_digest_and_not_its_ciphertext() -> None:
    sent = attach_contact(_consenting(), example_contact(), load_directory(), at=MONDAY)
    assert sent.sealed_contact is not None
    value = codec.encode(sent)
    kept = kept_payload(Received(Incoming("cep.referral.requested", 0, 1, b"p-test", value), sent))
    assert sent.sealed_contact.ciphertext in value and sent.sealed_contact.ciphertext not in kept
    stored = codec.decode(kept)
    assert isinstance(stored, ReferralRequested) and stored.sealed_contact is not None
    assert stored.sealed_contact.ciphertext == b""
    assert stored.sealed_contact.ciphertext_sha256 == hashlib.sha256(sent.sealed_contact.ciphertext).digest()
    assert stored.model_copy(update={"sealed_contact": sent.sealed_contact}) == sent  # nothing else changed
    assert len(value) - len(kept) >= len(sent.sealed_contact.ciphertext) - 2  # the box, less its length byte


def test_the_read_side_gives_the_sealed_contact_to_the_recipient_only_and_erasure_deletes_it(
    tmp_path: Path,
) -> None:
    directory = load_directory()
    sent = attach_contact(_consenting(), example_contact(), directory, at=MONDAY)
    assert sent.sealed_contact is not None
    routing, store = _routing(tmp_path, directory)
    routing.on_requested(sent)
    routing.on_requested(sent)  # a redelivery keeps the first box
    path = tmp_path / "tokens.json"
    tokens = {org: issue_token(org, path) for org in (PARTNER, sent.requester_org_id)}
    http = TestClient(build_read_side(store, TokenBook.load(path, directory.org_ids())))

    def view(org: str) -> dict[str, Any]:
        answer = http.get(
            f"/referrals/{sent.referral_id}", headers={"Authorization": f"Bearer {tokens[org]}"}
        )
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    box = view(PARTNER)["sealed_contact"]
    assert box == {
        "recipient_key_id": sent.sealed_contact.recipient_key_id,
        "ciphertext_b64": base64.b64encode(sent.sealed_contact.ciphertext).decode(),
        "ciphertext_sha256_hex": sent.sealed_contact.ciphertext_sha256.hex(),
    }
    assert view(sent.requester_org_id)["sealed_contact"] is None  # the requester has no key to it anyway
    opened = open_referral_contact(
        sent.model_copy(update={"sealed_contact": store.contact_of(sent.referral_id)}),
        dev_encryption_key(PARTNER),
    )
    assert opened == example_contact()
    store.erase_person(sent.envelope.person_pseudonym or "")
    assert store.contact_of(sent.referral_id) is None
    store.close()


def test_the_export_lists_every_referral_with_its_closing_reason_and_the_recipients_boxes(
    tmp_path: Path,
) -> None:
    directory = load_directory()
    routing, store = _routing(tmp_path, directory)
    with_box = attach_contact(_consenting(), example_contact(), directory, at=MONDAY)
    declined = _consenting()
    routing.on_requested(with_box)
    routing.on_requested(declined)
    routing.lifecycle.on_status(update(declined, ReferralStatus.RECEIVED, sender=PARTNER))
    routing.lifecycle.on_status(
        update(declined, ReferralStatus.DECLINED, sender=PARTNER, reason_code="session_full")
    )
    path = tmp_path / "tokens.json"
    tokens = {org: issue_token(org, path) for org in (PARTNER, with_box.requester_org_id, OTHER)}
    http = TestClient(build_read_side(store, TokenBook.load(path, directory.org_ids())))

    def export(org: str, of: str | None = None) -> Any:
        answer = http.get(
            f"/organisations/{of or org}/referrals/export", headers={"Authorization": f"Bearer {tokens[org]}"}
        )
        return answer.status_code, answer.json()

    code, mine = export(PARTNER)
    assert code == 200
    lines = {line["referral"]["referral_id"]: line for line in mine["referrals"]}
    assert set(lines) == {with_box.referral_id, declined.referral_id}  # the closed one too
    assert lines[declined.referral_id]["closing_reason_code"] == "session_full"
    assert lines[declined.referral_id]["referral"]["status"] == "declined"
    assert lines[with_box.referral_id]["closing_reason_code"] is None
    assert (
        lines[with_box.referral_id]["sealed_contact"]["recipient_key_id"]
        == with_box.sealed_contact.recipient_key_id
    )  # type: ignore[union-attr]
    _, theirs = export(with_box.requester_org_id)
    assert all(line["sealed_contact"] is None for line in theirs["referrals"])  # not the requester's to open
    assert export(OTHER, PARTNER)[0] == 403
    assert export(OTHER)[1]["referrals"] == []
    store.close()
