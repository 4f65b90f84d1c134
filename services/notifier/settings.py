"""The notifier's settings (`CEPBUS_NOTIFIER_`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from cepbus.runtime.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_NOTIFIER_", extra="ignore")

    metrics_port: int = 9102
    group_id: str = "cepbus-notifier"
    service_org_id: str = "cep-bus-notifier"
    # The outbox of the notices issued (services/notifier/store.py): SQLite here, PostgreSQL in production.
    database_url: str = "sqlite:///.cepbus/notifier.db"
