"""Embed images through a frozen backbone once, and keep the result on disk.

The SVM and the linear probe train on the output of one backbone layer (global
average pooled when it is a 4-D feature map), not on images: the backbone runs
once per image, in batches read from the decode cache's memory map, and the
``(N, D)`` float32 result is cached under ``cache_dir("embeddings")``.

An entry's key is a SHA-256 over: this module's cache version; the image
source (the decode-cache ``.npy`` behind a memory map, with its size and
modification time, or an explicit `key`); the rows used; the backbone's name,
weights, network size and input size (when it upscales its input); the layer;
and, for augmented views, the augmentation key. Randomly initialised backbones (``weights="none"``) and in-memory arrays
without a key are never cached. Before running the backbone on a cache miss,
the images the measuring pass already embedded with the same network and layer
are taken from :mod:`advisor.measure.feature_store` (keyed by their pixels),
and only the others are computed: ``advise`` on a set within the sample cap
embeds each training and validation image once. Entries are written atomically
(:func:`advisor.cache.cache_entry`), one builder at a time
(:func:`advisor.cache.entry_lock`: a concurrent run waits, then reads the
entry); a write that fails leaves no entry and raises a one-line
:class:`~advisor.errors.StorageError`.

API:
    predict_batches(model, batches) -> np.ndarray
    image_source_key(images, key=None) -> str | None
    Embedder(backbone, layer=None, *, batch_size=config.EMBED_BATCH_SIZE)
        .model (images -> (N, D)), .dim, .layers, .widths
        .embed(images, *, rows=None, key=None, augmentation=None,
               augmentation_key=None) -> np.ndarray (len(rows), D) float32
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from advisor import config
from advisor.backbones import Backbone
from advisor.cache import cache_dir, cache_entry, entry_lock, read_cached_array
from advisor.errors import BackboneError
from advisor.measure.feature_store import load_features, namespace_dir, pixel_digests
from strategies.batches import ImageBatches

logger = logging.getLogger(__name__)

CACHE_SUBDIR = "embeddings"
#: Bump when the embedding computation changes, to invalidate cached entries.
EMBEDDINGS_CACHE_VERSION = 1
#: Name of the pooling layer added on top of a 4-D feature layer.
POOL_LAYER = "feature_pool"


def feature_output(backbone: Backbone, layer: str | None = None) -> keras.KerasTensor:
    """Return the output tensor of `layer` in the backbone's graph.

    Args:
        backbone: The backbone.
        layer: Layer name. Defaults to `None` (the backbone's pooled feature layer).

    Raises:
        BackboneError: The backbone has no such layer.

    Example:
        >>> backbone.feature_layer, feature_output(backbone).shape
        ('global_average_pooling2d', (None, 1280))
        >>> feature_output(backbone, "block_8_add").shape
        (None, 6, 6, 64)
    """
    name = layer or backbone.feature_layer
    try:
        return backbone.model.get_layer(name).output
    except ValueError:
        raise BackboneError(
            f"Backbone {backbone.name} has no layer {name!r}; use a layer name of its model "
            f"(e.g. {backbone.feature_layer!r}). Received: feature_layer={name!r}"
        ) from None


#: Inputs of at most this many batches run eagerly: tracing the forward pass of
#: a large network costs more than a few eager batches.
EAGER_MAX_BATCHES = 8


def predict_batches(model: keras.Model, batches: keras.utils.PyDataset) -> np.ndarray:
    """Run `model` over `batches` (inputs first in each batch) and return float32 outputs.

    Few batches (``EAGER_MAX_BATCHES``) run eagerly, more through ``model.predict``.

    Args:
        model: The model.
        batches: A PyDataset whose items are ``(x, ...)``.

    Returns:
        The outputs, concatenated in batch order.

    Example:
        >>> from advisor.data import decode_images
        >>> decoded = decode_images(sorted(digits_dir.glob("*/*.png"))[:10], backbone.image_size)
        >>> batches = ImageBatches(decoded.images, np.zeros(10, "int32"), batch_size=4)
        >>> predict_batches(backbone.model, batches).shape  # the ImageNet head: 1,000 classes
        (10, 1000)
    """
    if len(batches) > EAGER_MAX_BATCHES:
        return np.asarray(model.predict(batches, verbose=0), dtype=np.float32)
    outputs = [keras.ops.convert_to_numpy(model(batches[i][0], training=False))
               for i in range(len(batches))]
    return np.concatenate(outputs).astype(np.float32, copy=False)


def activation_cache_file(subdir: str, backbone: Backbone, images: np.ndarray, rows: np.ndarray, *,
                          key: str | None, augmentation: Any, augmentation_key: str | None,
                          spec: dict[str, Any]) -> Path | None:
    """Return the cache file of `backbone`'s activations of `images[rows]`, or `None` if uncacheable.

    The file is named by a hash of what the activations depend on: the images'
    source (:func:`image_source_key`), shape and rows, the backbone, its
    weights, network and input sizes, the augmented view, and the caller's `spec` (its
    cache version and layer, cut or policy). Random weights (``weights="none"``),
    an augmentation without a key, and images with no stable name are not cached.

    Example:
        >>> images = np.zeros((2, backbone.image_size, backbone.image_size, 3), np.uint8)
        >>> rows = np.arange(2)
        >>> a = activation_cache_file("embeddings", backbone, images, rows, key="two-black",
        ...                           augmentation=None, augmentation_key=None, spec={"version": 1})
        >>> a.suffix, a == activation_cache_file("embeddings", backbone, images, rows, key="two-black",
        ...                                      augmentation=None, augmentation_key=None, spec={"version": 2})
        ('.npy', False)
        >>> activation_cache_file("embeddings", backbone, images, rows, key=None,
        ...                       augmentation=None, augmentation_key=None, spec={}) is None  # in-memory array
        True
    """
    if backbone.weights == "none":
        return None  # random weights differ at every build
    if augmentation is not None and augmentation_key is None:
        return None
    source = image_source_key(images, key)
    if source is None:
        return None
    full = {
        "source": source,
        "shape": list(images.shape),
        "rows": hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest(),
        "backbone": backbone.name,
        "weights": backbone.weights,
        "image_size": backbone.image_size,
        "augmentation": augmentation_key,
    } | spec
    if backbone.input_size != backbone.image_size:  # upscaled in the graph (absent: keys as before)
        full["input_size"] = backbone.input_size
    digest = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()
    return cache_dir(subdir) / f"{digest}.npy"


def image_source_key(images: np.ndarray, key: str | None = None) -> str | None:
    """Return what names `images` in a cache key: `key`, or the memory map's file identity.

    A memory map is named by its file's absolute path, size and modification
    time; an in-memory array without `key` has no name (`None`: not cached).

    Args:
        images: The image array, usually a decode-cache memory map.
        key: An explicit name. Defaults to `None`.

    Example:
        >>> image_source_key(np.zeros((1, 8, 8, 3), "uint8")) is None
        True
        >>> image_source_key(np.zeros((1, 8, 8, 3), "uint8"), key="digits/train")
        'digits/train'
    """
    if key is not None:
        return key
    filename = getattr(images, "filename", None)
    if not isinstance(images, np.memmap) or filename is None:
        return None
    stat = os.stat(filename)
    return f"{os.path.abspath(filename)}|{stat.st_size}|{stat.st_mtime_ns}"


class Embedder:
    """Embed uint8 images with a frozen backbone layer, caching the result.

    Args:
        backbone: The (pretrained) backbone; its weights are only read.
        layer: The layer to read, or several (their pooled outputs
            concatenated in order, one forward pass); 4-D outputs are
            globally average pooled. Defaults to `None` (``backbone.feature_layer``).
        batch_size: Images per forward pass. Defaults to `config.EMBED_BATCH_SIZE`.

    Example:
        >>> from advisor.data import decode_images
        >>> decoded = decode_images(sorted(digits_dir.glob("*/*.png"))[:20], backbone.image_size)
        >>> embedder = Embedder(backbone)
        >>> embedder.dim, embedder.embed(decoded.images, rows=decoded.rows).shape
        (1280, (20, 1280))
        >>> Embedder(backbone, "block_8_add").dim  # a feature map, globally average pooled
        64
        >>> several = Embedder(backbone, ["block_8_add", backbone.feature_layer])
        >>> several.widths, several.embed(decoded.images, rows=decoded.rows).shape
        ((64, 1280), (20, 1344))
    """

    def __init__(self, backbone: Backbone, layer: str | Sequence[str] | None = None, *,
                 batch_size: int = config.EMBED_BATCH_SIZE) -> None:
        self.backbone = backbone
        self.layers = ((layer or backbone.feature_layer,) if layer is None or isinstance(layer, str)
                       else tuple(layer))
        if not self.layers:
            raise BackboneError("Embedder needs at least one layer; received an empty list.")
        self.layer = self.layers[0] if len(self.layers) == 1 else ",".join(self.layers)
        self.batch_size = batch_size
        outputs = []
        for index, name in enumerate(self.layers):
            output = feature_output(backbone, name)
            if len(output.shape) == 4:
                pool = POOL_LAYER if len(self.layers) == 1 else f"{POOL_LAYER}_{index}"
                output = keras.layers.GlobalAveragePooling2D(name=pool)(output)
            elif len(output.shape) != 2:
                raise BackboneError(
                    f"Layer {name!r} of {backbone.name} gives a {len(output.shape)}-D output; "
                    "expected a 2-D (pooled) or 4-D (feature map) one. Choose another feature_layer."
                )
            outputs.append(output)
        #: Columns of each layer in an embedding, in `layers` order.
        self.widths = tuple(int(o.shape[-1]) for o in outputs)
        output = outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(
            name=f"{POOL_LAYER}_concat")(outputs)
        self.model = keras.Model(backbone.model.inputs[0], output, name=f"{backbone.model_name}_embedder")

    @property
    def dim(self) -> int:
        """Width of one embedding (the layers' widths added up)."""
        return int(self.model.output.shape[-1])

    def embed(
        self,
        images: np.ndarray,
        *,
        rows: np.ndarray | None = None,
        key: str | None = None,
        augmentation: Any | None = None,
        augmentation_key: str | None = None,
    ) -> np.ndarray:
        """Return the embeddings of ``images[rows]``, from the cache when present.

        Args:
            images: ``(N, S, S, 3)`` uint8 array, usually a decode-cache memory map.
            rows: Rows of `images` to embed, in order. Defaults to `None` (all).
            key: Names the image source in the cache key, for arrays that are
                not memory maps. Defaults to `None` (the memory map's file; an
                in-memory array without a key is not cached).
            augmentation: A Keras layer applied to each batch before embedding
                (see :func:`strategies.batches.build_augmentation`). Defaults to
                `None`.
            augmentation_key: Describes `augmentation` (names, seed, view) in
                the cache key; an augmented view without it is not cached.
                Defaults to `None`.

        Returns:
            ``(len(rows), D)`` float32 array.

        Raises:
            StorageError: The cache entry cannot be written (a full disk, an
                unwritable cache folder).

        Example:
            >>> from advisor.data import decode_images
            >>> decoded = decode_images(sorted(digits_dir.glob("*/*.png"))[:20], backbone.image_size)
            >>> embedder = Embedder(backbone)
            >>> x = embedder.embed(decoded.images, rows=decoded.rows)  # runs the backbone, caches
            >>> again = embedder.embed(decoded.images, rows=decoded.rows)  # read from the cache
            >>> x.shape, x.dtype, bool(np.array_equal(x, again))
            ((20, 1280), dtype('float32'), True)
            >>> embedder.embed(decoded.images, rows=[3, 1]).shape
            (2, 1280)
        """
        rows = np.arange(len(images), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        target = self._cache_file(images, rows, key, augmentation, augmentation_key)
        if target is None or len(rows) == 0:
            return self._compute(images, rows, augmentation)
        cached = self._cached(target, len(rows))
        if cached is not None:
            return cached
        with entry_lock(target):
            cached = self._cached(target, len(rows))  # built by another run while we waited
            if cached is not None:
                return cached
            embeddings = self._shared_or_computed(images, rows, augmentation)
            with cache_entry(target, what="embeddings", suffix=".npy") as tmp:
                np.save(tmp, embeddings)
        return embeddings

    def lookup(self, images: np.ndarray, *, rows: np.ndarray | None = None,
               key: str | None = None) -> np.ndarray | None:
        """The embeddings of ``images[rows]`` when they are cached already, else `None`; never computes.

        Looks in this embedder's cache entry for the image source, then in the
        measuring pass's per-file store (every row and layer filed); writes nothing.
        """
        rows = np.arange(len(images), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        target = self._cache_file(images, rows, key, None, None)
        cached = None if target is None else self._cached(target, len(rows))
        if cached is not None or len(rows) == 0:
            return cached
        filed = self._filed(images, rows)
        return None if filed is None or not filed[0].all() else filed[1]

    def _filed(self, images: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(found per row, embeddings)`` from the measuring pass's per-file store; `None` without one.

        A row counts as filed only when every layer of it is.
        """
        filed = [namespace_dir(self.backbone, layer) for layer in self.layers]
        if any(f is None or not f.is_dir() for f in filed):
            return None  # nothing to find: no hashing
        digests = pixel_digests(images, rows)
        parts = [load_features(self.backbone, layer, digests, width)
                 for layer, width in zip(self.layers, self.widths)]
        return (np.logical_and.reduce([f for f, _ in parts]),
                np.concatenate([e for _, e in parts], axis=1))

    def _shared_or_computed(self, images: np.ndarray, rows: np.ndarray,
                            augmentation: Any | None) -> np.ndarray:
        """The rows the measuring pass filed (same network, layers and pixels), the others computed."""
        # An augmented view was never measured: nothing to look up.
        filed = None if augmentation is not None else self._filed(images, rows)
        if filed is None:
            return self._compute(images, rows, augmentation)
        found, embeddings = filed
        if found.any():
            logger.info("Embedding %d of %d images; %d were embedded by the measuring pass.",
                        int((~found).sum()), len(rows), int(found.sum()))
        if not found.all():
            embeddings[~found] = self._compute(images, rows[~found], None)
        return embeddings

    def _compute(self, images: np.ndarray, rows: np.ndarray, augmentation: Any | None) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = ImageBatches(images, np.zeros(len(rows), np.int32), rows=rows,
                               batch_size=self.batch_size, augmentation=augmentation)
        return predict_batches(self.model, batches)  # in the order of `rows`

    def _cached(self, target: Path, n: int) -> np.ndarray | None:
        """The entry at `target` when it is complete and fits, else `None`."""
        return read_cached_array(target, (n, self.dim), np.float32, what="embedding")

    def _cache_file(self, images, rows, key, augmentation, augmentation_key):
        return activation_cache_file(
            CACHE_SUBDIR, self.backbone, images, rows, key=key, augmentation=augmentation,
            augmentation_key=augmentation_key,
            spec={"version": EMBEDDINGS_CACHE_VERSION, "layer": self.layer})
