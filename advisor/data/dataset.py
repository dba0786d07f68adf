"""The split dataset: the records of train, val and test, how they were made, and their JSON.

:class:`Dataset` is the frozen record that :func:`advisor.data.scan.scan_dataset`
and :func:`advisor.data.targets.scan_targets` return and everything after the
scan reads: file lists and labels per split (or numeric targets, for a
regression), the summary, and the seed and fractions of the split. It can drop
the files that failed to decode (:meth:`Dataset.drop_failed`, which
:func:`advisor.data.decode_cache.decode_dataset` calls) and be saved and
reloaded as JSON, so a run replays exactly the same split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from advisor import config
from advisor.cache import atomic_write_text
from advisor.data.records import (
    SCHEMA_VERSION,
    SPLITS,
    DatasetSummary,
    ImageRecord,
    SkippedFile,
)
from advisor.data.split import check_classes
from advisor.data.summary import summarize
from advisor.errors import DatasetError


@dataclass(frozen=True, slots=True)
class Dataset:
    """A scanned, validated and split dataset folder.

    Build it with :func:`advisor.data.scan.scan_dataset` or :meth:`load_split`.

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
            >>> import tempfile
            >>> from advisor.data import scan_targets
            >>> csv = Path(tempfile.mkdtemp()) / "targets.csv"
            >>> rows = [f"{p.parent.name}/{p.name},{p.parent.name}" for p in digits_dir.glob("*/*.png")]
            >>> _ = csv.write_text("path,digit\\n" + "\\n".join(rows) + "\\n")
            >>> scan_targets(digits_dir, csv).targets("test").dtype
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
            >>> from advisor.data import scan_dataset
            >>> ds = scan_dataset(digits_dir)
            >>> len(ds.records("train")) == ds.summary.split_sizes["train"]
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
            >>> from advisor.data import scan_dataset
            >>> [p.relative_to(digits_dir) for p in scan_dataset(digits_dir).files("val")[:1]]
            [PosixPath('0/digit_0130.png')]
        """
        return [self.root / record.path for record in self.records(split)]

    def labels(self, split: str) -> np.ndarray:
        """Return one split's integer labels.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.

        Returns:
            An ``int32`` array aligned with :meth:`files`.

        Example:
            >>> from advisor.data import scan_dataset
            >>> scan_dataset(digits_dir).labels("train").dtype
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
            >>> from advisor.data import scan_dataset
            >>> ds = scan_dataset(digits_dir)
            >>> bad = ds.files("train")[0]
            >>> ds = ds.drop_failed([(bad, "cannot decode")])
            >>> ds.summary.split_sizes["train"], [s.reason for s in ds.summary.skipped]
            (59, ['cannot decode'])
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
            check_classes(self.root, self.class_names, splits, skipped, min_per_class, self.presplit)
        summary = summarize(
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
            >>> from advisor.data import scan_dataset
            >>> d = scan_dataset(digits_dir).to_dict()
            >>> Dataset.from_dict(d).class_names == tuple(d["class_names"])
            True
        """
        return {
            "schema_version": SCHEMA_VERSION,
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
        if version != SCHEMA_VERSION:
            raise DatasetError(
                f"Saved split has schema_version={version}; expected {SCHEMA_VERSION}. "
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
            >>> import tempfile
            >>> from advisor.data import scan_dataset
            >>> tmp = Path(tempfile.mkdtemp())
            >>> scan_dataset(digits_dir).save_split(tmp / "split.json").name
            'split.json'
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
            >>> import tempfile
            >>> from advisor.data import scan_dataset
            >>> path = scan_dataset(digits_dir, seed=7).save_split(Path(tempfile.mkdtemp()) / "split.json")
            >>> Dataset.load_split(path).seed
            7
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
