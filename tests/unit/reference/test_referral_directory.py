"""The referral directory: validated at load, every organisation with its inbox and its keys, the
packaged example's keys being the (INSECURE) development keys, signed by the development authority;
the topic catalog creating every inbox; the read-side CLI. Keys over time and signatures:
tests/unit/trust/."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from typer.testing import CliRunner

from cepbus.contract.models import OrganisationKind
from cepbus.contract.signatures import public_key_b64
from cepbus.reference import load_reference
from cepbus.reference.directory import OPCO_NAMES, Directory, DirectoryError, load_directory
from cepbus.runtime.admin import bus_topics
from cepbus.trust.development import dev_authority_key, dev_private_key
from cepbus.trust.keys import AuthorityKey
from cepbus_app.cli import app

DOCUMENT: dict[str, Any] = json.loads(
    resources.files("cepbus.reference").joinpath("data", "directory.json").read_text(encoding="utf-8")
)


def build(document: dict[str, Any]) -> Directory:
    return Directory.build(load_reference(), document)


def body(document: dict[str, Any]) -> dict[str, Any]:
    signed: dict[str, Any] = document["signed"]
    return signed


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
    directory = load_directory()
    assert directory.development and directory.version == "2026.2"
    for entry in directory.entries():
        assert entry.inbox_topic in topics and entry.rejections_topic in topics
        [key] = directory.keys_of(entry.org_id)
        assert key.public_key == public_key_b64(dev_private_key(entry.org_id))
        assert key.not_before == datetime(2020, 1, 1, tzinfo=UTC) and key.not_after is None
        assert directory.public_key(entry.org_id).public_bytes_raw() == key.raw


def test_the_packaged_example_is_signed_by_the_development_authority() -> None:
    directory = build_signed(DOCUMENT)
    assert directory.verified_by == AuthorityKey.of(dev_authority_key()).key_id
    assert "INSECURE" in (directory.source or "")


def build_signed(document: dict[str, Any]) -> Directory:
    return Directory.build(load_reference(), document, AuthorityKey.of(dev_authority_key()))


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (
            lambda d: d["keys"].pop(next(i for i, k in enumerate(d["keys"]) if k["org_id"] == "opco-sante")),
            "without a key",
        ),
        (
            lambda d: next(k for k in d["keys"] if k["org_id"] == "opco-sante").__setitem__(
                "public_key", "AAAA"
            ),
            "32 bytes",
        ),
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
    breaks(body(document))
    with pytest.raises(DirectoryError, match=message):
        build(document)
    with pytest.raises(DirectoryError, match="does not verify"):  # and its signature no longer holds
        build_signed(document)


def test_referral_show_reads_the_store(tmp_path: Any) -> None:
    from datetime import UTC, datetime

    from cepbus.contract.models import ReferralStatus
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
