"""Run a frozen prefix once per image (and view), keep its activations on disk, feed them.

``partial`` freezes the blocks before its cut and their BatchNormalization
layers run in inference mode, so the prefix's output for an image is fixed:
:class:`PrefixCache` computes it once per training image, per precomputed
augmented view and per validation image, into a float16 memory map under
``cache_dir("prefix")``, and :class:`ActivationBatches` feeds those rows to
the suffix model (:func:`strategies.graph.split_at_cut`) in the same shuffled
batches as :class:`~strategies.batches.ImageBatches` would feed the images.

An entry's key is a SHA-256 over: this module's cache version; the image
source (:func:`strategies.embeddings.image_source_key`); the rows; the
backbone's name, weights, network size and input size (when it upscales its
input); the cut layer; the dtype policy;
the batch size; and, for augmented views, the augmentation key (names,
strengths, seed, view). Randomly initialised backbones and in-memory arrays
without a key are computed in memory and not cached. Entries are written
atomically, one builder at a time (:func:`advisor.cache.entry_lock`), and
through ordinary sequential file writes into space reserved up front (a write
through a memory map on a full disk would kill the process with ``SIGBUS``):
a full disk or an unwritable cache folder leaves no entry and raises a
one-line :class:`~advisor.errors.StorageError`.

API:
    PrefixCache(prefix, backbone, *, cut, batch_size=config.EMBED_BATCH_SIZE, policy="float32")
        .shape, .compute(images, *, rows=None, key=None, augmentation=None,
                         augmentation_key=None) -> (len(rows), *shape) float16
    ActivationBatches(views, labels, *, rows, batch_size=32, shuffle=False,
                      seed=DEFAULT_SEED, class_weight=None) -> keras.utils.PyDataset
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from advisor import config
from advisor.backbones import Backbone
from advisor.cache import cache_entry, entry_lock, read_cached_array, reserve_space
from strategies.batches import ImageBatches, epoch_order
from strategies.embeddings import activation_cache_file

logger = logging.getLogger(__name__)

CACHE_SUBDIR = "prefix"
#: Bump when the prefix computation changes, to invalidate cached entries.
PREFIX_CACHE_VERSION = 1
#: Dtype of the cached activations.
CACHE_DTYPE = np.float16


class PrefixCache:
    """Compute a frozen prefix's activations of uint8 images once, as float16, cached on disk.

    Args:
        prefix: The frozen prefix (uint8 images -> cut activations), from
            :func:`strategies.graph.split_at_cut`.
        backbone: The backbone the prefix was cloned from (names the cache key).
        cut: Name of the cut layer (names the cache key).
        batch_size: Images per forward pass. Defaults to `config.EMBED_BATCH_SIZE`.
        policy: Dtype policy of the prefix (names the cache key). Defaults to `"float32"`.

    Example:
        >>> from advisor.data import decode_images
        >>> from strategies.graph import build_classifier, split_at_cut
        >>> decoded = decode_images(sorted(digits_dir.glob("*/*.png"))[:20], backbone.image_size)
        >>> model = build_classifier(backbone, feature_layer=backbone.feature_layer, n_classes=10)
        >>> names = [b.name for b in backbone.blocks]
        >>> prefix, suffix = split_at_cut(model, backbone, names[:12])
        >>> cache = PrefixCache(prefix, backbone, cut=backbone.blocks[11].output)
        >>> x = cache.compute(decoded.images, rows=decoded.rows)  # runs the prefix, caches
        >>> again = cache.compute(decoded.images, rows=decoded.rows)  # a memory map of the entry
        >>> x.shape, x.dtype, type(again).__name__, bool(np.array_equal(x, again))
        ((20, 6, 6, 96), dtype('float16'), 'memmap', True)
    """

    def __init__(self, prefix: keras.Model, backbone: Backbone, *, cut: str,
                 batch_size: int = config.EMBED_BATCH_SIZE, policy: str = "float32") -> None:
        self.prefix = prefix
        self.backbone = backbone
        self.cut = cut
        self.batch_size = batch_size
        self.policy = policy

    @property
    def shape(self) -> tuple[int, ...]:
        """One image's activation shape at the cut."""
        return tuple(int(d) for d in self.prefix.output.shape[1:])

    def compute(self, images: np.ndarray, *, rows: np.ndarray | None = None,
                key: str | None = None, augmentation: Any | None = None,
                augmentation_key: str | None = None) -> np.ndarray:
        """Return the cut activations of ``images[rows]``, from the cache when present.

        Args:
            images: ``(N, S, S, 3)`` uint8 array, usually a decode-cache memory map.
            rows: Rows of `images`, in order. Defaults to `None` (all).
            key: Names the image source for arrays that are not memory maps.
                Defaults to `None`.
            augmentation: A Keras layer applied to each batch first (one
                precomputed view). Defaults to `None`.
            augmentation_key: Describes `augmentation` in the cache key; a view
                without it is not cached. Defaults to `None`.

        Returns:
            ``(len(rows), *shape)`` float16: a read-only memory map of the cache
            entry, or an in-memory array when the source is not cacheable.

        Raises:
            StorageError: The cache entry cannot be written (a full disk, an
                unwritable cache folder).
        """
        rows = np.arange(len(images), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        shape = (len(rows), *self.shape)
        target = self._cache_file(images, rows, key, augmentation, augmentation_key)
        if target is None:
            out = np.empty(shape, dtype=CACHE_DTYPE)
            start = 0
            for activations in self._batches(images, rows, augmentation):
                out[start : start + len(activations)] = activations
                start += len(activations)
            return out
        cached = self._cached(target, shape)
        if cached is not None:
            return cached
        with entry_lock(target):
            cached = self._cached(target, shape)  # built by another run while we waited
            if cached is not None:
                return cached
            with cache_entry(target, what="frozen-prefix activations", suffix=".npy") as tmp:
                self._write(tmp, shape, images, rows, augmentation)
        return np.load(target, mmap_mode="r")

    def _write(self, path: Path, shape: tuple[int, ...], images: np.ndarray, rows: np.ndarray,
               augmentation: Any | None) -> None:
        """Write the ``.npy`` at `path`: its header, then each batch's rows in order."""
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(CACHE_DTYPE)),
                  "fortran_order": False, "shape": shape}
        with open(path, "r+b") as out:
            np.lib.format.write_array_header_1_0(out, header)
            out.flush()
            reserve_space(path, out.tell() + math.prod(shape) * np.dtype(CACHE_DTYPE).itemsize)
            for activations in self._batches(images, rows, augmentation):
                out.write(np.ascontiguousarray(activations).data)

    def _batches(self, images: np.ndarray, rows: np.ndarray,
                 augmentation: Any | None) -> Iterator[np.ndarray]:
        """Yield the float16 activations of ``images[rows]``, one batch at a time, in order."""
        if len(rows) == 0:
            return
        batches = ImageBatches(images, np.zeros(len(rows), np.int32), rows=rows,
                               batch_size=self.batch_size, augmentation=augmentation)
        for index in range(len(batches)):
            activations = self.prefix.predict_on_batch(batches[index][0])
            yield np.asarray(activations, dtype=np.float32).astype(CACHE_DTYPE)

    @staticmethod
    def _cached(target: Path, shape: tuple[int, ...]) -> np.ndarray | None:
        """A read-only memory map of the entry at `target` when it is complete and fits."""
        return read_cached_array(target, shape, CACHE_DTYPE, what="prefix", mmap=True)

    def _cache_file(self, images, rows, key, augmentation, augmentation_key):
        return activation_cache_file(
            CACHE_SUBDIR, self.backbone, images, rows, key=key, augmentation=augmentation,
            augmentation_key=augmentation_key,
            spec={"version": PREFIX_CACHE_VERSION, "cut": self.cut, "policy": self.policy,
                  "batch_size": self.batch_size})


class ActivationBatches(keras.utils.PyDataset):
    """Batches of cached cut activations (float32) and labels, shuffled as :class:`ImageBatches`.

    With one view, epoch ``e`` yields exactly the batches an
    :class:`~strategies.batches.ImageBatches` with the same rows, batch size
    and seed would (:func:`~strategies.batches.epoch_order`). With K views
    (precomputed augmentations) each epoch draws one view per image from
    ``np.random.default_rng([seed, e, 1])``.

    Args:
        views: One or more ``(n, ...)`` activation arrays (memory maps), row
            ``i`` of each belonging to ``rows[i]``.
        labels: One label (or regression target) per row.
        rows: The image rows the activations came from (the shuffle sorts
            each batch by them, as :class:`ImageBatches` does).
        batch_size: Rows per batch. Defaults to `32`.
        shuffle: Reshuffle every epoch. Defaults to `False`.
        seed: Shuffle seed. Defaults to `config.DEFAULT_SEED`.
        class_weight: ``{label: weight}``; then batches are ``(x, y, w)``.
            Defaults to `None`.

    Raises:
        ValueError: The views, labels and rows do not have one entry per row.

    Example:
        >>> views = [np.zeros((5, 2, 2, 3), "float16"), np.ones((5, 2, 2, 3), "float16")]
        >>> batches = ActivationBatches(views, np.arange(5), rows=np.arange(5), batch_size=2,
        ...                             shuffle=True)
        >>> x, y = batches[0]
        >>> len(batches), x.shape, x.dtype, y.dtype
        (3, (2, 2, 2, 3), dtype('float32'), dtype('int32'))
    """

    def __init__(self, views: Sequence[np.ndarray], labels: np.ndarray, *, rows: np.ndarray,
                 batch_size: int = 32, shuffle: bool = False, seed: int = config.DEFAULT_SEED,
                 class_weight: Mapping[int, float] | None = None) -> None:
        super().__init__()
        rows = np.asarray(rows, dtype=np.int64)
        labels = np.asarray(labels)
        labels = labels.astype(np.float32 if np.issubdtype(labels.dtype, np.floating) else np.int32)
        if not views or any(len(view) != len(rows) for view in views) or labels.shape != rows.shape:
            raise ValueError(
                "Expected one activation row per view, label and image row. Received: views of "
                f"{[len(v) for v in views]} rows, {len(labels)} labels, {len(rows)} image rows")
        self.views = list(views)
        self.labels = labels
        self.rows = rows
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.class_weight = dict(class_weight) if class_weight is not None else None
        self.epoch = 0
        self._set_epoch()

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range [0, {len(self)}).")
        picks = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        chosen = self._view[picks]
        x = np.empty((len(picks), *self.views[0].shape[1:]), dtype=np.float32)
        for view in np.unique(chosen):
            where = chosen == view
            x[where] = self.views[int(view)][picks[where]]
        y = self.labels[picks]
        if self.class_weight is None:
            return x, y
        weights = np.array([self.class_weight.get(int(label), 1.0) for label in y], dtype=np.float32)
        return x, y, weights

    def on_epoch_end(self) -> None:
        """Advance the epoch counter; reshuffle and redraw the views."""
        self.epoch += 1
        self._set_epoch()

    def _set_epoch(self) -> None:
        n = len(self.rows)
        self._order = (epoch_order(self.rows, self.batch_size, seed=self.seed, epoch=self.epoch)
                       if self.shuffle else np.arange(n))
        self._view = (np.random.default_rng([self.seed, self.epoch, 1]).integers(len(self.views), size=n)
                      if len(self.views) > 1 else np.zeros(n, dtype=np.int64))
