"""Who said it: an event's statement signature (`cepbus.contract.statements`) resolved against the signed
directory, and the event's claims held to its signer.

`Authorship.verify` checks the signature of a message's single-object bytes: the key is the directory's
(of an organisation or of one of the bus's services), valid when the bus records the event (its own
clock, never the sender's), and it signed the batch the statement's path leads to. `Authorship.judge`
then holds the event to its signer: the signer is the envelope's producer, the producer may write the
topic (the catalog's `writers`: only the bus's services may sign a dead letter), and every field naming
who acts (`operator_id`, `requester_org_id`, `actor_org_id`) names the signer
(`cepbus.reference.producers`). A failure is an `AuthorshipError` with a stable reason, which the runtime
turns into a dead letter before any handler runs.

Verifying a batch's root costs one Ed25519 verification; the roots already verified are remembered (a
bounded cache keyed by key, signature, size and root), so the other events of a batch cost hashing only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cepbus.contract.models import Event
from cepbus.contract.statements import StatementError, StatementSignature, statement_digest
from cepbus.contract.topics import TopicSpec
from cepbus.reference.directory import Directory, format_time
from cepbus.reference.producers import ProducerCatalog


class AuthorshipError(ValueError):
    """The event is not its author's word; `reason` is short and stable (a metrics label)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Author:
    """Who signed a statement, and the proof: what the ledger keeps beside the event."""

    org_id: str
    key_id: str
    digest: bytes
    signature: StatementSignature


class Authorship:
    def __init__(
        self,
        directory: Directory,
        producers: ProducerCatalog,
        *,
        cache_size: int = 8192,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.directory = directory
        self.producers = producers
        self._clock = clock or (lambda: datetime.now(UTC))
        self._verified: OrderedDict[tuple[str, bytes, int, bytes], None] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, single_object: bytes, header: bytes | None, at: datetime | None = None) -> Author:
        """The author of these bytes, per their `cepbus-signature` header, checked at `at` (default:
        now, the bus's clock); AuthorshipError (`unsigned`, `malformed_signature`, `unknown_key`,
        `key_not_valid`, `bad_signature`) otherwise."""
        try:
            signature = StatementSignature.parse(header)
        except StatementError as exc:
            raise AuthorshipError(exc.reason, exc.detail) from None
        key = self.directory.key_by_id(signature.key_id)
        if key is None:
            raise AuthorshipError("unknown_key", f"key {signature.key_id} is not in directory {self._serial}")
        when = at or self._clock()
        if not key.valid_at(when):
            raise AuthorshipError(
                "key_not_valid", f"key {key.key_id} of {key.org_id} may not sign at {format_time(when)}"
            )
        digest = statement_digest(single_object)
        try:
            root = signature.root(digest)
            cached = (key.key_id, signature.signature, signature.size, root)
            if cached in self._verified:
                self._verified.move_to_end(cached)
            else:
                signature.verify_root(root, self.directory.public_of(key))
                self._verified[cached] = None
                if len(self._verified) > self._cache_size:
                    self._verified.popitem(last=False)
        except StatementError as exc:
            raise AuthorshipError(exc.reason, exc.detail) from None
        return Author(key.org_id, key.key_id, digest, signature)

    @property
    def _serial(self) -> str:
        return f"serial {self.directory.serial}"

    def judge(self, event: Event, author: Author, topic: TopicSpec | None) -> None:
        """Hold the event to its signer; AuthorshipError (`misattributed`, `producer_not_allowed`,
        `claim_mismatch`, `not_allowed_on_topic`) when it speaks for someone else."""
        producer = event.envelope.producer_org_id
        if producer != author.org_id:
            raise AuthorshipError(
                "misattributed", f"signed by {author.org_id} (key {author.key_id}) but produced as {producer}"
            )
        if topic is not None:
            problem = self.producers.judge(event, topic)
            if problem is not None:
                raise AuthorshipError(problem.reason, problem.detail)


__all__ = ["Author", "Authorship", "AuthorshipError"]
