"""Obligations where the law puts them: the regional operator must inform of the specialised operators
(Code du travail L6111-6); a notice the bus sends from a specialised operator is a courtesy, marked
informative, and a level-2 start without informed choice there is never a regulation breach."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cepbus.contract.models import (
    IntakeDecided,
    NoticeIssued,
    NoticeObligation,
    NoticeRequested,
    OrganisationKind,
    ServiceLevel,
)
from services.router.regulation import notice_obligation
from tests.support.factories import intake
from tests.unit.router.test_router_state import NOTIFIER, T0, level, router

K = OrganisationKind


@pytest.mark.parametrize(
    ("operator", "inform", "expected"),
    [
        (K.REGIONAL_CEP, [K.CAP_EMPLOI], NoticeObligation.MANDATORY),
        (K.REGIONAL_CEP, [K.APEC, K.CAP_EMPLOI], NoticeObligation.MANDATORY),
        (K.REGIONAL_CEP, [], NoticeObligation.INFORMATIVE),  # a public agent told they are not served
        (K.APEC, [K.CAP_EMPLOI], NoticeObligation.INFORMATIVE),
        (K.FRANCE_TRAVAIL, [K.MISSION_LOCALE], NoticeObligation.INFORMATIVE),
        (K.CAP_EMPLOI, [K.REGIONAL_CEP], NoticeObligation.INFORMATIVE),
    ],
)
def test_only_the_regional_operator_informing_of_specialised_operators_is_an_obligation(
    operator: OrganisationKind, inform: list[OrganisationKind], expected: NoticeObligation
) -> None:
    assert notice_obligation(operator, inform) is expected


def test_a_courtesy_notice_at_apec_is_informative_and_never_a_breach() -> None:
    handlers = router()
    source = intake(operator_kind=K.APEC, cadre=True, boeth=True, region="52", departement="44")
    outputs = handlers.on_intake(source)
    decided = next(o.event for o in outputs if isinstance(o.event, IntakeDecided))
    request = next(o.event for o in outputs if isinstance(o.event, NoticeRequested))
    assert K.CAP_EMPLOI in request.inform  # the person is still told of Cap emploi ...
    assert request.obligation is NoticeObligation.INFORMATIVE  # ... as a courtesy
    assert decided.notice_obligation is NoticeObligation.INFORMATIVE
    notice = NOTIFIER.on_notice_requested(request)[0].event
    assert isinstance(notice, NoticeIssued) and notice.obligation is NoticeObligation.INFORMATIVE
    # level 2 at Apec with no notice issued and no choice made: no breach, no text obliged it
    assert handlers.on_service_level(level(source, ServiceLevel.LEVEL_2, T0 + timedelta(hours=1))) == []


def test_the_same_person_at_the_regional_operator_is_an_obligation_and_a_breach() -> None:
    handlers = router()
    source = intake(cadre=True, boeth=True, region="52", departement="44")
    request = next(o.event for o in handlers.on_intake(source) if isinstance(o.event, NoticeRequested))
    assert request.obligation is NoticeObligation.MANDATORY
    [breach] = handlers.on_service_level(level(source, ServiceLevel.LEVEL_2, T0 + timedelta(hours=1)))
    assert breach.event.breach == "no_notice_issued"  # type: ignore[attr-defined]
