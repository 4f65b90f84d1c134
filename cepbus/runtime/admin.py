"""Idempotent topic creation (kafka-python admin), run by every process at start, and the bus's
whole topic list for the directory of organisations."""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from cepbus.contract.topics import TopicSpec, catalog
from cepbus.runtime.client_config import kafka_python_security
from cepbus.runtime.logs import get_logger
from cepbus.runtime.settings import BrokerSettings

log = get_logger()


def wait_for_broker(settings: BrokerSettings, timeout_s: float = 30.0) -> KafkaAdminClient:
    """An admin client once the broker answers, or an error after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return KafkaAdminClient(
                bootstrap_servers=settings.bootstrap_list,
                client_id="cepbus-admin",
                request_timeout_ms=int(settings.request_timeout_s * 1000),
                **kafka_python_security(settings),
            )
        except KafkaError as exc:  # NoBrokersAvailable while the broker starts
            last_error = exc
            time.sleep(0.2)
    raise TimeoutError(f"no Kafka broker answered at {settings.bootstrap_servers}: {last_error}")


def ensure_topics(settings: BrokerSettings, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the missing topics; existing ones are left as they are. Returns the names created."""
    admin = wait_for_broker(settings)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partition_count(settings.topic_partitions),
                replication_factor=settings.replication_factor,
            )
            for spec in specs
            if spec.name not in existing
        ]
        created: list[str] = []
        # Small batches: one request with hundreds of topics can exceed a broker's request timeout.
        for start in range(0, len(missing), 50):
            batch = missing[start : start + 50]
            try:
                admin.create_topics(batch, timeout_ms=int(settings.request_timeout_s * 1000))
                created.extend(topic.name for topic in batch)
            except TopicAlreadyExistsError:  # another process created them meanwhile
                for topic in batch:
                    try:
                        admin.create_topics([topic])
                        created.append(topic.name)
                    except TopicAlreadyExistsError:
                        pass
        if created:
            log.info("topics_created", count=len(created))
        return created
    finally:
        admin.close()


def bus_topics() -> list[TopicSpec]:
    """Every topic, with one referral inbox (and rejection topic) per organisation of the directory and
    one notice inbox per CEP operator of the reference."""
    from cepbus.reference import load_reference
    from cepbus.reference.directory import load_directory

    operators = [org.org_id for org in load_reference().organisations()]
    return catalog([*operators, *load_directory().org_ids()], operators)
