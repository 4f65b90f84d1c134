"""The referral read side is behind authentication: a bearer token bound to one organisation, which
sees only the referrals it is party to. Played against the FastAPI app with its test client."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cepbus.contract.models import ReferralStatus
from cepbus.reference import load_reference
from cepbus.reference.directory import load_directory
from cepbus.sdk.partner import PartnerClient
from cepbus.sdk.publisher import Publisher
from cepbus.trust.development import dev_private_key
from cepbus_app.cli import app as cli
from services.router.referrals.auth import TokenBook, issue_token, read_side_trust_problems
from services.router.referrals.handlers import UpdateRefused
from services.router.referrals.http import build_read_side, referral_view
from services.router.referrals.machine import DECLINE_REASONS, OUTCOMES, TRANSITIONS
from services.router.referrals.store import ReferralStore
from tests.support.authorship import Admitted
from tests.support.factories import MONDAY, referral
from tests.support.fakes import MovableClock, RecordingProducer

A, B, C = "cep-r11", "apec-r11", "opco-sante"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReferralStore]:
    opened = ReferralStore(f"sqlite:///{tmp_path / 'referrals.db'}")
    lifecycle = Admitted(opened, load_directory(), load_reference(), clock=MovableClock(MONDAY))
    for requester, recipient in ((A, B), (B, C)):
        lifecycle.on_requested(referral(requester=requester, recipient=recipient))
    yield opened
    opened.close()


def ids(store: ReferralStore, org: str) -> list[str]:
    return [r.referral_id for r in store.open_for(org)]


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[TokenBook, dict[str, str]]:
    path = tmp_path / "tokens.json"
    issued = {org: issue_token(org, path) for org in (A, B, C)}
    return TokenBook.load(path, load_directory().org_ids()), issued


def client(store: ReferralStore, book: TokenBook) -> TestClient:
    return TestClient(build_read_side(store, book))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_unauthenticated_request_is_refused(
    store: ReferralStore, tokens: tuple[TokenBook, dict[str, str]]
) -> None:
    http = client(store, tokens[0])
    [ab] = [r for r in ids(store, A)]
    for headers in (
        {},
        bearer("not-a-token"),
        bearer(f"dev-{A}"),
    ):  # dev tokens are refused with a tokens file
        answer = http.get(f"/referrals/{ab}", headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert http.get(f"/organisations/{A}/referrals").status_code == 401
    assert http.get("/healthz").status_code == 200


def test_an_organisation_sees_only_the_referrals_it_is_party_to(
    store: ReferralStore, tokens: tuple[TokenBook, dict[str, str]]
) -> None:
    book, issued = tokens
    http = client(store, book)
    [ab] = ids(store, A)
    [bc] = [i for i in ids(store, C)]
    assert http.get(f"/referrals/{ab}", headers=bearer(issued[A])).status_code == 200  # requester
    assert http.get(f"/referrals/{ab}", headers=bearer(issued[B])).status_code == 200  # recipient
    assert http.get(f"/referrals/{ab}", headers=bearer(issued[C])).status_code == 404  # not a party
    assert http.get(f"/referrals/{bc}", headers=bearer(issued[A])).status_code == 404
    assert http.get(f"/organisations/{B}/referrals", headers=bearer(issued[A])).status_code == 403
    mine = http.get(f"/organisations/{B}/referrals", headers=bearer(issued[B])).json()
    assert {r["referral_id"] for r in mine["open"]} == {ab, bc}


def test_the_tokens_file_keeps_no_token_and_the_openapi_document_says_bearer(
    store: ReferralStore, tokens: tuple[TokenBook, dict[str, str]], tmp_path: Path
) -> None:
    book, issued = tokens
    text = (tmp_path / "tokens.json").read_text()
    assert all(token not in text for token in issued.values())
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    spec = client(store, book).get("/openapi.json").json()
    assert {"/referrals/{referral_id}", "/organisations/{org_id}/referrals"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_development_tokens_are_derivable_and_production_refuses_them(
    store: ReferralStore, tmp_path: Path
) -> None:
    book = TokenBook.load(None, load_directory().org_ids())
    [ab] = ids(store, A)
    assert client(store, book).get(f"/referrals/{ab}", headers=bearer(f"dev-{A}")).status_code == 200
    assert read_side_trust_problems(None) and not read_side_trust_problems(tmp_path / "tokens.json")


def test_issue_token_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    result = CliRunner().invoke(cli, ["referral", "issue-token", "--org", A, "--tokens-file", str(path)])
    assert result.exit_code == 0
    token = result.stdout.strip()
    assert TokenBook.load(path, [A]).org_for(token) == A
    assert json.loads(path.read_text())["tokens"][0]["org_id"] == A
    refused = CliRunner().invoke(
        cli, ["referral", "issue-token", "--org", "nobody", "--tokens-file", str(path)]
    )
    assert refused.exit_code == 1 and "Traceback" not in refused.output


def test_an_organisation_reads_the_routers_verdicts_on_its_own_updates_only(
    store: ReferralStore, tokens: tuple[TokenBook, dict[str, str]]
) -> None:
    """The verdict a signer gets on its rejection topic, over HTTP for a client without Kafka (the
    partner inbox); another organisation can neither ask under its own name nor under the signer's."""
    book, issued = tokens
    http = client(store, book)
    lifecycle = Admitted(store, load_directory(), load_reference(), clock=MovableClock(MONDAY))
    request = referral(requester=A, recipient=B)
    lifecycle.on_requested(request)
    partner = PartnerClient(B, dev_private_key(B), publisher=Publisher(producer=RecordingProducer()))
    received = partner.update(request, ReferralStatus.RECEIVED)
    lifecycle.on_status(received)
    completed = partner.update(request, ReferralStatus.COMPLETED, reason_code="other")
    with pytest.raises(UpdateRefused):
        lifecycle.on_status(completed)  # not a step from `received`

    def verdict(org: str, caller: str, event_id: object) -> tuple[int, dict[str, object]]:
        answer = http.get(f"/organisations/{org}/updates/{event_id}", headers=bearer(issued[caller]))
        return answer.status_code, answer.json()

    status, applied = verdict(B, B, received.envelope.event_id)
    assert status == 200 and applied["verdict"] == "applied"
    assert (applied["state_before"], applied["state_after"]) == ("requested", "received")
    status, refused = verdict(B, B, completed.envelope.event_id)
    assert status == 200 and refused["verdict"] == "refused" and refused["reason_code"] == "not_allowed"
    assert refused["state_after"] == "received"
    # another organisation: refused under the signer's name, nothing under its own
    assert verdict(B, A, received.envelope.event_id)[0] == 403
    assert verdict(A, A, received.envelope.event_id)[0] == 404
    assert verdict(B, B, "never-sent")[0] == 404
    assert http.get(f"/organisations/{B}/updates/{received.envelope.event_id}").status_code == 401


def test_a_referrals_status_and_history_come_from_one_snapshot(store: ReferralStore) -> None:
    """A router applies an update while the read side answers: the status and the history it returns
    must agree (the inbox showed `received` as current beside an applied `accepted` and stopped waiting).
    The writer is let in after the read side's first statement, the worst moment for two reads."""
    lifecycle = Admitted(store, load_directory(), load_reference(), clock=MovableClock(MONDAY))
    request = referral(requester=A, recipient=B)
    lifecycle.on_requested(request)
    partner = PartnerClient(B, dev_private_key(B), publisher=Publisher(producer=RecordingProducer()))
    lifecycle.on_status(partner.update(request, ReferralStatus.RECEIVED))
    pending = [partner.update(request, ReferralStatus.ACCEPTED)]
    query = store._db.query

    def concurrent_writer(sql: str, params: Sequence[object] = ()) -> list[Any]:
        rows = query(sql, params)
        while pending:  # right after the first statement of the view
            lifecycle.on_status(pending.pop())
        return rows

    store._db.query = concurrent_writer  # type: ignore[method-assign]
    try:
        view = referral_view(store, request.referral_id)
    finally:
        store._db.query = query  # type: ignore[method-assign]
    assert view is not None and not pending
    assert view["history"][-1]["state_after"] == view["referral"]["status"]
    assert referral_view(store, request.referral_id)["referral"]["status"] == "accepted"  # type: ignore[index]


#: The answers' schemas, as the contract names them (`cepbus/contract/readside.py`).
READ_SIDE_SCHEMAS = {
    "ReferralView",
    "ReferralRecordView",
    "HistoryEntryView",
    "BreachView",
    "StepView",
    "OpenReferralsView",
    "UpdateVerdictView",
}


def test_the_openapi_document_names_the_contracts_answers(
    store: ReferralStore, tokens: tuple[TokenBook, dict[str, str]]
) -> None:
    spec = client(store, tokens[0]).get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert set(schemas) >= READ_SIDE_SCHEMAS
    assert {"ReferralStatus", "OrganisationKind", "UpdateVerdict", "ReferralParty"} <= set(schemas)

    def answer(path: str) -> object:
        return spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]

    assert answer("/referrals/{referral_id}") == {"$ref": "#/components/schemas/ReferralView"}
    assert answer("/organisations/{org_id}/referrals") == {"$ref": "#/components/schemas/OpenReferralsView"}
    assert answer("/organisations/{org_id}/updates/{event_id}") == {
        "$ref": "#/components/schemas/UpdateVerdictView"
    }
    properties = schemas["ReferralRecordView"]["properties"]
    assert properties["status"] == {"$ref": "#/components/schemas/ReferralStatus"}
    [record] = store.open_for(A)
    assert list(properties) == list(record.to_json())  # the store's JSON, field for field
    history = schemas["HistoryEntryView"]["properties"]
    assert history["state_after"] == {"$ref": "#/components/schemas/ReferralStatus"}


def _steps_as_first_released(state: ReferralStatus) -> list[dict[str, object]]:
    """The read side's `steps` as it wrote them by hand before the contract's models."""
    codes = {ReferralStatus.DECLINED: DECLINE_REASONS, ReferralStatus.COMPLETED: OUTCOMES}
    return [
        {
            "event": t.event.value,
            "actor": t.actor.value,
            "to": t.target.value,
            "codes": sorted(codes.get(t.event, ())),
        }
        for t in TRANSITIONS
        if t.source == state
    ]


def _compact(document: object) -> bytes:
    """JSON as Starlette's JSONResponse writes a dict (what the read side answered before its models)."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def test_the_answers_are_byte_for_byte_the_stores_json(
    store: ReferralStore, tokens: tuple[TokenBook, dict[str, str]]
) -> None:
    """The models changed the declaration, not the wire: each answer is the JSON the read side wrote
    from `ReferralRecord.to_json()` and `HistoryEntry.to_json()` before."""
    book, issued = tokens
    http = client(store, book)
    lifecycle = Admitted(store, load_directory(), load_reference(), clock=MovableClock(MONDAY))
    request = referral(requester=A, recipient=B)
    lifecycle.on_requested(request)
    partner = PartnerClient(B, dev_private_key(B), publisher=Publisher(producer=RecordingProducer()))
    received = partner.update(request, ReferralStatus.RECEIVED)
    lifecycle.on_status(received)
    lifecycle.on_status(
        partner.update(request, ReferralStatus.INTERIM_UPDATE, note='Été « chargé » ☕ \\ "x"')
    )
    store.mark_breached(request.referral_id, "answered", 1_772_000_000_000)
    found = store.with_history(request.referral_id)
    assert found is not None
    record, history = found
    assert len(history) == 2
    answer = http.get(f"/referrals/{request.referral_id}", headers=bearer(issued[B]))
    assert answer.content == _compact(
        {
            "referral": record.to_json(),
            "history": [entry.to_json() for entry in history],
            "breaches": [{"deadline": "answered", "due_at_ms": 1_772_000_000_000}],
            "steps": _steps_as_first_released(record.state),
            "sealed_contact": None,  # issue #24: added last, null without a contact
        }
    )
    answer = http.get(f"/organisations/{B}/referrals", headers=bearer(issued[B]))
    assert answer.content == _compact({"org_id": B, "open": [r.to_json() for r in store.open_for(B)]})
    answer = http.get(f"/organisations/{B}/updates/{received.envelope.event_id}", headers=bearer(issued[B]))
    assert answer.content == _compact(
        {
            "org_id": B,
            "event_id": str(received.envelope.event_id),
            "verdict": "applied",
            "reason_code": None,
            "detail": None,
            "state_before": "requested",
            "state_after": "received",
        }
    )
    # and `cep-bus referral show` prints the view without its steps, as before
    shown = {
        "referral": record.to_json(),
        "history": [entry.to_json() for entry in history],
        "breaches": [{"deadline": "answered", "due_at_ms": 1_772_000_000_000}],
    }
    assert _compact(referral_view(store, request.referral_id)) == _compact(shown)
