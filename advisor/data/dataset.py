"""Scan, validate and split a folder of labelled images.

The folder is only ever read. Two layouts are understood:

- ``DATA_DIR/<class>/<image>`` (what ``keras.utils.image_dataset_from_directory``
  expects; images may sit in sub-folders of a class folder), split here into
  stratified train/val/test sets with a fixed, reported seed;
- ``DATA_DIR/{train,val,test}/<class>/<image>`` (pre-split): the given splits
  are used as they are; a missing ``val`` (or ``test``) split is carved from
  ``train``, stratified.

Each candidate file is opened once: its header gives size and mode (PNGs also
get their chunk checksums verified) and its bytes are hashed to find exact
duplicates. Files that cannot be used (empty, not an image, decompression
bombs, unreadable, broken or looping symlinks, ...) are skipped and listed with
a reason in the :class:`DatasetSummary`; they are never fatal. Files that only
fail when fully decoded (e.g. truncated JPEGs) are dropped later with
:meth:`Dataset.drop_failed` (``advisor.data.decode_cache.decode_dataset`` does it).
A one-line :class:`~advisor.errors.DatasetError` is raised only when nothing
useful is left.

API:
    SPLITS = ("train", "val", "test")
    scan_dataset(data_dir, *, seed=DEFAULT_SEED, val_fraction=DEFAULT_VAL_FRACTION,
                 test_fraction=DEFAULT_TEST_FRACTION,
                 min_per_class=MIN_IMAGES_PER_CLASS, progress=False) -> Dataset
    Dataset (frozen): root, class_names, train, val, test, summary, presplit,
        given_splits, seed, val_fraction, test_fraction
        .records(split) / .files(split) / .labels(split)
        .is_regression / .targets(split)  (datasets read with advisor.data.targets.scan_targets)
        .drop_failed(failures, *, min_per_class=...) -> Dataset
        .to_dict() / Dataset.from_dict(d) / .save_split(path) / Dataset.load_split(path)
    DatasetSummary, ImageRecord, SizeStats, SkippedFile, DuplicateGroup (frozen,
        each with to_dict/from_dict)
"""

from __future__ import annotations

import concurrent.futures as futures
import errno
import hashlib
import json
import logging
import math
import multiprocessing
import os
import stat
import struct
import warnings
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from advisor import config
from advisor.cache import atomic_write_text
from advisor.environment import usable_cores
from advisor.errors import DatasetError
from advisor.progress import progress_bar

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_ORIENTATION_TAG = 0x0112
_SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- #
# Records and summary
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One usable image: where it is, its label, and what its header said.

    Args:
        path: Path relative to the dataset root, with ``/`` separators.
        label: Index into ``Dataset.class_names``.
        width: Width in pixels, after EXIF orientation.
        height: Height in pixels, after EXIF orientation.
        mode: Pillow mode of the file (``"RGB"``, ``"L"``, ``"P"``, ``"I;16"``...).
        format: Pillow format name (``"JPEG"``, ``"PNG"``...).
        sha256: Hex digest of the file's bytes.
        target: The numeric target of a regression dataset (``--targets``;
            `label` is then its quantile bin), or `None`. Defaults to `None`.
    """

    path: str
    label: int
    width: int
    height: int
    mode: str
    format: str
    sha256: str
    target: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``target`` only for regression records)."""
        data = {
            "path": self.path,
            "label": self.label,
            "width": self.width,
            "height": self.height,
            "mode": self.mode,
            "format": self.format,
            "sha256": self.sha256,
        }
        if self.target is not None:
            data["target"] = self.target
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageRecord:
        """Rebuild a record from :meth:`to_dict` output."""
        return cls(
            path=str(data["path"]),
            label=int(data["label"]),
            width=int(data["width"]),
            height=int(data["height"]),
            mode=str(data["mode"]),
            format=str(data["format"]),
            sha256=str(data["sha256"]),
            target=None if data.get("target") is None else float(data["target"]),
        )


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file (or folder) that was left out, and why.

    Args:
        path: Path relative to the dataset root, with ``/`` separators.
        reason: One line saying why, e.g. ``"empty file (0 bytes)"``.
    """

    path: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"path": self.path, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkippedFile:
        """Rebuild from :meth:`to_dict` output."""
        return cls(path=str(data["path"]), reason=str(data["reason"]))


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Files with exactly the same bytes.

    Args:
        sha256: Hex digest shared by the files.
        paths: The files, relative to the dataset root, sorted.
        classes: Class names the files are labelled with, sorted. More than one
            means the same image carries conflicting labels.
        splits: Splits the files ended up in, sorted. More than one means
            train/test leakage.
    """

    sha256: str
    paths: tuple[str, ...]
    classes: tuple[str, ...]
    splits: tuple[str, ...]

    @property
    def cross_class(self) -> bool:
        """Whether the copies are filed under different classes."""
        return len(self.classes) > 1

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "sha256": self.sha256,
            "paths": list(self.paths),
            "classes": list(self.classes),
            "splits": list(self.splits),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DuplicateGroup:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            sha256=str(data["sha256"]),
            paths=tuple(str(p) for p in data["paths"]),
            classes=tuple(str(c) for c in data["classes"]),
            splits=tuple(str(s) for s in data["splits"]),
        )


@dataclass(frozen=True, slots=True)
class SizeStats:
    """Minimum, median and maximum of one image dimension, in pixels."""

    min: int
    median: float
    max: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"min": self.min, "median": self.median, "max": self.max}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SizeStats:
        """Rebuild from :meth:`to_dict` output."""
        return cls(min=int(data["min"]), median=float(data["median"]), max=int(data["max"]))


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """What a scan found, for reports and for deciding how to fine-tune.

    Args:
        root: The dataset folder, as given.
        n_images: Usable images, all splits together.
        n_classes: Number of classes.
        class_counts: Usable images per class name (all splits).
        imbalance_ratio: Largest class count divided by the smallest.
        split_sizes: Images per split (``"train"``, ``"val"``, ``"test"``).
        presplit: Whether the folder came split into train/val/test folders.
        given_splits: The splits read from folders (empty when not pre-split);
            the others were carved here.
        seed: Seed of the split.
        width: Width distribution (after EXIF orientation).
        height: Height distribution (after EXIF orientation).
        modes: Files per Pillow mode (``"RGB"``, ``"L"``, ``"CMYK"``...).
        formats: Files per format (``"JPEG"``, ``"PNG"``...).
        skipped: Files left out, with reasons, sorted by path.
        ignored: Files that are not images by their extension, sorted (hidden
            files and folders are not listed).
        duplicates: Groups of files with identical bytes.
        schema_version: Version of this layout. Defaults to `1`.
    """

    root: str
    n_images: int
    n_classes: int
    class_counts: dict[str, int]
    imbalance_ratio: float
    split_sizes: dict[str, int]
    presplit: bool
    given_splits: tuple[str, ...]
    seed: int
    width: SizeStats
    height: SizeStats
    modes: dict[str, int]
    formats: dict[str, int]
    skipped: tuple[SkippedFile, ...]
    ignored: tuple[str, ...]
    duplicates: tuple[DuplicateGroup, ...]
    schema_version: int = _SCHEMA_VERSION

    @property
    def n_duplicate_files(self) -> int:
        """Files that are exact copies of an earlier file (group size - 1, summed)."""
        return sum(len(group.paths) - 1 for group in self.duplicates)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``json.dumps(..., sort_keys=True)`` round-trips).

        Example:
            >>> summary = scan_dataset(Path("data")).summary  # doctest: +SKIP
            >>> DatasetSummary.from_dict(summary.to_dict()) == summary  # doctest: +SKIP
            True
        """
        return {
            "root": self.root,
            "n_images": self.n_images,
            "n_classes": self.n_classes,
            "class_counts": dict(self.class_counts),
            "imbalance_ratio": self.imbalance_ratio,
            "split_sizes": dict(self.split_sizes),
            "presplit": self.presplit,
            "given_splits": list(self.given_splits),
            "seed": self.seed,
            "width": self.width.to_dict(),
            "height": self.height.to_dict(),
            "modes": dict(self.modes),
            "formats": dict(self.formats),
            "skipped": [s.to_dict() for s in self.skipped],
            "ignored": list(self.ignored),
            "duplicates": [d.to_dict() for d in self.duplicates],
            "schema_version": self.schema_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSummary:
        """Rebuild a summary from :meth:`to_dict` output.

        Raises:
            DatasetError: `data` is not a summary of this schema version.
        """
        version = int(data.get("schema_version", -1))
        if version != _SCHEMA_VERSION:
            raise DatasetError(
                f"Dataset summary has schema_version={version}; expected "
                f"{_SCHEMA_VERSION}. Re-scan the dataset."
            )
        return cls(
            root=str(data["root"]),
            n_images=int(data["n_images"]),
            n_classes=int(data["n_classes"]),
            class_counts={str(k): int(v) for k, v in data["class_counts"].items()},
            imbalance_ratio=float(data["imbalance_ratio"]),
            split_sizes={str(k): int(v) for k, v in data["split_sizes"].items()},
            presplit=bool(data["presplit"]),
            given_splits=tuple(str(s) for s in data["given_splits"]),
            seed=int(data["seed"]),
            width=SizeStats.from_dict(data["width"]),
            height=SizeStats.from_dict(data["height"]),
            modes={str(k): int(v) for k, v in data["modes"].items()},
            formats={str(k): int(v) for k, v in data["formats"].items()},
            skipped=tuple(SkippedFile.from_dict(s) for s in data["skipped"]),
            ignored=tuple(str(p) for p in data["ignored"]),
            duplicates=tuple(DuplicateGroup.from_dict(d) for d in data["duplicates"]),
            schema_version=version,
        )


# --------------------------------------------------------------------------- #
# Dataset
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, slots=True)
class Dataset:
    """A scanned, validated and split dataset folder.

    Build it with :func:`scan_dataset` or :meth:`load_split`.

    Args:
        root: The dataset folder.
        class_names: Class folder names, sorted; labels index into it.
        train: Training images.
        val: Validation images.
        test: Test images.
        summary: What the scan found.
        presplit: Whether the folder came split into train/val/test folders.
        given_splits: Splits read from folders (the others were carved here).
        seed: Seed of the split.
        val_fraction: Fraction of each class put in ``val`` (when carved).
        test_fraction: Fraction of each class put in ``test`` (when carved).
        target_name: Name of the numeric target of a regression dataset (read
            with :func:`advisor.data.targets.scan_targets`), or `None` for classes.
            Its `class_names` are then quantile bins of the target.
        targets_file: The CSV the targets were read from, or `None`.
    """

    root: Path
    class_names: tuple[str, ...]
    train: tuple[ImageRecord, ...]
    val: tuple[ImageRecord, ...]
    test: tuple[ImageRecord, ...]
    summary: DatasetSummary
    presplit: bool = False
    given_splits: tuple[str, ...] = ()
    seed: int = config.DEFAULT_SEED
    val_fraction: float = config.DEFAULT_VAL_FRACTION
    test_fraction: float = config.DEFAULT_TEST_FRACTION
    target_name: str | None = None
    targets_file: str | None = None

    @property
    def is_regression(self) -> bool:
        """Whether the images carry numeric targets (``--targets``) instead of classes."""
        return self.target_name is not None

    def targets(self, split: str) -> np.ndarray:
        """Return one split's numeric targets (regression datasets only).

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            A ``float64`` array aligned with :meth:`files`.

        Raises:
            DatasetError: The dataset has classes, not targets.

        Example:
            >>> scan_targets(Path("photos"), Path("t.csv")).targets("test").dtype  # doctest: +SKIP
            dtype('float64')
        """
        if not self.is_regression:
            raise DatasetError(
                f"Dataset {self.root} has classes, not numeric targets; pass --targets to read some.")
        return np.fromiter((r.target for r in self.records(split)), dtype=np.float64)

    def records(self, split: str) -> tuple[ImageRecord, ...]:
        """Return the records of one split.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            The split's records, sorted by path.

        Raises:
            ValueError: `split` is not one of the three names.

        Example:
            >>> ds = scan_dataset(Path("data"))  # doctest: +SKIP
            >>> len(ds.records("train")) == ds.summary.split_sizes["train"]  # doctest: +SKIP
            True
        """
        if split not in SPLITS:
            raise ValueError(f"Expected split to be one of {SPLITS}. Received: split={split!r}")
        return getattr(self, split)

    def files(self, split: str) -> list[Path]:
        """Return the absolute-or-as-given paths of one split's images.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            ``root / record.path`` for each record, in record order.

        Example:
            >>> scan_dataset(Path("data")).files("val")[:1]  # doctest: +SKIP
            [PosixPath('data/cat/001.jpg')]
        """
        return [self.root / record.path for record in self.records(split)]

    def labels(self, split: str) -> np.ndarray:
        """Return one split's integer labels.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            An ``int32`` array aligned with :meth:`files`.

        Example:
            >>> scan_dataset(Path("data")).labels("train").dtype  # doctest: +SKIP
            dtype('int32')
        """
        return np.fromiter((r.label for r in self.records(split)), dtype=np.int32)

    def drop_failed(
        self,
        failures: Iterable[tuple[Path | str, str]],
        *,
        min_per_class: int = config.MIN_IMAGES_PER_CLASS,
    ) -> Dataset:
        """Return a copy without files that failed to decode, listing them as skipped.

        The split of every other file is unchanged, so arrays decoded in the
        old order stay valid once their failed rows are dropped.

        Args:
            failures: ``(path, reason)`` pairs; paths may be absolute (under
                ``root``) or relative to it.
            min_per_class: Usable images a class needs. Defaults to
                `config.MIN_IMAGES_PER_CLASS`.

        Returns:
            The new dataset (``self`` when there is nothing to drop).

        Raises:
            DatasetError: Dropping the files leaves a class too small.

        Example:
            >>> ds = ds.drop_failed([("cat/bad.jpg", "cannot decode")])  # doctest: +SKIP
        """
        reasons = {self._relative(path): reason for path, reason in failures}
        if not reasons:
            return self
        splits = {
            name: tuple(r for r in self.records(name) if r.path not in reasons) for name in SPLITS
        }
        skipped = list(self.summary.skipped) + [SkippedFile(p, r) for p, r in reasons.items()]
        if self.is_regression:
            _check_target_rows(self, splits, len(reasons))
        else:
            _check_classes(self.root, self.class_names, splits, skipped, min_per_class, self.presplit)
        summary = _summarize(
            self.root,
            self.class_names,
            splits,
            skipped=skipped,
            ignored=self.summary.ignored,
            presplit=self.presplit,
            given_splits=self.given_splits,
            seed=self.seed,
        )
        return replace(self, summary=summary, **splits)

    def _relative(self, path: Path | str) -> str:
        path = Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            if path.is_absolute():
                return Path(os.path.relpath(path, self.root.absolute())).as_posix()
            return path.as_posix()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict holding the full split (file lists and labels).

        Example:
            >>> d = scan_dataset(Path("data")).to_dict()  # doctest: +SKIP
            >>> Dataset.from_dict(d).class_names == tuple(d["class_names"])  # doctest: +SKIP
            True
        """
        return {
            "schema_version": _SCHEMA_VERSION,
            "root": str(self.root),
            "class_names": list(self.class_names),
            "splits": {
                name: [_record_row(r) for r in self.records(name)] for name in SPLITS
            },
            "summary": self.summary.to_dict(),
            "presplit": self.presplit,
            "given_splits": list(self.given_splits),
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
        } | ({"target_name": self.target_name, "targets_file": self.targets_file}
             if self.is_regression else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dataset:
        """Rebuild a dataset from :meth:`to_dict` output.

        Raises:
            DatasetError: `data` is not a saved split of this schema version.
        """
        version = int(data.get("schema_version", -1))
        if version != _SCHEMA_VERSION:
            raise DatasetError(
                f"Saved split has schema_version={version}; expected {_SCHEMA_VERSION}. "
                "Re-scan the dataset."
            )
        splits = {
            name: tuple(_record_from_row(row) for row in data["splits"][name]) for name in SPLITS
        }
        return cls(
            root=Path(data["root"]),
            class_names=tuple(str(c) for c in data["class_names"]),
            summary=DatasetSummary.from_dict(data["summary"]),
            presplit=bool(data["presplit"]),
            given_splits=tuple(str(s) for s in data["given_splits"]),
            seed=int(data["seed"]),
            val_fraction=float(data["val_fraction"]),
            test_fraction=float(data["test_fraction"]),
            target_name=None if data.get("target_name") is None else str(data["target_name"]),
            targets_file=None if data.get("targets_file") is None else str(data["targets_file"]),
            **splits,
        )

    def save_split(self, path: Path | str) -> Path:
        """Write the split (file lists, labels, summary) as JSON, atomically.

        Args:
            path: Destination ``.json`` file (never inside the dataset folder
                unless you put it there).

        Returns:
            `path` as a :class:`~pathlib.Path`.

        Example:
            >>> ds.save_split("runs/split.json")  # doctest: +SKIP
            PosixPath('runs/split.json')
        """
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), sort_keys=True, indent=1))
        return path

    @classmethod
    def load_split(cls, path: Path | str) -> Dataset:
        """Read a split written by :meth:`save_split`.

        Args:
            path: The ``.json`` file.

        Returns:
            The dataset, with exactly the saved file lists.

        Raises:
            DatasetError: The file is missing, not JSON, or not a saved split.

        Example:
            >>> Dataset.load_split("runs/split.json").seed  # doctest: +SKIP
            1337
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except DatasetError:
            raise
        except FileNotFoundError:
            raise DatasetError(f"Split file {path} does not exist; save one with save_split.") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DatasetError(
                f"Split file {path} is not a saved split ({type(exc).__name__}: {exc}); "
                "delete it and re-scan."
            ) from None


def _record_row(r: ImageRecord) -> list[Any]:
    row = [r.path, r.label, r.width, r.height, r.mode, r.format, r.sha256]
    return row if r.target is None else row + [r.target]


def _record_from_row(row: list[Any]) -> ImageRecord:
    path, label, width, height, mode, fmt, sha, *target = row
    return ImageRecord(str(path), int(label), int(width), int(height), str(mode), str(fmt), str(sha),
                       float(target[0]) if target else None)


def _check_target_rows(dataset: Dataset, splits: Mapping[str, tuple[ImageRecord, ...]],
                       dropped: int) -> None:
    """Raise the one-line DatasetError when too few regression rows are left."""
    n = sum(len(splits[name]) for name in SPLITS)
    if n < config.MIN_TARGET_ROWS or not splits["train"] or not splits["val"]:
        raise DatasetError(
            f"Only {n} image(s) listed in {dataset.targets_file} can be used ({dropped} failed to "
            f"decode, see the summary); need at least {config.MIN_TARGET_ROWS}. Fix or add images.")


# --------------------------------------------------------------------------- #
# Scanning
# --------------------------------------------------------------------------- #
@dataclass
class _Walk:
    """Mutable accumulator of one scan (private)."""

    root: Path
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    seen_dirs: set[tuple[int, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.prefix = os.path.join(str(self.root), "")

    def rel(self, path: Path | str) -> str:
        """Path relative to the root with ``/`` separators (string slicing: fast)."""
        text = str(path)
        if text.startswith(self.prefix):
            text = text[len(self.prefix) :]
        return text.replace(os.sep, "/") if os.sep != "/" else text


def scan_dataset(
    data_dir: Path | str,
    *,
    seed: int = config.DEFAULT_SEED,
    val_fraction: float = config.DEFAULT_VAL_FRACTION,
    test_fraction: float = config.DEFAULT_TEST_FRACTION,
    min_per_class: int = config.MIN_IMAGES_PER_CLASS,
    progress: bool = False,
) -> Dataset:
    """Scan a dataset folder, skip unusable files, and split it.

    Reads ``data_dir/<class>/<image>`` (or the pre-split
    ``data_dir/{train,val,test}/<class>/<image>``) without writing anything to
    it. Every candidate file is opened once: the header gives its size and
    mode, and its bytes are hashed to find exact duplicates. Hidden files and
    folders are ignored; files without an image extension
    (``config.IMAGE_EXTENSIONS``) are listed in ``summary.ignored``; files that
    cannot be used are listed in ``summary.skipped`` with a reason. The split
    is stratified per class and depends only on `seed` and each class's file
    names; classes with at least 2 images always get a validation image, and
    classes with at least 3 a test image when `test_fraction` > 0.

    Args:
        data_dir: The dataset folder.
        seed: Seed of the split. Defaults to `config.DEFAULT_SEED`.
        val_fraction: Share of each class put in ``val``. Defaults to
            `config.DEFAULT_VAL_FRACTION`.
        test_fraction: Share of each class put in ``test``. Defaults to
            `config.DEFAULT_TEST_FRACTION`.
        min_per_class: Usable images each class needs. Defaults to
            `config.MIN_IMAGES_PER_CLASS`.
        progress: Show a progress bar on stderr for long scans. Defaults to
            `False`.

    Returns:
        A :class:`Dataset`.

    Raises:
        DatasetError: `data_dir` is missing or not a folder, holds no usable
            images, fewer than 2 classes, or a class with fewer than
            `min_per_class` usable images.
        ValueError: The fractions are not in ``[0, 1)`` or sum to 1 or more.

    Example:
        >>> ds = scan_dataset(Path("data"), seed=0)  # doctest: +SKIP
        >>> ds.summary.n_classes, ds.summary.split_sizes  # doctest: +SKIP
        (10, {'test': 270, 'train': 1257, 'val': 270})
    """
    if min_per_class < 1:
        raise ValueError(f"Expected min_per_class >= 1. Received: min_per_class={min_per_class}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            "Expected 0 <= val_fraction, test_fraction and val_fraction + test_fraction < 1. "
            f"Received: val_fraction={val_fraction}, test_fraction={test_fraction}"
        )
    root = Path(data_dir)
    if not root.exists():
        raise DatasetError(
            f"Dataset folder {root} does not exist; pass a folder with one sub-folder per class."
        )
    if not root.is_dir():
        raise DatasetError(
            f"Expected a folder with one sub-folder per class; {root} is a file."
        )
    walk = _Walk(root)
    try:
        walk.seen_dirs.add(_dir_key(root.stat()))
    except OSError as exc:
        raise DatasetError(f"Dataset folder {root} cannot be read ({exc.strerror}).") from None
    top_dirs, top_files = _list_dir(walk, root)
    if top_dirs is None:
        raise DatasetError(
            f"Dataset folder {root} cannot be listed (permission denied); make it readable."
        )
    presplit_dirs = _presplit_folders(walk, top_dirs)
    # (split or None, class name, class folder) for every class folder.
    class_dirs: list[tuple[str | None, str, Path]] = []
    if presplit_dirs is not None:
        given = tuple(s for s in SPLITS if s in presplit_dirs)
        walk.ignored.extend(rel for _, rel in top_files)
        for split_name in given:
            sub_dirs, sub_files = _list_dir(walk, presplit_dirs[split_name])
            walk.ignored.extend(rel for _, rel in sub_files)
            for d in sub_dirs or []:
                class_dirs.append((split_name, d.name, d))
    else:
        given = ()
        loose_images = [rel for _, rel in top_files if _is_image_name(rel)]
        walk.ignored.extend(rel for _, rel in top_files)
        if not top_dirs:
            if loose_images:
                raise DatasetError(
                    f"Found {len(loose_images)} image(s) directly in {root} but no class "
                    "sub-folders; move each class's images into its own sub-folder."
                )
            raise DatasetError(
                f"No images found in {root}; expected {root}/<class>/<image> with extensions "
                f"{', '.join(sorted(config.IMAGE_EXTENSIONS))}."
            )
        for d in top_dirs:
            class_dirs.append((None, d.name, d))

    # Candidates: (split or None, class, full path, relative path).
    candidates: list[tuple[str | None, str, str, str]] = []
    for split_name, class_name, folder in class_dirs:
        for full, rel in _walk_images(walk, folder):
            candidates.append((split_name, class_name, full, rel))

    class_names = tuple(sorted({c for _, c, _ in class_dirs}))
    label_of = {name: i for i, name in enumerate(class_names)}
    given_records: dict[str, list[ImageRecord]] = defaultdict(list)
    pool: dict[str, list[ImageRecord]] = defaultdict(list)  # records to split, per class
    with progress_bar(len(candidates), "Scanning images", enabled=progress) as bar:
        for (split_name, class_name, _, rel), probe in zip(candidates, _probe_all(candidates)):
            bar.advance()
            if isinstance(probe, str):
                walk.skipped.append(SkippedFile(rel, probe))
                continue
            width, height, mode, fmt, digest = probe
            record = ImageRecord(rel, label_of[class_name], width, height, mode, fmt, digest)
            if split_name is None:
                pool[class_name].append(record)
            else:
                given_records[split_name].append(record)

    if not candidates or (not pool and not given_records):
        if walk.skipped:
            first = walk.skipped[0]
            raise DatasetError(
                f"No usable images in {root}: {len(walk.skipped)} file(s) skipped "
                f"(first: {first.path}: {first.reason}); fix or replace them."
            )
        raise DatasetError(
            f"No images found in {root}; expected {root}/<class>/<image> with extensions "
            f"{', '.join(sorted(config.IMAGE_EXTENSIONS))}."
        )

    splits: dict[str, list[ImageRecord]] = {name: [] for name in SPLITS}
    if presplit_dirs is not None:
        for split_name in given:
            splits[split_name] = list(given_records[split_name])
        carve_val = "val" not in given
        carve_test = "test" not in given
        if carve_val or carve_test:
            by_class: dict[str, list[ImageRecord]] = defaultdict(list)
            for r in splits["train"]:
                by_class[class_names[r.label]].append(r)
            splits["train"] = []
            _split_pool(
                by_class,
                splits,
                seed=seed,
                val_fraction=val_fraction if carve_val else 0.0,
                test_fraction=test_fraction if carve_test else 0.0,
            )
    else:
        _split_pool(pool, splits, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    final = {name: tuple(sorted(splits[name], key=lambda r: r.path)) for name in SPLITS}

    _check_classes(root, class_names, final, walk.skipped, min_per_class, presplit_dirs is not None)
    summary = _summarize(
        root,
        class_names,
        final,
        skipped=walk.skipped,
        ignored=walk.ignored,
        presplit=presplit_dirs is not None,
        given_splits=given,
        seed=seed,
    )
    if summary.skipped:
        logger.info("Skipped %d unusable file(s) in %s.", len(summary.skipped), root)
    logger.info(
        "Scanned %s: %d images, %d classes, split %s (seed %d).",
        root,
        summary.n_images,
        summary.n_classes,
        summary.split_sizes,
        seed,
    )
    return Dataset(
        root=root,
        class_names=class_names,
        summary=summary,
        presplit=presplit_dirs is not None,
        given_splits=given,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        **final,
    )


def _dir_key(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _stat_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if isinstance(exc, FileNotFoundError):
        return "broken symbolic link (target missing)"
    if isinstance(exc, PermissionError):
        return "permission denied; make it readable"
    return f"cannot read ({exc.strerror or exc})"


def _list_dir(
    walk: _Walk, folder: Path
) -> tuple[list[Path] | None, list[tuple[str, str]]]:
    """List a folder: (sub-folders, (full, relative) file paths); hidden entries dropped.

    Sub-folders already visited (symlink loops or aliases) and entries that
    cannot be stat'ed are recorded as skipped. Returns ``(None, [])`` when the
    folder cannot be listed.
    """
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if folder != walk.root:
            walk.skipped.append(SkippedFile(walk.rel(folder), f"folder {_stat_reason(exc)}"))
        return None, []
    dirs: list[Path] = []
    files: list[tuple[str, str]] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = entry.path
        try:
            st = entry.stat(follow_symlinks=True)
        except OSError as exc:
            walk.skipped.append(SkippedFile(walk.rel(path), _stat_reason(exc)))
            continue
        if stat.S_ISDIR(st.st_mode):
            key = _dir_key(st)
            if key in walk.seen_dirs:
                walk.skipped.append(
                    SkippedFile(
                        walk.rel(path),
                        "folder already scanned through another path (symbolic link loop or alias)",
                    )
                )
                continue
            walk.seen_dirs.add(key)
            dirs.append(Path(path))
        elif stat.S_ISREG(st.st_mode):
            files.append((path, walk.rel(path)))
        else:
            walk.skipped.append(SkippedFile(walk.rel(path), "not a regular file"))
    return dirs, files


def _presplit_folders(walk: _Walk, top_dirs: list[Path]) -> dict[str, Path] | None:
    """Return {split: folder} when the top level is a train/val/test layout."""
    aliases = {
        alias: split for split, names in config.SPLIT_FOLDER_NAMES.items() for alias in names
    }
    found: dict[str, Path] = {}
    for d in top_dirs:
        split = aliases.get(d.name.lower())
        if split is None or split in found:
            return None
        found[split] = d
    if "train" not in found:
        return None
    # Split folders must hold class folders, not images.
    try:
        with os.scandir(found["train"]) as it:
            has_sub = any(
                not e.name.startswith(".") and e.is_dir(follow_symlinks=True) for e in it
            )
    except OSError:
        return None
    return found if has_sub else None


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in config.IMAGE_EXTENSIONS


def _walk_images(walk: _Walk, folder: Path) -> list[tuple[str, str]]:
    """(full, relative) paths of the image files under a class folder, recursively."""
    out: list[tuple[str, str]] = []
    dirs, files = _list_dir(walk, folder)
    for full, rel in files:
        if _is_image_name(rel):
            out.append((full, rel))
        else:
            walk.ignored.append(rel)
    for sub in dirs or []:
        out.extend(_walk_images(walk, sub))
    return out


_Probe = tuple[int, int, str, str, str] | str


def _probe_all(candidates: list[tuple[str | None, str, str, str]]) -> Iterator[_Probe]:
    """Probe every candidate, in order.

    Large sets go to a spawned process pool over the usable cores: a probe is
    ~30 us of Python (header parse, hash), so threads queue on the GIL
    (measured on 70,000 Fashion-MNIST PNGs, 2 cores: 4 threads 5.1 s from the
    page cache and 6.2-6.7 s from a cold disk; one process 2.6 s and 7.2-7.4 s;
    two processes 1.7 s and 5.4 s). Below ``config.SCAN_PROCESS_MIN_FILES`` the
    pool's start-up costs more than it saves, and one thread does it.
    """
    paths = [full for _, _, full, _ in candidates]
    workers = usable_cores()
    if len(paths) < config.SCAN_PROCESS_MIN_FILES or workers == 1:
        yield from map(_probe, paths)
        return
    step = config.SCAN_CHUNK_SIZE
    chunks = [paths[i : i + step] for i in range(0, len(paths), step)]
    done = 0
    try:
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for results in pool.map(_probe_chunk, chunks):
                yield from results
                done += 1
    except futures.process.BrokenProcessPool as exc:
        # e.g. a main script read from stdin, which spawned workers cannot import.
        logger.warning("The scan's worker processes failed (%s); scanning in this process.", exc)
        for chunk in chunks[done:]:
            yield from _probe_chunk(chunk)


def _probe_chunk(paths: list[str]) -> list[_Probe]:
    return [_probe(path) for path in paths]


def _probe(path: str) -> _Probe:
    """Open a file once: header info and hash, or the reason it is unusable."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return "empty file (0 bytes)"
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(f) as img:
                    width, height = img.size
                    mode, fmt = img.mode, img.format or "unknown"
                    if width * height > config.MAX_IMAGE_PIXELS:
                        return (
                            f"{width}x{height} pixels is over the "
                            f"{config.MAX_IMAGE_PIXELS:,}-pixel limit (decompression bomb?)"
                        )
                    if width < 1 or height < 1:
                        return f"image has no pixels ({width}x{height})"
                    if _orientation(img) in (5, 6, 7, 8):
                        width, height = height, width
                    if fmt == "PNG":
                        img.verify()
            f.seek(0)
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except PermissionError:
        return "permission denied; make the file readable"
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"refused as a decompression bomb ({exc})"
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"cannot decode ({exc})"
    return width, height, mode, fmt, digest


def _orientation(img: Image.Image) -> int:
    """EXIF orientation without decoding pixels (PNG only when eXIf precedes IDAT)."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError):
        return 1


def _split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) counts for a class of `n` images (train keeps >= 1)."""
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


def _split_pool(
    pool: Mapping[str, list[ImageRecord]],
    splits: dict[str, list[ImageRecord]],
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> None:
    """Stratified split; each class is shuffled by its own (seed, name) RNG."""
    for class_name in sorted(pool):
        records = sorted(pool[class_name], key=lambda r: r.path)
        rng = np.random.default_rng([seed, zlib.crc32(class_name.encode("utf-8", "surrogateescape"))])
        order = rng.permutation(len(records))
        n_train, n_val, _ = _split_counts(len(records), val_fraction, test_fraction)
        shuffled = [records[i] for i in order]
        splits["train"].extend(shuffled[:n_train])
        splits["val"].extend(shuffled[n_train : n_train + n_val])
        splits["test"].extend(shuffled[n_train + n_val :])


def _check_classes(
    root: Path,
    class_names: tuple[str, ...],
    splits: Mapping[str, tuple[ImageRecord, ...] | list[ImageRecord]],
    skipped: list[SkippedFile] | tuple[SkippedFile, ...],
    min_per_class: int,
    presplit: bool,
) -> None:
    """Raise the one-line DatasetError when the classes cannot be learned."""
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


def _summarize(
    root: Path,
    class_names: tuple[str, ...],
    splits: Mapping[str, tuple[ImageRecord, ...]],
    *,
    skipped: Iterable[SkippedFile],
    ignored: Iterable[str],
    presplit: bool,
    given_splits: tuple[str, ...],
    seed: int,
) -> DatasetSummary:
    records = [(name, r) for name in SPLITS for r in splits[name]]
    counts = Counter(r.label for _, r in records)
    class_counts = {name: counts.get(i, 0) for i, name in enumerate(class_names)}
    smallest = min(class_counts.values()) if class_counts else 0
    imbalance = max(class_counts.values()) / smallest if smallest else math.inf
    widths = np.array([r.width for _, r in records] or [0])
    heights = np.array([r.height for _, r in records] or [0])
    by_digest: dict[str, list[tuple[str, ImageRecord]]] = defaultdict(list)
    for split_name, r in records:
        by_digest[r.sha256].append((split_name, r))
    duplicates = tuple(
        DuplicateGroup(
            sha256=digest,
            paths=tuple(sorted(r.path for _, r in group)),
            classes=tuple(sorted({class_names[r.label] for _, r in group})),
            splits=tuple(sorted({s for s, _ in group})),
        )
        for digest, group in sorted(by_digest.items(), key=lambda kv: min(r.path for _, r in kv[1]))
        if len(group) > 1
    )
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
        duplicates=duplicates,
    )
