"""A partner takes a referral through its steps in the inbox, each signed and applied by the router's
own lifecycle; the inbox offers only the organisation's steps and refuses the rest with the router's
reasons."""

from __future__ import annotations

import time

import pytest

from cepbus.contract import codec
from cepbus.contract.models import ReferralStatus
from cepbus.reference.directory import load_directory
from cepbus.sdk.partner import PartnerClient
from cepbus.sdk.publisher import Publisher
from cepbus.trust.development import dev_private_key
from services.inbox.settings import InboxSettings
from services.inbox.steps import browser_fields, update_from_fields
from services.router.referrals.machine import Actor, Refused, step
from tests.support.authorship import authorship
from tests.support.fakes import RecordingProducer
from tests.unit.inbox.harness import (
    OTHER,
    PARTNER,
    REQUESTER,
    Harness,
    log_in,
    page_data,
    prepare,
    sign,
    take_step,
)

S = ReferralStatus


def test_a_partner_receives_accepts_and_books_and_the_router_applies_each_signed_step(
    harness: Harness,
) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    listing = log_in(inbox, PARTNER)
    assert listing.status_code == 200 and request.referral_id in listing.text
    assert "Accusé de réception au plus tard le" in listing.text  # the pending deadline, in French
    for status in ("received", "accepted", "appointment_booked"):
        done = take_step(inbox, request.referral_id, status, PARTNER)
        assert done.status_code == 200 and done.url.path == f"/referrals/{request.referral_id}"
        assert harness.status(request.referral_id) == status
    assert harness.publisher.refused == []
    page = inbox.get(f"/referrals/{request.referral_id}").text
    assert "Rendez-vous fixé" in page and "Historique signé" in page
    # every published update is the organisation's own, its statement signed with its directory key
    [key] = load_directory().keys_of(PARTNER)
    for update, signed in zip(harness.publisher.published, harness.publisher.signatures, strict=True):
        assert update.envelope.producer_org_id == update.actor_org_id == PARTNER
        author = authorship().verify(codec.encode(update), signed.header())
        assert (author.org_id, author.key_id, signed.size) == (PARTNER, key.key_id, 1)
        assert update.signature is update.signer_org_id is None  # the proof travels beside the event
        assert update.envelope.causation_id == str(request.event_id)
        assert update.envelope.correlation_id == request.envelope.correlation_id
    # with the ids the partner SDK derives: a step sent from both is one update, not two
    sdk = PartnerClient(PARTNER, dev_private_key(PARTNER), publisher=Publisher(producer=RecordingProducer()))
    assert [u.envelope.event_id for u in harness.publisher.published] == [
        sdk.update(request, S(s)).envelope.event_id for s in ("received", "accepted", "appointment_booked")
    ]


def test_a_decline_carries_its_reason_and_a_french_note(harness: Harness) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    take_step(inbox, request.referral_id, "received", PARTNER)
    note = "Personne orientée vers l'AFPA — à rappeler en février ; café ☕"
    done = take_step(inbox, request.referral_id, "declined", PARTNER, "session_full", note)
    assert done.status_code == 200
    assert harness.status(request.referral_id) == "declined"
    declined = harness.publisher.published[-1]
    assert (declined.reason_code, declined.note) == ("session_full", note)
    assert "Orientation close" in inbox.get(f"/referrals/{request.referral_id}").text


def test_the_page_offers_only_the_organisations_steps_from_the_current_state(harness: Harness) -> None:
    request = harness.refer()
    partner, requester = harness.inbox(), harness.inbox()
    log_in(partner, PARTNER)
    log_in(requester, REQUESTER)
    page = partner.get(f"/referrals/{request.referral_id}").text
    assert 'value="received"' in page and 'value="interim_update"' in page
    assert 'value="accepted"' not in page and 'value="cancel_requested"' not in page
    page = requester.get(f"/referrals/{request.referral_id}").text
    assert 'value="cancel_requested"' in page and 'value="received"' not in page


@pytest.mark.parametrize(
    ("before", "status", "reason", "expected"),
    [
        ((), "accepted", "", "not_allowed"),  # not a step from requested
        ((), "cancel_requested", "", "wrong_actor"),  # the requester's step
        (("received",), "declined", "", "bad_reason_code"),
        (("received",), "declined", "not-a-reason", "bad_reason_code"),
        (("received",), "declined", "no_capacity", "bad_reason_code"),  # no longer on the national list
        (("received",), "declined", "other", "reason_needs_message"),  # without a message
        (("received", "declined:duplicate"), "interim_update", "", "terminal_state"),
    ],
)
def test_a_step_the_router_would_refuse_is_refused_with_the_routers_reason(
    harness: Harness, before: tuple[str, ...], status: str, reason: str, expected: str
) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    for earlier in before:
        event, _, code = earlier.partition(":")
        take_step(inbox, request.referral_id, event, PARTNER, code)
    state = harness.status(request.referral_id)
    published = len(harness.publisher.published)
    answer = prepare(inbox, request.referral_id, status, reason)
    assert answer.status_code == 409 and f"({expected})" in answer.text
    assert len(harness.publisher.published) == published  # nothing left the inbox
    # the router's machine gives the same reason for the same step
    refused = step(S(state), S(status), Actor.RECIPIENT, reason or None)
    assert isinstance(refused, Refused) and refused.code == expected


def test_a_step_overtaken_before_its_signature_is_refused_and_not_published(harness: Harness) -> None:
    """The draft was prepared in `requested`; the partner's own system sent `received` meanwhile."""
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    sign_page = prepare(inbox, request.referral_id, "received")
    sdk = PartnerClient(PARTNER, dev_private_key(PARTNER), publisher=Publisher(producer=RecordingProducer()))
    harness.lifecycle.on_status(sdk.update(request, S.RECEIVED))
    published = len(harness.publisher.published)
    answer = sign(inbox, sign_page, PARTNER)
    assert answer.status_code == 409 and "(not_allowed)" in answer.text
    assert len(harness.publisher.published) == published


def test_a_step_the_router_has_not_applied_shows_as_waiting_then_as_not_applied(harness: Harness) -> None:
    harness.publisher.apply = False  # the update never reaches the router
    request = harness.refer()
    inbox = harness.inbox(settings=InboxSettings(pending_window_s=0.3))
    log_in(inbox, PARTNER)
    take_step(inbox, request.referral_id, "received", PARTNER)
    page = inbox.get(f"/referrals/{request.referral_id}").text
    assert "en attente de son application par le routeur" in page
    assert 'http-equiv="refresh"' in page and 'value="received"' not in page  # no step while waiting
    time.sleep(0.4)
    page = inbox.get(f"/referrals/{request.referral_id}").text
    assert "le routeur ne l'a pas encore jugée" in page and 'data-status="requested"' in page
    assert 'value="received"' in page  # offered again


def test_a_step_the_router_refuses_after_the_bus_shows_the_routers_reason(harness: Harness) -> None:
    """A race the inbox cannot see before publishing: its `accepted` leaves, the partner's own system
    declines first, the router refuses the inbox's step. The page says so, with the router's reason
    (read from the router's verdict), instead of waiting for an update that will never apply."""
    harness.publisher.apply = False  # hold the inbox's update on the bus
    request = harness.refer()
    harness.lifecycle.on_status(partner_sdk().update(request, S.RECEIVED))
    inbox = harness.inbox(settings=InboxSettings(pending_window_s=60))
    log_in(inbox, PARTNER)
    take_step(inbox, request.referral_id, "accepted", PARTNER)
    assert "en attente de son application" in inbox.get(f"/referrals/{request.referral_id}").text
    harness.lifecycle.on_status(partner_sdk().update(request, S.DECLINED, reason_code="session_full"))
    [held] = harness.publisher.published
    harness.publisher.deliver(0)  # the bus delivers it now, with the browser's signature
    assert harness.publisher.refused == ["terminal_state"]
    page = inbox.get(f"/referrals/{request.referral_id}").text
    assert "le routeur l'a refusée" in page and "(terminal_state)" in page
    assert str(held.envelope.event_id) in page
    assert "en attente" not in page and 'http-equiv="refresh"' not in page
    assert harness.status(request.referral_id) == "declined"
    asked = [path for path, _ in harness.read_side.calls if "/updates/" in path]
    assert asked and all(path.startswith(f"/organisations/{PARTNER}/updates/") for path in asked)


def test_a_step_applied_between_the_two_reads_of_a_page_keeps_the_page_reloading(harness: Harness) -> None:
    """The page reads the referral, then the verdicts of the steps not in its history: when the router
    applies the step in between, the verdict says applied but the page holds the old state. It must
    wait (and reload) rather than show the old state as final."""
    harness.publisher.apply = False
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    take_step(inbox, request.referral_id, "received", PARTNER)
    asked = harness.read_side._get

    def router_applies_before_the_verdict_is_read(path: str, token: str | None) -> tuple[int, object]:
        if "/updates/" in path and harness.status(request.referral_id) == "requested":
            harness.publisher.deliver(0)
        return asked(path, token)

    harness.read_side._get = router_applies_before_the_verdict_is_read  # type: ignore[method-assign]
    page = inbox.get(f"/referrals/{request.referral_id}").text
    assert 'data-status="requested"' in page  # the view was read before the router applied
    assert 'http-equiv="refresh"' in page and "en attente de son application" in page
    page = inbox.get(f"/referrals/{request.referral_id}").text
    assert 'data-status="received"' in page and 'http-equiv="refresh"' not in page


def partner_sdk() -> PartnerClient:
    """The partner's own information system, beside its inbox."""
    return PartnerClient(PARTNER, dev_private_key(PARTNER), publisher=Publisher(producer=RecordingProducer()))


def test_the_fields_the_page_signs_are_the_update_the_server_publishes(harness: Harness) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    sign_page = prepare(inbox, request.referral_id, "received")
    data = page_data(sign_page.text)
    assert sign(inbox, sign_page, PARTNER).status_code == 200
    [published] = harness.publisher.published
    assert browser_fields(published) == data["update"]
    assert codec.encode(update_from_fields(data["update"])) == codec.encode(published)
    assert bytes.fromhex(data["fingerprint"]) == codec.encode(published)[2:10]  # the writer schema's
    assert harness.publisher.refused == [] and harness.status(request.referral_id) == "received"


def test_another_organisations_referrals_are_not_listed(harness: Harness) -> None:
    mine, theirs = harness.refer(), harness.refer(recipient=OTHER)
    inbox = harness.inbox()
    listing = log_in(inbox, PARTNER)
    assert mine.referral_id in listing.text and theirs.referral_id not in listing.text
