"""Feed decoded images to Keras as a backend-agnostic ``keras.utils.PyDataset``.

Batches come straight from the decode cache's memory map (no ``tf.data``, so
``KERAS_BACKEND=jax`` and ``torch`` work): uint8 NHWC images (the model
normalises in-graph) and int32 labels. Shuffling is deterministic: epoch ``e``
uses ``np.random.default_rng([seed, e])``. Optional augmentation is a Keras
model (see :func:`build_augmentation`) applied to float32 batches, whose result
is rounded back to uint8. Float labels (regression targets) are yielded as float32.

API:
    ImageBatches(images, labels, *, rows=None, batch_size=32, shuffle=False,
                 seed=DEFAULT_SEED, augmentation=None, class_weight=None,
                 **pydataset_kwargs)  -> keras.utils.PyDataset
    epoch_order(rows, batch_size, *, seed, epoch) -> np.ndarray
    build_augmentation(*, flip=False, translate=0.0, zoom=0.0, rotation=0.0,
                       seed=DEFAULT_SEED) -> keras.Sequential | None
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from advisor import config


class ImageBatches(keras.utils.PyDataset):
    """Batches of uint8 images and int32 labels (or float32 targets) read from a (memory-mapped) array.

    Each batch gathers its rows from `images`, so only one batch is in memory
    at a time. Batches yield rows in the order asked: the order of `rows`, or
    with `shuffle` an epoch's permutation whose batches each list their rows in
    ascending order. A batch is read (and augmented) in ascending row order, so
    reads from a memory map stay mostly sequential, then put back in that order.

    Args:
        images: ``(N, H, W, 3)`` uint8 array, typically ``DecodedImages.images``.
        labels: Integer labels, one per used row (aligned with `rows`, or with
            `images` when `rows` is `None`); floating-point values (regression
            targets) are kept as float32.
        rows: Rows of `images` to use, e.g. ``DecodedImages.rows`` (skips
            images that failed to decode). Defaults to `None` (all rows).
        batch_size: Images per batch; the last batch may be smaller.
            Defaults to `32`.
        shuffle: Reshuffle the order every epoch. Defaults to `False`.
        seed: Seed of the shuffle; epoch ``e`` uses
            ``np.random.default_rng([seed, e])``. Defaults to
            `config.DEFAULT_SEED`.
        augmentation: A Keras layer or model applied (with ``training=True``)
            to each float32 batch, e.g. from :func:`build_augmentation`.
            Defaults to `None` (no augmentation).
        class_weight: ``{label: weight}``; when given each batch is
            ``(images, labels, sample_weights)``. Defaults to `None`.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size``
            of :class:`keras.utils.PyDataset`. Keep ``workers=1`` when
            augmenting (Keras' random layers are not thread-safe).

    Raises:
        ValueError: Shapes, dtypes or arguments do not fit together.

    Example:
        >>> from advisor.data import decode_images, scan_dataset
        >>> ds = scan_dataset(digits_dir)
        >>> decoded = decode_images(ds.files("train"), backbone.image_size)
        >>> batches = ImageBatches(decoded.images, ds.labels("train"), rows=decoded.rows,
        ...                        batch_size=16, shuffle=True)
        >>> x, y = batches[0]
        >>> len(batches), x.shape, x.dtype, y.dtype
        (4, (16, 96, 96, 3), dtype('uint8'), dtype('int32'))
        >>> model = keras.Sequential([keras.Input((96, 96, 3)), keras.layers.Rescaling(1 / 255),
        ...                           keras.layers.GlobalAveragePooling2D(),
        ...                           keras.layers.Dense(10, activation="softmax")])
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> len(model.fit(batches, epochs=2, verbose=0).history["loss"])
        2
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        rows: np.ndarray | None = None,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = config.DEFAULT_SEED,
        augmentation: Any | None = None,
        class_weight: Mapping[int, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                "Expected images of shape (N, H, W, 3) and dtype uint8. "
                f"Received: shape={images.shape}, dtype={images.dtype}"
            )
        if batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1. Received: batch_size={batch_size}")
        rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
        labels = np.asarray(labels)
        labels = labels.astype(np.float32 if np.issubdtype(labels.dtype, np.floating) else np.int32)
        if rows.ndim != 1 or labels.shape != rows.shape:
            raise ValueError(
                "Expected one label per used image row. "
                f"Received: {len(labels)} labels for {len(rows)} rows"
            )
        if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
            raise ValueError(f"Expected rows in [0, {len(images)}). Received: rows outside it")
        self.images = images
        self.labels = labels
        self.rows = rows
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.augmentation = augmentation
        self.class_weight = dict(class_weight) if class_weight is not None else None
        self.epoch = 0
        self._order = self._make_order()

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getstate__(self) -> dict[str, Any]:
        # A pickled np.memmap carries all its bytes; send its file name instead
        # (PyDataset's use_multiprocessing may pickle the dataset).
        state = self.__dict__.copy()
        images = self.images
        if isinstance(images, np.memmap) and images.filename and images.base is not None:
            state["images"] = ("memmap", images.filename, images.offset, images.shape, images.dtype.str)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        images = state["images"]
        if isinstance(images, tuple) and images and images[0] == "memmap":
            _, filename, offset, shape, dtype = images
            state["images"] = np.memmap(filename, dtype=dtype, mode="r", offset=offset, shape=shape)
        self.__dict__.update(state)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range [0, {len(self)}).")
        picks = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        rows = self.rows[picks]
        ascending = np.argsort(rows, kind="stable")
        x_ascending = np.asarray(self.images[rows[ascending]])
        if self.augmentation is not None:
            x_ascending = self._augment(x_ascending)  # random draws in row order
        x = np.empty_like(x_ascending)
        x[ascending] = x_ascending
        y = self.labels[picks]
        if self.class_weight is None:
            return x, y
        weights = np.array([self.class_weight.get(int(label), 1.0) for label in y], dtype=np.float32)
        return x, y, weights

    def on_epoch_end(self) -> None:
        """Advance the epoch counter and reshuffle (when shuffling)."""
        self.epoch += 1
        if self.shuffle:
            self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.rows))
        return epoch_order(self.rows, self.batch_size, seed=self.seed, epoch=self.epoch)

    def _augment(self, x: np.ndarray) -> np.ndarray:
        out = self.augmentation(keras.ops.convert_to_tensor(x, dtype="float32"), training=True)
        out = keras.ops.convert_to_numpy(out)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def epoch_order(rows: np.ndarray, batch_size: int, *, seed: int, epoch: int) -> np.ndarray:
    """Return a shuffled epoch's order of positions in `rows`.

    A permutation drawn from ``np.random.default_rng([seed, epoch])``, whose
    batches each list their rows in ascending order (so reads from a memory map
    stay mostly sequential). :class:`ImageBatches` and the prefix-activation
    batches (:mod:`strategies.prefix_cache`) share it, so both paths see the
    same batches.

    Args:
        rows: The rows used, in order.
        batch_size: Positions per batch.
        seed: Seed of the shuffle.
        epoch: The epoch (0-based).

    Returns:
        A permutation of ``range(len(rows))``.

    Example:
        >>> epoch_order(np.array([5, 3, 9, 1]), 2, seed=0, epoch=0).tolist()
        [0, 2, 3, 1]
    """
    n = len(rows)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    for start in range(0, n, batch_size):
        batch = order[start : start + batch_size]
        order[start : start + batch_size] = batch[np.argsort(rows[batch], kind="stable")]
    return order


def build_augmentation(
    *,
    flip: bool = False,
    translate: float = 0.0,
    zoom: float = 0.0,
    rotation: float = 0.0,
    seed: int = config.DEFAULT_SEED,
) -> keras.Sequential | None:
    """Build the requested random augmentation as a Keras model (or nothing).

    Args:
        flip: Random horizontal flips. Defaults to `False`.
        translate: Largest shift, as a fraction of height and width.
            Defaults to `0.0` (none).
        zoom: Largest zoom in or out, as a fraction. Defaults to `0.0` (none).
        rotation: Largest rotation, as a fraction of a full turn.
            Defaults to `0.0` (none).
        seed: Seed of the layers. Defaults to `config.DEFAULT_SEED`.

    Returns:
        A :class:`keras.Sequential` of ``RandomFlip``/``RandomTranslation``/
        ``RandomRotation``/``RandomZoom`` layers, or `None` when nothing was
        requested.

    Raises:
        ValueError: A fraction is negative or 1 or more.

    Example:
        >>> aug = build_augmentation(flip=True, zoom=0.1, seed=0)
        >>> [layer.__class__.__name__ for layer in aug.layers]
        ['RandomFlip', 'RandomZoom']
    """
    for name, value in (("translate", translate), ("zoom", zoom), ("rotation", rotation)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"Expected 0 <= {name} < 1. Received: {name}={value}")
    layers: list[keras.layers.Layer] = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if translate:
        layers.append(keras.layers.RandomTranslation(translate, translate, fill_mode="reflect", seed=seed + 1))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="reflect", seed=seed + 2))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, zoom, fill_mode="reflect", seed=seed + 3))
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")
