"""The wiring (`cepbus/contract/wiring.py`) is what the services run: each one's route table reads
exactly its declared topics, and the `cep-bus topics --wiring --json` document is that declaration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cepbus.contract import wiring
from cepbus.contract.wiring import WiringViolation, check_reads, check_writes
from cepbus_app.cli import app


def _definition(service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in ("ROUTER", "NOTIFIER", "LEDGER", "REFERRALS", "DEADLETTERS"):
        monkeypatch.setenv(f"CEPBUS_{name}_DATABASE_URL", f"sqlite:///{tmp_path / name.lower()}.db")
    from cepbus.auditlog.note import Signer

    key = tmp_path / "ledger.key"
    key.write_text(str(Signer.generate("cep-bus.test/wiring")) + "\n")
    monkeypatch.setenv("CEPBUS_LEDGER_SIGNING_KEY_PATH", str(key))
    monkeypatch.setenv("CEPBUS_LEDGER_ORIGIN", "cep-bus.test/wiring")
    monkeypatch.setenv("CEPBUS_REFERRALS_HTTP_PORT", "0")
    module = __import__(f"services.{service}.app", fromlist=["build_service"])
    return module.build_service()


@pytest.mark.parametrize("service", ["router", "notifier", "ledger", "deadletters"])
def test_each_service_reads_exactly_what_its_wiring_declares(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    definition = _definition(service, tmp_path, monkeypatch)
    try:
        assert set(definition.topics_read()) == set(wiring.SERVICES[service].reads)  # no unused grant
        assert definition.settings.group_id.startswith(wiring.SERVICES[service].groups[0].rstrip("*"))
    finally:
        for hook in definition.on_stop:
            hook()


def test_undeclared_reads_and_writes_are_refused() -> None:
    check_reads("notifier", ["cep.notice.requested"])
    with pytest.raises(WiringViolation, match=r"notifier reads .*cep\.intake\.registered"):
        check_reads("notifier", ["cep.notice.requested", "cep.intake.registered"])
    check_writes("router", ["cep.referral.inbox.apec-r11", "cep.intake.decided"])
    with pytest.raises(WiringViolation, match=r"ledger writes .*cep\.regulation\.breach"):
        check_writes("ledger", ["cep.regulation.breach"])
    with pytest.raises(WiringViolation, match="no wiring declared"):
        check_reads("mystery", [])


def test_a_partner_template_stays_within_its_own_topics() -> None:
    partner = wiring.EXTERNAL[f"partner-{wiring.ORG}"].for_org("spro-r53")
    assert partner.may_read("cep.referral.inbox.spro-r53") and partner.may_read(
        "cep.referral.rejected.spro-r53"
    )
    assert not partner.may_read("cep.referral.inbox.spro-r530") and not partner.may_read(
        "cep.intake.registered"
    )
    assert partner.may_write("cep.referral.status") and not partner.may_write("cep.regulation.breach")
    assert partner.may_join("cepbus-partner-spro-r53") and not partner.may_join("cepbus-router")


def test_the_wiring_command_prints_the_declaration() -> None:
    result = CliRunner().invoke(app, ["topics", "--wiring", "--json"])
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed == wiring.wiring()
    assert set(printed) >= {"router", "notifier", "ledger", "deadletters", "cepbus-ops", "cepbus-auditor"}
    assert printed["cepbus-ops"]["reads"] == ["cep.deadletter"]
    assert printed["deadletters"]["reads"] == ["cep.deadletter"]
    assert "cep.deadletter" not in printed["ledger"]["reads"]
