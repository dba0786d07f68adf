"""Frozen records <-> JSON: one schema-version check, one missing/unknown-field check.

A record (:class:`~advisor.plan.Plan`, :class:`~advisor.measure.profile.DatasetProfile`
and its parts) is a frozen dataclass. Its JSON form is read off its fields'
type annotations, so a field added with a default round-trips with no code
change, and JSON written before it existed still loads (with the default):

- :func:`record_to_dict`: enums by value, tuples as lists, nested records by
  their own ``to_dict``;
- :func:`check_schema`: refuses a ``schema_version`` newer than the code's;
- :func:`record_from_dict`: refuses missing fields (those without a default)
  and, unless told otherwise, unknown ones, then converts each value back to
  its annotated type (``tuple[float, ...]``, ``X | None``, ``dict[str, V]``,
  enums, nested records).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, TypeVar

R = TypeVar("R")

#: Field name -> function turning its JSON value into the field's value.
Converters = Mapping[str, Callable[[Any], Any]]


def check_schema(data: Mapping[str, Any], *, record: str, version: int,
                 error: type[Exception]) -> int:
    """Return the record's ``schema_version``, refusing one newer than `version`.

    Args:
        data: The record's JSON object.
        record: The record's name in the message (``"Plan"``, ``"Profile"``).
        version: The newest schema this code reads; also the version of JSON
            that has none.
        error: The exception class to raise.

    Returns:
        The version `data` was written with.

    Raises:
        Exception: `error`, when the version is newer (the message says to upgrade).

    Example:
        >>> check_schema({"schema_version": 1}, record="Plan", version=1, error=ValueError)
        1
        >>> check_schema({"schema_version": 2}, record="Plan", version=1, error=ValueError)
        Traceback (most recent call last):
        ...
        ValueError: Plan schema_version 2 is newer than this advisor's (1); upgrade finetune-advisor
    """
    found = int(data.get("schema_version", version))
    if found > version:
        raise error(f"{record} schema_version {found} is newer than this advisor's "
                    f"({version}); upgrade finetune-advisor")
    return found


def required_fields(cls: type) -> frozenset[str]:
    """Return the names of `cls`'s fields that have no default (JSON must hold them).

    Example:
        >>> @dataclasses.dataclass
        ... class Point:
        ...     x: float
        ...     label: str = ""
        >>> sorted(required_fields(Point))
        ['x']
    """
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def check_fields(cls: type, data: Mapping[str, Any], *, record: str, error: type[Exception],
                 allow_unknown: bool = False) -> None:
    """Refuse JSON that lacks a field without a default, or has a field `cls` does not know.

    Args:
        cls: The record's dataclass.
        data: The record's JSON object.
        record: The record's name in the message (``"plan"``).
        error: The exception class to raise.
        allow_unknown: Whether fields `cls` does not have are ignored.
            Defaults to `False` (refused).

    Raises:
        Exception: `error`, naming the missing (and unknown) fields, sorted.

    Example:
        >>> @dataclasses.dataclass
        ... class Point:
        ...     x: float
        >>> check_fields(Point, {"y": 1}, record="point", error=ValueError)
        Traceback (most recent call last):
        ...
        ValueError: Malformed point: missing ['x'], unknown ['y']
    """
    missing = required_fields(cls) - set(data)
    unknown = set() if allow_unknown else set(data) - {f.name for f in dataclasses.fields(cls)}
    if missing or unknown:
        detail = "" if allow_unknown else f", unknown {sorted(unknown)}"
        raise error(f"Malformed {record}: missing {sorted(missing)}{detail}")


def record_from_dict(cls: type[R], data: Mapping[str, Any], *, record: str,
                     error: type[Exception], converters: Converters | None = None,
                     allow_unknown: bool = False) -> R:
    """Build a `cls` record from its JSON object, converting each value to its field's type.

    Fields absent from `data` take their default. A field's value is
    converted by ``converters[name]`` when given, else by its annotation:
    enums from their value, ``tuple[X, ...]`` and ``tuple[X, Y]`` from lists,
    ``dict[K, V]`` item by item, ``X | None`` as `None` or ``X``, records
    with a ``from_dict`` by it, and ``int``/``float``/``str``/``bool`` by
    calling the type. Other annotations keep the value as it is.

    Args:
        cls: The record's dataclass.
        data: The record's JSON object.
        record: The record's name in messages (``"plan"``).
        error: The exception class for missing or unknown fields.
        converters: Field name -> converter, for fields whose JSON needs more
            than their type (e.g. a parse that raises a one-line error).
            Defaults to `None`.
        allow_unknown: Whether unknown fields are ignored. Defaults to `False`.

    Returns:
        The record.

    Raises:
        Exception: `error` for missing or unknown fields; whatever a
            converter raises for a bad value.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Point:
        ...     xy: tuple[float, float]
        ...     tags: tuple[str, ...] = ()
        >>> record_from_dict(Point, {"xy": [1, 2]}, record="point", error=ValueError)
        Point(xy=(1.0, 2.0), tags=())
    """
    check_fields(cls, data, record=record, error=error, allow_unknown=allow_unknown)
    converters = converters or {}
    hints = _field_types(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            convert = converters.get(f.name)
            value = data[f.name]
            values[f.name] = convert(value) if convert else from_json_value(hints[f.name], value)
    return cls(**values)


def record_to_dict(record: Any) -> dict[str, Any]:
    """Return a dataclass record as a JSON-ready dict, field by field in declaration order.

    Example:
        >>> @dataclasses.dataclass
        ... class Point:
        ...     xy: tuple[float, float]
        >>> record_to_dict(Point((1.0, 2.0)))
        {'xy': [1.0, 2.0]}
    """
    return {f.name: to_json_value(getattr(record, f.name)) for f in dataclasses.fields(record)}


def to_json_value(value: Any) -> Any:
    """Return `value` in its JSON form: enums by value, tuples as lists, records as dicts.

    Example:
        >>> to_json_value({"a": (1, 2)})
        {'a': [1, 2]}
    """
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "to_dict") and dataclasses.is_dataclass(value):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return record_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [to_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json_value(item) for key, item in value.items()}
    return value


def from_json_value(annotation: Any, value: Any) -> Any:
    """Convert a JSON value to the type `annotation` names (see :func:`record_from_dict`).

    Example:
        >>> from_json_value(tuple[tuple[str, float], ...], [["cat", 1]])
        (('cat', 1.0),)
        >>> from_json_value(int | None, None) is None
        True
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        return from_json_value(options[0], value) if len(options) == 1 else value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json_value(args[0], item) for item in value)
        return tuple(from_json_value(arg, item) for arg, item in zip(args, value, strict=True))
    if origin is dict:
        key_type, value_type = args or (Any, Any)
        return {from_json_value(key_type, k): from_json_value(value_type, v) for k, v in value.items()}
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return annotation(value)
        if dataclasses.is_dataclass(annotation):
            if hasattr(annotation, "from_dict"):
                return annotation.from_dict(value)
            return annotation(**value)
        if annotation in (int, float, str, bool):
            return annotation(value)
    return value


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Return `cls`'s field annotations, resolved (records use ``from __future__ import annotations``)."""
    return typing.get_type_hints(cls)
