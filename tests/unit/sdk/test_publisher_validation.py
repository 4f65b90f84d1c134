"""The Publisher refuses invalid events before anything is sent."""

from __future__ import annotations

import pytest

from cepbus.contract.models import IntakeRegistered, ReferralStatus
from cepbus.runtime.settings import BrokerSettings
from cepbus.sdk.publisher import InvalidEvent, Publisher
from tests.support.factories import intake, referral, update
from tests.support.fakes import RecordingProducer


class RecordingPublisher(Publisher):
    """A Publisher on a recording producer (no broker), to observe what would have been sent."""

    def __init__(self, settings: BrokerSettings | None = None) -> None:
        self.producer = RecordingProducer()
        super().__init__(settings, producer=self.producer)

    @property
    def sent(self) -> list[tuple[str, bytes]]:
        return self.producer.sent


def test_invalid_dict_raises_and_sends_nothing() -> None:
    publisher = RecordingPublisher()
    data = intake().model_dump()
    data["departement_code"] = "not a département"
    with pytest.raises(InvalidEvent, match="departement_code"):
        publisher.publish((IntakeRegistered, data))
    assert publisher.sent == []


def test_model_built_without_validation_is_revalidated() -> None:
    publisher = RecordingPublisher()
    data = intake().model_dump()
    data["region_code"] = "ÎDF"
    forged = IntakeRegistered.model_construct(**data)  # bypasses validation
    with pytest.raises(InvalidEvent, match="region_code"):
        publisher.publish(forged)
    assert publisher.sent == []


def test_one_invalid_event_in_a_batch_sends_none_of_it() -> None:
    publisher = RecordingPublisher()
    good = intake()
    bad = IntakeRegistered.model_construct(**{**intake().model_dump(), "channel": "carrier pigeon"})
    with pytest.raises(InvalidEvent, match="channel"):
        publisher.publish_many([good, bad])
    assert publisher.sent == []


def test_an_event_over_the_size_limit_is_refused_at_the_edge() -> None:
    # every field of a party's event is bounded (a megabyte of text is refused for its length, below),
    # so only a bus configured with a small message limit sees a valid event over it
    publisher = RecordingPublisher(BrokerSettings(max_message_bytes=1024))
    huge = referral().model_copy(update={"reason": "r" * 2000})  # valid, about 2.2 kB encoded
    with pytest.raises(InvalidEvent, match="over the bus limit of 1024") as refused:
        publisher.publish(huge)
    assert refused.value.reason == "too_large"
    with pytest.raises(InvalidEvent, match="over the bus limit"):
        publisher.publish_many([intake(), huge])  # nothing of the batch goes either
    assert publisher.sent == []
    publisher.publish(intake())
    assert len(publisher.sent) == 1
    megabyte = intake().model_copy(update={"reception_site": "x" * 1_100_000})
    with pytest.raises(InvalidEvent, match="reception_site: String should have at most 200 characters"):
        RecordingPublisher().publish(megabyte)


def test_a_field_over_its_bound_is_refused_in_one_line_naming_the_field_and_the_bound() -> None:
    """Issue #23, finding 1, at the SDK: a signed update with a 1 MB note never leaves the publisher."""
    publisher = RecordingPublisher()
    huge = update(referral(), ReferralStatus.INTERIM_UPDATE).model_copy(update={"note": "n" * 1_000_000})
    with pytest.raises(InvalidEvent) as refused:
        publisher.publish(huge)
    assert str(refused.value) == (
        "ReferralStatusChanged is invalid: note: String should have at most 2000 characters"
    )
    assert refused.value.reason == "invalid_contract"
    long_site = intake().model_copy(update={"reception_site": "s" * 201})  # far below the bus's size limit
    with pytest.raises(InvalidEvent, match=r"^IntakeRegistered is invalid: reception_site: .* at most 200 "):
        publisher.publish(long_site)
    assert publisher.sent == []
