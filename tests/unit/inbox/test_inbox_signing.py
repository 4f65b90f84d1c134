"""The statement the browser signs is the update the inbox publishes, and nothing else: the inbox signs
nothing (its publisher refuses an update without the browser's signature, and the SDK's signing is
never reached); what it sends is exactly the bytes the browser signed, with that signature as the
`cepbus-signature` header. The attacks on it, each refused before anything is published: a server that
shows one update and keeps another (its signature cannot serve), a signature replayed from an earlier
step or an earlier draft of the same step, a key the directory does not let sign now."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cepbus.contract import codec
from cepbus.contract.headers import SIGNATURE_HEADER
from cepbus.contract.models import ReferralStatus, ReferralStatusChanged
from cepbus.contract.statements import StatementSignature
from cepbus.reference.directory import load_directory
from cepbus.sdk import publisher as sdk
from services.inbox import steps
from services.inbox.publishing import LazyPublisher, UnsignedUpdate
from tests.support.authorship import authorship, signer
from tests.support.factories import referral
from tests.support.fakes import RecordingProducer
from tests.unit.inbox.harness import (
    PARTNER,
    Harness,
    form_token,
    log_in,
    page_data,
    prepare,
    sign,
    signature_for,
    take_step,
)


def _sdk_must_not_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this test the SDK signs nothing: its batch signing and its development signer fail."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the inbox asked the SDK to sign: only the browser signs")

    monkeypatch.setattr(sdk.Publisher, "_signatures", refused)
    monkeypatch.setattr(sdk, "development_signer", refused)


def _update() -> ReferralStatusChanged:
    request = referral(requester="cep-r11", recipient=PARTNER)
    return ReferralStatusChanged(
        envelope=request.envelope.model_copy(
            update={"event_type": ReferralStatusChanged.avro_name, "producer_org_id": PARTNER}
        ),
        referral_id=request.referral_id,
        status=ReferralStatus.RECEIVED,
        actor_org_id=PARTNER,
    )


def test_the_inbox_publisher_refuses_an_update_without_its_authors_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In development the SDK would sign it with the partner's derivable key: the inbox never lets it."""
    producer = RecordingProducer()
    publisher = LazyPublisher(producer=producer)
    with pytest.raises(UnsignedUpdate, match="signed in the browser"):
        publisher.publish(_update(), signed=None)  # type: ignore[arg-type]
    assert producer.sent == []
    _sdk_must_not_sign(monkeypatch)
    update = _update()
    [signed] = signer(PARTNER).sign([codec.encode(update)])  # as the browser signs it
    publisher.publish(update, signed=signed)
    [(_, value)] = producer.sent
    assert producer.headers[0][SIGNATURE_HEADER] == signed.header() and value == codec.encode(update)


def test_what_the_inbox_sends_is_the_bytes_the_browser_signed_with_its_signature(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sdk_must_not_sign(monkeypatch)
    request = harness.refer()
    producer = RecordingProducer()
    inbox = harness.inbox(publisher=LazyPublisher(producer=producer))
    log_in(inbox, PARTNER)
    sign_page = prepare(inbox, request.referral_id, "interim_update", note="Rappel prévu en août ☕")
    form, shown = signature_for(sign_page.text, PARTNER)
    answer = inbox.post(str(sign_page.url), data={**form, "csrf": form_token(sign_page.text)})
    assert answer.status_code == 200, answer.text
    [(topic, value)] = producer.sent
    header = producer.headers[0][SIGNATURE_HEADER]
    assert topic == "cep.referral.status" and value == codec.encode(shown)  # the fields the page showed
    sent = StatementSignature.parse(header)
    assert (base64.b64encode(sent.signature).decode(), sent.key_id) == (form["signature"], form["key_id"])
    assert (sent.size, sent.index, sent.path) == (1, 0, ())
    author = authorship().verify(value, header)  # the router's edge admits it
    [key] = load_directory().keys_of(PARTNER)
    assert (author.org_id, author.key_id) == (PARTNER, key.key_id)


def test_a_server_that_shows_one_update_and_keeps_another_gets_no_signature_of_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tampering server: the page shows a comment the draft does not hold (or the draft says what the
    page does not show). The browser signs what it shows; that signature does not verify over the
    draft, so the inbox refuses; and a server publishing the draft with it anyway is refused by the
    router's edge."""
    honest = steps.browser_fields
    monkeypatch.setattr(steps, "browser_fields", lambda draft: {**honest(draft), "note": "Tout va bien"})
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    sign_page = prepare(inbox, request.referral_id, "received", note="Personne à rappeler")
    form, shown = signature_for(sign_page.text, PARTNER)
    assert shown.note == "Tout va bien"
    answer = inbox.post(str(sign_page.url), data={**form, "csrf": form_token(sign_page.text)})
    assert answer.status_code == 400 and "(bad_signature)" in answer.text
    assert harness.publisher.published == [] and harness.status(request.referral_id) == "requested"
    # the dishonest server publishes its draft with the browser's signature all the same
    kept = shown.model_copy(update={"note": "Personne à rappeler"})
    signature = StatementSignature(form["key_id"], base64.b64decode(form["signature"]))
    harness.publisher.publish(kept, signed=signature)
    assert harness.publisher.refused == ["bad_signature"]
    assert harness.status(request.referral_id) == "requested"


def test_a_signature_replayed_from_an_earlier_step_is_refused(harness: Harness) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    log_in(inbox, PARTNER)
    first = prepare(inbox, request.referral_id, "received")
    earlier, _ = signature_for(first.text, PARTNER)
    assert inbox.post(str(first.url), data={**earlier, "csrf": form_token(first.text)}).status_code == 200
    second = prepare(inbox, request.referral_id, "accepted")
    answer = inbox.post(str(second.url), data={**earlier, "csrf": form_token(second.text)})
    assert answer.status_code == 400 and "(bad_signature)" in answer.text
    # and on the step it signed, once published: that draft is gone
    assert inbox.post(str(first.url), data={**earlier, "csrf": form_token(first.text)}).status_code == 404
    assert len(harness.publisher.published) == 1 and harness.status(request.referral_id) == "received"
    assert sign(inbox, second, PARTNER).status_code == 200
    assert harness.status(request.referral_id) == "accepted"


def test_a_signature_of_an_earlier_draft_of_the_same_step_is_refused(harness: Harness) -> None:
    """The same step prepared twice is one update id, but not the same statement (its time differs):
    the signature of the first page does not publish the second draft."""
    clock = [datetime(2026, 3, 2, 9, 0, tzinfo=UTC)]
    request = harness.refer()
    inbox = harness.inbox(now=lambda: clock[0])
    log_in(inbox, PARTNER)
    first = prepare(inbox, request.referral_id, "received")
    earlier, _ = signature_for(first.text, PARTNER)
    clock[0] += timedelta(seconds=30)
    second = prepare(inbox, request.referral_id, "received")
    assert second.url == first.url and page_data(second.text) != page_data(first.text)
    answer = inbox.post(str(second.url), data={**earlier, "csrf": form_token(second.text)})
    assert answer.status_code == 400 and "(bad_signature)" in answer.text
    assert harness.publisher.published == []
    assert sign(inbox, second, PARTNER).status_code == 200
    assert harness.status(request.referral_id) == "received"


def test_a_key_the_directory_does_not_let_sign_now_is_refused(harness: Harness) -> None:
    """The partner's key is valid from 2020 on (the packaged directory): at an earlier time on the
    inbox's clock, as after a revocation, its signature is refused."""
    [key] = load_directory().keys_of(PARTNER)
    request = harness.refer()
    inbox = harness.inbox(now=lambda: key.not_before - timedelta(days=1))
    log_in(inbox, PARTNER)
    answer = take_step(inbox, request.referral_id, "received", PARTNER)
    assert answer.status_code == 400 and "(key_not_valid)" in answer.text
    assert harness.publisher.published == []
