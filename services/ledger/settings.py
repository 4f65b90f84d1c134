"""The ledger's settings (`CEPBUS_LEDGER_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cepbus.runtime.settings import ServiceSettings


class LedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_LEDGER_", extra="ignore")

    metrics_port: int = 9103
    group_id: str = "cepbus-ledger"
    service_org_id: str = "cep-bus-ledger"  # producer of the CheckpointPublished events
    database_url: str = "sqlite:///.cepbus/ledger.db"
    batch_max: int = Field(default=500, ge=1)
    # Signed checkpoints (C2SP tlog-checkpoint): the origin is also the signing key's name.
    origin: str = "cep-bus.local/ledger"
    signing_key_path: Path = Path(".cepbus/ledger-signing.key")  # generated on first use at this default
    checkpoint_every_entries: int = Field(default=1000, ge=1)
    checkpoint_every_s: float = Field(default=10.0, gt=0)
    # The organisation ids the router and the notifier produce as: the ledger appends their events only.
    router_org_id: str = "cep-bus-router"
    notifier_org_id: str = "cep-bus-notifier"
