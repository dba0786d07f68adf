"""The records a scan produces: one image, one skipped file, duplicates, findings, sizes, the summary.

These frozen dataclasses are what :func:`advisor.data.scan.scan_dataset` and
:func:`advisor.data.targets.scan_targets` fill in and what reports read; each
has a ``to_dict``/``from_dict`` pair whose JSON round-trips with
``sort_keys=True``. :class:`DatasetSummary` carries a ``schema_version`` and
refuses any other on load. :data:`SPLITS` names the three splits, in order.
A summary's :attr:`~DatasetSummary.findings` (identical files under two labels,
copies that straddle splits) are derived from its duplicates, so they are
written to JSON but never read back.
The split file lists themselves live in :class:`advisor.data.dataset.Dataset`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from advisor.errors import DatasetError

#: The three splits, in the order they are reported.
SPLITS = ("train", "val", "test")
#: Version of the summary's and the saved split's JSON layout.
SCHEMA_VERSION = 1


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


#: Finding kind: one file content filed under two or more classes.
CONFLICTING_LABELS = "conflicting-labels"
#: Finding kind: copies of one file in two or more splits.
DUPLICATES_ACROSS_SPLITS = "duplicates-across-splits"
#: Finding levels, most severe first.
FINDING_LEVELS = ("error", "warning")
#: Files named in one finding's message; the rest are counted.
_FILES_NAMED = 4


@dataclass(frozen=True, slots=True)
class Finding:
    """Something about the data that the reader must know; the run goes on.

    Args:
        level: One of :data:`FINDING_LEVELS`: ``"error"`` (the data is wrong:
            fix it) or ``"warning"`` (results may mislead).
        kind: A stable key, e.g. :data:`CONFLICTING_LABELS`.
        message: One line for the reader: what, where, what to do.
        paths: The files concerned, relative to the dataset root.
    """

    level: str
    kind: str
    message: str
    paths: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"level": self.level, "kind": self.kind, "message": self.message,
                "paths": list(self.paths)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild from :meth:`to_dict` output."""
        return cls(level=str(data["level"]), kind=str(data["kind"]), message=str(data["message"]),
                   paths=tuple(str(p) for p in data.get("paths", ())))


def _some(paths: tuple[str, ...]) -> str:
    """The first few paths, then how many more."""
    more = len(paths) - _FILES_NAMED
    return ", ".join(paths[:_FILES_NAMED]) + (f" and {more} more" if more > 0 else "")


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

    @property
    def cross_split(self) -> bool:
        """Whether the copies sit in different splits (train/test leakage)."""
        return len(self.splits) > 1

    def finding(self, *, presplit: bool) -> Finding | None:
        """Return what the reader must know about this group, or `None`.

        Copies under different classes are an ``"error"`` (conflicting
        labels); otherwise copies in different splits are a ``"warning"``
        (in a pre-split folder the splits are the user's and are kept).

        Args:
            presplit: Whether the splits were given as folders.

        Example:
            >>> group = DuplicateGroup("ab12", ("cat/1.png", "dog/7.png"), ("cat", "dog"), ("train",))
            >>> group.finding(presplit=False).level
            'error'
        """
        files = _some(self.paths)
        if self.cross_class:
            return Finding(
                "error", CONFLICTING_LABELS,
                f"The same image is filed under {len(self.classes)} classes "
                f"({', '.join(self.classes)}) in {'/'.join(self.splits)}: {files}; keep one "
                "copy, under the right class.", self.paths)
        if self.cross_split:
            where = "given split folders" if presplit else "splits"
            then = ("the split folders are used as given" if presplit
                    else "re-scan the folder to keep copies in one split")
            return Finding(
                "warning", DUPLICATES_ACROSS_SPLITS,
                f"Identical files sit in different {where} ({', '.join(self.splits)}): {files}; "
                f"a copy in val or test of an image seen earlier inflates its score. Remove all "
                f"but one copy ({then}).", self.paths)
        return None

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
        duplicates: Groups of files with identical bytes (what they imply for
            the reader: :attr:`findings`).
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
    schema_version: int = SCHEMA_VERSION

    @property
    def n_duplicate_files(self) -> int:
        """Files that are exact copies of an earlier file (group size - 1, summed)."""
        return sum(len(group.paths) - 1 for group in self.duplicates)

    @property
    def findings(self) -> tuple[Finding, ...]:
        """What the reader must know about the duplicates: errors first, then warnings.

        One :class:`Finding` per duplicate group that carries conflicting labels
        (``"error"``) or straddles splits (``"warning"``); see
        :meth:`DuplicateGroup.finding`. Derived, so it is written by
        :meth:`to_dict` and never read back.
        """
        found = [f for g in self.duplicates if (f := g.finding(presplit=self.presplit)) is not None]
        return tuple(sorted(found, key=lambda f: FINDING_LEVELS.index(f.level)))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``json.dumps(..., sort_keys=True)`` round-trips).

        Besides the fields it holds ``n_duplicate_files`` and ``findings``
        (derived; :meth:`from_dict` ignores them).

        Example:
            >>> import json
            >>> from advisor.data import scan_dataset
            >>> summary = scan_dataset(digits_dir).summary
            >>> DatasetSummary.from_dict(json.loads(json.dumps(summary.to_dict(), sort_keys=True))) == summary
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
            # Derived (never read back): for reports.
            "n_duplicate_files": self.n_duplicate_files,
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSummary:
        """Rebuild a summary from :meth:`to_dict` output.

        Raises:
            DatasetError: `data` is not a summary of this schema version.
        """
        version = int(data.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise DatasetError(
                f"Dataset summary has schema_version={version}; expected "
                f"{SCHEMA_VERSION}. Re-scan the dataset."
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
