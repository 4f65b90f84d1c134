"""The dead-letter archive's settings (`CEPBUS_DEADLETTERS_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from cepbus.runtime.settings import ServiceSettings


class DeadLetterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_DEADLETTERS_", extra="ignore")

    metrics_port: int = 9106
    group_id: str = "cepbus-deadletters"
    # the producer of the dead letters of what it cannot read itself (cepbus/runtime/processing.py)
    service_org_id: str = "cep-bus-deadletters"
    # The archive (services/deadletters/store.py): SQLite here, PostgreSQL in production.
    database_url: str = "sqlite:///.cepbus/deadletters.db"
