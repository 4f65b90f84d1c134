"""Offline bundle verification fails closed and never ends in a traceback.

* No pinned key (`--key` or `--trust`), no verdict: exit 2, one line naming what to pass. The bundle's own
  `verifier_key` is never trusted: a bundle re-signed by another key under the same origin fails.
* Any malformed bundle (wrong types, wrong shapes, not UTF-8, not JSON, nested too deeply, missing file)
  ends in one line on stderr and exit 1 (does not verify) or 2 (unusable input), for `ledger verify` and
  `audit report` alike; `verify_bundle` raises only BundleError, whatever JSON value it is given.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cepbus.auditlog import bundle as bundle_module
from cepbus.auditlog.bundle import (
    NO_PINNED_KEY,
    BundleError,
    BundleUsageError,
    export_bundle,
    parse_json,
    parse_trust_lines,
    verify_bundle,
)
from cepbus.auditlog.note import Checkpoint, Signer, Verifier
from cepbus_app.cli import app
from services.ledger.records import NewRecord
from services.ledger.store import SqlLedgerStore
from tests.support.factories import intake
from tests.support.ledger import ledger_record

ORIGIN = "cep-bus.test/ledger"
runner = CliRunner()


def _record(event: Any) -> NewRecord:
    return ledger_record(event)


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real bundle exported from a ledger store, and the key the ledger publishes."""
    signer = Signer.generate(ORIGIN)
    db = tmp_path_factory.mktemp("ledger") / "ledger.db"
    with SqlLedgerStore(f"sqlite:///{db}") as store:
        store.append([_record(intake(person=f"psn-{i % 3}", region=("11", "84")[i % 2])) for i in range(5)])
        store.checkpoint(signer)
        latest = store.latest_checkpoint()
        assert latest is not None
        document = export_bundle(store, latest, signer)  # cep-bus-ledger-bundle/2: its period signed
    return {"document": document, "vkey": str(signer.verifier()), "signer": signer}


def _document(genuine: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(genuine["document"])


def _write(tmp_path: Path, content: Any, name: str = "bundle.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _verify(path: Path, *extra: str) -> Any:
    return runner.invoke(app, ["ledger", "verify", "--bundle", str(path), *extra])


def _report(path: Path, *extra: str) -> Any:
    return runner.invoke(app, ["audit", "report", "--bundle", str(path), *extra])


def _clean_failure(result: Any, codes: set[int]) -> str:
    """The command ended by its own exit code (no traceback) with exactly one line on stderr."""
    assert result.exit_code in codes, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return str(lines[0])


def _forged(genuine: dict[str, Any]) -> tuple[dict[str, Any], Signer]:
    """The genuine entries under a checkpoint re-signed by an attacker's key of the same origin, with the
    attacker's verifier key put in the bundle."""
    document = _document(genuine)
    text, _, _ = document["checkpoint"].partition("\n\n")
    attacker = Signer.generate(ORIGIN)
    document["checkpoint"] = attacker.sign(Checkpoint.parse(text + "\n").text())
    period, _, _ = document["period_note"].partition("\n\n")  # the signed period too: a whole forgery
    document["period_note"] = attacker.sign(period + "\n")
    document["verifier_key"] = str(attacker.verifier())
    return document, attacker


# --- 1. fail closed: no pinned key, no verdict --------------------------------------------------------


@pytest.mark.parametrize("command", [_verify, _report], ids=["ledger-verify", "audit-report"])
def test_without_a_pinned_key_even_a_genuine_bundle_is_refused(
    genuine: dict[str, Any], tmp_path: Path, command: Any
) -> None:
    path = _write(tmp_path, genuine["document"])
    result = command(path)
    line = _clean_failure(result, {2})
    assert "no pinned key" in line and "--key" in line and "--trust" in line
    assert result.stdout == ""  # no verdict, no report
    # with the published key it verifies
    ok = command(path, "--key", genuine["vkey"])
    assert ok.exit_code == 0, ok.output


def test_verify_bundle_needs_a_pinned_key(genuine: dict[str, Any]) -> None:
    with pytest.raises(BundleUsageError, match="no pinned key"):
        verify_bundle(_document(genuine), [])
    verified = verify_bundle(_document(genuine), genuine["vkey"])
    assert verified.verified_by == Verifier.parse(genuine["vkey"]) and verified.size == 5
    assert NO_PINNED_KEY.count("\n") == 0


# --- 3. the attack: re-signed by another key with the same origin -------------------------------------


@pytest.mark.parametrize("command", [_verify, _report], ids=["ledger-verify", "audit-report"])
def test_a_bundle_re_signed_by_another_key_of_the_same_origin_fails(
    genuine: dict[str, Any], tmp_path: Path, command: Any
) -> None:
    forged, attacker = _forged(genuine)
    assert Verifier.parse(forged["verifier_key"]).name == ORIGIN  # same origin, same key name
    path = _write(tmp_path, forged)
    # without --key: refused outright (the key inside the bundle is never trusted)
    line = _clean_failure(command(path), {2})
    assert "no pinned key" in line
    # with the genuine key: the signature does not verify
    line = _clean_failure(command(path, "--key", genuine["vkey"]), {1})
    assert "BUNDLE VERIFICATION FAILED" in line and "not signed by a pinned key" in line
    assert "which is not pinned" in line
    # with a trust file of the genuine key (and another unrelated one): still fails
    trust = _write(tmp_path, f"# published keys\n{genuine['vkey']}\n\n{Signer.generate('x').verifier()}\n",
                   "trusted.keys")  # fmt: skip
    _clean_failure(command(path, "--trust", str(trust)), {1})
    with pytest.raises(BundleError, match="not signed by a pinned key"):
        verify_bundle(forged, genuine["vkey"])
    # the attacker's copy of the key is what would have verified it: it must never be used
    assert verify_bundle(forged, str(attacker.verifier())).size == 5


def test_the_bundles_own_key_is_not_consulted(genuine: dict[str, Any]) -> None:
    """A genuine checkpoint verifies against the pinned key whatever the bundle says its key is."""
    document = _document(genuine)
    document["verifier_key"] = str(Signer.generate(ORIGIN).verifier())
    assert verify_bundle(document, genuine["vkey"]).verified_by == Verifier.parse(genuine["vkey"])
    document["verifier_key"] = "garbage"
    assert verify_bundle(document, genuine["vkey"]).size == 5


# --- trust files and --key -------------------------------------------------------------------------


def test_trust_file_with_comments_and_several_keys(genuine: dict[str, Any], tmp_path: Path) -> None:
    other = str(Signer.generate(ORIGIN).verifier())
    trust = _write(tmp_path, f"# ledger keys\n\n  {other}  # rotated out\n{genuine['vkey']}\n", "trust.keys")
    path = _write(tmp_path, genuine["document"])
    result = _verify(path, "--trust", str(trust))
    assert result.exit_code == 0 and genuine["vkey"] in result.stdout, result.output
    assert _report(path, "--trust", str(trust)).exit_code == 0
    assert [str(v) for v in parse_trust_lines(trust.read_text())] == [other, genuine["vkey"]]


@pytest.mark.parametrize(
    ("trust_text", "message"),
    [
        pytest.param("# nothing but comments\n\n", "holds no verifier key", id="empty"),
        pytest.param("not-a-key\n", "line 1", id="bad-line"),
        pytest.param("{key}\n{key} {key}\n", "line 2: one verifier key a line", id="two-on-a-line"),
        pytest.param(b"\xff\xfe", "not UTF-8", id="not-utf8"),
    ],
)
def test_bad_trust_files_are_usage_errors(
    genuine: dict[str, Any], tmp_path: Path, trust_text: str | bytes, message: str
) -> None:
    content = trust_text if isinstance(trust_text, bytes) else trust_text.format(key=genuine["vkey"])
    trust = _write(tmp_path, content, "trust.keys")
    path = _write(tmp_path, genuine["document"])
    for command in (_verify, _report):
        assert message in _clean_failure(command(path, "--trust", str(trust)), {2})


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(["--key", "not-a-key"], id="bad-key"),
        pytest.param(["--key", ""], id="empty-key"),
        pytest.param(["--trust", "/nonexistent/trust.keys"], id="missing-trust-file"),
    ],
)
def test_unusable_keys_are_usage_errors(genuine: dict[str, Any], tmp_path: Path, extra: list[str]) -> None:
    path = _write(tmp_path, genuine["document"])
    for command in (_verify, _report):
        _clean_failure(command(path, *extra), {2})


def test_key_without_bundle_is_a_usage_error(genuine: dict[str, Any]) -> None:
    for args in (
        ["ledger", "verify", "--key", genuine["vkey"]],
        ["audit", "report", "--key", genuine["vkey"]],
    ):
        assert "go with --bundle" in _clean_failure(runner.invoke(app, args), {2})


# --- 2. malformed bundles: one line, exit 1 or 2, never a traceback -------------------------------------


def _mutate(genuine: dict[str, Any], change: Any) -> dict[str, Any]:
    document = _document(genuine)
    change(document)
    return document


MALFORMED: list[Any] = [
    pytest.param(lambda d: d.update(period=[1]), "period", id="period-array"),
    pytest.param(lambda d: d.update(period={"from_ms": "x"}), "period.from_ms", id="period-from-string"),
    pytest.param(lambda d: d.update(period={"from_ms": True}), "period.from_ms", id="period-from-bool"),
    pytest.param(lambda d: d.update(period={"from_ms": 10**40}), "period.from_ms", id="period-huge"),
    pytest.param(lambda d: d.update(period={"since": 1}), "unknown field 'period.since'", id="period-extra"),
    pytest.param(lambda d: d["entries"][0].update(index="0"), "entries.0.index", id="index-string"),
    pytest.param(lambda d: d["entries"][0].update(index=True), "entries.0.index", id="index-bool"),
    pytest.param(lambda d: d["entries"][1].update(index=-1), "entries.1.index", id="index-negative"),
    pytest.param(
        lambda d: d["entries"][2].update(index=3), "entry 2: index 3 out of order", id="index-order"
    ),
    pytest.param(lambda d: d.update(entries={}), "entries", id="entries-object"),
    pytest.param(lambda d: d.pop("entries"), "missing field 'entries'", id="entries-missing"),
    pytest.param(lambda d: d["entries"].__setitem__(0, 7), "entries.0", id="entry-not-object"),
    pytest.param(lambda d: d.update(checkpoint=5), "checkpoint", id="checkpoint-int"),
    pytest.param(lambda d: d.update(checkpoint=""), "checkpoint", id="checkpoint-empty"),
    pytest.param(lambda d: d.update(checkpoint="no signature"), "checkpoint signature", id="checkpoint-text"),
    pytest.param(lambda d: d.update(verifier_key=None), "verifier_key", id="verifier-key-null"),
    pytest.param(lambda d: d["entries"][0].update(leaf_b64=12), "entries.0.leaf_b64", id="leaf-int"),
    pytest.param(lambda d: d["entries"][0].update(leaf_b64=["x"]), "entries.0.leaf_b64", id="leaf-array"),
    pytest.param(
        lambda d: d["entries"][0].update(leaf_b64="é!"), "entry 0: leaf unreadable", id="leaf-non-b64"
    ),
    pytest.param(
        lambda d: d["entries"][0].update(leaf_b64="AAAA"), "entry 0: leaf unreadable", id="leaf-junk"
    ),
    pytest.param(lambda d: d["entries"][0].pop("leaf_b64"), "entries.0.leaf_b64", id="leaf-missing"),
    pytest.param(lambda d: d["entries"][0].update(content=None), "entry 0: content", id="content-null"),
    pytest.param(lambda d: d["entries"][0].update(content=[1]), "entries.0.content", id="content-array"),
    pytest.param(lambda d: d.update(format=1), "not a cep-bus-ledger-bundle/2", id="format-int"),
    pytest.param(lambda d: d.update(extra="x"), "unknown field 'extra'", id="extra-field"),
]


@pytest.mark.parametrize(("change", "message"), MALFORMED)
def test_malformed_fields_are_named_not_tracebacks(
    genuine: dict[str, Any], tmp_path: Path, change: Any, message: str
) -> None:
    document = _mutate(genuine, change)
    with pytest.raises(BundleError, match=re.escape(message)) as error:
        verify_bundle(document, genuine["vkey"])
    assert type(error.value) is BundleError  # does not verify: exit 1
    path = _write(tmp_path, document)
    for command in (_verify, _report):
        assert message in _clean_failure(command(path, "--key", genuine["vkey"]), {1})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("[1, 2]", "a JSON object is needed", id="json-array"),
        pytest.param('"bundle"', "a JSON object is needed", id="json-string"),
        pytest.param("null", "a JSON object is needed", id="json-null"),
        pytest.param("{}", "not a cep-bus-ledger-bundle/2", id="empty-object"),
        pytest.param(b"\xff\xfe{}", "not UTF-8", id="invalid-utf8"),
        pytest.param("", "empty file", id="empty-file"),
        pytest.param("{", "not JSON", id="truncated"),
        pytest.param('{"format": 1, "format": 2}', "duplicate key", id="duplicate-key"),
        pytest.param("[" * 100_000 + "]" * 100_000, "nested too deeply", id="deep-arrays"),
        pytest.param('{"a":' * 50_000 + "1" + "}" * 50_000, "nested too deeply", id="deep-objects"),
        pytest.param("1" * 5000, "not JSON", id="huge-integer"),
    ],
)
def test_unreadable_bundle_files(
    genuine: dict[str, Any], tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = _write(tmp_path, content)
    for command in (_verify, _report):
        assert message in _clean_failure(command(path, "--key", genuine["vkey"]), {1})


def test_deep_document_inside_a_field(genuine: dict[str, Any], tmp_path: Path) -> None:
    document = _document(genuine)
    nested: Any = 1
    for _ in range(500):
        nested = [nested]
    document["entries"][0]["content"] = {"x": nested}
    path = _write(tmp_path, document)
    _clean_failure(_verify(path, "--key", genuine["vkey"]), {1})


def test_missing_or_oversized_file_is_a_usage_error(
    genuine: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for command in (_verify, _report):
        assert "cannot read the bundle" in _clean_failure(
            command(tmp_path / "nope.json", "--key", genuine["vkey"]), {2}
        )
        assert "cannot read the bundle" in _clean_failure(command(tmp_path, "--key", genuine["vkey"]), {2})
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_BYTES", 100)
    path = _write(tmp_path, genuine["document"])
    assert "larger than 100 bytes" in _clean_failure(_verify(path, "--key", genuine["vkey"]), {2})


# --- hypothesis: random JSON and mutations of a valid bundle --------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "format",
    "checkpoint",
    "verifier_key",
    "period",
    "entries",
    "index",
    "leaf_b64",
    "content",
    "from_ms",
]
JSON_OR_BUNDLE_LIKE = JSON | st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6).map(
    lambda d: {"format": bundle_module.FORMAT, **d}
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (without descending into the long base64 strings)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


def _set(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


@st.composite
def mutated_bundles(draw: st.DrawFn, document: dict[str, Any]) -> Any:
    mutated = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(mutated)
        # half the time a structural field (top level, period, an entry or its fields), else anywhere
        structural = [p for p in paths if len(p) <= 2 or (len(p) == 3 and p[0] == "entries")]
        path = draw(st.sampled_from(structural if draw(st.booleans()) else paths))
        action = draw(st.sampled_from(["replace", "delete", "flip"]))
        if action == "delete" and path and isinstance(parent := _get(mutated, path[:-1]), dict | list):
            del parent[path[-1]]
        elif action == "flip" and isinstance(value := _get(mutated, path), str) and value:
            position = draw(st.integers(0, len(value) - 1))
            char = draw(st.characters(codec="utf-8"))
            mutated = _set(mutated, path, value[:position] + char + value[position + 1 :])
        else:
            mutated = _set(mutated, path, draw(JSON))
    return mutated


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def _only_bundle_errors(document: Any, vkey: str) -> None:
    try:
        verify_bundle(document, vkey)
    except BundleError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=JSON_OR_BUNDLE_LIKE)
def test_random_json_raises_only_bundle_errors(genuine: dict[str, Any], document: Any) -> None:
    with pytest.raises(BundleError):
        verify_bundle(document, genuine["vkey"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_bundles_raise_only_bundle_errors(genuine: dict[str, Any], data: st.DataObject) -> None:
    document = data.draw(mutated_bundles(genuine["document"]))
    _only_bundle_errors(document, genuine["vkey"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cli_on_random_and_mutated_bundles_exits_cleanly(
    genuine: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    document = data.draw(JSON_OR_BUNDLE_LIKE | mutated_bundles(genuine["document"]))
    path = _write(tmp_path_factory.mktemp("fuzz"), document)
    for command in (_verify, _report):
        result = command(path, "--key", genuine["vkey"])
        if result.exit_code != 0:  # a mutation may leave the bundle valid (e.g. replacing a value by itself)
            _clean_failure(result, {1, 2})


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_parse_json_on_random_bytes_raises_only_bundle_errors(raw: bytes) -> None:
    try:
        parse_json(raw)
    except BundleError as exc:
        assert "\n" not in str(exc)


def test_forged_entries_and_content_still_fail(genuine: dict[str, Any]) -> None:
    """Sanity: the stricter parsing keeps the old checks (a changed leaf, a changed content)."""
    document = _document(genuine)
    leaf = bytearray(base64.b64decode(document["entries"][1]["leaf_b64"]))
    leaf[-1] ^= 1
    document["entries"][1]["leaf_b64"] = base64.b64encode(bytes(leaf)).decode()
    with pytest.raises(BundleError, match=r"entry 1|root"):
        verify_bundle(document, genuine["vkey"])
