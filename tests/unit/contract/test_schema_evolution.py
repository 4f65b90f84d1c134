"""The schema evolution gate: every current schema against every released version, and proof that
the gate fails, naming the field, on the changes the Avro contract forbids."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.utils import generate_many

from cepbus.contract import compat
from cepbus.contract.compat import Compatibility, check_all, check_change, check_schema
from cepbus.contract.schemas import event_schemas

INTAKE = "fr.cepbus.IntakeRegistered"


def current(name: str = INTAKE) -> dict[str, Any]:
    return copy.deepcopy(event_schemas()[name].definition)


def fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return schema["fields"]


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_every_current_schema_resolves_against_all_its_released_versions() -> None:
    """The CI gate itself. To release a version: `python -m cepbus.contract.compat release <Name>`."""
    results = check_all()
    problems = [problem for result in results for problem in result.problems]
    assert not problems, "incompatible schema change(s):\n" + "\n".join(problems)
    checked = {result.name for result in results if result.checked_versions}
    assert INTAKE in checked and "fr.cepbus.DeadLetter" in checked  # the gate really compared something


def test_the_ledger_records_are_held_to_full_transitive_and_the_rest_to_backward() -> None:
    assert compat.compatibility_for(INTAKE) is Compatibility.FULL_TRANSITIVE
    assert compat.compatibility_for("fr.cepbus.NoticeIssued") is Compatibility.FULL_TRANSITIVE
    assert compat.compatibility_for("fr.cepbus.DeadLetter") is Compatibility.BACKWARD_TRANSITIVE


def test_a_new_schema_without_a_released_version_passes(tmp_path: Path) -> None:
    results = check_all(base=tmp_path)  # an empty released/ directory: everything is new
    assert all(not r.problems and not r.checked_versions for r in results)


def test_a_field_added_at_the_end_with_a_default_passes_full() -> None:
    old, new = current(), current()
    fields(new).append({"name": "referral_hint", "type": ["null", "string"], "default": None})
    assert check_change(new, old, Compatibility.FULL_TRANSITIVE) == []


def test_a_removed_field_without_default_fails_full_naming_the_field() -> None:
    old, new = current(), current()
    new["fields"] = [f for f in fields(new) if f["name"] != "reception_site"]
    assert check_change(new, old, Compatibility.BACKWARD_TRANSITIVE) == []  # new readers ignore it
    problems = [str(p) for p in check_change(new, old, Compatibility.FULL_TRANSITIVE)]
    assert problems == [
        f"{INTAKE}.reception_site: old readers cannot read new data: field is missing on one side "
        "and has no default (removed, renamed, or added without a default)"
    ]


def test_a_field_added_without_a_default_fails_backward_naming_the_field() -> None:
    old, new = current("fr.cepbus.DeadLetter"), current("fr.cepbus.DeadLetter")
    fields(new).append({"name": "retry_count", "type": "int"})
    problems = [str(p) for p in check_change(new, old, Compatibility.BACKWARD_TRANSITIVE)]
    assert len(problems) == 1 and problems[0].startswith("fr.cepbus.DeadLetter.retry_count: new readers")


def test_a_changed_type_fails_naming_the_nested_field() -> None:
    old, new = current(), current()
    profile = field(new, "profile")["type"]
    field(profile, "birth_year")["type"] = ["null", "string"]
    problems = [str(p) for p in check_change(new, old, Compatibility.BACKWARD_TRANSITIVE)]
    assert problems
    assert all(p.startswith(f"{INTAKE}.profile.birth_year: ") for p in problems)
    assert "writer type int matches no branch of the reader's union" in problems[0]


def test_promotions_follow_the_specification() -> None:
    old, new = current(), current()
    profile = field(new, "profile")["type"]
    field(profile, "birth_year")["type"] = ["null", "long"]  # int -> long: old data reads as long
    assert check_change(new, old, Compatibility.BACKWARD_TRANSITIVE) == []
    # ...but an old reader cannot narrow a long written by a new writer back to int
    assert [p.path for p in check_change(new, old, Compatibility.FULL_TRANSITIVE)] == [
        f"{INTAKE}.profile.birth_year"
    ]


def test_an_enum_symbol_added_needs_a_reader_default_under_full() -> None:
    old, new = current(), current()
    field(new, "channel")["type"]["symbols"].append("letter")  # Channel has no default
    assert check_change(new, old, Compatibility.BACKWARD_TRANSITIVE) == []
    problems = [str(p) for p in check_change(new, old, Compatibility.FULL_TRANSITIVE)]
    assert problems == [
        f"{INTAKE}.channel: old readers cannot read new data: enum symbol(s) letter unknown to the "
        "reader, which has no default"
    ]
    # OrganisationKind has a default ("other"): a new kind is fine for old readers
    old, new = current(), current()
    field(new, "operator_kind")["type"]["symbols"].append("new_partner")
    assert check_change(new, old, Compatibility.FULL_TRANSITIVE) == []


def test_a_removed_enum_symbol_fails_backward() -> None:
    old, new = current(), current()
    channel = field(new, "channel")["type"]
    channel["symbols"] = [s for s in channel["symbols"] if s != "video"]
    problems = [str(p) for p in check_change(new, old, Compatibility.BACKWARD_TRANSITIVE)]
    assert problems and problems[0].startswith(f"{INTAKE}.channel: new readers") and "video" in problems[0]


def test_the_check_is_transitive_over_every_released_version() -> None:
    v1 = current()
    v2 = current()
    fields(v2).append({"name": "site_code", "type": ["null", "string"], "default": None})
    v3 = copy.deepcopy(v2)  # drops v2's optional field: fine against v2 (it had a default)...
    v3["fields"] = [f for f in fields(v3) if f["name"] != "site_code"]
    fields(v3).append({"name": "site_code", "type": "int", "default": 0})  # ...but retyped
    result = check_schema(INTAKE, v3, [(1, v1), (2, v2)], Compatibility.FULL_TRANSITIVE)
    assert result.checked_versions == [1, 2]
    assert result.problems and all("vs released v2" in p for p in result.problems)
    assert all(".site_code" in p for p in result.problems)


def test_release_refuses_an_incompatible_change_and_numbers_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from cepbus.contract import schemas

    copy_dir = tmp_path / "avro"
    shutil.copytree(schemas.schema_dir(), copy_dir)
    monkeypatch.setenv("CEPBUS_SCHEMA_DIR", str(copy_dir))
    # from no released version (the committed v1 may differ from the current file by its docs alone)
    shutil.rmtree(copy_dir / "released" / "fr.cepbus.ChoiceRecorded")
    assert compat.release("fr.cepbus.ChoiceRecorded").name == "v1.avsc"
    with pytest.raises(ValueError, match="unchanged since v1"):
        compat.release("fr.cepbus.ChoiceRecorded")
    path = copy_dir / "fr.cepbus.ChoiceRecorded.avsc"
    raw = json.loads(path.read_text())
    raw["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    path.write_text(json.dumps(raw))
    assert compat.release("fr.cepbus.ChoiceRecorded").name == "v2.avsc"
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "consent_to_share"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"ChoiceRecorded\.consent_to_share"):
        compat.release("fr.cepbus.ChoiceRecorded")


# -- the rules agree with fastavro's own resolution ------------------------------------------------


def _roundtrip(writer: dict[str, Any], reader: dict[str, Any], count: int = 25) -> None:
    parsed_writer = fastavro.parse_schema(copy.deepcopy(writer))
    parsed_reader = fastavro.parse_schema(copy.deepcopy(reader))
    for record in generate_many(parsed_writer, count):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed_writer, record)
        buffer.seek(0)
        fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader)


@pytest.mark.parametrize("name", sorted(event_schemas()))
def test_generated_data_round_trips_both_ways_between_current_and_released(name: str) -> None:
    mode = compat.compatibility_for(name)
    for _, released in compat.released_versions(name):
        _roundtrip(writer=released, reader=current(name))  # backward
        if mode is Compatibility.FULL_TRANSITIVE:
            _roundtrip(writer=current(name), reader=released)  # forward


def test_fastavro_agrees_that_a_removed_field_breaks_old_readers() -> None:
    old, new = current(), current()
    new["fields"] = [f for f in fields(new) if f["name"] != "reception_site"]
    _roundtrip(writer=old, reader=new)  # backward holds
    with pytest.raises(fastavro.read.SchemaResolutionError, match="reception_site"):
        _roundtrip(writer=new, reader=old)
