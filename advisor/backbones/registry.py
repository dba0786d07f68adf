"""The backbone registry: ``get_backbone(name)`` builds a registered port, a
``keras:`` application or a ``base:`` user model.

Ports (:mod:`advisor.backbones.mobilenet_v2`, :mod:`advisor.backbones.efficientnet_lite`)
file their builders at import with :func:`register_backbone`, on the generic
:class:`advisor.registry.Registry`.
"""

from __future__ import annotations

from collections.abc import Callable

from advisor import config
from advisor.backbones.base import Backbone
from advisor.backbones.keras_applications import build_keras_application
from advisor.backbones.user_model import build_user_backbone, parse_base_model_name
from advisor.errors import BackboneError
from advisor.registry import Registry

#: name -> builder(image_size=, weights=, input_size=) -> Backbone
BackboneBuilder = Callable[..., Backbone]
_BACKBONES: Registry[str, BackboneBuilder] = Registry(
    "backbone", error=BackboneError, sort_key=str,
    message="Unknown {name} {key!r}. Known: {known}, or keras:<ApplicationName>.",
)


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Register a backbone builder under `name` (filled at import, never later).

    Args:
        name: The registry name.

    Returns:
        A decorator that files the builder and returns it unchanged.

    Raises:
        ValueError: `name` is registered twice.

    Example:
        >>> @register_backbone("mobilenet_v2")  # each name is filed once, at import
        ... def build_tiny(image_size=32, weights=None): ...
        Traceback (most recent call last):
        ...
        ValueError: Backbone 'mobilenet_v2' is registered twice.
    """
    return _BACKBONES.register(name)


def list_backbones() -> tuple[str, ...]:
    """Return the registered backbone names, sorted.

    Example:
        >>> "mobilenet_v2" in list_backbones()
        True
    """
    return _BACKBONES.names()


def get_backbone(
    name: str = config.DEFAULT_BACKBONE,
    *,
    image_size: int = config.DEFAULT_IMAGE_SIZE,
    weights: str | None = "imagenet",
    feature_layer: str | None = None,
    input_size: int | None = None,
) -> Backbone:
    """Build a backbone by name, with its pretrained weights.

    With `input_size` below `image_size` the model takes images decoded at
    `input_size` (:func:`advisor.data.images.load_image`) and upscales them to
    `image_size` inside the graph before the network (bilinear); its layers,
    weights and activations are those of the backbone at `image_size`.

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
        input_size: Square size of the model's uint8 input, at most
            `image_size` (a base model: its own size only). Defaults to `None`
            (`image_size`).

    Returns:
        The :class:`Backbone`.

    Raises:
        BackboneError: Unknown name, bad size, weights that cannot be had, or a
            base model file that cannot be used (one line saying why).

    Example:
        >>> backbone = get_backbone("mobilenet_v2", image_size=224)
        >>> backbone.model.output.shape, backbone.feature_layer
        ((None, 1000), 'global_average_pooling2d')
        >>> small = get_backbone("mobilenet_v2", image_size=96, input_size=28, weights=None)
        >>> small.model.input.shape, small.input_size, small.image_size
        ((None, 28, 28, 3), 28, 96)
    """
    if weights not in ("imagenet", None):
        raise BackboneError(f"weights must be 'imagenet' or None. Received: weights={weights!r}")
    if name.startswith(config.BASE_MODEL_PREFIX):
        backbone = _build_base_model(name, image_size=image_size, weights=weights,
                                     feature_layer=feature_layer)
        if input_size not in (None, backbone.input_size):
            raise BackboneError(
                f"The base model {name.removeprefix(config.BASE_MODEL_PREFIX)} takes "
                f"{backbone.input_size}x{backbone.input_size} images; it cannot take "
                f"input_size={input_size}. Leave the size to the model")
        return backbone
    if feature_layer is not None:
        raise BackboneError(
            f"feature_layer applies only to a base model (--base PATH), not to backbone {name!r}. "
            f"Received: feature_layer={feature_layer!r}")
    if not isinstance(image_size, int) or image_size < 32:
        raise BackboneError(f"image_size must be an integer >= 32. Received: image_size={image_size!r}")
    if input_size is not None and (not isinstance(input_size, int)
                                   or not 1 <= input_size <= image_size):
        raise BackboneError(
            f"input_size must be an integer in [1, image_size={image_size}] (the model only "
            f"upscales; decode larger images at image_size). Received: input_size={input_size!r}")
    if input_size == image_size:
        input_size = None
    if name.startswith("keras:"):
        return build_keras_application(name.removeprefix("keras:"), image_size=image_size,
                                       weights=weights, input_size=input_size)
    builder = _BACKBONES.get(name)
    return builder(image_size=image_size, weights=weights, input_size=input_size)


def _build_base_model(name: str, *, image_size: int, weights: str | None,
                      feature_layer: str | None) -> Backbone:
    """Build a ``base:<path>[#<layer>]`` backbone, checking the size the caller asks for."""
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
