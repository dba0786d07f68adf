"""The record helper: schema version, missing/unknown fields, type-driven JSON conversion."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum

import pytest

from advisor.errors import PlanError
from advisor.plan import Plan
from advisor.records import (
    check_fields,
    check_schema,
    from_json_value,
    record_from_dict,
    record_to_dict,
    required_fields,
)
from tests.test_plan import make_plan


class Shape(str, Enum):
    ROUND = "round"
    SQUARE = "square"


@dataclasses.dataclass(frozen=True)
class Part:
    name: str
    size: float


@dataclasses.dataclass(frozen=True)
class Widget:
    shape: Shape
    sizes: tuple[float, ...]
    pairs: tuple[tuple[str, float], ...]
    part: Part | None
    scores: dict[str, float]
    count: int = 1
    tags: tuple[str, ...] = ()
    note: str | None = None
    schema_version: int = 1


def make_widget(**overrides) -> Widget:
    values = {"shape": Shape.ROUND, "sizes": (1.0, 2.5), "pairs": (("a", 0.5),),
              "part": Part("p", 3.0), "scores": {"x": 0.25}}
    return Widget(**(values | overrides))


def test_a_record_round_trips_through_json():
    widget = make_widget()
    data = json.loads(json.dumps(record_to_dict(widget)))
    assert data["shape"] == "round" and data["pairs"] == [["a", 0.5]]
    assert data["part"] == {"name": "p", "size": 3.0}
    assert record_from_dict(Widget, data, record="widget", error=PlanError) == widget
    assert record_from_dict(Widget, record_to_dict(make_widget(part=None)), record="widget",
                            error=PlanError).part is None


def test_missing_fields_with_defaults_take_them():
    data = record_to_dict(make_widget())
    for name in ("count", "tags", "note", "schema_version"):
        del data[name]
    widget = record_from_dict(Widget, data, record="widget", error=PlanError)
    assert (widget.count, widget.tags, widget.note, widget.schema_version) == (1, (), None, 1)


def test_missing_and_unknown_fields_are_named():
    data = record_to_dict(make_widget()) | {"colour": "red"}
    del data["sizes"]
    with pytest.raises(PlanError, match=r"^Malformed widget: missing \['sizes'\], unknown \['colour'\]$"):
        record_from_dict(Widget, data, record="widget", error=PlanError)
    with pytest.raises(PlanError, match=r"^Malformed widget: missing \['sizes'\]$"):
        check_fields(Widget, data, record="widget", error=PlanError, allow_unknown=True)
    assert required_fields(Widget) == {"shape", "sizes", "pairs", "part", "scores"}


def test_unknown_fields_can_be_ignored():
    data = record_to_dict(make_widget()) | {"colour": "red"}
    assert record_from_dict(Widget, data, record="widget", error=PlanError,
                            allow_unknown=True) == make_widget()


def test_newer_schema_is_refused_older_accepted():
    assert check_schema({}, record="Widget", version=2, error=PlanError) == 2
    assert check_schema({"schema_version": 1}, record="Widget", version=2, error=PlanError) == 1
    with pytest.raises(PlanError, match=r"Widget schema_version 3 is newer .* \(2\); upgrade"):
        check_schema({"schema_version": 3}, record="Widget", version=2, error=PlanError)


def test_converters_override_the_annotation():
    def parse_shape(value):
        raise PlanError(f"Unknown shape {value!r}")

    with pytest.raises(PlanError, match="Unknown shape 'round'"):
        record_from_dict(Widget, record_to_dict(make_widget()), record="widget", error=PlanError,
                         converters={"shape": parse_shape})


def test_values_are_converted_to_the_annotated_types():
    assert from_json_value(tuple[int, ...], [1, 2]) == (1, 2)
    assert from_json_value(tuple[float, ...] | None, [1, 2]) == (1.0, 2.0)
    assert from_json_value(dict[str, tuple[tuple[str, float], ...]], {"a": [["b", 1]]}) == {"a": (("b", 1.0),)}
    assert from_json_value(Shape, "square") is Shape.SQUARE
    assert isinstance(from_json_value(float, 1), float)
    with pytest.raises(ValueError):
        from_json_value(Shape, "hexagon")


def test_plan_fields_round_trip_without_per_field_code():
    # Every Plan field, including ones added later with a default, is written and read back.
    plan = make_plan()
    data = plan.to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(Plan)}
    assert Plan.from_dict(json.loads(json.dumps(data))) == plan


def test_a_plan_written_before_the_defaulted_fields_still_loads():
    plan = make_plan()
    defaulted = {f.name for f in dataclasses.fields(Plan)
                 if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    data = {k: v for k, v in plan.to_dict().items() if k not in defaulted - {"reasons"}}
    loaded = Plan.from_dict(data)
    for name in defaulted - {"reasons"}:
        assert getattr(loaded, name) == Plan.__dataclass_fields__[name].default
