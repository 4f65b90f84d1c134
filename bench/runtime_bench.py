"""The router step in each runtime, the whole pipeline and the raw broker, in one run (issue #12).

One broker (the embedded Tansu, or KAFKA_BOOTSTRAP_SERVERS), one list of pre-encoded simulator intakes
(the same bytes everywhere), measured in this order:

1. raw baseline: confluent-kafka produces the N intakes (their keys and bytes) to a fresh topic and a
   consumer in the same process reads them back; msgs/s = N / (last consumed - first produced). Also
   the aiokafka produce -> consume of bench/pipeline_bench.py, for comparison with earlier runs.
2. the router step alone: N intakes pre-filled once into `cep.intake.registered`; each runtime is a
   process of its own, in a fresh consumer group whose offsets are set to the start of the fill
   beforehand, with a fresh SQLite router store, and produces the router's outputs
   (`cep.intake.decided`, `cep.notice.requested`, `cep.deadletter`):
   - `batch`: `python -m services.router` (the real ServiceDefinition, CEPBUS_RUNTIME=batch);
   - `faust`: the same with CEPBUS_RUNTIME=faust;
   - `quixstreams`: a Quix Streams Application applying the same `RouterHandlers.on_intake`, the store
     transaction committed at each checkpoint (a sink flushed before the producer flush and the offset
     commit), one checkpoint every 200 messages as the batch runtime's batch_max;
     `quixstreams_default`: the same with Quix's default checkpointing (every 5 s);
   - `confluent_loop`, `aiokafka_loop`: bare loops: poll up to 200 / 10 ms, decode (cepbus codec), the
     same handler in one store transaction, commit it, encode and produce the outputs, wait for the
     acks, commit the offsets. No outbox, no per-event savepoint, no metrics or logs of the runtime.
   A counter in this process reads the output topics. intakes/s = N / (arrival of the run's last
   expected output - arrival of its first output): start-up and group join are left out, as is the
   first batch (about 1 % of N). CPU per intake = CPU seconds (user + system, psutil) of the runtime's
   process between those two moments / N; the broker's likewise. Checked for each runtime: every
   expected output arrived (per topic: N decisions, the notices and dead letters the handler asks for)
   and no more; the store holds N intakes; the group's committed offsets reach the end of the fill.
3. the pipeline (router -> notifier -> ledger as processes, bench/pipeline_bench.py's `Services` and
   its definitions: sustained = N / (last expected ledger entry - first send); latency = send -> the
   ledger's recorded_at of the intake's final entry), first with one router, then with a second
   router process joining the same group. CPU ms per intake per process over the sustained run.

Usage: python bench/runtime_bench.py [--quick] [--intakes 20000] [--rates 500,1000,2000]
       [--runtimes batch,faust,quixstreams,...] [--quix-python PATH] [--json-out PATH] [--profile batch]

quixstreams 3.28 pins confluent-kafka<2.13 and cannot share the project's virtualenv (confluent-kafka
2.16); give it its own with --quix-python (see docs/benchmarks.md), or the quixstreams entries are null.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cepbus.contract.topics import DEAD_LETTER, INTAKE_DECIDED, INTAKE_REGISTERED, NOTICE_REQUESTED  # noqa: E402

INTAKES = INTAKE_REGISTERED.name
OUTPUT_TOPICS = (INTAKE_DECIDED.name, NOTICE_REQUESTED.name, DEAD_LETTER.name)
BATCH_MAX = 200  # as the batch runtime's default (StreamSettings.batch_max, batch_within_ms)
BATCH_WITHIN_S = 0.010
PARTITIONS = 6
ALL_RUNTIMES = ("batch", "faust", "quixstreams", "quixstreams_default", "confluent_loop", "aiokafka_loop")
SERVICE_GROUPS = ("cepbus-router", "cepbus-notifier", "cepbus-ledger")

# The Tansu settings every client gets (the services' BrokerSettings defaults).
CONSUMER_TANSU = {
    "fetch.wait.max.ms": 20,  # Tansu does not wake a waiting fetch
    "fetch.min.bytes": 1,
    "session.timeout.ms": 2000,  # Tansu makes a join wait half of it
    "heartbeat.interval.ms": 500,
}
PRODUCER_TANSU = {"acks": "all", "enable.idempotence": False, "linger.ms": 5}


# == the child processes: the router step in a bare loop or in Quix Streams ============================


class RouterStep:
    """The router's intake step as the services run it: decode, `RouterHandlers.on_intake` on a SQLite
    router store, a refusal to the dead letters; the outputs encoded, keyed and headed as the runtime
    sends them."""

    def __init__(self, db_path: str) -> None:
        from cepbus.contract import codec
        from cepbus.reference import load_reference
        from cepbus.runtime.messages import Incoming, Rejected
        from cepbus.runtime.processing import EventProcessor
        from services.router.handlers import RouterHandlers
        from services.router.store import RouterStore

        self._codec, self._incoming, self._rejected = codec, Incoming, Rejected
        self.handlers = RouterHandlers(load_reference(), store=RouterStore(f"sqlite:///{db_path}"))
        self._letters = EventProcessor("router", self.handlers.service_org_id)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self.handlers.store.transaction()

    def handle(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes
    ) -> list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]:
        message = self._incoming(topic, partition, offset, key, value)
        try:
            event = self._codec.decode(value)
        except self._codec.DecodeError as exc:
            outputs = [self._letters.dead_letter(message, exc.reason, exc.detail, "DecodeError")]
        else:
            try:
                outputs = list(self.handlers.on_intake(event))  # type: ignore[arg-type]
            except self._rejected as exc:
                outputs = [*exc.also, self._letters.dead_letter(message, exc.reason, exc.detail, "Rejected")]
        return [(o.topic, o.key(), self._codec.encode(o.event), o.headers()) for o in outputs]


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def child_confluent(args: argparse.Namespace) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    step = RouterStep(args.db)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **CONSUMER_TANSU,
        }
    )
    producer = Producer({"bootstrap.servers": args.bootstrap, **PRODUCER_TANSU})
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    stop = _stop_event()
    consumer.subscribe([INTAKES])
    while not stop.is_set():
        messages = [m for m in consumer.consume(BATCH_MAX, BATCH_WITHIN_S) if m.error() is None]
        if not messages:
            producer.poll(0)
            continue
        outputs = []
        offsets: dict[tuple[str, int], int] = {}
        with step.transaction():
            for m in messages:
                outputs += step.handle(m.topic(), m.partition(), m.offset(), m.key(), m.value())
                offsets[(m.topic(), m.partition())] = m.offset() + 1
        for topic, key, value, headers in outputs:
            while True:
                try:
                    producer.produce(topic, value, key, headers=headers, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(30) or failures:
            raise RuntimeError(f"not acknowledged: {failures[:1]}")
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True)
    producer.flush(30)
    consumer.close()


def child_aiokafka(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    step = RouterStep(args.db)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        consumer = AIOKafkaConsumer(
            INTAKES,
            bootstrap_servers=args.bootstrap,
            group_id=args.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
            session_timeout_ms=2000,
            heartbeat_interval_ms=500,
            max_poll_records=BATCH_MAX,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=args.bootstrap, acks="all", linger_ms=5, enable_idempotence=False
        )
        await consumer.start()
        await producer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=int(BATCH_WITHIN_S * 1000), max_records=BATCH_MAX)
                if not batch:
                    continue
                outputs = []
                offsets: dict[TopicPartition, int] = {}
                with step.transaction():
                    for tp, records in batch.items():
                        for r in records:
                            outputs += step.handle(r.topic, r.partition, r.offset, r.key, r.value)
                        offsets[tp] = records[-1].offset + 1
                futures = [
                    await producer.send(topic, value, key=key, headers=headers)
                    for topic, key, value, headers in outputs
                ]
                await asyncio.gather(*futures)
                await consumer.commit(offsets)
        finally:
            await producer.stop()
            await consumer.stop()

    asyncio.run(run())


def child_quix(args: argparse.Namespace) -> None:
    from quixstreams import Application
    from quixstreams.models.serializers import Serializer
    from quixstreams.sinks.base import BaseSink

    step = RouterStep(args.db)

    class Encoded(Serializer):
        """The output tuple's bytes (already encoded by the step)."""

        def __call__(self, value: Any, ctx: Any) -> bytes:
            return value[2]

    class StoreCommit(BaseSink):
        """Commits the router store's transaction at each checkpoint: sinks are flushed first, then the
        producer (acks), then the offsets are committed; so the store, the outputs, then the offsets."""

        def __init__(self) -> None:
            super().__init__()
            self.open: Any = None

        def begin(self) -> None:
            if self.open is None:
                self.open = step.transaction()
                self.open.__enter__()

        def add(self, *_: Any, **__: Any) -> None:
            pass

        def flush(self, *_: Any) -> None:
            if self.open is not None:
                opened, self.open = self.open, None
                opened.__exit__(None, None, None)

    commit_every = args.quix_commit_every
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
        state_dir=str(Path(args.db).parent / "quix-state"),
        commit_every=commit_every,
        commit_interval=1.0 if commit_every else 5.0,
        consumer_extra_config=dict(CONSUMER_TANSU),
        producer_extra_config=dict(PRODUCER_TANSU),
        loglevel="WARNING",
    )
    source = app.topic(INTAKES, value_deserializer="bytes", key_deserializer="bytes")
    outputs = {
        name: app.topic(name, value_serializer=Encoded(), key_serializer="bytes") for name in OUTPUT_TOPICS
    }
    store = StoreCommit()

    def handle(value: bytes, key: bytes | None, _timestamp: int, _headers: Any) -> list[Any]:
        from quixstreams import message_context

        store.begin()
        context = message_context()
        return step.handle(context.topic, context.partition, context.offset, key, value)

    sdf = app.dataframe(source)
    sdf = sdf.apply(handle, expand=True, metadata=True)
    sdf = sdf.set_headers(lambda value, _key, _ts, _headers: value[3])
    sdf = sdf.to_topic(lambda value, _key, _ts, _headers: outputs[value[0]], key=lambda value: value[1])
    sdf.sink(store)
    app.run()


CHILDREN = {"confluent_loop": child_confluent, "aiokafka_loop": child_aiokafka, "quixstreams": child_quix}


# == the bench ==========================================================================================


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass(frozen=True)
class RouterExpect:
    """What the router step must produce for the first N intakes, per output topic."""

    per_topic: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.per_topic.values())


def make_intakes(count: int, router_count: int, seed: int) -> tuple[list[Any], RouterExpect]:
    """pipeline_bench's pre-encoded intakes, and the router outputs the first `router_count` ask for."""
    from pipeline_bench import make_intakes as pipeline_intakes

    from cepbus.contract import codec
    from cepbus.reference import load_reference
    from cepbus.runtime.messages import Rejected
    from services.router.handlers import RouterHandlers

    intakes = pipeline_intakes(count, seed)
    router = RouterHandlers(load_reference())
    per_topic = dict.fromkeys(OUTPUT_TOPICS, 0)
    for intake in intakes[:router_count]:
        try:
            outputs = router.on_intake(codec.decode(intake.value))  # type: ignore[arg-type]
        except Rejected as exc:
            outputs = [*exc.also]
            per_topic[DEAD_LETTER.name] += 1
        for out in outputs:
            per_topic[out.topic] += 1
    return intakes, RouterExpect(per_topic)


def cpu_s(pid: int | None) -> float:
    import psutil

    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    return times.user + times.system


def create_topic(bootstrap: str, name: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        admin.close()


def precommit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Set a group's offsets before any member joins (Tansu accepts a commit from outside the group)."""
    from confluent_kafka import Consumer, TopicPartition

    if not offsets:
        return
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        return {(tp.topic, tp.partition): tp.offset for tp in found}
    finally:
        consumer.close()


def produce_all(bootstrap: str, topic: str, intakes: list[Any]) -> dict[tuple[str, int], tuple[int, int]]:
    """Produce and wait; (topic, partition) -> (first offset, end offset) from the delivery reports."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_TANSU})
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    failed: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failed.append(str(error))
            return
        key = (message.topic(), message.partition())
        first, end = spans.get(key, (message.offset(), message.offset() + 1))
        spans[key] = (min(first, message.offset()), max(end, message.offset() + 1))

    for intake in intakes:
        while True:
            try:
                producer.produce(
                    topic, intake.value, intake.key, headers=intake.headers, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    if failed:
        raise RuntimeError(f"fill failed: {failed[:1]}")
    return spans


def raw_confluent(bootstrap: str, intakes: list[Any]) -> dict[str, Any]:
    """Produce N to a fresh topic and read them back (an assigned consumer: no group join)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4().hex[:6]}", **CONSUMER_TANSU}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    consumer.consume(1, 0.5)  # connected and fetching before the clock starts
    received = 0
    last = 0.0
    done = threading.Event()

    def consume() -> None:
        nonlocal received, last
        deadline = time.monotonic() + 120
        while received < len(intakes) and time.monotonic() < deadline:
            batch = [m for m in consumer.consume(1000, 0.05) if m.error() is None]
            if batch:
                received += len(batch)
                last = time.monotonic()
        done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_TANSU})
    first = time.monotonic()
    for intake in intakes:
        while True:
            try:
                producer.produce(topic, intake.value, intake.key)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    done.wait(130)
    consumer.close()
    if received < len(intakes):
        raise RuntimeError(f"raw baseline: {received} of {len(intakes)} consumed")
    return {"messages": len(intakes), "msgs_per_s": round(len(intakes) / (last - first), 1)}


class OutputCounter:
    """Reads the router's output topics from where they were when the router step began, in a thread;
    counts messages per topic and keeps each one's arrival time."""

    def __init__(self, bootstrap: str, from_end: bool) -> None:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-counter-{uuid.uuid4().hex[:6]}",
                **CONSUMER_TANSU,
            }
        )
        metadata = self.consumer.list_topics(timeout=10)
        start = OFFSET_END if from_end else OFFSET_BEGINNING
        self.consumer.assign(
            [TopicPartition(t, p, start) for t in OUTPUT_TOPICS for p in metadata.topics[t].partitions]
        )
        self.counts = dict.fromkeys(OUTPUT_TOPICS, 0)
        self.arrivals: list[float] = []
        self.positions: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self.consumer.consume(2000, 0.05)
            now = time.monotonic()
            for m in batch:
                if m.error() is not None:
                    continue
                topic = m.topic()
                self.counts[topic] += 1
                self.positions[(topic, m.partition())] = m.offset() + 1
                self.arrivals.append(now)

    def snapshot(self) -> tuple[dict[str, int], int]:
        return dict(self.counts), len(self.arrivals)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.consumer.close()


@dataclass
class StepContext:
    args: argparse.Namespace
    bootstrap: str
    broker_pid: int | None
    root: Path
    fill: dict[tuple[str, int], tuple[int, int]]
    expect: RouterExpect
    counter: OutputCounter
    n: int
    results: dict[str, Any] = field(default_factory=dict)


def runtime_command(
    name: str, ctx: StepContext, group: str, db: Path, profile: Path | None
) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "CEPBUS_LOG_LEVEL": "WARNING", "CEPBUS_LOG_FORMAT": "json"}
    if name in ("batch", "faust"):
        env.update(
            {
                "CEPBUS_RUNTIME": name,
                "CEPBUS_BOOTSTRAP_SERVERS": ctx.bootstrap,
                "CEPBUS_ROUTER_GROUP_ID": group,
                "CEPBUS_ROUTER_DATABASE_URL": f"sqlite:///{db}",
                "CEPBUS_ROUTER_METRICS_PORT": "0",
                "CEPBUS_REFERRALS_DATABASE_URL": f"sqlite:///{db.parent / 'referrals.db'}",
                "CEPBUS_REFERRALS_HTTP_PORT": "0",
            }
        )
        python = sys.executable
        target = ["-m", "services.router"]
    else:
        python = ctx.args.quix_python if name.startswith("quixstreams") else sys.executable
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        target = [
            str(Path(__file__).resolve()),
            "--child",
            "quixstreams" if name.startswith("quixstreams") else name,
            "--bootstrap",
            ctx.bootstrap,
            "--group",
            group,
            "--db",
            str(db),
            "--quix-commit-every",
            "0" if name == "quixstreams_default" else str(BATCH_MAX),
        ]
    prefix = ["-m", "cProfile", "-o", str(profile)] if profile else []
    return [python, *prefix, *target], env


def run_router_step(
    name: str, ctx: StepContext, profile: Path | None = None, tag: str = ""
) -> dict[str, Any]:
    workdir = ctx.root / f"step-{name}-{tag}{'-profile' if profile else ''}"
    workdir.mkdir()
    group = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    precommit(ctx.bootstrap, group, {tp: first for tp, (first, _end) in ctx.fill.items()})
    db = workdir / "router.db"
    command, env = runtime_command(name, ctx, group, db, profile)
    counts0, mark = ctx.counter.snapshot()
    expected = ctx.expect.total
    log_path = workdir / "process.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)

    def tail() -> str:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])

    def wait_for(predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail()}")
            time.sleep(0.01)
        return False

    try:
        if not wait_for(lambda: len(ctx.counter.arrivals) > mark, 120):
            raise RuntimeError(f"{name}: no output within 120 s:\n{tail()}")
        cpu0, broker0 = cpu_s(proc.pid), cpu_s(ctx.broker_pid)
        first = ctx.counter.arrivals[mark]

        def complete() -> bool:
            return all(ctx.counter.counts[t] - counts0[t] >= ctx.expect.per_topic[t] for t in OUTPUT_TOPICS)

        if not wait_for(complete, ctx.args.step_timeout):
            got = {t: ctx.counter.counts[t] - counts0[t] for t in OUTPUT_TOPICS}
            raise RuntimeError(
                f"{name}: outputs {got} of {ctx.expect.per_topic} within the timeout:\n{tail()}"
            )
        cpu1, broker1 = cpu_s(proc.pid), cpu_s(ctx.broker_pid)
        last = max(ctx.counter.arrivals[mark : mark + expected])
        ends = {tp: end for tp, (_first, end) in ctx.fill.items()}
        commit_wait = time.monotonic()
        all_committed = False
        while time.monotonic() - commit_wait < 15:
            got = committed(ctx.bootstrap, group, sorted(ends))
            if all(got.get(tp, -1) >= end for tp, end in ends.items()):
                all_committed = True
                break
            time.sleep(0.1)
        committed_after_ms = (time.monotonic() - last) * 1000
        time.sleep(0.5)  # anything sent twice shows up by now
        extra = len(ctx.counter.arrivals) - mark - expected
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        stored = conn.execute("SELECT COUNT(*) FROM router_intakes").fetchone()[0]
        unsent = conn.execute("SELECT COUNT(*) FROM router_outbox WHERE sent_at_ms IS NULL").fetchone()[0]
        outboxed = conn.execute("SELECT COUNT(*) FROM router_outbox").fetchone()[0]
    finally:
        conn.close()
    span = last - first
    result = {
        "intakes_per_s": round(ctx.n / span, 1),
        "cpu_us_per_intake": round((cpu1 - cpu0) / ctx.n * 1e6, 1),
        "broker_cpu_us_per_intake": round((broker1 - broker0) / ctx.n * 1e6, 1) if ctx.broker_pid else None,
        "cpu_utilisation": round((cpu1 - cpu0) / span, 2),
        "span_s": round(span, 2),
        "first_output_after_start_s": round(first - started, 2),
        "outputs": {t: ctx.counter.counts[t] - counts0[t] for t in OUTPUT_TOPICS},
        "outputs_beyond_expected": extra,
        "offsets_committed_to_end": all_committed,
        "offsets_committed_after_last_output_ms": round(committed_after_ms, 0),
        "store_intakes": stored,
        "store_outbox_rows": outboxed,
        "store_outbox_unsent": unsent,
    }
    sane = stored == ctx.n and extra == 0 and all_committed and unsent == 0
    result["checks_passed"] = sane
    return result


def profile_summary(path: Path, out: Path, top: int = 40) -> str:
    import io
    import pstats

    buffer = io.StringIO()
    stats = pstats.Stats(str(path), stream=buffer)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    out.write_text(buffer.getvalue())
    return buffer.getvalue()


# -- the pipeline -------------------------------------------------------------------------------------


async def pipeline_phase(
    ctx: StepContext, intakes: list[Any], per_config: int, service_offsets: dict[tuple[str, int], int]
) -> list[dict[str, Any]]:
    from pipeline_bench import LedgerWatch, Services, Supervisor, pipeline_run, usage, wait_group_ready

    from cepbus.runtime.admin import bus_topics, ensure_topics
    from cepbus.runtime.settings import BrokerSettings

    args = ctx.args
    ensure_topics(BrokerSettings(bootstrap_servers=ctx.bootstrap), bus_topics())
    for group in SERVICE_GROUPS:  # the services start where the router step left the topics
        precommit(ctx.bootstrap, group, service_offsets)
    workdir = ctx.root / "pipeline"
    workdir.mkdir()
    services = Services(workdir, ctx.bootstrap, 1, args.metrics_base, 1)
    configurations = []
    offset = 0

    def take(count: int) -> list[Any]:
        nonlocal offset
        chunk = intakes[offset : offset + count]
        offset += count
        if len(chunk) < count:
            raise ValueError("not enough intakes generated")
        return chunk

    try:
        services.start()
        watch = LedgerWatch(workdir / "ledger.db")
        for routers in args.routers:
            while len(services.supervisors) < routers:  # a second router joins the running group
                extra = len(services.supervisors)
                second = Supervisor(log_dir=workdir / f"logs-router{extra + 1}", env=services.env(10 * extra))
                services.supervisors.append(second)
                second.start("router")
                second.wait_metrics("router", int(second.env["CEPBUS_ROUTER_METRICS_PORT"]), 90)
            try:
                offset = (routers - 1) * per_config
                await wait_group_ready(watch, ctx.bootstrap, take(200))
                pids = {**services.processes(), "broker": ctx.broker_pid}
                pids = {name: pid for name, pid in pids.items() if pid}
                before = {name: cpu_s(pid) for name, pid in pids.items()}
                burst = await pipeline_run(
                    ctx.bootstrap, watch, take(args.pipeline_intakes), None, args.timeout
                )
                after = {name: cpu_s(pid) for name, pid in pids.items()}
                result: dict[str, Any] = {
                    "routers": routers,
                    "sustained": burst,
                    "cpu_ms_per_intake": {
                        name: round((after[name] - before[name]) / args.pipeline_intakes * 1000, 3)
                        for name in pids
                    },
                    "latency": [],
                }
                for rate in args.rates:
                    count = int(rate * args.duration)
                    start = {name: cpu_s(pid) for name, pid in pids.items()}
                    run = await pipeline_run(ctx.bootstrap, watch, take(count), rate, args.timeout)
                    end = {name: cpu_s(pid) for name, pid in pids.items()}
                    run["cpu_ms_per_intake"] = {
                        name: round((end[name] - start[name]) / count * 1000, 3) for name in pids
                    }
                    result["latency"].append(run)
                result["peak_rss_mib"] = {
                    name: use["peak_rss_mib"] for name, use in usage(services.processes()).items()
                }
                configurations.append(result)
            except Exception as exc:  # keep what was measured; the services' state is unknown now
                configurations.append({"routers": routers, "error": f"{type(exc).__name__}: {exc}"[:2000]})
                print(f"pipeline with {routers} router(s) FAILED: {exc}", file=sys.stderr)
                break
            print(f"pipeline with {routers} router(s) done", file=sys.stderr)
    finally:
        services.stop()
    return configurations


# -- the report -----------------------------------------------------------------------------------------


def versions(args: argparse.Namespace) -> dict[str, Any]:
    import aiokafka
    import confluent_kafka
    import faust

    found: dict[str, Any] = {
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "aiokafka": aiokafka.__version__,
        "faust_streaming": faust.__version__,
    }
    if args.quix_python:
        try:
            out = subprocess.run(
                [
                    args.quix_python,
                    "-c",
                    "import quixstreams, confluent_kafka as c;"
                    " print(quixstreams.__version__, c.__version__, c.libversion()[0])",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout.split()
            found.update(
                quixstreams=out[0], quixstreams_confluent_kafka=out[1], quixstreams_librdkafka=out[2]
            )
        except (subprocess.SubprocessError, IndexError, OSError) as exc:
            found["quixstreams"] = f"unavailable: {exc}"
    try:
        from cepbus_app.broker import EmbeddedBrokerSettings, tansu_binary

        tansu = tansu_binary(EmbeddedBrokerSettings())
        found["tansu"] = subprocess.run(
            [str(tansu), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return found


def quix_available(args: argparse.Namespace) -> str | None:
    """None when quixstreams can run, else why not."""
    if not args.quix_python:
        return "no --quix-python: quixstreams 3.28 needs confluent-kafka<2.13, the project pins >=2.16"
    try:
        subprocess.run(
            [args.quix_python, "-c", "import quixstreams"], capture_output=True, timeout=60, check=True
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return f"{args.quix_python} cannot import quixstreams: {exc}"
    return None


def summarise(
    args: argparse.Namespace,
    raw: list[dict[str, Any]],
    raw_aio: dict[str, Any] | None,
    step: dict[str, Any],
    pipeline: list[dict[str, Any]],
    message_bytes: float,
    expect: RouterExpect,
    load_start: tuple[float, float, float],
) -> dict[str, Any]:
    raw_rate = float(statistics.median(r["msgs_per_s"] for r in raw))
    step_rates = {name: res.get("intakes_per_s") for name, res in step.items()}
    step_cpu = {name: res.get("cpu_us_per_intake") for name, res in step.items()}
    one = next((c for c in pipeline if c["routers"] == 1 and "sustained" in c), None)
    two = next((c for c in pipeline if c["routers"] == 2 and "sustained" in c), None)

    def latency(config: dict[str, Any] | None) -> dict[str, Any]:
        if not config:
            return {}
        return {
            str(int(run["offered_rate"])): {
                "p50": run["latency_ms_p50"],
                "p99": run["latency_ms_p99"],
                "max": run["latency_ms_max"],
                "achieved_per_s": run["throughput_per_s"],
            }
            for run in config["latency"]
        }

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    pipe1 = one["sustained"]["throughput_per_s"] if one else None
    pipe2 = two["sustained"]["throughput_per_s"] if two else None
    lat1 = latency(one)
    summary: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python", "bench/runtime_bench.py", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_at_start": [round(x, 2) for x in load_start],
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": versions(args),
        "intakes": args.intakes,
        "message_bytes_mean": round(message_bytes, 1),
        "router_outputs_expected": expect.per_topic,
        "raw_msgs_per_s": raw_rate,
        "raw_runs": raw,
        "raw_aiokafka_msgs_per_s": raw_aio["throughput_per_s"] if raw_aio else None,
        "router_step_per_s": step_rates,
        "router_step_cpu_us_per_intake": step_cpu,
        "router_step": step,
        "ratio_router_step_batch_to_quixstreams": ratio(
            step_rates.get("batch"), step_rates.get("quixstreams")
        ),
        "ratio_router_step_batch_to_quixstreams_default": ratio(
            step_rates.get("batch"), step_rates.get("quixstreams_default")
        ),
        "ratio_router_step_batch_to_confluent_loop": ratio(
            step_rates.get("batch"), step_rates.get("confluent_loop")
        ),
        "pipeline_intakes_per_s": pipe1,
        "pipeline_two_routers_intakes_per_s": pipe2,
        "ratio_pipeline_to_raw": ratio(pipe1, raw_rate),
        "ratio_two_routers_to_one": ratio(pipe2, pipe1),
        "cpu_ms_per_intake": one["cpu_ms_per_intake"] if one else None,
        "cpu_ms_per_intake_two_routers": two["cpu_ms_per_intake"] if two else None,
        "latency_ms": lat1,
        "latency_ms_two_routers": latency(two),
        "pipeline": pipeline,
    }
    p99_1000 = lat1.get("1000", {}).get("p99")
    batch_rate, quix_rate = step_rates.get("batch"), step_rates.get("quixstreams")
    summary["targets"] = {
        "pipeline_at_least_2000_per_s": {"value": pipe1, "met": bool(pipe1 and pipe1 >= 2000)},
        "pipeline_to_raw_at_least_0.07": {
            "value": summary["ratio_pipeline_to_raw"],
            "met": bool(summary["ratio_pipeline_to_raw"] and summary["ratio_pipeline_to_raw"] >= 0.07),
        },
        "router_step_batch_at_least_quixstreams": {
            "value": summary["ratio_router_step_batch_to_quixstreams"],
            "met": bool(batch_rate and quix_rate and batch_rate >= quix_rate) if quix_rate else None,
        },
        "p99_below_250ms_at_1000_per_s": {
            "value": p99_1000,
            "met": bool(p99_1000 is not None and p99_1000 < 250),
        },
        "second_router_adds_throughput": {
            "value": summary["ratio_two_routers_to_one"],
            "met": bool(pipe1 and pipe2 and pipe2 > pipe1 * 1.05) if pipe2 else None,
        },
    }
    return summary


def print_table(summary: dict[str, Any]) -> None:
    print(
        f"\nmessages: {summary['message_bytes_mean']:.0f} bytes (encoded intakes), N = {summary['intakes']}"
    )
    machine = summary["machine"]
    print(
        f"cpus: {machine['cpus']}, load average at start {machine['load_avg_at_start']},"
        f" at end {machine['load_avg_at_end']}"
    )
    print(f"router outputs expected for N intakes: {summary['router_outputs_expected']}\n")
    print(f"{'what':46} {'per s':>9} {'CPU us/intake':>14} {'broker us':>10}  checks")
    for run in summary["raw_runs"]:
        print(f"{'raw confluent produce->consume':46} {run['msgs_per_s']:>9.0f}")
    if summary["raw_aiokafka_msgs_per_s"]:
        print(f"{'raw aiokafka produce->consume':46} {summary['raw_aiokafka_msgs_per_s']:>9.0f}")
    for name, res in summary["router_step"].items():
        label = f"router step: {name}"
        if not isinstance(res, dict) or "intakes_per_s" not in res:
            reason = res.get("unavailable") or [r.get("error") for r in res.get("runs", [])]
            print(f"{label:46} {'n/a':>9}  {reason}")
            continue
        broker = res.get("broker_cpu_us_per_intake")
        runs = " ".join(f"{r['intakes_per_s']:.0f}" for r in res["runs"] if "intakes_per_s" in r)
        print(
            f"{label:46} {res['intakes_per_s']:>9.0f} {res['cpu_us_per_intake']:>14.0f} "
            f"{broker if broker is not None else float('nan'):>10.0f}"
            f"  {'ok' if res['checks_passed'] else 'FAILED'}  runs: {runs}"
        )
    for config in summary["pipeline"]:
        tag = f"pipeline, {config['routers']} router{'s' if config['routers'] > 1 else ''}"
        if "error" in config:
            print(f"{tag:46} FAILED: {config['error'][:200]}")
            continue
        cpu = config["cpu_ms_per_intake"]
        print(f"{tag + ', sustained':46} {config['sustained']['throughput_per_s']:>9.0f}")
        print("    CPU ms per intake: " + ", ".join(f"{n} {v:.3f}" for n, v in cpu.items()))
        for run in config["latency"]:
            label = f"{tag} at {run['offered_rate']:.0f}/s"
            print(
                f"{label:46} {run['throughput_per_s']:>9.0f}   p50 {run['latency_ms_p50']:.1f} ms"
                f"  p99 {run['latency_ms_p99']:.1f} ms  max {run['latency_ms_max']:.1f} ms"
            )
    print()
    for key in (
        "ratio_pipeline_to_raw",
        "ratio_two_routers_to_one",
        "ratio_router_step_batch_to_quixstreams",
        "ratio_router_step_batch_to_quixstreams_default",
        "ratio_router_step_batch_to_confluent_loop",
    ):
        print(f"{key:46} {summary[key]}")
    print("\ntargets:")
    for name, target in summary["targets"].items():
        print(
            f"  {name:44} {target['value']!s:>10}"
            f"  {'met' if target['met'] else ('n/a' if target['met'] is None else 'NOT met')}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 intakes, 3 s per rate: to iterate")
    parser.add_argument("--intakes", type=int, help="N: raw, router step and sustained pipeline (20000)")
    parser.add_argument("--pipeline-intakes", type=int, help="intakes of the sustained pipeline run (N)")
    parser.add_argument("--rates", default="500,1000,2000", help="fixed rates, intakes/s")
    parser.add_argument("--duration", type=float, help="seconds per fixed-rate run (8; quick 3)")
    parser.add_argument("--runtimes", default=",".join(ALL_RUNTIMES), help="router step runtimes to measure")
    parser.add_argument("--routers", default="1,2", help="router processes in the pipeline")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each router step runtime (median)")
    parser.add_argument("--raw-repeat", type=int, default=3, help="raw baseline runs (median)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument(
        "--profile", default="", help="runtimes to run once more under cProfile (not measured)"
    )
    parser.add_argument(
        "--quix-python",
        default=os.environ.get("CEPBUS_BENCH_QUIX_PYTHON"),
        help="an interpreter with quixstreams",
    )
    parser.add_argument("--port", type=int, default=19750, help="Tansu port (the bench starts its own)")
    parser.add_argument(
        "--metrics-base", type=int, default=9750, help="pipeline services use base+1..4, +11..14"
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="max wait for the ledger, per pipeline run"
    )
    parser.add_argument("--step-timeout", type=float, default=240.0, help="max wait for one router step run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json-out", type=Path)
    # a child process of the bench (one runtime of the router step)
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--quix-commit-every", type=int, default=BATCH_MAX, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.intakes = args.intakes or (2000 if args.quick else 20000)
    args.pipeline_intakes = args.pipeline_intakes or args.intakes
    args.duration = args.duration or (3.0 if args.quick else 8.0)
    args.rates = [float(rate) for rate in args.rates.split(",") if rate]
    args.runtimes = [name for name in args.runtimes.split(",") if name]
    args.routers = [int(n) for n in args.routers.split(",") if n]
    args.profile = [name for name in args.profile.split(",") if name]
    unknown = set(args.runtimes + args.profile) - set(ALL_RUNTIMES)
    if unknown:
        parser.error(f"unknown runtimes {sorted(unknown)}; known: {', '.join(ALL_RUNTIMES)}")
    if args.json_out is None:
        args.json_out = ROOT / "bench" / "results" / f"runtime-{datetime.date.today().isoformat()}.json"
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline_bench import raw_run

    from cepbus.runtime.admin import bus_topics, ensure_topics
    from cepbus.runtime.settings import BrokerSettings
    from cepbus_app.broker import EmbeddedBroker, EmbeddedBrokerSettings

    load_start = os.getloadavg()
    per_config = 200 + args.pipeline_intakes + int(sum(args.rates) * args.duration)
    total = args.intakes if args.skip_pipeline else max(args.intakes, per_config * max(args.routers or [1]))
    print(f"encoding {total} intakes...", file=sys.stderr)
    intakes, expect = make_intakes(total, args.intakes, args.seed)
    message_bytes = statistics.fmean(len(i.value) for i in intakes)
    root = Path(tempfile.mkdtemp(prefix="cepbus-runtime-bench-"))
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if external:
        bootstrap, broker_pid = external, None
    else:
        broker = EmbeddedBroker(
            EmbeddedBrokerSettings(
                port=args.port, log_file=root / "tansu.log", storage_engine="memory://tansu/"
            )
        )
        broker.start()
        bootstrap = broker.bootstrap_servers
        broker_pid = broker.process.pid if broker.process else None
    counter = None
    profiles: dict[str, Any] = {}
    try:
        ensure_topics(BrokerSettings(bootstrap_servers=bootstrap), bus_topics())
        n = args.intakes
        raw = [raw_confluent(bootstrap, intakes[:n]) for _ in range(args.raw_repeat)]
        raw_aio = await raw_run(bootstrap, intakes[:n], None)
        print(f"raw baseline done: {[r['msgs_per_s'] for r in raw]} msgs/s", file=sys.stderr)

        counter = OutputCounter(bootstrap, from_end=bool(external))
        fill = produce_all(bootstrap, INTAKES, intakes[:n])
        ctx = StepContext(args, bootstrap, broker_pid, root, fill, expect, counter, n)
        step: dict[str, Any] = {}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.runtimes}
        quix_reason = quix_available(args)
        for repeat in range(args.repeat):  # round robin: a change of load hits every runtime alike
            for name in args.runtimes:
                if name.startswith("quixstreams") and quix_reason:
                    continue
                try:
                    res = run_router_step(name, ctx, tag=str(repeat))
                    print(
                        f"router step {name} #{repeat + 1}: {res['intakes_per_s']} intakes/s", file=sys.stderr
                    )
                except Exception as exc:  # one runtime failing must not lose the others' figures
                    res = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                    print(f"router step {name} FAILED: {exc}", file=sys.stderr)
                runs[name].append(res)
        for name in args.runtimes:
            if name.startswith("quixstreams") and quix_reason:
                step[name] = {"unavailable": quix_reason}
                continue
            good = [r for r in runs[name] if "intakes_per_s" in r]
            step[name] = {"runs": runs[name]}
            if good:
                step[name].update(
                    {
                        key: statistics.median(r[key] for r in good)
                        for key in ("intakes_per_s", "cpu_us_per_intake", "broker_cpu_us_per_intake")
                        if all(r[key] is not None for r in good)
                    }
                )
                step[name]["checks_passed"] = len(good) == len(runs[name]) and all(
                    r["checks_passed"] for r in good
                )
        for name in args.profile:
            prof = root / f"{name}.prof"
            try:
                res = run_router_step(name, ctx, profile=prof, tag="p")
                out = args.json_out.with_name(args.json_out.stem + f"-profile-{name}.txt")
                profile_summary(prof, out)
                profiles[name] = {
                    "under_cprofile": res,
                    "stats": str(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out),
                }
                print(f"profile of {name}: {out}", file=sys.stderr)
            except Exception as exc:
                profiles[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        # where the services start reading: the ends of what the bench and the router step wrote
        service_offsets = {tp: end for tp, (_first, end) in fill.items()}
        time.sleep(0.5)
        service_offsets.update(counter.positions)
        counter.close()
        counter = None
        pipeline = (
            [] if args.skip_pipeline else await pipeline_phase(ctx, intakes, per_config, service_offsets)
        )
    finally:
        if counter is not None:
            counter.close()
        if broker is not None:
            broker.stop()
        if os.environ.get("CEPBUS_BENCH_KEEP"):
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarise(args, raw, raw_aio, step, pipeline, message_bytes, expect, load_start)
    if profiles:
        summary["profiles"] = profiles
    print_table(summary)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nJSON: {args.json_out}")
    return summary


def main() -> None:
    args = parse_args()
    if args.child:
        CHILDREN[args.child](args)
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
