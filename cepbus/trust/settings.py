"""Which mode the process runs in, and where its trust material comes from (`CEPBUS_` prefix)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class TrustSettings(BaseSettings):
    """`env` picks the mode; the directory of partner keys is a file signed by a directory authority
    whose public key is pinned here, apart from the software (the idea of TUF's root of trust)."""

    model_config = SettingsConfigDict(env_prefix="CEPBUS_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    directory_path: Path | None = None  # None: the packaged example directory (development only)
    directory_authority_key: str | None = None  # the pinned public key of the directory authority

    @property
    def production(self) -> bool:
        return self.env is Environment.PRODUCTION
