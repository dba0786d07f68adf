"""What a strategy is fitted on: labelled uint8 images, checked before any work.

- :class:`LabelledImages`: uint8 images (usually the decode cache's memory map),
  the rows used and their labels (and regression targets).
- :func:`check_inputs`: one-line :class:`~advisor.errors.DatasetError` when the
  images do not fit the plan.
- :class:`NotFittedError`: a strategy was used before ``fit``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from advisor.errors import DatasetError
from advisor.plan import Task
from strategies.batches import ImageBatches


class NotFittedError(ValueError, AttributeError):
    """A strategy was used before ``fit`` (as scikit-learn's ``NotFittedError``)."""


@dataclass(frozen=True, slots=True, eq=False)
class LabelledImages:
    """Labelled images: the rows of a uint8 image array that are used, and their labels.

    Args:
        images: ``(N, S, S, 3)`` uint8 array, typically ``DecodedImages.images``
            (a read-only memory map).
        labels: Integer labels, one per entry of `rows`.
        rows: Rows of `images` that are used, e.g. ``DecodedImages.rows``.
            Defaults to `None` (every row).
        key: Names the images in the embedding cache when they are not a
            memory map. Defaults to `None`.
        targets: Numeric regression targets, one per entry of `rows` (then
            `labels` are their quantile bins). Defaults to `None`.

    Raises:
        DatasetError: Shapes, dtypes or lengths do not fit together.

    Example:
        >>> from advisor.data import decode_images, scan_dataset
        >>> ds = scan_dataset(digits_dir)
        >>> decoded = decode_images(ds.files("train"), backbone.image_size)
        >>> train = LabelledImages(decoded.images, ds.labels("train"), decoded.rows)
        >>> len(train), train.image_size, train.labels.dtype
        (60, 96, dtype('int32'))
        >>> LabelledImages(decoded.images, ds.labels("train")[:10], decoded.rows)
        Traceback (most recent call last):
            ...
        advisor.errors.DatasetError: Expected one label per used row. Received: 10 labels for 60 rows
    """

    images: np.ndarray
    labels: np.ndarray
    rows: np.ndarray | None = None
    key: str | None = None
    targets: np.ndarray | None = None

    def __post_init__(self) -> None:
        images = self.images
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DatasetError(
                "Expected images of shape (N, S, S, 3) and dtype uint8. "
                f"Received: shape={images.shape}, dtype={images.dtype}")
        rows = (np.arange(len(images), dtype=np.int64) if self.rows is None
                else np.asarray(self.rows, dtype=np.int64))
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or rows.ndim != 1 or len(labels) != len(rows):
            raise DatasetError(
                f"Expected one label per used row. Received: {len(labels)} labels for "
                f"{len(rows)} rows")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DatasetError(f"Expected integer labels. Received: dtype={labels.dtype}")
        if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
            raise DatasetError(f"Expected rows in [0, {len(images)}). Received: rows outside it")
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "labels", labels.astype(np.int32))
        if self.targets is not None:
            targets = np.asarray(self.targets, dtype=np.float64)
            if targets.shape != labels.shape or not np.isfinite(targets).all():
                raise DatasetError(
                    f"Expected one finite target per used row. Received: {targets.size} targets "
                    f"for {len(rows)} rows, {int((~np.isfinite(targets)).sum())} not finite")
            object.__setattr__(self, "targets", targets)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def image_size(self) -> int:
        """Height (= width) of the images."""
        return int(self.images.shape[1])

    def batches(self, *, batch_size: int, shuffle: bool = False, seed: int = 0,
                augmentation: Any | None = None,
                class_weight: Mapping[int, float] | None = None,
                outputs: np.ndarray | None = None) -> ImageBatches:
        """Return a :class:`~strategies.batches.ImageBatches` over these images.

        Args:
            batch_size: Images per batch.
            shuffle: Reshuffle every epoch. Defaults to `False`.
            seed: Shuffle seed. Defaults to `0`.
            augmentation: Keras augmentation model. Defaults to `None`.
            class_weight: ``{label: weight}``. Defaults to `None`.
            outputs: What the batches yield instead of the labels, one value per
                row (e.g. standardised regression targets). Defaults to `None`.

        Example:
            >>> from advisor.data import decode_images, scan_dataset
            >>> ds = scan_dataset(digits_dir)
            >>> decoded = decode_images(ds.files("train"), backbone.image_size)
            >>> train = LabelledImages(decoded.images, ds.labels("train"), decoded.rows)
            >>> batches = train.batches(batch_size=32, shuffle=True)
            >>> len(batches), batches[0][0].shape, batches[1][1].shape  # 60 images: 32 + 28
            (2, (32, 96, 96, 3), (28,))
        """
        y = self.labels if outputs is None else outputs
        return ImageBatches(self.images, y, rows=self.rows, batch_size=batch_size,
                            shuffle=shuffle, seed=seed, augmentation=augmentation,
                            class_weight=class_weight)


def check_inputs(train: LabelledImages, val: LabelledImages, class_names: Sequence[str],
                 image_size: int, *, task: Task = Task.CLASSIFICATION) -> None:
    """Raise a one-line :class:`DatasetError` if the inputs cannot be fitted.

    Args:
        train: Training images.
        val: Validation images (early stopping, the probe guard).
        class_names: One name per class; labels index it (for regression:
            the targets' quantile bins).
        image_size: The size the model takes (``plan.input_size``: its image size, or its
            ``decode_size`` when it decodes natively and resizes inside).
        task: The plan's task; regression needs ``targets`` and not every
            bin in the training split. Defaults to `Task.CLASSIFICATION`.

    Raises:
        DatasetError: Wrong size, empty split, labels out of range, a class
            missing from the training split, or regression images without targets.

    Example:
        >>> from advisor.data import decode_dataset, scan_dataset
        >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
        >>> train, val = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
        ...               for s in ("train", "val"))
        >>> check_inputs(train, val, ds.class_names, backbone.image_size)  # fits: returns None
        >>> check_inputs(train, val, ds.class_names, 224)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        advisor.errors.DatasetError: The plan's image_size is 224 but the train images are 96x96; ...
    """
    n_classes = len(class_names)
    regression = task is Task.REGRESSION
    if n_classes < (1 if regression else 2):
        raise DatasetError(f"Expected at least 2 classes. Received: class_names={list(class_names)}")
    for name, data in (("train", train), ("val", val)):
        if data.image_size != image_size:
            raise DatasetError(
                f"The plan's image_size is {image_size} but the {name} images are "
                f"{data.image_size}x{data.image_size}; decode them at {image_size}.")
        if len(data) == 0:
            raise DatasetError(f"The {name} split is empty; it needs at least one image.")
        if data.labels.min() < 0 or data.labels.max() >= n_classes:
            raise DatasetError(
                f"{name} labels must lie in [0, {n_classes}) for {n_classes} class names. "
                f"Received: labels in [{data.labels.min()}, {data.labels.max()}]")
        if regression and data.targets is None:
            raise DatasetError(
                f"The plan is a regression but the {name} images have no targets; "
                "pass the dataset's targets (--targets).")
    if regression:
        return
    missing = sorted(set(range(n_classes)) - set(np.unique(train.labels).tolist()))
    if missing:
        names = ", ".join(str(class_names[i]) for i in missing)
        raise DatasetError(f"Classes without a training image: {names}. Add images or drop them.")
