"""An event passed on unchanged keeps its author's signature (issue #23: every statement signed by its
author): the router delivers a referral to its recipient's inbox as the requester signed it, so the
recipient verifies the requester's word, not the router's; anything the router changed or decided is
signed by the router."""

from __future__ import annotations

from cepbus.contract import codec
from cepbus.contract.headers import SIGNATURE_HEADER
from cepbus.contract.models import ReferralRequested
from cepbus.contract.topics import REFERRAL_REQUESTED, referral_inbox
from cepbus.runtime.framing import Framing
from cepbus.runtime.messages import Outgoing
from cepbus.runtime.processing import forwarded
from cepbus.runtime.sending import SendSide
from tests.support.authorship import admitted, authorship, signer
from tests.support.factories import referral

INBOX = referral_inbox("mission-locale-r84").name


def referral_request_by(org_id: str) -> ReferralRequested:
    made = referral(requester=org_id, recipient="mission-locale-r84")
    envelope = made.envelope.model_copy(update={"producer_org_id": org_id})
    return made.model_copy(update={"envelope": envelope})


def header_of(headers: list[tuple[str, bytes]]) -> bytes:
    [value] = [v for n, v in headers if n == SIGNATURE_HEADER]
    return value


def test_a_forwarded_event_keeps_its_authors_signature_and_the_rest_is_signed_by_the_sender() -> None:
    referral = referral_request_by("cep-r84")
    with admitted(referral) as author:
        passed_on = forwarded(INBOX, referral)
        changed = forwarded(INBOX, referral.model_copy(update={"reason": "edited by the router"}))
    assert passed_on.signature == author.signature.header()
    assert changed.signature is None  # not the author's bytes any more: the router signs it
    decided = Outgoing(REFERRAL_REQUESTED.name, referral_request_by("cep-bus-router"))
    side = SendSide("router", Framing(), signer=signer("cep-bus-router"))
    sent = side.outputs([passed_on, changed, decided])
    judge = authorship()
    signers = [
        judge.verify(codec.encode(o.event), header_of(m.headers)).org_id
        for o, m in zip([passed_on, changed, decided], sent, strict=True)
    ]
    assert signers == ["cep-r84", "cep-bus-router", "cep-bus-router"]
    assert [n for n, _ in sent[0].headers].count(SIGNATURE_HEADER) == 1  # never signed twice


def test_outside_a_handler_nothing_is_forwarded_as_someone_elses() -> None:
    assert forwarded(INBOX, referral_request_by("cep-r84")).signature is None
