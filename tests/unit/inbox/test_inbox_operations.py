"""The inbox as a process: production refuses its development material (one line, exit 2), its
cookies are Secure and host-only behind HTTPS, and it has /healthz, /readyz and /metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cepbus.contract import codec
from cepbus.contract.models import ReferralStatus as S
from cepbus.contract.topics import REFERRAL_STATUS
from cepbus.contract.wiring import EXTERNAL
from cepbus.reference.directory import load_directory
from cepbus.runtime import traffic
from cepbus.sdk.partner import PartnerClient
from cepbus.sdk.publisher import Publisher, development_signer
from cepbus.trust.development import dev_private_key
from cepbus.trust.modes import TrustError, enforce
from cepbus.trust.settings import TrustSettings
from cepbus_app.k8s import kafka_users
from services.inbox.app import CONFIGURATION_REFUSED, build_app, inbox_problems, main
from services.inbox.publishing import PRINCIPAL, LazyPublisher
from services.inbox.settings import InboxSettings, inbox_trust_problems, load_session_secret
from tests.support.factories import referral
from tests.support.fakes import RecordingProducer
from tests.unit.inbox.harness import PARTNER, Harness, form_token, log_in, take_step

PRODUCTION = TrustSettings(env="production")


def test_production_refuses_the_development_defaults() -> None:
    problems = inbox_problems(InboxSettings(), PRODUCTION, load_directory())
    text = " ".join(str(p) for p in problems)
    assert "CEPBUS_INBOX_SESSION_SECRET_PATH" in text and "CEPBUS_DIRECTORY_PATH" in text
    with pytest.raises(TrustError):
        enforce(problems, PRODUCTION)


def test_a_configured_inbox_has_no_problem_of_its_own(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 48)
    settings = InboxSettings(session_secret_path=secret, read_side_url="https://read-side.example")
    assert inbox_trust_problems(settings, PRODUCTION) == []
    # plain HTTP to a read side elsewhere would carry the tokens in clear; insecure cookies neither
    assert inbox_trust_problems(
        settings.model_copy(update={"read_side_url": "http://10.0.0.4:9104"}), PRODUCTION
    )
    assert inbox_trust_problems(settings.model_copy(update={"cookie_secure": False}), PRODUCTION)
    assert load_session_secret(settings) == b"s" * 48


def test_a_short_session_secret_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"too short\n")
    with pytest.raises(ValueError, match="at least 32"):
        load_session_secret(InboxSettings(session_secret_path=secret))


def test_development_never_uses_a_derivable_secret() -> None:
    assert load_session_secret(InboxSettings()) != load_session_secret(InboxSettings())


def test_the_process_refuses_production_with_development_material(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CEPBUS_ENV", "production")
    # logging stays as the session set it (configured on the captured stderr, it would outlive capsys)
    monkeypatch.setattr("services.inbox.app.configure_logging", lambda service: None)
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == CONFIGURATION_REFUSED
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("cep-bus inbox: refusing development trust material in production")


def test_behind_https_the_session_cookie_is_secure_and_host_only(harness: Harness) -> None:
    app = build_app(
        InboxSettings(),
        trust=PRODUCTION,
        directory=load_directory(),
        read_side=harness.read_side,
        publisher=harness.publisher,
        secret=b"p" * 32,
    )
    inbox = TestClient(app, base_url="https://inbox.example")
    form = inbox.get("/login")
    answer = inbox.post(
        "/login",
        data={"org_id": PARTNER, "token": f"dev-{PARTNER}", "csrf": form_token(form.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("__Host-cepbus-inbox="))
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert "Mode développement" not in inbox.get("/referrals").text


def test_health_readiness_and_metrics(harness: Harness) -> None:
    request = harness.refer()
    inbox = harness.inbox()
    assert inbox.get("/healthz").json() == {"ok": True}
    assert inbox.get("/readyz").status_code == 200
    log_in(inbox, PARTNER)
    take_step(inbox, request.referral_id, "received", PARTNER)
    metrics = inbox.get("/metrics").text
    assert 'cepbus_inbox_logins_total{outcome="accepted"}' in metrics
    assert 'cepbus_inbox_updates_total{outcome="published",status="received"}' in metrics


def test_readiness_fails_while_the_read_side_is_unreachable() -> None:
    app = build_app(
        InboxSettings(read_side_url="http://127.0.0.1:9"),
        trust=TrustSettings(),
        directory=load_directory(),
        publisher=None,
        secret=b"d" * 32,
    )
    inbox = TestClient(app)
    assert inbox.get("/readyz").status_code == 503
    form = inbox.get("/login")
    answer = inbox.post(
        "/login", data={"org_id": PARTNER, "token": f"dev-{PARTNER}", "csrf": form_token(form.text)}
    )
    assert answer.status_code == 503 and "ne répond pas" in answer.text


def test_the_inbox_publishes_as_its_own_kafka_user_whose_acl_is_status_updates_only(
    tmp_path: Path,
) -> None:
    """What the inbox sends is recorded as `cepbus-inbox` (not as the signing partner, whose
    certificate the inbox does not hold), and the generated KafkaUser allows exactly that."""
    log = tmp_path / "traffic.jsonl"
    request = referral(requester="cep-r11", recipient=PARTNER)
    update = PartnerClient(
        PARTNER, dev_private_key(PARTNER), publisher=Publisher(producer=RecordingProducer())
    ).update(request, S.RECEIVED)
    [signed] = development_signer(PARTNER).sign([codec.encode(update)])  # as the partner's browser signs
    inbox = LazyPublisher(requests=traffic.TrafficLog(log), producer=RecordingProducer())
    inbox.publish(update, signed=signed)
    recorded = [json.loads(line) for line in log.read_text().splitlines()]
    for line in recorded:
        line.pop("pid")
    assert recorded == [
        {"principal": PRINCIPAL, "operation": "Write", "type": "topic", "name": REFERRAL_STATUS.name}
    ]
    [user] = [u for u in kafka_users() if u["metadata"]["name"] == PRINCIPAL]
    acls = user["spec"]["authorization"]["acls"]
    assert [(a["resource"]["name"], a["operations"]) for a in acls] == [
        (REFERRAL_STATUS.name, ["Write", "Describe"])
    ]
    assert EXTERNAL[PRINCIPAL].reads == () and EXTERNAL[PRINCIPAL].groups == ()
