"""Referral drift, pure: a person referred back to an organisation that referred them away
(ping-pong), or referred more than `max_referrals` times within `window_days`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class PastReferral:
    referral_id: str
    requester_org_id: str
    recipient_org_id: str
    requested_at: datetime


@dataclass(frozen=True)
class DriftPolicy:
    window_days: int = 90
    max_referrals: int = 3


@dataclass(frozen=True)
class DriftAlert:
    alert: str  # ping_pong | too_many_referrals
    related_referral_ids: tuple[str, ...]
    referrals_in_window: int
    detail: str


def detect(new: PastReferral, history: Sequence[PastReferral], policy: DriftPolicy) -> list[DriftAlert]:
    """Alerts raised by `new` given the person's earlier referrals (any order; `new` excluded)."""
    since = new.requested_at - timedelta(days=policy.window_days)
    earlier = sorted(
        (
            r
            for r in history
            if r.referral_id != new.referral_id and since <= r.requested_at <= new.requested_at
        ),
        key=lambda r: (r.requested_at, r.referral_id),
    )
    alerts: list[DriftAlert] = []
    bounced = [r for r in earlier if r.requester_org_id == new.recipient_org_id]
    if bounced:
        alerts.append(
            DriftAlert(
                "ping_pong",
                tuple(r.referral_id for r in bounced),
                len(earlier) + 1,
                f"referred back to {new.recipient_org_id}, which referred the person away "
                f"{len(bounced)} time(s) in the last {policy.window_days} days",
            )
        )
    count = len(earlier) + 1
    if count > policy.max_referrals:
        alerts.append(
            DriftAlert(
                "too_many_referrals",
                tuple(r.referral_id for r in earlier),
                count,
                f"{count} referrals in {policy.window_days} days (more than {policy.max_referrals})",
            )
        )
    return alerts
