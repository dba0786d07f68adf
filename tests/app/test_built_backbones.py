"""Tests of `advisor.app.built_backbones`: a run builds the network it measured with once."""

from __future__ import annotations

import pytest

from advisor.app import built_backbones


@pytest.fixture
def builds(monkeypatch):
    """Stand in for the registry's builder (no network is built): record each build's arguments."""
    calls = []

    def build(name, **kwargs):
        calls.append((name, kwargs))
        return object()

    monkeypatch.setattr(built_backbones.backbones, "get_backbone", build)
    built_backbones.clear()
    yield calls
    built_backbones.clear()


def test_the_same_pretrained_build_is_made_once_and_shared(builds):
    measured = built_backbones.get_backbone("mobilenet_v2", input_size=64)
    planned = built_backbones.get_backbone("mobilenet_v2", image_size=224, input_size=64)
    assert planned is measured and len(builds) == 1
    # Another size, or random weights (a new network each time), is built.
    assert built_backbones.get_backbone("mobilenet_v2", image_size=128) is not measured
    random = [built_backbones.get_backbone("mobilenet_v2", weights=None) for _ in range(2)]
    assert random[0] is not random[1] and len(builds) == 4


def test_only_the_last_kept_builds_stay(builds):
    first = built_backbones.get_backbone("mobilenet_v2", image_size=96)
    for size in (128, 160):
        built_backbones.get_backbone("mobilenet_v2", image_size=size)
    assert built_backbones.KEPT == 2
    assert built_backbones.get_backbone("mobilenet_v2", image_size=96) is not first  # evicted
    assert built_backbones.get_backbone("mobilenet_v2", image_size=160) is not None and len(builds) == 4

