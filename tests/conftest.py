"""Test-session fixtures. The broker is chosen in this order, one per session:
1. `KAFKA_BOOTSTRAP_SERVERS` if set (a real cluster);
2. testcontainers' Kafka where a Docker engine answers;
3. otherwise the embedded Tansu broker, started here on a free loopback port.
The same code path (`CEPBUS_BOOTSTRAP_SERVERS`) serves all three."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def free_port() -> int:
    with socket.socket() as sock:
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
