"""The inbox reads the router's read side through the contract's models (`cepbus/contract/readside.py`):
an answer that is not the contract's is `Unavailable` (a 503 page, one line in the log), never a
half-read page."""

from __future__ import annotations

from typing import Any

import pytest

from cepbus.contract.models import OrganisationKind, ReferralStatus, RefusalReason, UpdateVerdict
from cepbus.contract.readside import ReferralParty
from services.inbox import steps
from services.inbox.readside import ReadSide, Unavailable
from services.router.referrals.machine import EVENTS
from tests.unit.inbox.harness import PARTNER, Harness, log_in


class CannedReadSide(ReadSide):
    """Answers every path with the same status and body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__("http://read-side.test")
        self.status, self.body = status, body

    def _get(self, path: str, token: str | None) -> tuple[int, Any]:
        return self.status, self.body


def real_answer(harness: Harness, path: str) -> dict[str, Any]:
    status, body = harness.read_side._get(path, f"dev-{PARTNER}")
    assert status == 200
    return dict(body)


def test_the_real_answers_parse_into_the_contracts_models(harness: Harness) -> None:
    request = harness.refer()
    view = harness.read_side.referral(request.referral_id, f"dev-{PARTNER}")
    assert view is not None
    assert view.referral.status is ReferralStatus.REQUESTED and view.referral.open
    assert {(s.event, s.actor) for s in view.steps} >= {(ReferralStatus.RECEIVED, ReferralParty.RECIPIENT)}
    [listed] = harness.read_side.open_referrals(PARTNER, f"dev-{PARTNER}")
    assert listed == view.referral


@pytest.mark.parametrize(
    ("spoil", "where"),
    [
        (lambda body: body["referral"].pop("status"), "referral.status"),
        (lambda body: body["referral"].update(status="lost"), "referral.status"),
        (lambda body: body["referral"].update(requested_at_ms="yesterday"), "referral.requested_at_ms"),
        (
            lambda body: body.update(steps=[{"event": "received", "actor": "nobody", "to": "received"}]),
            "steps",
        ),
        (lambda body: body.pop("history"), "history"),
    ],
)
def test_a_referral_that_is_not_the_contracts_is_unavailable_in_one_line(
    harness: Harness, spoil: Any, where: str
) -> None:
    request = harness.refer()
    body = real_answer(harness, f"/referrals/{request.referral_id}")
    spoil(body)
    with pytest.raises(Unavailable) as refused:
        CannedReadSide(200, body).referral(request.referral_id, "t")
    message = str(refused.value)
    assert "\n" not in message and "not a ReferralView" in message and where in message


def test_fields_a_newer_router_adds_are_ignored(harness: Harness) -> None:
    request = harness.refer()
    body = real_answer(harness, f"/referrals/{request.referral_id}")
    body["referral"]["priority"] = "high"
    body["audit"] = {"anything": 1}
    view = CannedReadSide(200, body).referral(request.referral_id, "t")
    assert view is not None and view.referral.referral_id == request.referral_id


def test_an_open_list_or_a_verdict_that_is_not_the_contracts_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="not a OpenReferralsView"):
        CannedReadSide(200, {"org_id": PARTNER, "open": [{"referral_id": "r-1"}]}).open_referrals(
            PARTNER, "t"
        )
    with pytest.raises(Unavailable, match="unexpected answer"):
        CannedReadSide(200, {"org_id": "someone-else", "open": []}).open_referrals(PARTNER, "t")
    verdict = {
        "org_id": PARTNER,
        "event_id": "e-1",
        "verdict": "applied",
        "reason_code": None,
        "detail": None,
        "state_before": "requested",
        "state_after": "received",
    }
    parsed = CannedReadSide(200, verdict).update_verdict(PARTNER, "e-1", "t")
    assert parsed is not None and parsed.verdict is UpdateVerdict.APPLIED
    assert parsed.state_after is ReferralStatus.RECEIVED
    with pytest.raises(Unavailable, match="first verdict: "):
        CannedReadSide(200, {**verdict, "verdict": "maybe"}).update_verdict(PARTNER, "e-1", "t")
    with pytest.raises(Unavailable, match="unexpected answer"):
        CannedReadSide(200, verdict).update_verdict(PARTNER, "e-2", "t")


def test_a_page_over_an_answer_that_is_not_the_contracts_is_a_503(harness: Harness) -> None:
    request = harness.refer()
    body = real_answer(harness, f"/referrals/{request.referral_id}")
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    body["referral"]["open"] = "perhaps"
    inbox.app.state.inbox.read_side = CannedReadSide(200, body)  # type: ignore[attr-defined]
    page = inbox.get(f"/referrals/{request.referral_id}")
    assert page.status_code == 503 and "Service de suivi indisponible" in page.text


def test_every_status_and_step_has_its_french_label() -> None:
    assert set(steps.STATUS_LABELS) == set(ReferralStatus) - {ReferralStatus.UNKNOWN}
    assert set(steps.ACTION_LABELS) == set(EVENTS)
    assert steps.label(steps.STATUS_LABELS, "received") == steps.label(
        steps.STATUS_LABELS, ReferralStatus.RECEIVED
    )


def test_the_export_parses_and_an_export_that_is_not_the_contracts_is_unavailable(harness: Harness) -> None:
    request = harness.refer_with_contact()
    [line] = harness.read_side.export(PARTNER, f"dev-{PARTNER}")
    assert line.referral.referral_id == request.referral_id and line.closing_reason_code is None
    assert line.sealed_contact is not None and request.sealed_contact is not None
    assert line.sealed_contact.recipient_key_id == request.sealed_contact.recipient_key_id
    body = real_answer(harness, f"/organisations/{PARTNER}/referrals/export")
    body["referrals"][0]["referral"]["status"] = "lost"
    with pytest.raises(Unavailable, match=r"not a ReferralsExportView .*referrals\.0\.referral\.status"):
        CannedReadSide(200, body).export(PARTNER, "t")
    with pytest.raises(Unavailable, match="unexpected answer"):
        CannedReadSide(200, {"org_id": "someone-else", "referrals": []}).export(PARTNER, "t")
    with pytest.raises(Unavailable, match="unexpected answer 404"):  # a router without the export
        CannedReadSide(404, {"detail": "Not Found"}).export(PARTNER, "t")


def test_every_kind_and_decline_reason_has_its_french_label() -> None:
    assert set(steps.KIND_LABELS) == set(OrganisationKind)
    assert set(steps.DECLINE_LABELS) == set(RefusalReason)
    assert set(RefusalReason) <= set(steps.CODE_LABELS)
