"""The one reader of untrusted JSON (`cepbus/untrusted_json.py`): duplicate keys refused at any depth,
nesting bounded without recursing, strict UTF-8, a size cap checked before reading on, values and
validation errors shortened to one line; and on random bytes nothing but its own errors escapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

from cepbus.untrusted_json import (
    DuplicateKeys,
    EmptyInput,
    MalformedJson,
    UnreadableInput,
    UntrustedInputError,
    clip,
    loads_strict,
    nesting_depth,
    one_line,
    read_capped,
    short,
)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- duplicate keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        pytest.param('{"a": 1, "a": 2}', ("a",), id="top-level"),
        pytest.param('{"x": {"y": [{"b": 1, "c": 2, "b": 3}]}}', ("b",), id="inside-an-array"),
        pytest.param('{"b": 1, "a": 1, "a": 2, "b": 2}', ("a", "b"), id="in-the-order-they-repeat"),
        pytest.param('{"a": 1, "a": 2, "a": 3}', ("a",), id="named-once"),
        pytest.param(
            json.dumps({"deep": json.loads(_nested(10))})[:-1] + ', "deep": 1}', ("deep",), id="late"
        ),
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(text: str, keys: tuple[str, ...]) -> None:
    with pytest.raises(DuplicateKeys) as refused:
        loads_strict(text)
    assert refused.value.keys == keys
    assert str(refused.value) == f"not JSON: duplicate key {keys[0]!r}"
    assert isinstance(refused.value, MalformedJson)


def test_a_long_duplicate_key_is_shortened_in_the_message() -> None:
    key = "k" * 5000
    with pytest.raises(DuplicateKeys) as refused:
        loads_strict(json.dumps({key: 1})[:-1] + f', "{key}": 2}}')
    assert refused.value.keys == (key,)
    assert str(refused.value) == f"not JSON: duplicate key {key[:40]!r}..."


def test_the_same_key_in_different_objects_is_no_duplicate() -> None:
    text = '{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}'
    assert loads_strict(text) == json.loads(text)


# -- nesting --------------------------------------------------------------------------------------


def test_nesting_at_the_bound_is_accepted_and_one_deeper_refused() -> None:
    assert loads_strict(_nested(16), max_depth=16) is not None
    assert loads_strict('{"a": ' * 15 + "[]" + "}" * 15, max_depth=16) is not None
    with pytest.raises(MalformedJson, match=r"^JSON nested deeper than 16 levels$"):
        loads_strict(_nested(17), max_depth=16)
    with pytest.raises(MalformedJson, match=r"^JSON nested deeper than 16 levels$"):
        loads_strict('{"a": ' * 16 + "[]" + "}" * 16, max_depth=16)


@pytest.mark.parametrize("max_depth", [None, 16])
def test_nesting_deeper_than_the_parser_recurses_is_an_error_not_a_crash(max_depth: int | None) -> None:
    expected = "JSON nested too deeply" if max_depth is None else "JSON nested deeper than 16 levels"
    for text in (_nested(100_000), '{"a":' * 100_000 + "1" + "}" * 100_000):
        with pytest.raises(MalformedJson) as refused:
            loads_strict(text, max_depth=max_depth)
        assert str(refused.value) == expected


def test_without_a_bound_nesting_is_only_limited_by_the_parser() -> None:
    assert loads_strict(_nested(200)) == json.loads(_nested(200))


def test_nesting_depth_is_measured_without_recursion() -> None:
    deep: Any = 1
    for _ in range(100_000):  # deeper than any recursion limit
        deep = [deep]
    assert nesting_depth(deep, 16) == 17  # stops one past the limit
    assert nesting_depth(1, 16) == 0
    assert nesting_depth({"a": [1, {"b": []}]}, 16) == 4
    assert nesting_depth({"a": [], "b": {"c": {}}}, 16) == 3


# -- bytes and text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"\xff\xfe{}", "not UTF-8 text (byte 0)", id="invalid-start"),
        pytest.param(b'{"a": "\xc3"}', "not UTF-8 text (byte 7)", id="truncated-sequence"),
        pytest.param(b'{"a": "\xed\xa0\x80"}', "not UTF-8 text (byte 7)", id="encoded-surrogate"),
        pytest.param(b"\xc0\xaf", "not UTF-8 text (byte 0)", id="overlong"),
    ],
)
def test_bytes_must_be_strict_utf8(data: bytes, message: str) -> None:
    with pytest.raises(MalformedJson) as refused:
        loads_strict(data)
    assert str(refused.value) == message


def test_text_and_utf8_bytes_read_the_same() -> None:
    document = {"région": "Bourgogne-Franche-Comté", "n": [1, 2.5, None, True]}
    text = json.dumps(document, ensure_ascii=False)
    assert loads_strict(text) == loads_strict(text.encode("utf-8")) == document


@pytest.mark.parametrize("data", [b"", b"   \n\t", "", " \r\n"])
def test_empty_input_is_its_own_error(data: bytes | str) -> None:
    with pytest.raises(EmptyInput):
        loads_strict(data)


@pytest.mark.parametrize(
    ("text", "start"),
    [
        pytest.param("{", "not JSON: Expecting property name", id="truncated"),
        pytest.param("1" * 5000, "not JSON: Exceeds the limit", id="huge-integer"),
        pytest.param("[1] [2]", "not JSON: Extra data", id="two-values"),
    ],
)
def test_what_is_not_json_is_one_short_line(text: str, start: str) -> None:
    with pytest.raises(MalformedJson) as refused:
        loads_strict(text)
    message = str(refused.value)
    assert message.startswith(start) and "\n" not in message and len(message) <= len("not JSON: ") + 160


def test_any_json_value_is_returned_as_parsed() -> None:
    assert loads_strict("[1, 2]") == [1, 2]
    assert loads_strict('"x"') == "x"
    assert loads_strict("null") is None


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_random_bytes_raise_only_one_line_malformed_json(raw: bytes) -> None:
    try:
        loads_strict(raw, max_depth=8)
    except MalformedJson as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 200


# -- files ---------------------------------------------------------------------------------------


def test_read_capped_reads_up_to_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b"x" * 100)
    assert read_capped(path, 100, "document") == b"x" * 100


def test_read_capped_refuses_one_byte_more_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b"x" * 101)
    with pytest.raises(UnreadableInput) as refused:
        read_capped(path, 100, "document")
    assert str(refused.value) == f"the document {str(path)!r} is larger than 100 bytes"


def test_read_capped_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(UnreadableInput) as refused:
        read_capped(missing, 100, "bundle")
    assert str(refused.value) == f"cannot read the bundle {str(missing)!r}: No such file or directory"
    with pytest.raises(UnreadableInput, match="Is a directory"):
        read_capped(tmp_path, 100, "bundle")


def test_both_kinds_are_untrusted_input_errors_and_value_errors() -> None:
    for kind in (UnreadableInput, MalformedJson, EmptyInput, DuplicateKeys):
        assert issubclass(kind, UntrustedInputError) and issubclass(kind, ValueError)
    assert not issubclass(UnreadableInput, MalformedJson)


# -- shortening ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("abc", "'abc'", id="short-string"),
        pytest.param("a" * 100, repr("a" * 60) + "...", id="long-string"),
        pytest.param(list(range(1000)), "an array of 1000", id="array"),
        pytest.param({"a": 1, "b": 2}, "an object of 2 fields", id="object"),
        pytest.param(10**30, repr(10**30), id="integer"),
        pytest.param(None, "None", id="null"),
        pytest.param("a\n\nb", repr("a\n\nb"), id="no-line-break"),
        pytest.param("a     b", "'a b'", id="spaces-collapsed"),
    ],
)
def test_short(value: Any, expected: str) -> None:
    assert short(value) == expected
    assert "\n" not in short(value) and len(short(value)) <= 70


def test_short_bounds_even_a_huge_repr() -> None:
    assert len(short(1.5e300, limit=5)) <= 15
    assert short(b"\x00" * 1000, limit=20) == repr(b"\x00" * 1000)[:27] + "..."


def test_clip() -> None:
    assert clip("a\n b\t\tc", 100) == "a b c"
    assert clip("x" * 20, 10) == "x" * 7 + "..."
    assert clip("x" * 10, 10) == "x" * 10


# -- validation errors ---------------------------------------------------------------------------


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    year: int


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    inner: _Inner
    count: int = 0


def _error(document: Any) -> ValidationError:
    with pytest.raises(ValidationError) as failed:
        _Outer.model_validate(document)
    return failed.value


def test_one_line_names_each_failing_field() -> None:
    error = _error({"inner": {"year": "1984", "extra": 1}, "surplus": True})
    assert one_line(error) == (
        "missing field 'name'; inner.year: Input should be a valid integer (got '1984'); "
        "unknown field 'inner.extra'; and 1 more"
    )
    assert one_line(error, limit=5).endswith("unknown field 'surplus'")


def test_one_line_shortens_inputs_and_the_whole_line() -> None:
    error = _error({"name": "x" * 10_000, "inner": {"year": ["y"] * 10_000}, "count": "z\n" * 5000})
    line = one_line(error, limit=10)
    assert "\n" not in line and len(line) <= 600
    assert "(got an array of 10000)" in line
    many = _error({"name": 1, "inner": [], **{f"field{i}\n" * 50: 1 for i in range(20)}})
    assert len(one_line(many, limit=30)) <= 600 and "\n" not in one_line(many, limit=30)


def test_a_document_that_is_not_an_object_is_named_document() -> None:
    line = one_line(_error([1, 2]))
    assert line.startswith("document: Input should be a valid dictionary") and line.endswith(
        "(got an array of 2)"
    )
