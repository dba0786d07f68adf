"""The Backbone record: a pretrained network and what later stages need from it.

The registry that builds one by name is :mod:`advisor.backbones.registry`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import keras

from advisor.backbones.preprocessing import decode_resize_ratio
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
        image_size: Height and width the network sees (its layers' input).
        model: Keras model, ``(None, s, s, 3) uint8`` RGB with ``s =
            input_size`` -> ImageNet logits ``(None, 1000)`` (a base model's
            own classes: ``class_names``); preprocessing is inside it,
            including the upscale from `input_size` to `image_size` when
            they differ (:func:`~advisor.backbones.preprocessing.upscale`).
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
        upscaled_from: Height and width of :attr:`model`'s uint8 input when it
            is smaller than `image_size` and the model resizes it inside its
            graph (a native-size decode; see :attr:`input_size`). Defaults to
            `None` (the input is `image_size`).
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
    upscaled_from: int | None = None

    @property
    def input_size(self) -> int:
        """Height and width of :attr:`model`'s input: the size images are decoded at.

        Example:
            >>> backbone.input_size, backbone.image_size
            (96, 96)
        """
        return self.image_size if self.upscaled_from is None else self.upscaled_from

    @property
    def model_name(self) -> str:
        """:attr:`name` as a Keras model name (TensorFlow scopes refuse ``:`` and ``/``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name).strip("_.-") or "backbone"

    @property
    def decode_resize_ratio(self) -> float:
        """The ``resize_ratio`` images for :attr:`model` are decoded with (at :attr:`input_size`).

        ``1.0`` (native size, the central square of the short side) when the
        model resizes and crops inside its graph, else torchvision's 256 / 224;
        see :func:`~advisor.backbones.preprocessing.decode_resize_ratio`.

        Example:
            >>> backbone.decode_resize_ratio  # decoded at 96 px with the 256/224 margin
            1.1428571428571428
        """
        return decode_resize_ratio(self.model)

    @property
    def feature_dim(self) -> int:
        """Width of the pooled bottleneck features."""
        return int(self.model.get_layer(self.feature_layer).output.shape[-1])

    def feature_extractor(self) -> keras.Model:
        """Return a model sharing this backbone's layers: images -> pooled features.

        Returns:
            A functional Keras model whose output is the feature layer's output.

        Example:
            >>> extractor = backbone.feature_extractor()
            >>> extractor.name, extractor.output.shape
            ('mobilenet_v2_features', (None, 1280))
        """
        return keras.Model(
            self.model.inputs, self.model.get_layer(self.feature_layer).output,
            name=f"{self.model_name}_features",
        )

    def activation_shape(self, layer: str, image_size: int | None = None) -> tuple[int, ...]:
        """Return the shape of one image's output of `layer` (no batch axis).

        At another input size the spatial axes scale with it (each stride-s
        stage maps ``S`` to ``ceil(S / s)``, as ``"same"`` padding does).

        Args:
            layer: Layer name in :attr:`model`.
            image_size: Input size. Defaults to `None` (:attr:`image_size`).

        Example:
            >>> backbone.activation_shape("block_11_add"), backbone.activation_shape("block_11_add", 224)
            ((6, 6, 96), (14, 14, 96))
        """
        shape = tuple(int(d) for d in self.model.get_layer(layer).output.shape[1:])
        if image_size is None or image_size == self.image_size or len(shape) != 3:
            return shape
        stride = max(1, round(self.image_size / shape[0]))
        side = math.ceil(image_size / stride)
        return (side, side, shape[2])

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
