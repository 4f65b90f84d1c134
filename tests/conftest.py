"""Test-session fixtures. The broker is chosen in this order, one per session:
1. `KAFKA_BOOTSTRAP_SERVERS` if set (a real cluster);
2. testcontainers' Kafka where a Docker engine answers;
3. otherwise the embedded Tansu broker, started here on a free loopback port.
The same code path (`CEPBUS_BOOTSTRAP_SERVERS`) serves all three."""

from __future__ import annotations

import os
import random
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


#: Ports handed out in this session: never twice (a service may not have bound its port yet).
_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port nothing listens on, for a service the test starts, taken BELOW the kernel's
    ephemeral range: a port from `bind(0)` is one the kernel also gives outgoing connections as their
    source port, so a client connecting between this call and the service's own bind could take it (a
    session bus's ledger once failed to start with "Address already in use")."""
    low = _ephemeral_low()
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(500):
        port = rng.randrange(20000, low) if low > 20100 else rng.randrange(1024, low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as sock:  # nothing free below the range: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from cepbus_app.broker import EmbeddedBroker, EmbeddedBrokerSettings

    log_file = tmp_path_factory.mktemp("tansu") / "tansu.log"
    broker = EmbeddedBroker(EmbeddedBrokerSettings(port=free_port(), log_file=log_file))
    with broker:
        yield broker.bootstrap_servers
