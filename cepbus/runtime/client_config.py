"""`BrokerSettings` translated for each Kafka client the bus uses, in one place: librdkafka
(confluent-kafka: the batch runtime, the dead-letter replay), kafka-python (the SDKs, topic
administration, lag sampling) and Faust (the faust runtime). Plain dictionaries: this module imports
no client, so reading it loads no stream framework.

Broker quirks are settings (`cepbus.runtime.settings`); how each client spells them is here.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any

from cepbus.runtime.settings import BrokerSettings, ServiceSettings


def ssl_context(broker: BrokerSettings) -> ssl.SSLContext | None:
    """The client TLS context, or None for PLAINTEXT: one definition for Faust and kafka-python."""
    if broker.security_protocol != "SSL":
        return None
    context = ssl.create_default_context(cafile=str(broker.ssl_cafile) if broker.ssl_cafile else None)
    if broker.ssl_certfile:
        context.load_cert_chain(
            str(broker.ssl_certfile), str(broker.ssl_keyfile) if broker.ssl_keyfile else None
        )
    return context


def kafka_python_security(broker: BrokerSettings) -> dict[str, Any]:
    """Keyword arguments that make a kafka-python client speak the configured protocol."""
    context = ssl_context(broker)
    return {} if context is None else {"security_protocol": "SSL", "ssl_context": context}


def librdkafka_security(broker: BrokerSettings) -> dict[str, Any]:
    if broker.security_protocol != "SSL":
        return {}
    config: dict[str, Any] = {"security.protocol": "SSL"}
    if broker.ssl_cafile:
        config["ssl.ca.location"] = str(broker.ssl_cafile)
    if broker.ssl_certfile:
        config["ssl.certificate.location"] = str(broker.ssl_certfile)
    if broker.ssl_keyfile:
        config["ssl.key.location"] = str(broker.ssl_keyfile)
    return config


def librdkafka_consumer(broker: BrokerSettings, group_id: str) -> dict[str, Any]:
    """A consumer in `group_id` that commits by hand, only what was handled and acknowledged."""
    config: dict[str, Any] = {
        "bootstrap.servers": broker.bootstrap_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": broker.fetch_max_wait_ms,  # Tansu does not wake a waiting fetch
        "fetch.min.bytes": broker.fetch_min_bytes,
        "session.timeout.ms": int(broker.session_timeout_s * 1000),  # Tansu makes joins wait half of it
        "heartbeat.interval.ms": int(broker.heartbeat_interval_s * 1000),
        "max.poll.interval.ms": 300_000,
        "socket.timeout.ms": int(broker.request_timeout_s * 1000),
    }
    return {**config, **librdkafka_security(broker)}


def librdkafka_producer(broker: BrokerSettings, client_id: str) -> dict[str, Any]:
    """acks=all, no idempotence (Tansu has none: consumers dedupe instead)."""
    config: dict[str, Any] = {
        "bootstrap.servers": broker.bootstrap_servers,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": False,
        "linger.ms": broker.producer_linger_ms,
        "message.max.bytes": broker.max_message_bytes + 4096,
        "message.timeout.ms": int(broker.request_timeout_s * 1000),
    }
    return {**config, **librdkafka_security(broker)}


def faust_app_options(settings: ServiceSettings, broker: BrokerSettings) -> dict[str, Any]:
    """Keyword arguments of `faust.App` for one service (at least once, raw topics, no web server).
    The SSL credentials wrap `ssl_context`; the driver builds them, since that needs Faust itself."""
    return {
        "broker": ";".join(f"kafka://{server}" for server in broker.bootstrap_list),
        "broker_session_timeout": broker.session_timeout_s,
        "broker_heartbeat_interval": broker.heartbeat_interval_s,
        "broker_request_timeout": broker.request_timeout_s,
        "broker_commit_interval": broker.commit_interval_s,
        "producer_linger_ms": broker.producer_linger_ms,
        "producer_acks": -1,
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
        "topic_partitions": broker.topic_partitions,
        "topic_replication_factor": broker.replication_factor,
        "web_enabled": False,
        "store": "memory://",
        # Faust keeps nothing of ours on disk (tables are in memory), but it insists on a data
        # directory; its default is the working directory, which litters checkouts and images.
        "datadir": str(Path(tempfile.gettempdir()) / "cep-bus-faust" / settings.group_id),
    }


__all__ = [
    "faust_app_options",
    "kafka_python_security",
    "librdkafka_consumer",
    "librdkafka_producer",
    "librdkafka_security",
    "ssl_context",
]
