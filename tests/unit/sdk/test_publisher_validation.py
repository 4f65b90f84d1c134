"""The Publisher refuses invalid events before anything is sent."""

from __future__ import annotations

import pytest

from cepbus.contract.models import IntakeRegistered
from cepbus.sdk.publisher import InvalidEvent, Publisher
from tests.support.factories import intake
from tests.support.fakes import RecordingProducer


class RecordingPublisher(Publisher):
    """A Publisher on a recording producer (no broker), to observe what would have been sent."""

    def __init__(self) -> None:
        self.producer = RecordingProducer()
        super().__init__(producer=self.producer)

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
    publisher = RecordingPublisher()
    huge = intake().model_copy(update={"reception_site": "x" * 1_100_000})
    with pytest.raises(InvalidEvent, match="over the bus limit of 1000000") as refused:
        publisher.publish(huge)
    assert refused.value.reason == "too_large"
    with pytest.raises(InvalidEvent, match="over the bus limit"):
        publisher.publish_many([intake(), huge])  # nothing of the batch goes either
    assert publisher.sent == []
    publisher.publish(intake())
    assert len(publisher.sent) == 1
