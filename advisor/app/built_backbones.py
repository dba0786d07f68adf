"""Backbones built once per process: ``advise`` runs its plan on the network it measured with.

Building a backbone (its Keras graph and pretrained weights) takes one to two
seconds on 2 CPU cores, and a run builds two: the measuring network, then its
plan's, usually the same size (low-resolution folders are measured at the plan's
input size). The app layer asks :func:`get_backbone` here instead of
:func:`advisor.backbones.get_backbone`. A backbone is read-only to everything
that uses it (strategies train a copy: :func:`strategies.graph.build_classifier`),
so one object serves every caller. Only pretrained builds are kept (random
weights differ at every build), the last ``KEPT`` of them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from advisor import backbones, config
from advisor.backbones import Backbone

#: Pretrained backbones kept, the most recently asked for.
KEPT = 2
_built: OrderedDict[tuple, Backbone] = OrderedDict()


def build_key(name: str, *, image_size: int = config.DEFAULT_IMAGE_SIZE, weights: str | None = "imagenet",
              feature_layer: str | None = None, input_size: int | None = None) -> tuple:
    """What makes two builds the same: the arguments, an `input_size` equal to `image_size` dropped.

    Example:
        >>> build_key("mobilenet_v2") == build_key("mobilenet_v2", image_size=224, input_size=224)
        True
        >>> build_key("mobilenet_v2", input_size=64) == build_key("mobilenet_v2")
        False
    """
    return (name, image_size, weights, feature_layer, None if input_size == image_size else input_size)


def get_backbone(name: str, **kwargs: Any) -> Backbone:
    """Return :func:`advisor.backbones.get_backbone` ``(name, **kwargs)``, built once per process.

    Raises:
        BackboneError: As :func:`advisor.backbones.get_backbone`.
    """
    key = build_key(name, **kwargs)
    if key[2] is None:  # random weights: a new network each time
        return backbones.get_backbone(name, **kwargs)
    if key in _built:
        _built.move_to_end(key)
        return _built[key]
    built = backbones.get_backbone(name, **kwargs)
    _built[key] = built
    while len(_built) > KEPT:
        _built.popitem(last=False)
    return built


def clear() -> None:
    """Forget every kept backbone."""
    _built.clear()
