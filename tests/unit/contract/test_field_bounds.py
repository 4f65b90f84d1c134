"""Every field a party controls has a bound, refused at the edge with a message naming the field and the
bound (issue #23, item 5: a valid, signed update with a 1 MB note halted every route).

The walk covers every event type an operator or a partner may write (`writers` of the topic catalog),
their envelope and nested records: a string, bytes or array field without `max_length` fails, unless it
is listed in `UNBOUNDED` with the reason (none is). Then, field by field, one over its bound is refused by
`codec.decode` as `invalid_content` (what a consumer dead-letters), one at its bound is not refused for
its length, and the `.avsc` doc states the bound for other implementations."""

from __future__ import annotations

import enum
import types
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import annotated_types
import fastavro.schema
import pytest
from pydantic import BaseModel

from cepbus.contract import codec
from cepbus.contract.models import Event
from cepbus.contract.schemas import event_schema, event_schemas
from cepbus.contract.topics import CORE_TOPICS, OPERATOR, PARTNER
from cepbus_app.vectors.examples import examples

#: The event types an organisation may write: what must be bounded.
PARTY_WRITTEN: tuple[type[Event], ...] = tuple(
    sorted(
        {spec.payload for spec in CORE_TOPICS if spec.writers & {OPERATOR, PARTNER}}, key=lambda m: m.__name__
    )
)
#: Fields a party controls that are deliberately left without a bound, each with its reason. Empty.
UNBOUNDED: dict[str, str] = {}
#: Types bounded by what they are (an enum, a number, a UUID, a time).
_BOUNDED_BY_TYPE = (bool, int, float, uuid.UUID, datetime, date)


@dataclass(frozen=True)
class Sized:
    """A string, bytes or array field, where it lies in its event, and its bound (None: unbounded)."""

    path: tuple[str, ...]
    kind: str  # "characters", "bytes", "items"
    bound: int | None

    @property
    def name(self) -> str:
        return ".".join(self.path)


def _max_length(metadata: list[Any]) -> int | None:
    return next((m.max_length for m in metadata if isinstance(m, annotated_types.MaxLen)), None)


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """(the type, its metadata) once Optional and Annotated are taken off."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata += extra
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            assert len(rest) == 1, f"a union of several types: {annotation}"
            annotation = rest[0]
        else:
            return annotation, metadata


def sized_fields(model: type[BaseModel], where: tuple[str, ...] = ()) -> Iterator[Sized]:
    """Every string, bytes and array field of `model` and of the records it holds. Fails on a type the
    walk does not know, so that a new kind of field cannot slip through unseen."""
    for name, info in model.model_fields.items():
        yield from _sized(info.annotation, list(info.metadata), (*where, name))


def _sized(annotation: Any, metadata: list[Any], path: tuple[str, ...]) -> Iterator[Sized]:
    inner, more = _unwrap(annotation)
    bound = _max_length([*metadata, *more])
    if inner is str:
        yield Sized(path, "characters", bound)
    elif inner is bytes:
        yield Sized(path, "bytes", bound)
    elif typing.get_origin(inner) is list:
        yield Sized(path, "items", bound)
        yield from _sized(typing.get_args(inner)[0], [], (*path, "[]"))
    elif isinstance(inner, type) and issubclass(inner, BaseModel):
        yield from sized_fields(inner, path)
    elif isinstance(inner, type) and (issubclass(inner, enum.Enum) or issubclass(inner, _BOUNDED_BY_TYPE)):
        return
    else:
        raise AssertionError(f"{'.'.join(path)}: the walk does not know {inner!r}")


def _fields() -> list[tuple[type[Event], Sized]]:
    return [(model, field) for model in PARTY_WRITTEN for field in sized_fields(model)]


FIELDS = [pytest.param(model, field, id=f"{model.__name__}.{field.name}") for model, field in _fields()]


def _example(model: type[Event]) -> Event:
    return next(e.event for e in examples() if type(e.event) is model)


def _with(event: Event, path: tuple[str, ...], value: Any) -> bytes:
    """The event's bytes with the field at `path` set to `value`, encoded without validation (as a
    dishonest producer's own encoder would)."""
    record = event.model_dump(mode="python")
    if path[-1] == "[]":  # an array's item: the array holding that one item
        path, value = path[:-1], [value]
    target = record
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return codec.encode_record(event_schema(event.avro_name), record)


def _value(field: Sized, length: int) -> Any:
    if field.kind == "items":
        return ["a"] * length  # arrays of strings; another item type needs its own example
    return b"\x01" * length if field.kind == "bytes" else "a" * length


# -- every field is bounded ----------------------------------------------------------------------------


def test_the_walk_covers_every_type_an_organisation_writes() -> None:
    names = {model.__name__ for model in PARTY_WRITTEN}
    assert names == {
        "IntakeRegistered",
        "ChoiceRecorded",
        "ReferralRequested",
        "ReferralStatusChanged",
        "ServiceLevelStarted",
    }
    paths = {field.name for _, field in _fields()}
    assert {"envelope.correlation_id", "note", "reason", "reception_site", "signature"} <= paths


def test_every_field_a_party_controls_has_a_bound() -> None:
    unbounded = sorted(
        f"{model.__name__}.{field.name}"
        for model, field in _fields()
        if field.bound is None and f"{model.__name__}.{field.name}" not in UNBOUNDED
    )
    assert unbounded == [], "fields a party controls without max_length (or a reason in UNBOUNDED)"
    assert all(reason.strip() for reason in UNBOUNDED.values())


def test_the_walk_finds_an_unbounded_field_wherever_it_is() -> None:
    """The check above can fail: a string, a nested record's bytes and an array's items, unbounded."""

    class Inner(BaseModel):
        blob: bytes | None = None

    class Careless(BaseModel):
        text: str
        inner: Inner
        tags: list[str]

    found = {field.name: field.bound for field in sized_fields(Careless)}
    assert found == {"text": None, "inner.blob": None, "tags": None, "tags.[]": None}


# -- each bound is refused at the edge, naming the field and the bound -------------------------------------


@pytest.mark.parametrize(("model", "field"), FIELDS)
def test_a_field_over_its_bound_is_refused_by_the_decoder_naming_it(model: type[Event], field: Sized) -> None:
    assert field.bound is not None
    data = _with(_example(model), field.path, _value(field, field.bound + 1))
    with pytest.raises(codec.DecodeError) as refused:
        codec.decode(data)
    assert refused.value.reason == "invalid_content"
    detail = refused.value.detail
    assert f"{field.name}: " in detail and f"at most {field.bound} " in detail, detail
    assert "\n" not in detail and "a" * 100 not in detail  # one line, the value is not echoed


@pytest.mark.parametrize(("model", "field"), FIELDS)
def test_a_field_at_its_bound_is_not_refused_for_its_length(model: type[Event], field: Sized) -> None:
    assert field.bound is not None
    data = _with(_example(model), field.path, _value(field, field.bound))
    try:
        codec.decode(data)
    except codec.DecodeError as exc:  # a pattern or a rule may refuse the value, never its length
        assert "at most" not in exc.detail, exc.detail


def test_a_megabyte_note_is_refused_in_a_line() -> None:
    """Finding 1 of issue #23, at the codec: the note that halted every route."""
    accepted = next(e.event for e in examples() if e.name == "besancon-accepted")
    with pytest.raises(codec.DecodeError) as refused:
        codec.decode(_with(accepted, ("note",), "x" * 1_000_000))
    assert str(refused.value) == (
        "invalid_content: ReferralStatusChanged: note: String should have at most 2000 characters"
    )


# -- the contract states them --------------------------------------------------------------------------


def _avro_docs(record: dict[str, Any], where: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    for field in record["fields"]:
        path = (*where, field["name"])
        yield path, field.get("doc", "")
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for branch in branches:
            if isinstance(branch, dict) and branch.get("type") == "record":
                yield from _avro_docs(branch, path)


@pytest.mark.parametrize("model", PARTY_WRITTEN, ids=lambda m: m.__name__)
def test_the_avsc_docs_state_each_bound(model: type[Event]) -> None:
    expanded = fastavro.schema.expand_schema(event_schemas()[model.avro_name].definition)
    docs = dict(_avro_docs(expanded))
    missing = [
        f"{field.name}: {docs.get(field.path)!r}"
        for field in sized_fields(model)
        if f"at most {field.bound} {field.kind}" not in docs.get(field.path, "")
    ]
    assert missing == [], "the .avsc doc of these fields does not say their bound"
