"""The Backbone description and its registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from advisor import config
from advisor.errors import BackboneError


@dataclass(frozen=True, slots=True)
class Block:
    """A run of consecutive layers that is frozen or trained as a unit.

    Attributes:
        name: Block name, e.g. ``"block_3"``.
        layers: Names of the block's layers, in graph order.
        output: Name of the layer whose output is the block's output.
    """

    name: str
    layers: tuple[str, ...]
    output: str


@dataclass(frozen=True, slots=True)
class Backbone:
    """A pretrained network with what the advisor and the strategies need from it.

    Attributes:
        name: Registry name, e.g. ``"mobilenet_v2"``.
        image_size: Height and width of the model's input.
        model: Keras model, ``(None, S, S, 3) uint8`` RGB -> ImageNet logits
            ``(None, 1000)``; preprocessing is inside it.
        feature_layer: Name of the layer giving pooled bottleneck features.
        classifier_layer: Name of the ImageNet classification layer.
        blocks: The trainable blocks in graph order (stem first, head last).
        bn_layers: Names of all BatchNormalization layers, in graph order.
        preprocessing: Human-readable summary of the in-model preprocessing.
        weights: Where the weights came from (``"imagenet (torchvision)"``, ``"none"``...).
    """

    name: str
    image_size: int
    model: keras.Model
    feature_layer: str
    classifier_layer: str
    blocks: tuple[Block, ...]
    bn_layers: tuple[str, ...]
    preprocessing: str
    weights: str

    @property
    def feature_dim(self) -> int:
        """Width of the pooled bottleneck features."""
        return int(self.model.get_layer(self.feature_layer).output.shape[-1])

    def feature_extractor(self) -> keras.Model:
        """Return a model sharing this backbone's layers: images -> pooled features.

        Returns:
            A functional Keras model whose output is the feature layer's output.

        Example:
            >>> extractor = get_backbone("mobilenet_v2").feature_extractor()  # doctest: +SKIP
        """
        return keras.Model(
            self.model.inputs, self.model.get_layer(self.feature_layer).output,
            name=f"{self.name}_features",
        )

    def block_index(self, name: str) -> int:
        """Return the position of block `name` in :attr:`blocks`.

        Raises:
            BackboneError: No block has that name; the message lists them.
        """
        for index, block in enumerate(self.blocks):
            if block.name == name:
                return index
        known = ", ".join(b.name for b in self.blocks)
        raise BackboneError(f"Unknown block {name!r} for backbone {self.name}. Known: {known}.")


#: name -> builder(image_size, weights) -> Backbone
BackboneBuilder = Callable[..., Backbone]
_BACKBONES: dict[str, BackboneBuilder] = {}


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Register a backbone builder under `name` (filled at import, never later).

    Args:
        name: The registry name.

    Returns:
        A decorator that files the builder and returns it unchanged.

    Raises:
        ValueError: `name` is registered twice.

    Example:
        >>> @register_backbone("tiny")  # doctest: +SKIP
        ... def build_tiny(image_size=32, weights=None): ...
    """

    def wrap(builder: BackboneBuilder) -> BackboneBuilder:
        if name in _BACKBONES:
            raise ValueError(f"Backbone {name!r} is registered twice.")
        _BACKBONES[name] = builder
        return builder

    return wrap


def list_backbones() -> tuple[str, ...]:
    """Return the registered backbone names, sorted.

    Example:
        >>> "mobilenet_v2" in list_backbones()
        True
    """
    return tuple(sorted(_BACKBONES))


def get_backbone(
    name: str = config.DEFAULT_BACKBONE,
    *,
    image_size: int = config.DEFAULT_IMAGE_SIZE,
    weights: str | None = "imagenet",
) -> Backbone:
    """Build a backbone by name, with its pretrained weights.

    Args:
        name: A registered name (see :func:`list_backbones`) or
            ``"keras:<ApplicationName>"``. Defaults to `"mobilenet_v2"`.
        image_size: Square input size in pixels. Defaults to `224`.
        weights: ``"imagenet"`` for the pretrained weights (offline for the
            registered backbones), or `None` for random initialisation (plumbing
            tests only). Defaults to `"imagenet"`.

    Returns:
        The :class:`Backbone`.

    Raises:
        BackboneError: Unknown name, bad size, or weights that cannot be had.

    Example:
        >>> backbone = get_backbone("mobilenet_v2", image_size=224)  # doctest: +SKIP
        >>> backbone.model.output.shape  # doctest: +SKIP
        (None, 1000)
    """
    if weights not in ("imagenet", None):
        raise BackboneError(f"weights must be 'imagenet' or None. Received: weights={weights!r}")
    if not isinstance(image_size, int) or image_size < 32:
        raise BackboneError(f"image_size must be an integer >= 32. Received: image_size={image_size!r}")
    if name.startswith("keras:"):
        from advisor.backbones.keras_applications import build_keras_application

        return build_keras_application(name.removeprefix("keras:"), image_size=image_size,
                                       weights=weights)
    try:
        builder = _BACKBONES[name]
    except KeyError:
        known = ", ".join(list_backbones())
        raise BackboneError(
            f"Unknown backbone {name!r}. Known: {known}, or keras:<ApplicationName>."
        ) from None
    return builder(image_size=image_size, weights=weights)
