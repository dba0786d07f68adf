"""The Backbone description and its registry."""

from __future__ import annotations

import re
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
            ``(None, 1000)`` (a base model's own classes: ``class_names``);
            preprocessing is inside it.
        feature_layer: Name of the layer giving pooled bottleneck features.
        classifier_layer: Name of the (ImageNet) classification layer.
        blocks: The trainable blocks in graph order (stem first, head last).
        bn_layers: Names of all BatchNormalization layers, in graph order.
        preprocessing: Human-readable summary of the in-model preprocessing.
        weights: Where the weights came from (``"imagenet (torchvision)"``, ``"none"``,
            ``"user:<sha256 prefix>"``...).
        class_names: Names of the model's output classes. Defaults to `None`
            (the 1,000 ImageNet classes).
        resizable: Whether the backbone can be built at another input size.
            Defaults to `True` (a user's ``--base`` model is not).
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
    class_names: tuple[str, ...] | None = None
    resizable: bool = True

    @property
    def model_name(self) -> str:
        """:attr:`name` as a Keras model name (TensorFlow scopes refuse ``:`` and ``/``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name).strip("_.-") or "backbone"

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
            name=f"{self.model_name}_features",
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
    feature_layer: str | None = None,
) -> Backbone:
    """Build a backbone by name, with its pretrained weights.

    Args:
        name: A registered name (see :func:`list_backbones`),
            ``"keras:<ApplicationName>"``, or ``"base:<path>[#<layer>]"`` for
            the user's own model file (``advise --base``; see
            :mod:`advisor.backbones.user_model`). Defaults to `"mobilenet_v2"`.
        image_size: Square input size in pixels. A base model's size is its
            input's: pass that or leave the default. Defaults to `224`.
        weights: ``"imagenet"`` for the pretrained weights (offline for the
            registered backbones; a base model's own weights for ``base:``),
            or `None` for random initialisation (plumbing tests only).
            Defaults to `"imagenet"`.
        feature_layer: For ``base:`` models only, the layer the new head reads.
            Defaults to `None` (the input of the model's last Dense layer).

    Returns:
        The :class:`Backbone`.

    Raises:
        BackboneError: Unknown name, bad size, weights that cannot be had, or a
            base model file that cannot be used (one line saying why).

    Example:
        >>> backbone = get_backbone("mobilenet_v2", image_size=224)  # doctest: +SKIP
        >>> backbone.model.output.shape  # doctest: +SKIP
        (None, 1000)
    """
    if weights not in ("imagenet", None):
        raise BackboneError(f"weights must be 'imagenet' or None. Received: weights={weights!r}")
    if name.startswith(config.BASE_MODEL_PREFIX):
        return _build_base_model(name, image_size=image_size, weights=weights,
                                 feature_layer=feature_layer)
    if feature_layer is not None:
        raise BackboneError(
            f"feature_layer applies only to a base model (--base PATH), not to backbone {name!r}. "
            f"Received: feature_layer={feature_layer!r}")
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


def _build_base_model(name: str, *, image_size: int, weights: str | None,
                      feature_layer: str | None) -> Backbone:
    """Build a ``base:<path>[#<layer>]`` backbone, checking the size the caller asks for."""
    from advisor.backbones.user_model import build_user_backbone, parse_base_model_name

    if weights is None:
        raise BackboneError(
            f"A base model ({name}) brings its own weights; weights=None (random "
            "initialisation) is not available for it")
    path, named_layer = parse_base_model_name(name)
    if feature_layer is not None and named_layer is not None and feature_layer != named_layer:
        raise BackboneError(
            f"Backbone {name} names feature layer {named_layer!r} but feature_layer="
            f"{feature_layer!r} was passed; pass one of them")
    backbone = build_user_backbone(path, feature_layer=feature_layer or named_layer)
    if image_size not in (backbone.image_size, config.DEFAULT_IMAGE_SIZE):
        raise BackboneError(
            f"The base model {path} takes {backbone.image_size}x{backbone.image_size} images; it "
            f"cannot be built at image_size={image_size}. Leave the size to the model")
    return backbone
