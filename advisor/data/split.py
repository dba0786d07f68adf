"""The stratified train/val/test split, and the checks that the classes can be learned.

Each class is split on its own: its records are sorted by path, gathered into
groups of identical files (same SHA-256), and the groups are shuffled by a
generator seeded with ``(seed, crc32(class name))``, so the split depends only
on the seed and that class's files, never on the other classes or on the
order the files were found. Identical files share a split, so no copy of a
test image is trained on; a file whose copies carry different labels (a
conflict) is kept in ``train`` with all its copies. Without duplicates the
split is the plain per-class shuffle-and-cut. :func:`split_counts` says how
many images of a class go to each split (small classes still get a validation
and a test image); :func:`check_classes` raises the one-line
:class:`~advisor.errors.DatasetError` when fewer than two classes, or a class
with too few usable images, are left.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter, defaultdict
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

    Classes are taken in sorted order. Each is sorted by path and gathered into
    groups of identical files (ordered by their first path); the groups are
    shuffled by the class's own ``(seed, crc32(class name))`` generator. The
    shares of :func:`split_counts` (counted in images) are then filled from the
    end of the shuffled order: a group goes to ``test`` if it fits in what
    ``test`` still needs, else to ``val`` if it fits there, else to ``train``.
    So copies never straddle splits, ``val`` and ``test`` never exceed their
    share, and without duplicates this is the plain cut ``train | val | test``
    of the shuffled class. Files whose bytes also appear under another class
    (conflicting labels) all go to ``train``. `splits` may already hold
    records (the given splits of a pre-split folder); the new ones are
    appended, each split in shuffled order.

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
        >>> copies = {"a": [ImageRecord(f"a/{i}.png", 0, 8, 8, "L", "PNG", str(i // 2)) for i in range(10)]}
        >>> splits = {name: [] for name in SPLITS}
        >>> stratified_split(copies, splits, seed=0, val_fraction=0.2, test_fraction=0.2)
        >>> [sorted({r.sha256 for r in splits[name]}) for name in SPLITS]
        [['0', '1', '3'], ['2'], ['4']]
    """
    classes_of: dict[str, set[str]] = defaultdict(set)
    for class_name, records in pool.items():
        for r in records:
            classes_of[r.sha256].add(class_name)
    for class_name in sorted(pool):
        records = sorted(pool[class_name], key=lambda r: r.path)
        conflicting = [r for r in records if len(classes_of[r.sha256]) > 1]
        groups = _identical_groups([r for r in records if len(classes_of[r.sha256]) == 1])
        rng = np.random.default_rng([seed, zlib.crc32(class_name.encode("utf-8", "surrogateescape"))])
        order = rng.permutation(len(groups))
        _, n_val, n_test = split_counts(len(records), val_fraction, test_fraction)
        need = {"test": n_test, "val": n_val}
        target: dict[int, str] = {}
        for i in order[::-1]:  # the end of the shuffled order fills test, then val
            size = len(groups[i])
            target[i] = next((name for name in ("test", "val") if size <= need[name]), "train")
            if target[i] != "train":
                need[target[i]] -= size
        splits["train"].extend(conflicting)
        for i in order:
            splits[target[i]].extend(groups[i])


def _identical_groups(records: Sequence[ImageRecord]) -> list[list[ImageRecord]]:
    """Records gathered by SHA-256, each group in the order given, groups by their first record."""
    groups: dict[str, list[ImageRecord]] = {}
    for r in records:
        groups.setdefault(r.sha256, []).append(r)
    return list(groups.values())


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
