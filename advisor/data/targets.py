"""Read regression targets: a CSV of (image path, number) rows over a folder of images.

``advise DATA_DIR --targets targets.csv`` fits a regression instead of a
classifier. The CSV has two columns: the image's path relative to DATA_DIR
(which may then be a flat folder) and its numeric target. A first row whose
second cell is not a number is a header; its second cell names the target.
The delimiter (``,``, ``;`` or tab) is the one the first row uses most.

Rows that cannot be used (absolute paths or paths leaving DATA_DIR, paths
listed twice, missing or unreadable images, targets that are not finite
numbers) are skipped and listed with a reason in the dataset summary, never
fatal. A one-line :class:`~advisor.errors.DatasetError` is raised only when the
CSV cannot be read or fewer than ``config.MIN_TARGET_ROWS`` usable rows are
left. The folder and the CSV are only ever read.

The targets are cut into (at most ``config.TARGET_BINS``) quantile bins that
play the part of classes wherever the advisor needs labels: the split is
stratified on them (so train, val and test cover the whole range), the
measurement sample too, and the label-aware probes of the profile classify the
bin. The strategies train on the numbers themselves.

API:
    read_targets(csv_path, data_dir) -> TargetTable
    quantile_bins(values, *, n_bins=config.TARGET_BINS,
                  min_per_bin=config.TARGET_MIN_PER_BIN) -> (labels, names)
    scan_targets(data_dir, csv_path, *, seed=DEFAULT_SEED, val_fraction=...,
                 test_fraction=..., progress=False) -> Dataset
"""

from __future__ import annotations

import csv
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from advisor import config
from advisor.data.dataset import Dataset
from advisor.data.probe import Probe, probe_files
from advisor.data.records import SPLITS, ImageRecord, SkippedFile
from advisor.data.split import stratified_split
from advisor.data.summary import summarize
from advisor.errors import DatasetError
from advisor.progress import progress_bar

logger = logging.getLogger(__name__)

#: Name of the target when the CSV has no header.
DEFAULT_TARGET_NAME = "target"
#: Delimiters the CSV may use.
DELIMITERS = ",;\t"
#: The profile note of a regression dataset: what its "classes" are.
TARGET_BINS_NOTE = ("regression targets: the classes here are quantile bins of the target, so the "
                    "label-aware probes (k-NN, linear) measure how well frozen features tell the "
                    "bins apart; chance is the largest bin's share")


@dataclass(frozen=True, slots=True)
class TargetTable:
    """The usable rows of a targets CSV, and the rows that were skipped.

    Args:
        rows: ``(path relative to DATA_DIR with / separators, target)`` pairs,
            in file order.
        skipped: Rows left out, with reasons.
        target_name: The header's second cell, or ``"target"``.
        has_header: Whether the first row was a header.
    """

    rows: tuple[tuple[str, float], ...]
    skipped: tuple[SkippedFile, ...]
    target_name: str
    has_header: bool


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _relative(text: str) -> tuple[str | None, str | None]:
    """(normalised relative path, None) or (None, reason it is refused)."""
    text = text.strip().replace("\\", "/")
    if not text:
        return None, "empty image path"
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None, "absolute path refused; list paths relative to DATA_DIR"
    parts = [part for part in PurePosixPath(text).parts if part != "."]
    if ".." in parts:
        return None, "path leaves DATA_DIR ('..'); list paths inside it"
    if not parts:
        return None, "empty image path"
    return "/".join(parts), None


def _check_targets_file(csv_path: Path, data_dir: Path | str) -> None:
    """Refuse a targets CSV path that is missing or a folder (reading nothing)."""
    if not csv_path.exists():
        raise DatasetError(
            f"Targets file {csv_path} does not exist; pass a CSV of (image path relative to "
            f"{data_dir}, number) rows with --targets.")
    if csv_path.is_dir():
        raise DatasetError(f"Targets file {csv_path} is a folder; pass the CSV file itself.")


def check_targets_paths(data_dir: Path | str, csv_path: Path | str) -> tuple[Path, Path]:
    """Refuse a regression run's folder or targets CSV that cannot be used, reading neither.

    :func:`scan_targets` starts with this check; the CLI runs it before
    importing Keras, so a mistyped path is reported at once.

    Args:
        data_dir: The folder the CSV's paths are relative to.
        csv_path: The targets CSV (``--targets``).

    Returns:
        ``(data_dir, csv_path)`` as `Path` objects.

    Raises:
        DatasetError: `data_dir` is not a folder, or `csv_path` is missing or a folder.

    Example:
        >>> check_targets_paths(digits_dir, digits_dir / "targets.csv")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.errors.DatasetError: Targets file .../targets.csv does not exist; pass a CSV ...
    """
    root, csv_path = Path(data_dir), Path(csv_path)
    if not root.is_dir():
        raise DatasetError(
            f"Dataset folder {root} does not exist or is not a folder; pass the folder the "
            "targets CSV's paths are relative to.")
    _check_targets_file(csv_path, root)
    return root, csv_path


def read_targets(csv_path: Path | str, data_dir: Path | str) -> TargetTable:
    """Read a targets CSV: two columns, image path (relative to `data_dir`) and number.

    Rows with a bad path, a path listed twice, too few cells or a target that
    is not a finite number are skipped with a reason (the image files
    themselves are checked by :func:`scan_targets`). Blank lines are ignored;
    extra columns are ignored.

    Args:
        csv_path: The CSV file.
        data_dir: The folder the paths are relative to.

    Returns:
        The :class:`TargetTable`.

    Raises:
        DatasetError: The file is missing, not a readable text CSV, or has no rows.

    Example:
        >>> import tempfile
        >>> csv_path = Path(tempfile.mkdtemp()) / "targets.csv"
        >>> _ = csv_path.write_text("path,digit\\n3/digit_0226.png,3\\n../x.png,1\\n")
        >>> table = read_targets(csv_path, digits_dir)
        >>> table.target_name, table.rows
        ('digit', (('3/digit_0226.png', 3.0),))
        >>> table.skipped[0].reason
        "targets.csv line 3: path leaves DATA_DIR ('..'); list paths inside it"
    """
    csv_path = Path(csv_path)
    name = csv_path.name
    _check_targets_file(csv_path, data_dir)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(
            f"Targets file {csv_path} is not a UTF-8 text CSV; save it as CSV (UTF-8).") from None
    except OSError as exc:
        raise DatasetError(
            f"Targets file {csv_path} cannot be read ({exc.strerror or exc}); make it readable.") from None
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(DELIMITERS, key=first_line.count) if any(d in first_line for d in DELIMITERS) else ","
    try:
        lines = [(number, row) for number, row in enumerate(
            csv.reader(text.splitlines(), delimiter=delimiter), start=1) if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise DatasetError(f"Targets file {csv_path} is not a valid CSV ({exc}); fix it.") from None
    if not lines:
        raise DatasetError(
            f"Targets file {csv_path} is empty; it needs (image path, number) rows.")
    first = lines[0][1]
    has_header = len(first) >= 2 and _number(first[1]) is None
    target_name = (first[1].strip() or DEFAULT_TARGET_NAME) if has_header else DEFAULT_TARGET_NAME
    rows: list[tuple[str, float]] = []
    skipped: list[SkippedFile] = []
    seen: dict[str, int] = {}
    for number, row in lines[1 if has_header else 0:]:
        where = f"{name} line {number}"
        if len(row) < 2:
            skipped.append(SkippedFile(row[0].strip() or where,
                                       f"{where}: expected 2 columns (path, number); found {len(row)}"))
            continue
        rel, problem = _relative(row[0])
        if rel is None:
            skipped.append(SkippedFile(row[0].strip() or where, f"{where}: {problem}"))
            continue
        value = _number(row[1])
        if value is None or not math.isfinite(value):
            skipped.append(SkippedFile(rel, f"{where}: target {row[1].strip()!r} is not a finite number"))
            continue
        if rel in seen:
            skipped.append(SkippedFile(rel, f"{where}: listed twice (first on line {seen[rel]})"))
            continue
        seen[rel] = number
        rows.append((rel, value))
    return TargetTable(rows=tuple(rows), skipped=tuple(skipped), target_name=target_name,
                       has_header=has_header)


def quantile_bins(
    values: np.ndarray,
    *,
    n_bins: int = config.TARGET_BINS,
    min_per_bin: int = config.TARGET_MIN_PER_BIN,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Cut targets into quantile bins: integer labels and a name per bin.

    Uses ``min(n_bins, len(values) // min_per_bin)`` (at least 2) quantile
    bins; bins emptied by tied values are dropped, and a bin with fewer than 3
    values (too few for a train, val and test image) is merged into its
    smaller neighbour. Names give each bin's range, e.g. ``"q1: 0 to 1"``.

    Args:
        values: ``(N,)`` finite targets, not all equal.
        n_bins: Most bins. Defaults to `config.TARGET_BINS`.
        min_per_bin: Values per bin the count of bins aims at. Defaults to
            `config.TARGET_MIN_PER_BIN`.

    Returns:
        ``(labels (N,) int32, names)``, labels in increasing order of target.

    Example:
        >>> labels, names = quantile_bins(np.arange(10.0), n_bins=2, min_per_bin=2)
        >>> labels.tolist(), names
        ([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], ('q1: 0 to 4', 'q2: 5 to 9'))
    """
    values = np.asarray(values, dtype=np.float64)
    k = max(2, min(n_bins, len(values) // max(1, min_per_bin)))
    inner = np.unique(np.quantile(values, np.linspace(0.0, 1.0, k + 1)[1:-1]))
    inner = inner[inner < values.max()]  # right-closed bins (lo, hi], as pandas.qcut
    _, labels = np.unique(np.searchsorted(inner, values, side="left"), return_inverse=True)
    groups = [np.flatnonzero(labels == b) for b in range(labels.max() + 1)]
    smallest = 3
    while len(groups) > 1 and min(len(g) for g in groups) < smallest:
        i = min(range(len(groups)), key=lambda b: len(groups[b]))
        j = i - 1 if i == len(groups) - 1 or (i > 0 and len(groups[i - 1]) <= len(groups[i + 1])) else i + 1
        low, high = sorted((i, j))
        groups[low:high + 1] = [np.concatenate([groups[low], groups[high]])]
    out = np.empty(len(values), dtype=np.int32)
    names = []
    for b, members in enumerate(groups):
        out[members] = b
        names.append(f"q{b + 1}: {values[members].min():.4g} to {values[members].max():.4g}")
    return out, tuple(names)


def scan_targets(
    data_dir: Path | str,
    csv_path: Path | str,
    *,
    seed: int = config.DEFAULT_SEED,
    val_fraction: float = config.DEFAULT_VAL_FRACTION,
    test_fraction: float = config.DEFAULT_TEST_FRACTION,
    progress: bool = False,
) -> Dataset:
    """Read a targets CSV, check its images, and split them (stratified on target quantiles).

    Every listed image is opened once (header and hash, as
    :func:`advisor.data.scan.scan_dataset` does); missing or unreadable ones are
    skipped with a reason. The split depends only on `seed` and the usable
    paths and targets.

    Args:
        data_dir: The folder the CSV's paths are relative to (never written).
        csv_path: The targets CSV (see :func:`read_targets`).
        seed: Seed of the split. Defaults to `config.DEFAULT_SEED`.
        val_fraction: Share of each bin put in ``val``. Defaults to
            `config.DEFAULT_VAL_FRACTION`.
        test_fraction: Share of each bin put in ``test``. Defaults to
            `config.DEFAULT_TEST_FRACTION`.
        progress: Show a progress bar for long scans. Defaults to `False`.

    Returns:
        A :class:`~advisor.data.dataset.Dataset` whose records carry ``target``,
        with ``target_name`` set and quantile bins as ``class_names``.

    Raises:
        DatasetError: `data_dir` is not a folder, the CSV cannot be read, fewer
            than ``config.MIN_TARGET_ROWS`` rows are usable, or all targets are equal.

    Example:
        >>> import tempfile
        >>> csv_path = Path(tempfile.mkdtemp()) / "targets.csv"
        >>> rows = [f"{p.parent.name}/{p.name},{p.parent.name}" for p in digits_dir.glob("*/*.png")]
        >>> _ = csv_path.write_text("path,digit\\n" + "\\n".join(rows) + "\\n")
        >>> ds = scan_targets(digits_dir, csv_path)
        >>> ds.target_name, ds.summary.split_sizes, ds.class_names[:2]
        ('digit', {'train': 70, 'val': 15, 'test': 15}, ('q1: 0 to 1', 'q2: 2 to 3'))
    """
    root, csv_path = check_targets_paths(data_dir, csv_path)
    table = read_targets(csv_path, root)
    skipped = list(table.skipped)
    records = _probe_rows(root, csv_path, table, skipped, progress=progress)
    class_names, pool = _binned_pool(records, csv_path)
    splits: dict[str, list[ImageRecord]] = {name: [] for name in SPLITS}
    stratified_split(pool, splits, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    final = {name: tuple(sorted(splits[name], key=lambda r: r.path)) for name in SPLITS}
    summary = summarize(root, class_names, final, skipped=skipped, ignored=(), presplit=False,
                        given_splits=(), seed=seed)
    if summary.skipped:
        logger.info("Skipped %d unusable row(s) of %s.", len(summary.skipped), csv_path)
    logger.info("Read %d targets (%s) for %s from %s, split %s (seed %d).", summary.n_images,
                table.target_name, root, csv_path, summary.split_sizes, seed)
    return Dataset(root=root, class_names=class_names, summary=summary, seed=seed,
                   val_fraction=val_fraction, test_fraction=test_fraction,
                   target_name=table.target_name, targets_file=str(csv_path), **final)


def _probe_rows(
    root: Path, csv_path: Path, table: TargetTable, skipped: list[SkippedFile], *, progress: bool
) -> list[tuple[str, float, Probe]]:
    """Probe the image of every row: usable (path, target, probe) triples; the rest go to `skipped`.

    Raises:
        DatasetError: Fewer than ``config.MIN_TARGET_ROWS`` rows are usable.
    """
    candidates = []
    for rel, value in table.rows:
        full = os.path.join(str(root), *rel.split("/"))
        if not os.path.lexists(full):
            skipped.append(SkippedFile(rel, f"listed in {csv_path.name} but not found in {root}"))
            continue
        candidates.append((full, rel, value))
    records: list[tuple[str, float, Probe]] = []
    with progress_bar(len(candidates), "Scanning images", enabled=progress) as bar:
        probes = probe_files([full for full, _, _ in candidates])
        for (_, rel, value), probe in zip(candidates, probes):
            bar.advance()
            if isinstance(probe, str):
                skipped.append(SkippedFile(rel, probe))
            else:
                records.append((rel, value, probe))
    if len(records) < config.MIN_TARGET_ROWS:
        first = f" (first: {skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise DatasetError(
            f"Only {len(records)} usable row(s) in {csv_path} ({len(skipped)} skipped{first}); need "
            f"at least {config.MIN_TARGET_ROWS}. Fix the listed rows or add images.")
    return records


def _binned_pool(
    records: list[tuple[str, float, Probe]], csv_path: Path
) -> tuple[tuple[str, ...], dict[str, list[ImageRecord]]]:
    """Cut the targets into quantile bins: (bin names, {bin name: its image records}).

    Raises:
        DatasetError: All targets are equal.
    """
    values = np.array([value for _, value, _ in records])
    if np.ptp(values) == 0:
        raise DatasetError(
            f"All {len(values)} targets in {csv_path} equal {values[0]:g}; a regression needs "
            "targets that vary.")
    labels, class_names = quantile_bins(values)
    pool: dict[str, list[ImageRecord]] = {name: [] for name in class_names}
    for (rel, value, probe), label in zip(records, labels):
        width, height, mode, fmt, digest = probe
        pool[class_names[label]].append(
            ImageRecord(rel, int(label), width, height, mode, fmt, digest, target=float(value)))
    return class_names, pool
