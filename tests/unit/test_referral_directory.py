"""The referral directory: validated at load, every organisation with its inbox and its key, the dev
keys matching the published ones; the topic catalog creating every inbox; the read-side CLI."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest
from typer.testing import CliRunner

from cepbus.cli import app
from cepbus.directory import OPCO_NAMES, Directory, DirectoryError, load_directory
from cepbus.models import OrganisationKind
from cepbus.reference import load_reference
from cepbus.service_runner import bus_topics
from cepbus.signing import dev_private_key, public_key_b64

DOCUMENT: dict[str, Any] = json.loads(
    resources.files("cepbus.reference").joinpath("data", "directory.json").read_text(encoding="utf-8")
)


def build(document: dict[str, Any]) -> Directory:
    return Directory.build(load_reference(), document)


def test_directory_holds_operators_and_local_partners() -> None:
    directory = load_directory()
    kinds = [entry.kind for entry in directory.entries()]
    assert kinds.count(OrganisationKind.TRANSITIONS_PRO) == 18 and kinds.count(OrganisationKind.SPRO) == 18
    assert {e.name for e in directory.entries() if e.kind == OrganisationKind.OPCO} == OPCO_NAMES
    assert len(OPCO_NAMES) == 11
    assert all(e.region_code is None for e in directory.entries() if e.kind == OrganisationKind.OPCO)
    examples = [
        e
        for e in directory.entries()
        if e.kind in (OrganisationKind.TRAINING, OrganisationKind.HEALTH_SOCIAL)
    ]
    assert examples and all(e.example and "EXEMPLE" in e.name for e in examples)
    assert {org.org_id for org in load_reference().organisations()} <= set(directory.org_ids())


def test_every_organisation_has_an_inbox_in_the_catalog_and_its_dev_key() -> None:
    topics = {spec.name for spec in bus_topics()}
    for entry in load_directory().entries():
        assert entry.inbox_topic in topics and entry.rejections_topic in topics
        assert entry.public_key == public_key_b64(dev_private_key(entry.org_id))


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (lambda d: d["public_keys"].pop("opco-sante"), "without a public key"),
        (lambda d: d["public_keys"].__setitem__("opco-sante", "AAAA"), "invalid public keys"),
        (
            lambda d: d["partners"].pop(next(i for i, p in enumerate(d["partners"]) if p["kind"] == "opco")),
            "11 OPCO",
        ),
        (
            lambda d: next(p for p in d["partners"] if p["kind"] == "training").__setitem__("example", False),
            "must say so",
        ),
        (lambda d: d["partners"].append(dict(d["partners"][0])), "duplicate organisation ids"),
        (
            lambda d: next(p for p in d["partners"] if p["kind"] == "spro").__setitem__("region_code", "99"),
            "unknown region",
        ),
    ],
)
def test_a_broken_directory_fails_loudly(breaks: Any, message: str) -> None:
    document = copy.deepcopy(DOCUMENT)
    breaks(document)
    with pytest.raises(DirectoryError, match=message):
        build(document)


def test_referral_show_reads_the_store(tmp_path: Any) -> None:
    from datetime import UTC, datetime

    from cepbus.models import ReferralStatus
    from services.router.referrals.store import ReferralRecord, ReferralStore

    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = ReferralStore(url)
    now = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)
    store.add_referral(
        ReferralRecord(
            "ref-1",
            "ev-1",
            "p-1",
            "c-1",
            "cep-r11",
            "apec-r11",
            OrganisationKind.APEC,
            "11",
            ReferralStatus.REQUESTED,
            now,
            now,
            "received",
            now + 1,
        )
    )
    store.close()
    runner = CliRunner()
    shown = runner.invoke(app, ["referral", "show", "ref-1", "--database-url", url])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["referral"]["status"] == "requested"
    opened = runner.invoke(app, ["referral", "open", "--org", "apec-r11", "--database-url", url])
    assert [r["referral_id"] for r in json.loads(opened.stdout)["open"]] == ["ref-1"]
    assert runner.invoke(app, ["referral", "show", "nope", "--database-url", url]).exit_code == 1
