"""How the inbox publishes the updates its users signed: with the SDK's Publisher, as its own Kafka
principal, connected on first use, and only with the signature the user's browser made.

The inbox never signs. The organisation's key stays in its staff's browser, which signs the update's
statement (`cepbus.contract.statements`); the server verifies that signature and hands it to
`Publisher.publish(update, signed=...)`, which sends it as the message's `cepbus-signature` header.
A publish without it is refused here, before the SDK is reached: the SDK would otherwise sign with
the producer's derivable development key (in development), which would make the inbox's own word pass
for the organisation's and hide a page that did not sign."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from cepbus.contract.models import Event
from cepbus.contract.statements import StatementSignature
from cepbus.runtime.instruments import KafkaRequests
from cepbus.runtime.settings import BrokerSettings

#: The inbox's Kafka principal (`cepbus.contract.wiring.EXTERNAL`).
PRINCIPAL = "cepbus-inbox"


class UnsignedUpdate(ValueError):
    """An update handed to the inbox's publisher without its author's signature: nothing is sent."""


class StatusPublisher(Protocol):
    """What the inbox needs of `cepbus.sdk.publisher.Publisher` (tests pass a recording one): publish an
    event with the signature its author made of its bytes."""

    def publish(self, event: Event, *, signed: StatementSignature) -> Any: ...


class LazyPublisher:
    """The SDK's Publisher, connected on first use: the pages work while the broker is away, and a
    failed connection is retried at the next step rather than stopping the process."""

    def __init__(
        self,
        settings: BrokerSettings | None = None,
        requests: KafkaRequests | None = None,
        producer: Any | None = None,  # a KafkaProducer-like object; tests pass a recording one
    ) -> None:
        self._settings = settings
        self._requests = requests  # a record of its Kafka requests (the ACL test attaches one)
        self._producer = producer
        self._publisher: Any = None
        self._lock = threading.Lock()

    def publish(self, event: Event, *, signed: StatementSignature) -> Any:
        """Send `event` with `signed`, the signature its author's browser made; refused without one."""
        if not isinstance(signed, StatementSignature):
            raise UnsignedUpdate(
                f"{type(event).__name__} {event.envelope.event_id}: the inbox publishes only what its user"
                " signed in the browser, and no signature was given"
            )
        with self._lock:
            if self._publisher is None:
                from cepbus.sdk.publisher import Publisher

                # its own KafkaUser (deploy/k8s), whose ACL is Write on cep.referral.status only; no
                # signer: with `signed` given the SDK sends that signature and signs nothing itself
                self._publisher = Publisher(
                    self._settings,
                    client_id=PRINCIPAL,
                    principal=PRINCIPAL,
                    requests=self._requests,
                    producer=self._producer,
                )
        return self._publisher.publish(event, signed=signed)


__all__ = ["PRINCIPAL", "LazyPublisher", "StatusPublisher", "UnsignedUpdate"]
