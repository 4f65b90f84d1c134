"""The pydantic models and the Avro schemas agree field by field: names, order, optionality,
types and enum symbols. The `.avsc` files are the contract; this catches a model that drifted."""

from __future__ import annotations

import enum
import types
import typing
import uuid
from datetime import date, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from cepbus.contract.models import EVENT_MODELS
from cepbus.contract.schemas import event_schemas

_PRIMITIVES: dict[str, Any] = {"string": str, "boolean": bool, "int": int, "long": int, "bytes": bytes}


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        assert len(rest) == 1
        return rest[0], True
    return annotation, False


def _check(avro_type: Any, annotation: Any, where: str) -> None:
    if isinstance(avro_type, list):  # union: only ["null", X] is used in the contract
        assert avro_type[0] == "null" and len(avro_type) == 2, where
        inner, optional = _unwrap_optional(annotation)
        assert optional, f"{where}: Avro is nullable, the model is not"
        _check(avro_type[1], inner, where)
        return
    inner, optional = _unwrap_optional(annotation)
    assert not optional, f"{where}: the model is nullable, Avro is not"
    if isinstance(avro_type, str):
        assert inner is _PRIMITIVES[avro_type], f"{where}: {avro_type} vs {inner}"
        return
    kind = avro_type["type"]
    logical = avro_type.get("logicalType")
    if logical == "uuid":
        assert inner is uuid.UUID, where
    elif logical == "timestamp-millis":
        assert inner is datetime, where
    elif logical == "date":
        assert inner is date, where
    elif kind == "enum":
        assert isinstance(inner, type) and issubclass(inner, enum.Enum), where
        assert [member.value for member in inner] == avro_type["symbols"], f"{where}: enum symbols differ"
    elif kind == "array":
        assert typing.get_origin(inner) is list, where
        _check(avro_type["items"], typing.get_args(inner)[0], f"{where}[]")
    elif kind == "record":
        assert isinstance(inner, type) and issubclass(inner, BaseModel), where
        _check_record(avro_type, inner, where)
    else:
        _check(kind, inner, where)


def _check_record(avro_record: dict[str, Any], model: type[BaseModel], where: str) -> None:
    avro_fields = [field["name"] for field in avro_record["fields"]]
    assert avro_fields == list(model.model_fields), f"{where}: fields differ or are out of order"
    for field in avro_record["fields"]:
        model_field = model.model_fields[field["name"]]
        _check(field["type"], model_field.annotation, f"{where}.{field['name']}")
        if "default" in field:
            assert not model_field.is_required(), (
                f"{where}.{field['name']}: Avro has a default, the model requires it"
            )
            assert model_field.default == field["default"], f"{where}.{field['name']}: defaults differ"


@pytest.mark.parametrize("name", sorted(EVENT_MODELS))
def test_model_mirrors_schema(name: str) -> None:
    import fastavro.schema

    schema = event_schemas()[name]
    expanded = fastavro.schema.expand_schema(schema.definition)
    _check_record(expanded, EVENT_MODELS[name], name)


def test_a_drifted_model_is_caught() -> None:
    """The checker itself fails on a difference (so the test above can fail)."""
    import fastavro.schema

    class Drifted(BaseModel):
        envelope: Any
        operator_id: int  # the schema says string

    expanded = fastavro.schema.expand_schema(event_schemas()["fr.cepbus.IntakeRegistered"].definition)
    with pytest.raises(AssertionError):
        _check_record(expanded, Drifted, "Drifted")
