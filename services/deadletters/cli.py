"""`cep-bus deadletters list|show|replay`: the dead letters the dead-letter service keeps, for an operator
to work with; `cep-bus deadletters` alone runs that service (as `cep-bus ledger` runs the ledger).

A replay re-publishes the original key and bytes to their source topic, with the header
`cepbus-replay-of: <dead letter id>`, waits for the broker's acknowledgement, then records the replay.
Every consumer dedupes on event id, so replaying an event that was in fact processed changes nothing;
an event that fails again becomes a new dead letter naming the one it replays. An oversize original
(kept as a prefix and its digest) cannot be replayed: the command says so and sends nothing.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol

import typer

from cepbus.contract import codec
from cepbus.contract.headers import REPLAY_OF_HEADER, SIGNATURE_HEADER
from cepbus.contract.topics import topic_for
from cepbus.contract.wiring import CONSUMED
from cepbus.runtime.instruments import KafkaRequests, NotRecorded
from services.deadletters.store import DeadLetterStore, ErasedData, StoredDeadLetter

deadletters_app = typer.Typer(
    help="Dead letters: run the archive service, or list, show and replay what a service could not process."
)

DatabaseUrl = Annotated[str | None, typer.Option(help="Default: CEPBUS_DEADLETTERS_DATABASE_URL")]
EXIT_NOT_FOUND, EXIT_NOT_REPLAYABLE, EXIT_BROKER = 2, 3, 4
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class RawSender(Protocol):
    """Sends bytes as they are and returns once the broker acknowledged them (or raises)."""

    def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> None: ...

    def close(self) -> None: ...


class BrokerSender:
    """A confluent-kafka producer with the bus's settings (acks=all), one flush per message."""

    def __init__(self, requests: KafkaRequests | None = None) -> None:
        from confluent_kafka import Producer

        from cepbus.runtime.client_config import librdkafka_producer
        from cepbus.runtime.settings import BrokerSettings

        self.settings = BrokerSettings()
        self.requests: KafkaRequests = requests or NotRecorded()
        self._producer = Producer(librdkafka_producer(self.settings, "cepbus-deadletter-replay"))

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        failures: list[str] = []

        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        from confluent_kafka import KafkaException

        self.requests.record("cepbus-ops", "Write", "topic", topic)  # replays run as the ops KafkaUser
        try:
            self._producer.produce(topic, value=value, key=key, headers=list(headers), on_delivery=delivered)
        except (KafkaException, BufferError) as exc:
            raise ConnectionError(str(exc)) from exc
        remaining = self._producer.flush(self.settings.request_timeout_s)
        if remaining or failures:
            raise ConnectionError(
                failures[0] if failures else f"no acknowledgement from {self.settings.bootstrap_servers}"
            )

    def close(self) -> None:
        self._producer.flush(self.settings.request_timeout_s)


#: Tests replace this to observe what would be sent without a broker.
sender_factory: Callable[[], RawSender] = BrokerSender


def _fail(message: str, code: int) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(code)


def parse_since(text: str | None, now: datetime | None = None) -> int | None:
    """`2h`, `30m`, `7d` (ago), or an ISO date or time (UTC when it has no offset) -> Unix ms."""
    if text is None:
        return None
    now = now or datetime.now(UTC)
    duration = _DURATION.match(text.strip())
    if duration:
        moment = now - timedelta(**{_UNITS[duration.group(2)]: int(duration.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise typer.BadParameter(
                f"{text!r} is neither a duration (30m, 2h, 7d) nor an ISO date/time"
            ) from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _open(database_url: str | None) -> DeadLetterStore:
    from services.deadletters.settings import DeadLetterSettings

    return DeadLetterStore(database_url or DeadLetterSettings().database_url)


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _as_json(letter: StoredDeadLetter) -> dict[str, Any]:
    return {**asdict(letter), "reason_code": letter.reason_code, "replayable": letter.replayable}


@deadletters_app.callback(invoke_without_command=True)
def deadletters(ctx: typer.Context) -> None:
    """Run the dead-letter service when no subcommand is given."""
    if ctx.invoked_subcommand is None:
        from cepbus.runtime.runner import run_service
        from services.deadletters.app import SERVICE, build_service

        run_service(SERVICE, build_service)


@deadletters_app.command("list")
def list_command(
    reason: Annotated[str | None, typer.Option(help="Only this reason code, e.g. bad_marker")] = None,
    since: Annotated[str | None, typer.Option(help="Only since: 30m, 2h, 7d, or an ISO date/time")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many, oldest first")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The dead letters, oldest first, with their reason and whether they were replayed."""
    with _open(database_url) as store:
        letters = store.list(reason=reason, since_ms=parse_since(since), limit=limit)
    if as_json:
        print(json.dumps([_as_json(letter) for letter in letters], indent=1))
        return
    if not letters:
        print("no dead letters" + (f" with reason {reason}" if reason else ""))
        return
    print(f"{'recorded (UTC)':19}  {'service':8}  {'source':32}  {'reason':24}  {'replayed':8}  id")
    for letter in letters:
        source = f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset}"
        replayed = (
            "oversize"
            if not letter.replayable
            else f"{letter.replay_count}x"
            if letter.replay_count
            else "no"
        )
        if letter.replay_of:  # a replay that failed again
            replayed = f"{replayed}, re-failure"
        print(
            f"{_when(letter.recorded_at_ms):19}  {letter.service:8}  {source:32}"
            f"  {letter.reason_code[:24]:24}  {replayed:8}  {letter.event_id}"
        )
    print(f"{len(letters)} dead letter(s)")


@deadletters_app.command("show")
def show_command(
    event_id: Annotated[str, typer.Argument(help="The dead letter's id (from `list`)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """One dead letter: where it came from, why it was refused, and its original decoded if it can be."""
    with _open(database_url) as store:
        letter = store.get(event_id)
        if letter is None:
            raise _fail(f"no dead letter {event_id}", EXIT_NOT_FOUND)
        try:
            key, value = store.original(event_id)
            original: dict[str, Any] = {"key": None if key is None else key.decode(errors="replace")}
            try:
                decoded = codec.decode(value)
                original["event"] = json.loads(decoded.model_dump_json())
                original["event_type"] = decoded.avro_name
            except codec.DecodeError as exc:
                original["undecodable"] = f"{exc.reason}: {exc.detail}"
                original["prefix_hex"] = value[:64].hex()
        except ErasedData:
            original = {"erased": True}
    shown = {**_as_json(letter), "original": original}
    if as_json:
        print(json.dumps(shown, indent=1, default=str))
        return
    for name in ("event_id", "service", "source_topic", "source_partition", "source_offset", "error_class"):
        print(f"{name:18} {shown[name]}")
    print(f"{'recorded':18} {_when(letter.recorded_at_ms)} UTC")
    print(f"{'reason':18} {letter.reason}")
    size = f"{letter.original_size} bytes, sha256 {letter.original_sha256}"
    print(
        f"{'original':18} {size}"
        + (" (oversize: a prefix is kept, not replayable)" if not letter.replayable else "")
    )
    if letter.replay_of:
        print(f"{'replay of':18} {letter.replay_of}")
    print(f"{'replayed':18} {letter.replay_count} time(s), last {_when(letter.replayed_at_ms)}")
    print(json.dumps(original, indent=1, ensure_ascii=False, default=str))


def replay_target(value: bytes) -> str | None:
    """Where an original goes back to: the core topic its type belongs to (never the topic the dead
    letter claims, which anyone signing a dead letter could choose), if a service consumes it."""
    try:
        event = codec.decode(value)
        topic = topic_for(event).name
    except (codec.DecodeError, KeyError):
        return None
    return topic if topic in CONSUMED else None


def _replay_one(store: DeadLetterStore, sender: RawSender, letter: StoredDeadLetter) -> str | None:
    """Re-publish one original as its author signed it (its own bytes and `cepbus-signature` header:
    the consumer verifies it as any event, so a replay can create nothing its author could not); the
    reason it cannot be, or None once the broker acknowledged it."""
    if not letter.replayable:
        return f"{letter.event_id}: the original was {letter.original_size} bytes, only a prefix is kept"
    try:
        key, value = store.original(letter.event_id)
    except ErasedData:
        return f"{letter.event_id}: the person was erased, the original can no longer be read"
    topic = replay_target(value)
    if topic is None:
        return (
            f"{letter.event_id}: the original is no event a service consumes, replaying it would fail again"
        )
    headers = [(REPLAY_OF_HEADER, letter.event_id.encode())]
    signature = store.original_signature(letter.event_id)
    if signature is not None:
        headers.append((SIGNATURE_HEADER, signature))
    sender.send(topic, key, value, headers)
    store.mark_replayed(letter.event_id, time.time_ns() // 1_000_000)
    return None


@deadletters_app.command("replay")
def replay_command(
    event_id: Annotated[str | None, typer.Argument(help="One dead letter's id")] = None,
    reason: Annotated[str | None, typer.Option(help="Every dead letter with this reason code")] = None,
    again: Annotated[
        bool, typer.Option(help="With --reason: also those already replayed, and replays that failed again")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Re-publish originals, as their authors signed them, to the topic of their type (consumers dedupe
    and verify the author's signature, so this is safe to repeat and can forge nothing)."""
    if (event_id is None) == (reason is None):
        raise _fail("give one dead letter id or --reason R", EXIT_NOT_FOUND)
    with _open(database_url) as store:
        if event_id is not None:
            found = store.get(event_id)
            if found is None:
                raise _fail(f"no dead letter {event_id}", EXIT_NOT_FOUND)
            letters = [found]
        else:
            letters = store.list(reason=reason, unreplayed=not again)
            if not again:  # a replay that failed again: replaying it once more would only loop
                letters = [letter for letter in letters if letter.replay_of is None]
            if not letters:
                print(f"nothing to replay with reason {reason}" + ("" if again else " (not yet replayed)"))
                return
        sender = sender_factory()
        refused: list[str] = []
        sent = 0
        try:
            for letter in letters:
                problem = _replay_one(store, sender, letter)
                if problem is None:
                    sent += 1
                    print(
                        f"replayed {letter.event_id} -> {replay_target(store.original(letter.event_id)[1])}"
                    )
                else:
                    refused.append(problem)
        except (ConnectionError, OSError) as exc:
            raise _fail(
                f"replay stopped after {sent}: the broker did not acknowledge ({exc})", EXIT_BROKER
            ) from exc
        finally:
            sender.close()
    for problem in refused:
        print(f"not replayed: {problem}", file=sys.stderr)
    print(f"{sent} replayed, {len(refused)} not replayable")
    if refused:
        raise typer.Exit(EXIT_NOT_REPLAYABLE)


__all__ = ["deadletters_app", "parse_since"]
