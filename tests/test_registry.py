"""The generic registry behind backbones and strategies: file once, fail listing the known keys."""

from __future__ import annotations

from enum import Enum

import pytest

from advisor.backbones import list_backbones
from advisor.backbones.registry import get_backbone, register_backbone
from advisor.errors import BackboneError, PlanError
from advisor.registry import Registry


class Colour(str, Enum):
    RED = "red"
    GREEN = "green"


def test_register_returns_the_object_and_get_finds_it():
    registry = Registry("thing")

    @registry.register("a")
    def build_a():
        return "A"

    assert registry.get("a") is build_a and build_a() == "A"
    assert "a" in registry and "b" not in registry and len(registry) == 1


def test_a_key_cannot_be_registered_twice():
    registry = Registry("backbone")
    registry.register("tiny")(object)
    with pytest.raises(ValueError, match="Backbone 'tiny' is registered twice"):
        registry.register("tiny")(object)


def test_unknown_key_raises_the_callers_error_listing_the_known_keys():
    registry = Registry("backbone", error=BackboneError, sort_key=str,
                        message="Unknown {name} {key!r}. Known: {known}, or keras:<Name>.")
    for name in ("zeta", "alpha"):
        registry.register(name)(object)
    with pytest.raises(BackboneError, match=r"^Unknown backbone 'beta'\. Known: alpha, zeta, "
                                            r"or keras:<Name>\.$"):
        registry.get("beta")


def test_empty_registry_says_so():
    registry = Registry("regime", error=PlanError, empty="none (import the package)")
    with pytest.raises(PlanError, match=r"Known: none \(import the package\)"):
        registry.get("svm")


def test_enum_keys_parse_from_strings_and_show_by_value():
    registry = Registry("colour", error=KeyError, parse=Colour, sort_key=list(Colour).index)
    registry.register("green")("G")
    registry.register(Colour.RED)("R")
    assert registry.keys() == (Colour.RED, Colour.GREEN)  # sort_key, not registration order
    assert registry.names() == ("red", "green")
    assert registry.get("red") == registry.get(Colour.RED) == "R"
    assert "blue" not in registry
    with pytest.raises(KeyError, match="Unknown colour 'blue'. Known: red, green."):
        registry.get("blue")
    with pytest.raises(KeyError, match="Unknown colour"):
        registry.get(["unhashable"])


def test_keys_keep_registration_order_without_sort_key():
    registry = Registry("thing")
    for key in ("b", "c", "a"):
        registry.register(key)(key)
    assert registry.names() == ("b", "c", "a") and list(registry) == ["b", "c", "a"]


def test_backbone_registry_uses_it():
    assert list_backbones() == tuple(sorted(list_backbones()))
    assert {"mobilenet_v2", "efficientnet_lite0"} <= set(list_backbones())
    with pytest.raises(ValueError, match="registered twice"):
        register_backbone("mobilenet_v2")(object)
    with pytest.raises(BackboneError, match=r"Unknown backbone 'nope'\. Known: .*keras:"):
        get_backbone("nope")
