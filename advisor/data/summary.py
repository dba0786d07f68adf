"""Summarise a split dataset: class counts, imbalance, sizes, modes, formats, duplicates.

:func:`summarize` turns the records of the three splits, and the files the
scan left out, into the :class:`~advisor.data.records.DatasetSummary` that
reports show and the advisor decides from. It only counts: the same records
give the same summary, whatever order they come in.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from advisor.data.records import (
    SPLITS,
    DatasetSummary,
    DuplicateGroup,
    ImageRecord,
    SizeStats,
    SkippedFile,
)


def summarize(
    root: Path,
    class_names: tuple[str, ...],
    splits: Mapping[str, Sequence[ImageRecord]],
    *,
    skipped: Iterable[SkippedFile],
    ignored: Iterable[str],
    presplit: bool,
    given_splits: tuple[str, ...],
    seed: int,
) -> DatasetSummary:
    """Return the summary of a split dataset.

    Duplicates are groups of records with the same SHA-256, ordered by their
    first path; skipped files and ignored names are de-duplicated and sorted.
    The imbalance ratio is infinite when a class has no image.

    Args:
        root: The dataset folder.
        class_names: Class names; record labels index into it.
        splits: The records of each of :data:`~advisor.data.records.SPLITS`.
        skipped: Files left out, with reasons.
        ignored: Files that are not images by their extension.
        presplit: Whether the folder came split into train/val/test folders.
        given_splits: The splits read from folders.
        seed: Seed of the split.

    Returns:
        The :class:`~advisor.data.records.DatasetSummary`.

    Example:
        >>> from advisor.data.records import ImageRecord
        >>> rec = [ImageRecord(f"{c}/{i}.png", l, 8, 8, "L", "PNG", f"{c}{i}")
        ...        for l, c in enumerate("ab") for i in range(3)]
        >>> s = summarize(Path("data"), ("a", "b"), {"train": rec, "val": [], "test": []},
        ...               skipped=(), ignored=(), presplit=False, given_splits=(), seed=0)
        >>> s.n_images, s.class_counts, s.imbalance_ratio
        (6, {'a': 3, 'b': 3}, 1.0)
    """
    records = [(name, r) for name in SPLITS for r in splits[name]]
    counts = Counter(r.label for _, r in records)
    class_counts = {name: counts.get(i, 0) for i, name in enumerate(class_names)}
    smallest = min(class_counts.values()) if class_counts else 0
    imbalance = max(class_counts.values()) / smallest if smallest else math.inf
    widths = np.array([r.width for _, r in records] or [0])
    heights = np.array([r.height for _, r in records] or [0])
    return DatasetSummary(
        root=str(root),
        n_images=len(records),
        n_classes=len(class_names),
        class_counts=class_counts,
        imbalance_ratio=float(imbalance),
        split_sizes={name: len(splits[name]) for name in SPLITS},
        presplit=presplit,
        given_splits=tuple(given_splits),
        seed=seed,
        width=SizeStats(int(widths.min()), float(np.median(widths)), int(widths.max())),
        height=SizeStats(int(heights.min()), float(np.median(heights)), int(heights.max())),
        modes=dict(sorted(Counter(r.mode for _, r in records).items())),
        formats=dict(sorted(Counter(r.format for _, r in records).items())),
        skipped=tuple(sorted(set(skipped), key=lambda s: s.path)),
        ignored=tuple(sorted(set(ignored))),
        duplicates=_duplicates(class_names, records),
    )


def _duplicates(
    class_names: tuple[str, ...], records: list[tuple[str, ImageRecord]]
) -> tuple[DuplicateGroup, ...]:
    """Groups of (split, record) pairs with the same bytes, ordered by their first path."""
    by_digest: dict[str, list[tuple[str, ImageRecord]]] = defaultdict(list)
    for split_name, r in records:
        by_digest[r.sha256].append((split_name, r))
    return tuple(
        DuplicateGroup(
            sha256=digest,
            paths=tuple(sorted(r.path for _, r in group)),
            classes=tuple(sorted({class_names[r.label] for _, r in group})),
            splits=tuple(sorted({s for s, _ in group})),
        )
        for digest, group in sorted(by_digest.items(), key=lambda kv: min(r.path for _, r in kv[1]))
        if len(group) > 1
    )
