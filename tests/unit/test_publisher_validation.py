"""The Publisher refuses invalid events before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from cepbus.models import IntakeRegistered
from cepbus.publisher import InvalidEvent, Publisher
from tests.factories import intake


class RecordingPublisher(Publisher):
    """A Publisher whose wire is a list, to observe what would have been sent."""

    def __init__(self) -> None:  # no broker connection
        self.sent: list[Any] = []

    def _send(self, event: Any, topic: str | None) -> Any:
        self.sent.append(event)
        raise AssertionError("nothing should be sent in these tests")


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
