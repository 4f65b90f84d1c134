"""Settings every process shares, from the environment (pydantic-settings). Each service adds its own
(`services/<name>/settings.py`, one env prefix per service) on top of `ServiceSettings`.

Broker quirks live here and only here: the defaults suit the embedded Tansu broker (see
`BrokerSettings`); point `CEPBUS_BOOTSTRAP_SERVERS` at a real cluster and raise the timeouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BrokerSettings(BaseSettings):
    """How to reach Kafka, and the knobs that differ between Tansu and a real cluster."""

    model_config = SettingsConfigDict(env_prefix="CEPBUS_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:19092"
    topic_partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # Tansu makes every group join wait session_timeout/2: keep it short when embedded.
    session_timeout_s: float = 2.0
    heartbeat_interval_s: float = 0.5
    # Tansu does not wake a waiting fetch on new data: the wait bounds latency (s3 storage: >= 250).
    fetch_max_wait_ms: int = 20
    # A fetch returns once this much is there or fetch_max_wait_ms has passed. 1: at once. Larger
    # values trade up to fetch_max_wait_ms of latency per hop for fewer, bigger fetches, i.e. less
    # CPU per event in the services and the broker (bench/pipeline_bench.py --fetch-min-bytes).
    fetch_min_bytes: int = Field(default=1, ge=1)
    request_timeout_s: float = 30.0
    # The largest event a producer sends (Kafka's default message.max.bytes is about 1 MB): the
    # publishing SDK refuses bigger ones at the edge; a dead letter of a bigger one keeps a digest and
    # a bounded prefix of it, so that it always fits.
    max_message_bytes: int = Field(default=1_000_000, ge=1024)
    commit_interval_s: float = 1.0
    producer_linger_ms: int = 5

    # TLS to the brokers (Strimzi `tls` listener with `authentication: tls`): the cluster CA and the
    # KafkaUser's certificate, mounted from their Secrets. PLAINTEXT for the embedded broker.
    security_protocol: Literal["PLAINTEXT", "SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # The framing producers use: Avro single-object (self-describing from schemas/avro) or Confluent
    # Schema Registry (magic 0 + schema id, for Kafka UI, Connect, ksqlDB). Consumers take both.
    wire_format: Literal["single-object", "confluent"] = "single-object"
    # A Confluent Schema Registry: producers register their schemas under TopicNameStrategy subjects
    # (`<topic>-value`) and send its ids; consumers look ids up there. Unset: the contract's own ids,
    # which `cep-bus schema-registry` serves.
    schema_registry_url: str | None = None

    @property
    def bootstrap_list(self) -> list[str]:
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]


class StreamSettings(BaseSettings):
    """How the stream driver batches a route: one decode/handle pass, one store transaction (one fsync)
    and one round of sends per batch instead of per event. A batch closes when it holds `batch_max`
    events or `batch_within_ms` after it opened, so the window adds at most that much latency per hop."""

    model_config = SettingsConfigDict(env_prefix="CEPBUS_STREAM_", extra="ignore")

    batch_max: int = Field(default=200, ge=1)
    batch_within_ms: float = Field(default=10.0, gt=0)  # 0 would make Faust wait for a full batch


class RuntimeSettings(BaseSettings):
    """Which stream driver runs the services: `batch` (confluent-kafka, the default: the benchmark shows
    it faster) or `faust` (faust-streaming)."""

    model_config = SettingsConfigDict(env_prefix="CEPBUS_", extra="ignore")

    runtime: Literal["batch", "faust"] = "batch"
    # Create the bus's missing topics at start: the embedded broker's way. In production the topics
    # come from the KafkaTopic resources (deploy/k8s), and the services' ACLs allow no Create.
    create_topics: bool | None = None  # None: yes in development, no in production (CEPBUS_ENV)


class ObservabilitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_", extra="ignore")

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"


class OperationsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_", extra="ignore")

    lag_interval_s: float = Field(default=10.0, gt=0)  # how often each service samples its lag
    liveness_stall_s: float = Field(default=30.0, gt=0)  # event loop silent this long: not alive


class ServiceSettings(BaseSettings):
    """What every service has: its metrics port, its consumer group id and the organisation id it
    produces events as. A service subclasses it with its own env prefix (`CEPBUS_ROUTER_`...)."""

    model_config = SettingsConfigDict(extra="ignore")

    metrics_port: int = 0  # 0: no metrics server
    group_id: str = ""
    service_org_id: str = ""
    # The secret key its derived event ids are keyed with (cepbus.trust.ids); None: the development key.
    id_key_path: Path | None = None
    # The Ed25519 key it signs everything it emits with (cepbus.runtime.identity), listed in the signed
    # directory for `service_org_id`; None: the derivable development key (refused in production).
    statement_key_path: Path | None = None
