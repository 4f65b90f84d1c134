"""The pipeline against the raw broker, measured in the same run (issue #7).

Baseline: raw aiokafka produce -> consume through the same Tansu broker, with the very bytes and keys
the pipeline gets (encoded simulator intakes). Pipeline: the same intakes published -> router ->
notifier -> ledger committed, the three services as separate processes (`cepbus_app.supervisor`), then
again with two router processes in one consumer group.

Definitions (printed with the figures):
- sustained throughput: N intakes published as fast as the producer goes; intakes/s =
  N / (last expected ledger entry's recorded_at - first send). The ledger must hold every expected
  entry (each intake, its IntakeDecided, and its NoticeRequested and NoticeIssued when the rules ask
  for one; an intake the rules reject is dead-lettered and leaves the first two only), so the
  figure is what the whole loop absorbs with the ledger keeping up. Raw: N / (last consumed - first send).
- end-to-end latency at a fixed rate: from the bench's wall clock just before `send` to the ledger's
  `recorded_at_ms` of the intake's NoticeIssued when the rules ask for a notice, else of the intake
  itself. Raw: send -> consumed by the baseline consumer.
- CPU seconds (user + system, `psutil`) and peak RSS (`VmHWM` from /proc) per process, per configuration.

Usage: `python bench/pipeline_bench.py [--port 19700] [--intakes 10000] [--rates 200,500,1000,2000]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from cepbus.auditlog.leaf import LedgerRecord

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cepbus.contract import codec
from cepbus.contract.headers import SIGNATURE_HEADER
from cepbus.contract.topics import INTAKE_REGISTERED, NOTICE_REQUESTED
from cepbus.reference import load_reference
from cepbus.runtime.admin import bus_topics, ensure_topics
from cepbus.runtime.messages import Rejected
from cepbus.runtime.settings import BrokerSettings
from cepbus.trust.ids import DEVELOPMENT_IDS
from cepbus_app.broker import EmbeddedBroker, EmbeddedBrokerSettings
from cepbus_app.demo.simulator import Simulator
from cepbus_app.supervisor import Supervisor
from services.router.handlers import RouterHandlers

PARTITIONS = 6


@dataclass(frozen=True)
class Intake:
    """One pre-encoded intake and the ledger entries it must leave."""

    key: bytes
    value: bytes
    expected_ids: tuple[str, ...]
    final_id: str  # NoticeIssued id when a notice is due, else the intake's own id
    signature: bytes = b""  # its operator's statement signature (the `cepbus-signature` header)

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return [(SIGNATURE_HEADER, self.signature)]


#: Intakes an operator's system signs together (`Publisher.publish_many`): one Ed25519 signature per
#: operator per window of this many intakes of the bench's stream. 1: every intake signed alone.
SIGN_WINDOW = 1000


def sign_intakes(intakes: list[Intake], events: list[Any], window: int = SIGN_WINDOW) -> list[Intake]:
    """Each intake with its operator's signature, as each operator's system signs what it sends."""
    from dataclasses import replace

    from cepbus.sdk.publisher import development_signer

    signed = list(intakes)
    for start in range(0, len(intakes), window):
        by_org: dict[str, list[int]] = {}
        for index in range(start, min(start + window, len(intakes))):
            by_org.setdefault(events[index].envelope.producer_org_id, []).append(index)
        for org, indexes in by_org.items():
            signatures = development_signer(org).sign([intakes[i].value for i in indexes])
            for i, signature in zip(indexes, signatures, strict=True):
                signed[i] = replace(intakes[i], signature=signature.header())
    return signed


def make_intakes(count: int, seed: int, sign_window: int = SIGN_WINDOW) -> list[Intake]:
    """Encoding and signing happen here, before any clock starts: the bench measures the bus."""
    reference = load_reference()
    simulator = Simulator(reference, seed=seed)
    router = RouterHandlers(reference)
    out: list[Intake] = []
    events = list(simulator.intakes(count))
    for event in events:
        # the intake and its recorded decision (IntakeDecided, also for a rejected intake) reach the ledger
        ids = [str(event.event_id), str(DEVELOPMENT_IDS.derive(event.event_id, "intake-decided"))]
        final = ids[0]
        try:
            outputs = router.on_intake(event)
        except Rejected:  # dated before its region opened: dead-lettered, no notice
            outputs = []
        if any(out.topic == NOTICE_REQUESTED.name for out in outputs):
            requested = DEVELOPMENT_IDS.derive(event.event_id, "notice-requested")
            final = str(DEVELOPMENT_IDS.derive(requested, "notice-issued"))
            ids += [str(requested), final]
        key = event.partition_key()
        assert key is not None
        out.append(Intake(key, codec.encode(event), tuple(ids), final))
    return sign_intakes(out, events, sign_window)


#: The partner that floods the bus in `--flood-rate` runs (a specialised operator may write status updates).
FLOOD_ORG = "apec-r11"


@dataclass(frozen=True)
class Flood:
    """Status updates a partner signs and sends for referrals that do not exist: each is refused by the
    router (a refused verdict to the ledger, a rejection to the partner), none is an intake's."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str


def make_flood(count: int, run: str, org: str = FLOOD_ORG) -> list[Flood]:
    from cepbus.contract.models import ReferralStatus, ReferralStatusChanged, new_envelope
    from cepbus.sdk.publisher import development_signer

    updates = [
        ReferralStatusChanged(
            envelope=new_envelope(
                ReferralStatusChanged, producer_org_id=org, person_pseudonym=f"p-flood-{run}-{i}"
            ),
            referral_id=f"ref-flood-{run}-{i}",
            status=ReferralStatus.RECEIVED,
            actor_org_id=org,
        )
        for i in range(count)
    ]
    values = [codec.encode(update) for update in updates]
    signatures = development_signer(org).sign(values)
    return [
        Flood(update.partition_key(), value, [(SIGNATURE_HEADER, signature.header())], str(update.event_id))
        for update, value, signature in zip(updates, values, signatures, strict=True)
    ]


async def flood_send(producer: AIOKafkaProducer, flood: list[Flood], rate: float) -> None:
    """Send the flood at `rate` per second, as the intakes are sent beside it."""
    from cepbus.contract.topics import REFERRAL_STATUS

    started, futures = time.monotonic(), []
    for index, update in enumerate(flood):
        delay = started + index / rate - time.monotonic()
        if delay > 0.002:
            await asyncio.sleep(delay)
        futures.append(
            await producer.send(REFERRAL_STATUS.name, update.value, key=update.key, headers=update.headers)
        )
    await asyncio.gather(*futures)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def now_ms() -> float:
    return time.time() * 1000.0


async def new_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    return producer


async def paced_send(
    producer: AIOKafkaProducer, topic: str, intakes: list[Intake], rate: float | None
) -> dict[int, float]:
    """Send at `rate` per second (None: as fast as the producer takes them); returns index -> send ms."""
    sent_at: dict[int, float] = {}
    started = time.monotonic()
    futures = []
    for index, intake in enumerate(intakes):
        if rate is not None:
            due = started + index / rate
            delay = due - time.monotonic()
            if delay > 0.002:
                await asyncio.sleep(delay)
        sent_at[index] = now_ms()
        futures.append(await producer.send(topic, intake.value, key=intake.key, headers=intake.headers))
    await asyncio.gather(*futures)
    return sent_at


# -- baseline: raw produce -> consume ---------------------------------------------------------------


def create_topic(bootstrap: str, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        admin.close()


async def raw_run(bootstrap: str, intakes: list[Intake], rate: float | None) -> dict[str, Any]:
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    index_of = {intake.value: i for i, intake in enumerate(intakes)}
    received: dict[int, float] = {}
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.05)
    done = asyncio.Event()

    async def consume() -> None:
        async for record in consumer:
            received.setdefault(index_of[record.value], now_ms())
            if len(received) == len(intakes):
                done.set()
                return

    task = asyncio.create_task(consume())
    producer = await new_producer(bootstrap)
    sent_at = await paced_send(producer, topic, intakes, rate)
    await asyncio.wait_for(done.wait(), timeout=120)
    await producer.stop()
    await consumer.stop()
    task.cancel()
    return summarise(intakes, sent_at, received, rate)


def summarise(
    intakes: list[Intake], sent_at: dict[int, float], arrived: dict[int, float], rate: float | None
) -> dict[str, Any]:
    first = min(sent_at.values())
    last = max(arrived.values())
    latencies = [arrived[i] - sent_at[i] for i in arrived]
    result: dict[str, Any] = {
        "messages": len(intakes),
        "arrived": len(arrived),
        "offered_rate": rate,
        "throughput_per_s": round(len(arrived) / ((last - first) / 1000.0), 1),
        "latency_ms_p50": round(pct(latencies, 0.50), 1),
        "latency_ms_p99": round(pct(latencies, 0.99), 1),
        "latency_ms_max": round(max(latencies), 1),
    }
    return result


# -- the pipeline ---------------------------------------------------------------------------------


class LedgerWatch:
    """Reads new ledger rows incrementally (SQLite WAL: readers never block the writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recorded: dict[str, int] = {}
        self._next_seq = 0

    def poll(self) -> None:
        if not self.path.exists():
            return
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT idx, event_id, leaf FROM ledger_leaves WHERE idx >= ? ORDER BY idx",
                (self._next_seq,),
            ).fetchall()
        except sqlite3.OperationalError:  # table not created yet
            return
        finally:
            conn.close()
        for index, event_id, leaf in rows:  # the recording time is inside the leaf record
            self.recorded[event_id] = LedgerRecord.decode(bytes(leaf)).recorded_at_ms
            self._next_seq = index + 1

    async def wait_for(self, ids: set[str], timeout_s: float) -> set[str]:
        deadline = time.monotonic() + timeout_s
        missing = set(ids)
        while time.monotonic() < deadline:
            self.poll()
            missing = {i for i in missing if i not in self.recorded}
            if not missing:
                break
            await asyncio.sleep(0.1)
        return missing


async def pipeline_run(
    bootstrap: str,
    watch: LedgerWatch,
    intakes: list[Intake],
    rate: float | None,
    timeout_s: float,
    flood: tuple[list[Flood], float] | None = None,
) -> dict[str, Any]:
    """`flood`: a partner's updates and their rate, sent beside the intakes (their latency is measured)."""
    producer = await new_producer(bootstrap)
    if flood is None:
        sent_at = await paced_send(producer, INTAKE_REGISTERED.name, intakes, rate)
    else:
        sent_at, _ = await asyncio.gather(
            paced_send(producer, INTAKE_REGISTERED.name, intakes, rate), flood_send(producer, *flood)
        )
    await producer.stop()
    expected = {event_id for intake in intakes for event_id in intake.expected_ids}
    missing = await watch.wait_for(expected, timeout_s)
    if missing:
        raise RuntimeError(f"{len(missing)} of {len(expected)} expected ledger entries never arrived")
    completed = {i: float(watch.recorded[intake.final_id]) for i, intake in enumerate(intakes)}
    # The throughput ends with the last expected entry, not the last final one.
    last_any = max(watch.recorded[event_id] for event_id in expected)
    result = summarise(intakes, sent_at, completed, rate)
    result["throughput_per_s"] = round(len(intakes) / ((last_any - min(sent_at.values())) / 1000.0), 1)
    result["ledger_entries"] = len(expected)
    if flood is not None:  # the partner's updates went through too: the ledger records each as signed
        flooded = {update.event_id for update in flood[0]}
        result["flood_recorded_by_ledger"] = len(flooded) - len(await watch.wait_for(flooded, timeout_s))
        result["flood_sent"] = len(flooded)
    return result


@dataclass
class Services:
    """The three services (and a second router) of one configuration, with their resource use."""

    workdir: Path
    bootstrap: str
    routers: int
    base_port: int
    fetch_min_bytes: int = 1
    supervisors: list[Supervisor] = field(default_factory=list)

    def env(self, metrics_offset: int) -> dict[str, str]:
        return {
            "CEPBUS_BOOTSTRAP_SERVERS": self.bootstrap,
            "CEPBUS_LEDGER_DATABASE_URL": f"sqlite:///{self.workdir / 'ledger.db'}",
            "CEPBUS_ROUTER_DATABASE_URL": f"sqlite:///{self.workdir / 'router.db'}",
            "CEPBUS_REFERRALS_DATABASE_URL": f"sqlite:///{self.workdir / 'referrals.db'}",
            "CEPBUS_NOTIFIER_DATABASE_URL": f"sqlite:///{self.workdir / 'notifier.db'}",
            "CEPBUS_REFERRALS_HTTP_PORT": str(self.base_port + 4 + metrics_offset),
            "CEPBUS_ROUTER_METRICS_PORT": str(self.base_port + 1 + metrics_offset),
            "CEPBUS_NOTIFIER_METRICS_PORT": str(self.base_port + 2 + metrics_offset),
            "CEPBUS_LEDGER_METRICS_PORT": str(self.base_port + 3 + metrics_offset),
            "CEPBUS_LOG_LEVEL": "WARNING",
            "CEPBUS_FETCH_MIN_BYTES": str(self.fetch_min_bytes),
        }

    def start(self) -> None:
        main = Supervisor(log_dir=self.workdir / "logs", env=self.env(0))
        self.supervisors.append(main)
        for service in ("router", "notifier", "ledger"):
            main.start(service)
        for extra in range(1, self.routers):
            second = Supervisor(log_dir=self.workdir / f"logs-router{extra + 1}", env=self.env(10 * extra))
            self.supervisors.append(second)
            second.start("router")
        for supervisor in self.supervisors:
            env = supervisor.env
            for service in supervisor.processes:
                supervisor.wait_metrics(service, int(env[f"CEPBUS_{service.upper()}_METRICS_PORT"]), 90)

    def processes(self) -> dict[str, int]:
        named: dict[str, int] = {}
        for n, supervisor in enumerate(self.supervisors):
            for service, proc in supervisor.processes.items():
                named[service if n == 0 else f"{service}#{n + 1}"] = proc.process.pid
        return named

    def stop(self) -> None:
        for supervisor in reversed(self.supervisors):
            supervisor.stop_all()


def usage(pids: dict[str, int]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            times = proc.cpu_times()
            status = Path(f"/proc/{pid}/status").read_text()
        except (psutil.Error, OSError):
            continue
        hwm_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
        out[name] = {
            "cpu_s": round(times.user + times.system, 2),
            "peak_rss_mib": round(hwm_kb / 1024, 1),
        }
    return out


async def wait_group_ready(watch: LedgerWatch, bootstrap: str, warmup: list[Intake]) -> None:
    """A few intakes through the loop: every consumer group has joined and its first fetch is done."""
    await pipeline_run(bootstrap, watch, warmup, None, 120)


async def run_configuration(
    args: argparse.Namespace, routers: int, intakes: list[Intake], workdir: Path
) -> dict[str, Any]:
    broker = EmbeddedBroker(
        EmbeddedBrokerSettings(
            port=args.port, log_file=workdir / "tansu.log", storage_engine="memory://tansu/"
        )
    )
    broker.start()
    bootstrap = broker.bootstrap_servers
    result: dict[str, Any] = {"routers": routers}
    services = Services(workdir, bootstrap, routers, args.metrics_base, args.fetch_min_bytes)
    try:
        n = args.intakes
        if args.raw_baseline:
            result["raw_throughput"] = [
                await raw_run(bootstrap, intakes[:n], None) for _ in range(args.repeat)
            ]
            result["raw_latency"] = [
                await raw_run(bootstrap, intakes[: int(rate * args.duration)], rate) for rate in args.rates
            ]
        ensure_topics(BrokerSettings(bootstrap_servers=bootstrap), bus_topics())
        services.start()
        watch = LedgerWatch(workdir / "ledger.db")
        offset = 0

        def take(count: int) -> list[Intake]:
            nonlocal offset
            chunk = intakes[offset : offset + count]
            offset += count
            if len(chunk) < count:
                raise ValueError("not enough intakes generated; raise --intakes")
            return chunk

        await wait_group_ready(watch, bootstrap, take(200))
        before = usage(services.processes())
        broker_proc = psutil.Process(broker.process.pid) if broker.process else None
        broker_cpu_before = sum(broker_proc.cpu_times()[:2]) if broker_proc else 0.0
        result["pipeline_throughput"] = [
            await pipeline_run(bootstrap, watch, take(n), None, args.timeout) for _ in range(args.repeat)
        ]
        result["pipeline_latency"] = [
            await pipeline_run(bootstrap, watch, take(int(rate * args.duration)), rate, args.timeout)
            for rate in args.rates
        ]
        after = usage(services.processes())
        if args.flood_rate > 0:  # after the CPU figures: those stay comparable with runs without a flood
            result["pipeline_latency_flooded"] = []
            for rate in args.rates:
                flood = make_flood(int(args.flood_rate * args.duration), f"{rate:.0f}")
                run = await pipeline_run(
                    bootstrap,
                    watch,
                    take(int(rate * args.duration)),
                    rate,
                    args.timeout,
                    (flood, args.flood_rate),
                )
                result["pipeline_latency_flooded"].append({**run, "flood_rate": args.flood_rate})
        result["resources"] = {
            name: {
                "cpu_s": round(after[name]["cpu_s"] - before[name]["cpu_s"], 2),
                "peak_rss_mib": after[name]["peak_rss_mib"],
            }
            for name in after
        }
        if broker_proc:
            result["resources"]["broker"] = {
                "cpu_s": round(sum(broker_proc.cpu_times()[:2]) - broker_cpu_before, 2),
                "peak_rss_mib": round(broker_proc.memory_info().rss / 2**20, 1),
            }
    finally:
        services.stop()
        broker.stop()
    return result


def median_throughput(runs: list[dict[str, Any]]) -> float:
    return float(statistics.median(run["throughput_per_s"] for run in runs))


def report(results: list[dict[str, Any]], args: argparse.Namespace, message_bytes: float) -> dict[str, Any]:
    one = results[0]
    raw = median_throughput(one["raw_throughput"])
    summary: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
        "services_fetch_min_bytes": args.fetch_min_bytes,
        "message_bytes_mean": round(message_bytes, 1),
        "raw_throughput_per_s": raw,
        "configurations": results,
    }
    for res in results:
        res["pipeline_throughput_median_per_s"] = median_throughput(res["pipeline_throughput"])
        res["ratio_pipeline_to_raw"] = round(res["pipeline_throughput_median_per_s"] / raw, 3)
    print(f"\nmessage size: {message_bytes:.0f} bytes (encoded intakes, the same bytes in both)")
    print(f"services' fetch_min_bytes: {args.fetch_min_bytes}")
    print(f"load average (1 min) at the end: {summary['machine']['load_avg_1m_at_end']}\n")
    print(f"{'what':44} {'intakes/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for run in one["raw_throughput"]:
        print(f"{'raw produce->consume, burst':44} {run['throughput_per_s']:>10.0f}")
    for run in one["raw_latency"]:
        label = f"raw produce->consume at {run['offered_rate']:.0f}/s"
        print(
            f"{label:44} {run['throughput_per_s']:>10.0f} {run['latency_ms_p50']:>8.1f} "
            f"{run['latency_ms_p99']:>8.1f} {run['latency_ms_max']:>8.1f}"
        )
    for res in results:
        tag = f"pipeline, {res['routers']} router{'s' if res['routers'] > 1 else ''}"
        for run in res["pipeline_throughput"]:
            print(f"{tag + ', burst (sustained)':44} {run['throughput_per_s']:>10.0f}")
        for run in res["pipeline_latency"]:
            label = f"{tag} at {run['offered_rate']:.0f}/s"
            print(
                f"{label:44} {run['throughput_per_s']:>10.0f} {run['latency_ms_p50']:>8.1f} "
                f"{run['latency_ms_p99']:>8.1f} {run['latency_ms_max']:>8.1f}"
            )
        for run in res.get("pipeline_latency_flooded", []):
            label = f"{tag} at {run['offered_rate']:.0f}/s, +{run['flood_rate']:.0f} flood/s"
            flooded = f"  (flood: {run['flood_recorded_by_ledger']} of {run['flood_sent']} in the ledger)"
            print(
                f"{label:44} {run['throughput_per_s']:>10.0f} {run['latency_ms_p50']:>8.1f} "
                f"{run['latency_ms_p99']:>8.1f} {run['latency_ms_max']:>8.1f}{flooded}"
            )
        print(f"{tag + ': ratio pipeline/raw (median burst)':44} {res['ratio_pipeline_to_raw']:>10.3f}")
        for name, use in res["resources"].items():
            print(f"    {name:12} cpu {use['cpu_s']:>7.2f} s   peak rss {use['peak_rss_mib']:>7.1f} MiB")
    print("\nJSON:")
    print(json.dumps(summary, indent=None))
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=19700, help="Tansu port (the bench starts its own)")
    parser.add_argument("--metrics-base", type=int, default=9700, help="services use base+1..3, +11..13")
    parser.add_argument("--intakes", type=int, default=10000, help="intakes per burst run")
    parser.add_argument("--rates", default="200,500,1000,2000", help="fixed rates, intakes/s")
    parser.add_argument(
        "--flood-rate",
        type=float,
        default=0.0,
        help="also run each fixed rate again while a partner sends this many signed status updates per "
        "second for referrals that do not exist (the intakes' latency beside a flooding partner)",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per fixed-rate run")
    parser.add_argument("--repeat", type=int, default=2, help="burst runs per configuration")
    parser.add_argument("--routers", default="1,2", help="router process counts to measure")
    parser.add_argument("--timeout", type=float, default=180.0, help="max wait for the ledger, per run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--fetch-min-bytes", type=int, default=1, help="the services' CEPBUS_FETCH_MIN_BYTES (default 1)"
    )
    parser.add_argument("--json-out", type=Path, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    args.rates = [float(rate) for rate in args.rates.split(",") if rate]
    args.routers = [int(n) for n in args.routers.split(",") if n]
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    per_config = (
        200
        + args.intakes * args.repeat
        + int(sum(args.rates) * args.duration) * (2 if args.flood_rate > 0 else 1)
    )
    intakes = make_intakes(per_config, args.seed)
    message_bytes = statistics.fmean(len(intake.value) for intake in intakes)
    results = []
    root = Path(tempfile.mkdtemp(prefix="cepbus-bench-"))
    try:
        for index, routers in enumerate(args.routers):
            workdir = root / f"routers-{routers}"
            workdir.mkdir()
            args.raw_baseline = index == 0
            results.append(await run_configuration(args, routers, intakes, workdir))
            print(f"configuration with {routers} router(s) done", file=sys.stderr)
    finally:
        if not os.environ.get("CEPBUS_BENCH_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}", file=sys.stderr)
    summary = report(results, args, message_bytes)
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    main()
