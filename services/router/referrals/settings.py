"""Settings of the referral lifecycle in the router (env prefix `CEPBUS_REFERRALS_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.router.referrals.deadlines import DeadlinePolicy
from services.router.referrals.drift import DriftPolicy


class ReferralSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_REFERRALS_", extra="ignore")

    database_url: str = "sqlite:///.cepbus/referrals.db"
    http_port: int = 9104  # read side (GET /referrals/<id>, /organisations/<id>/referrals); 0 disables
    received_business_days: int = Field(default=2, ge=0)
    answered_business_days: int = Field(default=5, ge=0)
    first_appointment_business_days: int = Field(default=15, ge=0)
    sweep_interval_s: float = Field(default=60.0, gt=0)
    drift_window_days: int = Field(default=90, ge=1)
    drift_max_referrals: int = Field(default=3, ge=1)

    def deadline_policy(self) -> DeadlinePolicy:
        return DeadlinePolicy(
            self.received_business_days, self.answered_business_days, self.first_appointment_business_days
        )

    def drift_policy(self) -> DriftPolicy:
        return DriftPolicy(self.drift_window_days, self.drift_max_referrals)
