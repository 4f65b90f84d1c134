"""Fixtures of the referral tests: a referral store on both backends and a clock they move."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.router.referrals.store import ReferralStore
from tests.support.factories import MONDAY
from tests.support.fakes import MovableClock
from tests.support.postgres import store_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReferralStore]:
    """An empty referral store (a test module may define its own `store`, as the router state's does)."""
    with (
        store_url(request.param, tmp_path / "referrals.db", "referrals") as url,
        ReferralStore(url) as opened,
    ):
        yield opened


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(MONDAY)
