"""``keras:<ApplicationName>`` backbones: ``keras.applications`` with ImageNet weights.

For users with internet (or a filled ``~/.keras/models``). Each application's
own ``preprocess_input`` is reproduced inside the model as Keras layers, so the
model still takes raw uint8 RGB.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import keras

from advisor.backbones.base import Backbone, Block
from advisor.backbones.preprocessing import model_input, torchvision_normalization, with_upscale
from advisor.errors import BackboneError

#: Application name prefix -> the input scaling its ``preprocess_input`` applies.
_PREPROCESSING_MODES = {
    "EfficientNet": "raw",  # rescaling and normalisation are inside these models
    "ConvNeXt": "raw",
    "DenseNet": "torch",
    "MobileNet": "tf",  # MobileNet, MobileNetV2, MobileNetV3 (V3 has its own layers: raw)
    "Xception": "tf",
    "Inception": "tf",
    "NASNet": "tf",
    "ResNetRS": "raw",
}
_RAW_APPLICATIONS = ("MobileNetV3",)


def _normalization(name: str) -> tuple[Callable[[keras.KerasTensor], keras.KerasTensor], str]:
    """The layers that do application `name`'s ``preprocess_input``, and their summary."""
    if name.startswith(_RAW_APPLICATIONS):
        mode = "raw"
    else:
        mode = next((m for p, m in _PREPROCESSING_MODES.items() if name.startswith(p)), None)
        if mode is None and name.endswith("V2") and name.startswith("ResNet"):
            mode = "tf"
    if mode == "raw":
        return keras.layers.Rescaling(1.0, name="to_float"), "in model: none (raw 0-255)"
    if mode == "tf":
        return (keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale"),
                "in model: x / 127.5 - 1")
    if mode == "torch":
        return torchvision_normalization, "in model: /255, ImageNet mean/std"
    raise BackboneError(
        f"keras:{name}: its preprocessing is not supported; use mobilenet_v2 or a keras: "
        "application from the EfficientNet, ConvNeXt, DenseNet, MobileNet, Xception, "
        "Inception or ResNetV2 families"
    )


def _blocks_by_prefix(model: keras.Model, first: int) -> tuple[Block, ...]:
    """Group layers into blocks by their name prefix (``block3a_...`` -> ``block3a``)."""
    groups: list[tuple[str, list[str]]] = []
    for layer in model.layers[first:]:
        match = re.match(r"^([a-z]*\d+[a-z]?|stem|top|conv\d+|block_\d+)", layer.name)
        key = match.group(1) if match else "other"
        if groups and groups[-1][0] == key:
            groups[-1][1].append(layer.name)
        else:
            groups.append((key, [layer.name]))
    return tuple(Block(f"{i:02d}_{key}", tuple(names), names[-1]) for i, (key, names) in enumerate(groups))


def build_keras_application(name: str, *, image_size: int, weights: str | None,
                            input_size: int | None = None) -> Backbone:
    """Build ``keras.applications.<name>`` as a :class:`Backbone`.

    Args:
        name: The application's class name, e.g. ``"EfficientNetB0"``.
        image_size: Square size the network runs at.
        weights: ``"imagenet"`` (downloads if not cached) or `None`.
        input_size: Square size of the uint8 input, upscaled to `image_size`
            inside the graph when smaller. Defaults to `None` (`image_size`).

    Raises:
        BackboneError: Unknown application, or the weights cannot be downloaded.

    Example:
        >>> b = build_keras_application("EfficientNetB0", image_size=224, weights=None)
        >>> b.name, b.feature_layer, b.model.output.shape, b.weights
        ('keras:EfficientNetB0', 'avg_pool', (None, 1000), 'none')
    """
    factory = getattr(keras.applications, name, None)
    if factory is None or not callable(factory):
        raise BackboneError(f"keras.applications has no {name!r}; see keras.applications for names")
    normalization, described = _normalization(name)
    inputs, x = model_input(image_size, input_size, normalization)
    n_preprocessing = len(keras.Model(inputs, x).layers)
    try:
        # input_tensor= builds the application's layers on our preprocessed
        # tensor, so the model is flat and starts from the uint8 input.
        model = factory(include_top=True, weights=weights, input_tensor=x,
                        input_shape=(image_size, image_size, 3), classifier_activation=None)
    except Exception as exc:
        # keras.utils.get_file raises a bare Exception("URL fetch failure ...")
        # when offline; only that (and OS errors) becomes a one-line error.
        if not (isinstance(exc, OSError) or "URL fetch failure" in str(exc)):
            raise
        raise BackboneError(
            f"keras:{name} needs its ImageNet weights from the internet or ~/.keras/models "
            f"and could not get them ({type(exc).__name__}: {str(exc)[:80]}); use the offline "
            "default --backbone mobilenet_v2"
        ) from None
    pools = [layer.name for layer in model.layers
             if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    if not pools:
        raise BackboneError(f"keras:{name} has no global average pooling layer to take features from")
    return Backbone(
        name=f"keras:{name}",
        image_size=image_size,
        model=model,
        feature_layer=pools[-1],
        classifier_layer=model.layers[-1].name,
        blocks=_blocks_by_prefix(model, first=n_preprocessing),
        bn_layers=tuple(layer.name for layer in model.layers
                        if isinstance(layer, keras.layers.BatchNormalization)),
        preprocessing=with_upscale(described, image_size, input_size),
        weights="imagenet (keras.applications)" if weights else "none",
        upscaled_from=None if input_size == image_size else input_size,
    )
