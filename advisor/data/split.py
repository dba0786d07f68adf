"""The stratified train/val/test split, and the checks that the classes can be learned.

Each class is split on its own: its records are sorted by path and shuffled by
a generator seeded with ``(seed, crc32(class name))``, so the split depends
only on the seed and that class's file names, never on the other classes or
on the order the files were found. :func:`split_counts` says how many images
of a class go to each split (small classes still get a validation and a test
image); :func:`check_classes` raises the one-line
:class:`~advisor.errors.DatasetError` when fewer than two classes, or a class
with too few usable images, are left.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from advisor.data.records import SPLITS, ImageRecord, SkippedFile
from advisor.errors import DatasetError


def split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Return how many of a class's `n` images go to train, val and test.

    Each share is rounded half up; a class of at least 2 images gets a
    validation image and one of at least 3 a test image when the fraction is
    positive, and train always keeps at least one image.

    Args:
        n: Images in the class.
        val_fraction: Share put in ``val``.
        test_fraction: Share put in ``test``.

    Returns:
        ``(n_train, n_val, n_test)``, summing to `n`.

    Example:
        >>> split_counts(10, 0.15, 0.15)
        (6, 2, 2)
        >>> split_counts(2, 0.15, 0.15)
        (1, 1, 0)
    """
    n_val = math.floor(n * val_fraction + 0.5)
    n_test = math.floor(n * test_fraction + 0.5)
    if val_fraction > 0 and n_val == 0 and n >= 2:
        n_val = 1
    if test_fraction > 0 and n_test == 0 and n >= 3:
        n_test = 1
    while n - n_val - n_test < 1 and n_val + n_test > 0:
        if n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


def stratified_split(
    pool: Mapping[str, list[ImageRecord]],
    splits: dict[str, list[ImageRecord]],
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> None:
    """Split each class of `pool` into train, val and test, appending to `splits`.

    Classes are taken in sorted order; each is sorted by path, then shuffled by
    its own ``(seed, crc32(class name))`` generator and cut by
    :func:`split_counts`. `splits` may already hold records (the given splits
    of a pre-split folder); the new ones are appended.

    Args:
        pool: Records to split, by class name.
        splits: ``{"train": [...], "val": [...], "test": [...]}``, extended in place.
        seed: Seed of the split.
        val_fraction: Share of each class put in ``val``.
        test_fraction: Share of each class put in ``test``.

    Example:
        >>> from advisor.data.records import ImageRecord
        >>> pool = {"a": [ImageRecord(f"a/{i}.png", 0, 8, 8, "L", "PNG", str(i)) for i in range(10)]}
        >>> splits = {name: [] for name in SPLITS}
        >>> stratified_split(pool, splits, seed=0, val_fraction=0.2, test_fraction=0.2)
        >>> [len(splits[name]) for name in SPLITS]
        [6, 2, 2]
    """
    for class_name in sorted(pool):
        records = sorted(pool[class_name], key=lambda r: r.path)
        rng = np.random.default_rng([seed, zlib.crc32(class_name.encode("utf-8", "surrogateescape"))])
        order = rng.permutation(len(records))
        n_train, n_val, _ = split_counts(len(records), val_fraction, test_fraction)
        shuffled = [records[i] for i in order]
        splits["train"].extend(shuffled[:n_train])
        splits["val"].extend(shuffled[n_train : n_train + n_val])
        splits["test"].extend(shuffled[n_train + n_val :])


def check_classes(
    root: Path,
    class_names: tuple[str, ...],
    splits: Mapping[str, Sequence[ImageRecord]],
    skipped: Sequence[SkippedFile],
    min_per_class: int,
    presplit: bool,
) -> None:
    """Raise the one-line `DatasetError` when the classes cannot be learned.

    Args:
        root: The dataset folder (named in the message).
        class_names: Class names; record labels index into it.
        splits: The records of each split.
        skipped: Files left out (a too-small class's message counts its own).
        min_per_class: Usable images each class needs.
        presplit: Whether the folder is a ``<split>/<class>`` layout (for the
            folder named in the message).

    Raises:
        DatasetError: Fewer than 2 classes, or a class with fewer than
            `min_per_class` usable images (the first one is named, and up to 3 others).

    Example:
        >>> check_classes(Path("data"), ("cat",), {name: () for name in SPLITS}, (), 2, False)
        Traceback (most recent call last):
        ...
        advisor.errors.DatasetError: Found 1 class folder(s) (cat) in data; need at least 2. Put each class's images in its own sub-folder.
    """
    counts = Counter(r.label for name in SPLITS for r in splits[name])
    if len(class_names) < 2:
        only = f" ({class_names[0]})" if class_names else ""
        raise DatasetError(
            f"Found {len(class_names)} class folder(s){only} in {root}; need at least 2. "
            "Put each class's images in its own sub-folder."
        )
    small = [(name, counts.get(i, 0)) for i, name in enumerate(class_names) if counts.get(i, 0) < min_per_class]
    if small:
        name, n = small[0]
        skipped_here = sum(
            1 for s in skipped if name in Path(s.path).parts[: 2 if presplit else 1]
        )
        note = f" ({skipped_here} skipped, see the summary)" if skipped_here else ""
        where = f"{root}/<split>/{name}" if presplit else str(root / name)
        others = f"; also too small: {', '.join(n for n, _ in small[1:4])}" if len(small) > 1 else ""
        raise DatasetError(
            f"Class folder {where} has {n} usable image(s){note}; need at least "
            f"{min_per_class}. Add images or remove the folder{others}."
        )
