"""How the inbox publishes the updates its users signed: with the SDK's Publisher, as its own Kafka
principal, connected on first use."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from cepbus.contract.models import Event
from cepbus.runtime.instruments import KafkaRequests
from cepbus.runtime.settings import BrokerSettings

#: The inbox's Kafka principal (`cepbus.contract.wiring.EXTERNAL`).
PRINCIPAL = "cepbus-inbox"


class StatusPublisher(Protocol):
    """What the inbox needs of `cepbus.sdk.publisher.Publisher` (tests pass a recording one)."""

    def publish(self, event: Event) -> Any: ...


class LazyPublisher:
    """The SDK's Publisher, connected on first use: the pages work while the broker is away, and a
    failed connection is retried at the next step rather than stopping the process."""

    def __init__(self, settings: BrokerSettings | None = None, requests: KafkaRequests | None = None) -> None:
        self._settings = settings
        self._requests = requests  # a record of its Kafka requests (the ACL test attaches one)
        self._publisher: Any = None
        self._lock = threading.Lock()

    def publish(self, event: Event) -> Any:
        with self._lock:
            if self._publisher is None:
                from cepbus.sdk.publisher import Publisher

                # its own KafkaUser (deploy/k8s), whose ACL is Write on cep.referral.status only
                self._publisher = Publisher(
                    self._settings, client_id=PRINCIPAL, principal=PRINCIPAL, requests=self._requests
                )
        return self._publisher.publish(event)


__all__ = ["PRINCIPAL", "LazyPublisher", "StatusPublisher"]
