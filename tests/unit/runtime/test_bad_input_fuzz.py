"""Bad input, fuzzed (hypothesis): the decoder, the service runtime and the Publisher.

Whatever arrives gets a clear error (`DecodeError`/`InvalidEvent` with a stable reason) or a dead
letter with the reason, never a crash, and a metric counts it; the next message is handled as usual.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from cepbus.contract import codec
from cepbus.contract.codec import DecodeError
from cepbus.contract.models import (
    DeadLetter,
    Event,
    IntakeDecided,
    IntakeRegistered,
    NoticeRequested,
    OrganisationKind,
    ReferralRequested,
    new_envelope,
)
from cepbus.contract.schemas import by_fingerprint, event_schema
from cepbus.contract.topics import DEAD_LETTER, INTAKE_REGISTERED, REFERRAL_REQUESTED
from cepbus.reference import load_reference
from cepbus.runtime.messages import Incoming, Outgoing
from cepbus.runtime.processing import EventProcessor
from cepbus.runtime.settings import BrokerSettings
from cepbus.sdk.publisher import InvalidEvent, Publisher
from cepbus_app.demo.simulator import Simulator
from services.ledger.writer import new_record
from services.router.handlers import RouterHandlers
from tests.support.factories import intake
from tests.support.fakes import RecordingProducer

REFERENCE = load_reference()
ROUTER = RouterHandlers(REFERENCE)
DECODE_REASONS = {
    "not_bytes",
    "truncated_header",
    "bad_marker",
    "unknown_schema",
    "bad_body",
    "trailing_bytes",
    "no_model",
    "invalid_content",
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# One valid encoding of every event type, to cut, flip and corrupt.
_SIM = Simulator(REFERENCE, seed=3)
_INTAKE = _SIM.intake()
_REQUEST = next(o.event for o in ROUTER.on_intake(intake(cadre=True)) if isinstance(o.event, NoticeRequested))
_FRAMES = [codec.encode(_INTAKE), codec.encode(_REQUEST)]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def router_handle(value: bytes, offset: int = 0) -> list[Outgoing]:
    runtime = EventProcessor("router", "cep-bus-router")
    message = Incoming(INTAKE_REGISTERED.name, 0, offset, b"p-fuzz", value)
    return runtime.handle(message, IntakeRegistered, ROUTER.on_intake)


def assert_dead_letter(outputs: list[Outgoing], reason_prefix: str | tuple[str, ...]) -> DeadLetter:
    """Exactly one dead letter; beside it, at most the router's record of a "rejected" decision."""
    letters = [o for o in outputs if o.topic == DEAD_LETTER.name]
    assert len(letters) == 1, outputs
    for other in outputs:
        if other.topic != DEAD_LETTER.name:
            assert isinstance(other.event, IntakeDecided) and other.event.status == "rejected", other
    letter = letters[0].event
    assert isinstance(letter, DeadLetter)
    assert letter.reason.startswith(reason_prefix), letter.reason
    return letter


# -- the decoder ----------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_give_a_decode_error_with_a_known_reason(data: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        codec.decode(data)
    assert caught.value.reason in DECODE_REASONS and caught.value.detail


@FUZZ
@given(st.sampled_from(_FRAMES), st.data())
def test_truncated_frames_are_refused(frame: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    with pytest.raises(DecodeError) as caught:
        codec.decode(frame[:cut])
    expected = "truncated_header" if cut < codec.HEADER_LEN else "bad_body"
    if cut >= 2 and frame[:2] != codec.MARKER:
        expected = "bad_marker"
    assert caught.value.reason == expected


@FUZZ
@given(st.binary(min_size=8, max_size=8), st.sampled_from(_FRAMES))
def test_unknown_fingerprints_are_named(fingerprint: bytes, frame: bytes) -> None:
    assume(fingerprint not in by_fingerprint())
    with pytest.raises(DecodeError) as caught:
        codec.decode(codec.MARKER + fingerprint + frame[codec.HEADER_LEN :])
    assert caught.value.reason == "unknown_schema" and fingerprint.hex() in caught.value.detail


@FUZZ
@given(st.sampled_from(_FRAMES), st.data())
def test_corrupted_bodies_decode_or_fail_cleanly(frame: bytes, data: st.DataObject) -> None:
    """Flipped bytes in the body: a valid (if different) event, or a DecodeError; nothing else."""
    body = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(codec.HEADER_LEN, len(body) - 1))
        body[position] = data.draw(st.integers(0, 255))
    try:
        event = codec.decode(bytes(body))
    except DecodeError as exc:
        assert exc.reason in DECODE_REASONS
    else:
        assert codec.decode(codec.encode(event)) == event  # what passes is a sound event


@FUZZ
@given(st.binary(max_size=300))
def test_a_service_dead_letters_any_garbage_counts_it_and_goes_on(data: bytes) -> None:
    reason_of = None
    try:
        codec.decode(data)
    except DecodeError as exc:
        reason_of = exc.reason
    assume(reason_of is not None)
    before = metric("cepbus_dead_letters_total", service="router", reason=reason_of)
    letter = assert_dead_letter(router_handle(data), reason_of)
    assert letter.original_value == data and letter.original_key == b"p-fuzz"
    assert metric("cepbus_dead_letters_total", service="router", reason=reason_of) == before + 1
    # the stream goes on: the next valid intake is handled normally
    outputs = router_handle(codec.encode(intake(cadre=True)), offset=1)
    assert outputs and all(out.topic != DEAD_LETTER.name for out in outputs)


# -- valid Avro, impossible content ---------------------------------------------------------------


def raw_intake(**changes: Any) -> bytes:
    """Avro-valid bytes written straight from a dict: no pydantic, no Publisher in the way."""
    record = intake(cadre=True).model_dump(mode="python")
    profile_changes = changes.pop("profile", {})
    envelope_changes = changes.pop("envelope", {})
    record.update(changes)
    record["profile"].update(profile_changes)
    record["envelope"].update(envelope_changes)
    return codec.encode_record(event_schema("IntakeRegistered"), record)


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"region_code": "99", "departement_code": "75"}, "unknown region code '99'"),
        ({"region_code": "11", "departement_code": "13"}, "département 13"),
        ({"profile": {"birth_year": 2099}}, "birth year 2099"),
        (
            {
                "region_code": "03",
                "departement_code": "973",
                "envelope": {"occurred_at": datetime(2020, 2, 10, 12, tzinfo=UTC)},
            },
            "before the regional CEP service opened",
        ),
    ],
    ids=["unknown-region", "departement-not-in-region", "birth-year-in-future", "before-opening"],
)
def test_impossible_intakes_are_dead_lettered_by_the_router_with_the_reason(
    changes: dict[str, Any], detail: str
) -> None:
    before = metric("cepbus_dead_letters_total", service="router", reason="intake_rejected")
    letter = assert_dead_letter(router_handle(raw_intake(**changes)), "intake_rejected")
    assert detail in letter.reason
    assert metric("cepbus_dead_letters_total", service="router", reason="intake_rejected") == before + 1


def test_content_the_models_refuse_is_dead_lettered_as_invalid_content() -> None:
    letter = assert_dead_letter(router_handle(raw_intake(region_code="ZZ")), "invalid_content")
    assert "region_code" in letter.reason


@FUZZ
@given(
    st.sampled_from([*sorted(REFERENCE.regions), "00", "99", "05"]),
    st.sampled_from([*sorted(REFERENCE.departements), "00", "96", "977"]),
)
def test_any_location_is_either_consistent_or_dead_lettered(region: str, departement: str) -> None:
    outputs = router_handle(raw_intake(region_code=region, departement_code=departement))
    try:
        REFERENCE.check_location(region, departement)
    except ValueError:  # "977" breaks the code pattern itself: the model refuses it first
        assert_dead_letter(outputs, ("intake_rejected", "invalid_content"))
    else:
        assert all(o.topic != DEAD_LETTER.name for o in outputs)


def test_a_referral_to_an_unknown_organisation_is_dead_lettered() -> None:
    referral = ReferralRequested(
        envelope=new_envelope(ReferralRequested, producer_org_id="cep-r11", person_pseudonym="p-1"),
        referral_id=str(uuid.uuid4()),
        requester_org_id="cep-r11",
        recipient_org_id="nobody-knows-us",
        recipient_kind=OrganisationKind.APEC,
        region_code="11",
        reason="test",
        consent_to_share=False,
    )
    runtime = EventProcessor("router", "cep-bus-router")
    message = Incoming(REFERRAL_REQUESTED.name, 0, 0, b"p-1", codec.encode(referral))
    letter = assert_dead_letter(
        runtime.handle(message, ReferralRequested, ROUTER.on_referral), "unknown_recipient"
    )
    assert "nobody-knows-us" in letter.reason


def test_the_ledger_dead_letters_garbage_and_keeps_the_good_events_of_the_batch() -> None:
    runtime = EventProcessor("ledger", "cepbus-ledger")
    good = codec.encode(intake())
    batch = [
        Incoming(INTAKE_REGISTERED.name, 0, 0, None, b"\xc3\x01garbage"),
        Incoming(INTAKE_REGISTERED.name, 0, 1, None, good),
    ]
    received, letters = runtime.split_batch(batch, Event)  # as the ledger's batch route runs it
    assert [new_record(item).payload for item in received] == [good]
    assert_dead_letter(letters, "truncated_header")


# -- the Publisher --------------------------------------------------------------------------------


def publisher() -> tuple[Publisher, RecordingProducer]:
    fake = RecordingProducer()
    return Publisher(BrokerSettings(), producer=fake), fake


@FUZZ
@given(
    st.sampled_from([*sorted(REFERENCE.regions), "00", "99"]),
    st.sampled_from([*sorted(REFERENCE.departements), "96"]),
)
def test_the_publisher_refuses_a_location_off_the_map_and_sends_nothing(
    region: str, departement: str
) -> None:
    pub, fake = publisher()
    event = intake(region=region, departement=departement)
    try:
        REFERENCE.check_location(region, departement)
    except ValueError:
        before = metric(
            "cepbus_publish_refused_total", event_type="IntakeRegistered", reason="reference_data"
        )
        with pytest.raises(InvalidEvent) as caught:
            pub.publish(event)
        assert caught.value.reason == "reference_data"
        assert ("region_code" in str(caught.value)) or ("departement_code" in str(caught.value))
        assert fake.sent == []
        assert (
            metric("cepbus_publish_refused_total", event_type="IntakeRegistered", reason="reference_data")
            == before + 1
        )
    else:
        pub.publish(event)
        assert fake.sent == [(INTAKE_REGISTERED.name, codec.encode(event))]


def test_publish_many_sends_nothing_when_one_event_is_off_the_map() -> None:
    pub, fake = publisher()
    with pytest.raises(InvalidEvent, match=r"unknown region code '99'"):
        pub.publish_many([intake(), intake(region="99", departement="75"), intake()])
    assert fake.sent == []


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@FUZZ
@given(st.dictionaries(st.sampled_from([*list(IntakeRegistered.model_fields), "extra"]), _JSONISH))
def test_the_publisher_refuses_random_dicts_with_invalid_event_only(data: dict[str, Any]) -> None:
    pub, fake = publisher()
    with pytest.raises(InvalidEvent) as caught:
        pub.publish((IntakeRegistered, data))
    assert caught.value.reason == "invalid_contract" and "IntakeRegistered is invalid" in str(caught.value)
    assert fake.sent == []


@FUZZ
@given(st.data())
def test_the_publisher_refuses_a_mutated_valid_intake_or_sends_it_whole(data: st.DataObject) -> None:
    """One field of a valid intake replaced by anything: refused with InvalidEvent, or sent as a
    frame that decodes back to the same event."""
    pub, fake = publisher()
    record = intake().model_dump(mode="python")
    name = data.draw(st.sampled_from(sorted(record)))
    record[name] = data.draw(_JSONISH)
    try:
        pub.publish((IntakeRegistered, record))
    except InvalidEvent:
        assert fake.sent == []
    else:
        [(_, value)] = fake.sent
        assert isinstance(codec.decode(value), IntakeRegistered)


def test_the_publisher_never_sends_bytes_another_schema_could_not_read() -> None:
    """Sanity of the fake: what it records is exactly what fastavro reads with the schema."""
    pub, fake = publisher()
    pub.publish(_INTAKE)
    [(_, value)] = fake.sent
    schema = event_schema("IntakeRegistered")
    record = fastavro.schemaless_reader(io.BytesIO(value[codec.HEADER_LEN :]), schema.parsed, None)
    assert record["envelope"]["event_id"] == _INTAKE.event_id


def test_a_notice_request_sent_to_the_intake_topic_is_dead_lettered_not_crashed() -> None:
    letter = assert_dead_letter(router_handle(codec.encode(_REQUEST)), "unexpected_event_type")
    assert NoticeRequested.avro_name in letter.reason
