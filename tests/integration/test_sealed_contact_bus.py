"""Issue #24, item 1, on the session bus: an operator's referral to a local partner carries the person's
contact sealed by the Python SDK; the real router delivers it and the partner's SDK opens it; a box moved
onto a referral for another organisation is dead-lettered; and then every file of the bus (each store, its
-wal and -shm, the dead-letter archive, the logs) and every message of every topic, values and headers,
read as bytes, holds none of the contact in clear. The ledger's copy of the referral keeps the box's
SHA-256 and not the box."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from cepbus.contract import codec
from cepbus.contract.contact import ContactError, ContactPreference, ReferralContact
from cepbus.contract.models import OrganisationKind, ReferralRequested, new_envelope
from cepbus.reference.directory import load_directory
from cepbus.sdk.contact import attach_contact, open_referral_contact
from cepbus.sdk.partner import Delivery, Subscriber
from cepbus.trust.development import dev_encryption_key
from services.ledger.store import SqlLedgerStore
from tests.support.bus import RunningBus, dead_letters, wait_for_ids

pytestmark = pytest.mark.integration
OPERATOR = "cep-r84"
PARTNER = "transitions-pro-r84"
ELSEWHERE = "transitions-pro-r11"


def contact_of(run: str) -> ReferralContact:
    return ReferralContact(
        first_name=f"Prénomtest{run}",
        last_name=f"Nomtest{run}",
        phone=f"+33 6 {run[:2]} {run[2:4]} {run[4:6]} 99",
        email=f"contact-{run}@example.org",
        contact_preference=ContactPreference.EMAIL,
        availability=f"le mardi {run}",
        situation=f"situation confiée {run}",
        referent_name=f"Référente {run}",
        referent_contact=f"referente-{run}@cep-exemple.fr",
    )


def referral_to(recipient: str, person: str, kind: OrganisationKind, region: str) -> ReferralRequested:
    return ReferralRequested(
        envelope=new_envelope(
            ReferralRequested,
            producer_org_id=OPERATOR,
            person_pseudonym=person,
            occurred_at=datetime.now(UTC),
        ),
        referral_id=str(uuid.uuid4()),
        requester_org_id=OPERATOR,
        recipient_org_id=recipient,
        recipient_kind=kind,
        region_code=region,
        reason="projet de transition professionnelle",
        consent_to_share=True,
    )


@dataclass
class Sent:
    contact: ReferralContact
    referral: ReferralRequested
    moved: ReferralRequested  # the same box on a referral to another organisation
    delivered: ReferralRequested


def delivered_to_partner(bus: RunningBus, referral_id: str, timeout_s: float = 60.0) -> ReferralRequested:
    group = f"cepbus-partner-{PARTNER}-t{uuid.uuid4().hex[:8]}"
    with Subscriber(PARTNER, bus.broker, group_id=group, requests=bus.requests) as inbox:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for item in inbox.poll(timeout_s=0.5):
                event = item.event if isinstance(item, Delivery) else None
                if isinstance(event, ReferralRequested) and event.referral_id == referral_id:
                    return event
    raise AssertionError(f"referral {referral_id} never reached {PARTNER}'s inbox")


@pytest.fixture(scope="module")
def sent(bus: RunningBus) -> Sent:
    run = str(uuid.uuid4().int)[:10]  # digits: the phone number is made of it
    person = f"p-contact-{run}"
    contact = contact_of(run)
    directory = load_directory()
    referral = attach_contact(
        referral_to(PARTNER, person, OrganisationKind.TRANSITIONS_PRO, "84"), contact, directory
    )
    other = referral_to(ELSEWHERE, person, OrganisationKind.TRANSITIONS_PRO, "11")
    moved = other.model_copy(update={"sealed_contact": referral.sealed_contact})
    with bus.publisher() as publisher:
        publisher.publish(referral)
        publisher.publish(moved)
    assert not wait_for_ids(bus, {str(referral.event_id)})
    delivered = delivered_to_partner(bus, referral.referral_id)
    return Sent(contact, referral, moved, delivered)


def test_the_partner_opens_the_contact_and_no_one_else_can(sent: Sent) -> None:
    assert open_referral_contact(sent.delivered, dev_encryption_key(PARTNER)) == sent.contact
    with pytest.raises(ContactError):
        open_referral_contact(sent.delivered, dev_encryption_key(ELSEWHERE))


def test_a_box_moved_onto_a_referral_for_another_organisation_is_dead_lettered(
    bus: RunningBus, sent: Sent
) -> None:
    moved = codec.encode(sent.moved)
    [letter] = dead_letters(bus, where=lambda d: d.service == "router" and d.original_value == moved)
    assert letter.reason.startswith("contact_not_for_recipient")
    assert f"not to an encryption key of the recipient {ELSEWHERE}" in letter.reason


def test_the_ledger_keeps_the_boxs_digest_not_the_box(bus: RunningBus, sent: Sent) -> None:
    assert sent.referral.sealed_contact is not None
    with SqlLedgerStore(bus.ledger_url) as ledger:
        index = ledger.index_of(str(sent.referral.event_id))
        assert index is not None
        kept = codec.decode(ledger.open_payload(index))
    assert isinstance(kept, ReferralRequested) and kept.sealed_contact is not None
    assert kept.sealed_contact.ciphertext == b""
    assert kept.sealed_contact.ciphertext_sha256 == sent.referral.sealed_contact.ciphertext_sha256


def every_message(bus: RunningBus) -> dict[str, bytes]:
    """Every message of every topic of the broker, value, key and headers, by topic."""
    consumer = KafkaConsumer(bootstrap_servers=bus.broker.bootstrap_list, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in sorted(consumer.topics())
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        seen: dict[str, list[bytes]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in partitions):
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                for record in records:
                    parts = [record.value or b"", record.key or b""]
                    parts += [name.encode() + (value or b"") for name, value in record.headers]
                    seen.setdefault(tp.topic, []).extend(parts)
        return {topic: b"\n".join(parts) for topic, parts in seen.items()}
    finally:
        consumer.close()


def test_no_store_log_nor_topic_holds_the_contact_in_clear(bus: RunningBus, sent: Sent) -> None:
    time.sleep(1.0)  # what the services would still write of it
    c = sent.contact
    needles = {
        name: value.encode()
        for name, value in {
            "first name": c.first_name,
            "last name": c.last_name,
            "phone": c.phone or "",
            "email": c.email or "",
            "availability": c.availability or "",
            "situation": c.situation or "",
            "referent": c.referent_name,
            "referent contact": c.referent_contact,
        }.items()
    }
    workdir = Path(bus.ledger_url.removeprefix("sqlite:///")).parent
    files = {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}
    for service, process in bus.supervisor.processes.items():
        files[f"log of {service}"] = process.log_path.read_bytes()
    topics = every_message(bus)
    assert sent.referral.sealed_contact is not None
    box = sent.referral.sealed_contact.ciphertext
    assert any(box in data for data in topics.values())  # the scan reads what carries the box: can fail
    assert any(name.endswith("ledger.db") for name in files) and any("deadletters" in n for n in files)
    places = {**files, **{f"topic {topic}": data for topic, data in topics.items()}}
    found = sorted(
        (place, what) for place, data in places.items() for what, needle in needles.items() if needle in data
    )
    assert not found, f"the contact in clear: {found}"
