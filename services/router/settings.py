"""The router's settings: the router itself (`CEPBUS_ROUTER_`) and its referral lifecycle
(`CEPBUS_REFERRALS_`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cepbus.contract.models import OrganisationKind
from cepbus.runtime.settings import ServiceSettings
from services.router.referrals.deadlines import DeadlinePolicy
from services.router.referrals.drift import DriftPolicy
from services.router.referrals.follow_up import FollowUpPolicy


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_ROUTER_", extra="ignore")

    metrics_port: int = 9101
    group_id: str = "cepbus-router"
    service_org_id: str = "cep-bus-router"
    # The router's state (intakes' profiles, notices, choices, service levels): a real database.
    database_url: str = "sqlite:///.cepbus/router.db"
    # How long a SQLite write waits for another writer's lock before the batch is retried (paused).
    sqlite_busy_timeout_s: float = Field(default=30.0, gt=0)
    # No choice recorded this long after the notice: one reminder event.
    choice_reminder_delay_s: float = Field(default=7 * 24 * 3600.0, ge=0)
    choice_reminder_check_interval_s: float = Field(default=60.0, gt=0)


class ReferralSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEPBUS_REFERRALS_", extra="ignore")

    database_url: str = "sqlite:///.cepbus/referrals.db"
    http_port: int = 9104  # read side (GET /referrals/<id>, /organisations/<id>/referrals); 0 disables
    http_host: str = "127.0.0.1"  # loopback; in a pod, the ingress reaches it through 0.0.0.0
    tokens_path: Path | None = None  # hashed bearer tokens per organisation; None: development tokens
    received_business_days: int = Field(default=2, ge=0)
    answered_business_days: int = Field(default=5, ge=0)
    first_appointment_business_days: int = Field(default=15, ge=0)
    sweep_interval_s: float = Field(default=60.0, gt=0)
    # follow-up of unanswered referrals (services/router/referrals/follow_up.py), as durations (ISO 8601,
    # "P10D", or seconds): a reminder every `remind_every` (0: none), expiry after `expire_after`, per
    # recipient kind in JSON objects ({"opco": "P45D"}; reminders likewise, "PT0S": none for that kind)
    remind_every: timedelta = timedelta(days=10)
    expire_after: timedelta = timedelta(days=30)
    expire_after_by_kind: dict[OrganisationKind, timedelta] = Field(default_factory=dict)
    remind_every_by_kind: dict[OrganisationKind, timedelta] = Field(default_factory=dict)
    drift_window_days: int = Field(default=90, ge=1)
    drift_max_referrals: int = Field(default=3, ge=1)

    def deadline_policy(self) -> DeadlinePolicy:
        return DeadlinePolicy(
            self.received_business_days, self.answered_business_days, self.first_appointment_business_days
        )

    @field_validator("remind_every", "expire_after")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("a duration, not negative")
        return value

    @field_validator("expire_after_by_kind")
    @classmethod
    def _positive(cls, value: dict[OrganisationKind, timedelta]) -> dict[OrganisationKind, timedelta]:
        if any(after <= timedelta(0) for after in value.values()):
            raise ValueError("each expiry a positive duration")
        return value

    @field_validator("remind_every_by_kind")
    @classmethod
    def _not_negative_each(
        cls, value: dict[OrganisationKind, timedelta]
    ) -> dict[OrganisationKind, timedelta]:
        if any(every < timedelta(0) for every in value.values()):
            raise ValueError("each interval a duration, not negative (0: no reminder)")
        return value

    def follow_up_policy(self) -> FollowUpPolicy:
        return FollowUpPolicy(
            self.remind_every,
            self.expire_after,
            {kind.value: after for kind, after in self.expire_after_by_kind.items()},
            {kind.value: every for kind, every in self.remind_every_by_kind.items()},
        )

    def drift_policy(self) -> DriftPolicy:
        return DriftPolicy(self.drift_window_days, self.drift_max_referrals)
