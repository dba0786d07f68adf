"""Scan a folder of labelled images: walk it, probe every image once, split it.

The folder is only ever read. Two layouts are understood:

- ``DATA_DIR/<class>/<image>`` (what ``keras.utils.image_dataset_from_directory``
  expects; images may sit in sub-folders of a class folder), split here into
  stratified train/val/test sets with a fixed, reported seed, identical files
  always in the same split;
- ``DATA_DIR/{train,val,test}/<class>/<image>`` (pre-split): the given splits
  are used as they are; a missing ``val`` (or ``test``) split is carved from
  ``train``, stratified.

The walk skips hidden entries, lists files without an image extension as
ignored, and records folders it cannot list, symlink loops and aliases as
skipped. Each candidate is then probed once (:mod:`advisor.data.probe`);
unusable files are skipped with a reason, never fatal. Files that only fail
when fully decoded (e.g. truncated JPEGs) are dropped later with
:meth:`~advisor.data.dataset.Dataset.drop_failed`. A one-line
:class:`~advisor.errors.DatasetError` is raised only when nothing useful is left.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from advisor import config
from advisor.data.dataset import Dataset
from advisor.data.probe import probe_files
from advisor.data.records import SPLITS, ImageRecord, SkippedFile
from advisor.data.split import check_classes, stratified_split
from advisor.data.summary import summarize
from advisor.errors import DatasetError
from advisor.progress import progress_bar

logger = logging.getLogger(__name__)

#: One class folder: (its split in a pre-split layout or None, class name, folder).
_ClassDir = tuple[str | None, str, Path]
#: One image to probe: (split or None, class name, full path, path relative to the root).
_Candidate = tuple[str | None, str, str, str]


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
    classes with at least 3 a test image when `test_fraction` > 0. Identical
    files are kept in one split (copies under two classes go to ``train``);
    in a pre-split folder the given splits are kept, and copies that straddle
    them, like copies under two classes, are listed in ``summary.findings``.

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
        >>> ds = scan_dataset(digits_dir, seed=0)
        >>> ds.summary.n_classes, ds.summary.split_sizes
        (10, {'train': 60, 'val': 20, 'test': 20})
    """
    _check_arguments(min_per_class, val_fraction, test_fraction)
    root = Path(data_dir)
    walk, top_dirs, top_files = _open_root(root)
    presplit_dirs = _presplit_folders(walk, top_dirs)
    presplit = presplit_dirs is not None
    class_dirs, given = _class_folders(walk, top_dirs, top_files, presplit_dirs)
    candidates: list[_Candidate] = [
        (split_name, class_name, full, rel)
        for split_name, class_name, folder in class_dirs
        for full, rel in _walk_images(walk, folder)
    ]
    class_names = tuple(sorted({c for _, c, _ in class_dirs}))
    pool, given_records = _probe_candidates(walk, candidates, class_names, progress=progress)
    if not candidates or (not pool and not given_records):
        _raise_no_usable_images(walk)
    final = _split(pool, given_records, class_names, presplit=presplit, given=given, seed=seed,
                   val_fraction=val_fraction, test_fraction=test_fraction)
    check_classes(root, class_names, final, walk.skipped, min_per_class, presplit)
    summary = summarize(
        root,
        class_names,
        final,
        skipped=walk.skipped,
        ignored=walk.ignored,
        presplit=presplit,
        given_splits=given,
        seed=seed,
    )
    if summary.skipped:
        logger.info("Skipped %d unusable file(s) in %s.", len(summary.skipped), root)
    for finding in summary.findings:
        logger.info("%s: %s", finding.level, finding.message)
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
        presplit=presplit,
        given_splits=given,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        **final,
    )


def _check_arguments(min_per_class: int, val_fraction: float, test_fraction: float) -> None:
    """Raise ValueError for a class minimum below 1 or fractions outside [0, 1)."""
    if min_per_class < 1:
        raise ValueError(f"Expected min_per_class >= 1. Received: min_per_class={min_per_class}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            "Expected 0 <= val_fraction, test_fraction and val_fraction + test_fraction < 1. "
            f"Received: val_fraction={val_fraction}, test_fraction={test_fraction}"
        )


def check_data_dir(root: Path) -> Path:
    """Refuse a dataset folder that is missing, a file, or unreadable, reading nothing in it.

    :func:`scan_dataset` starts with this check; the CLI runs it before
    importing Keras, so a mistyped DATA_DIR is reported at once.

    Args:
        root: The dataset folder (DATA_DIR).

    Returns:
        `root`, as a `Path`.

    Raises:
        DatasetError: `root` does not exist, is not a folder, or cannot be listed.

    Example:
        >>> check_data_dir(digits_dir) == digits_dir
        True
        >>> check_data_dir(Path("/no/such/folder"))
        Traceback (most recent call last):
        ...
        advisor.errors.DatasetError: Dataset folder /no/such/folder does not exist; pass a folder with one sub-folder per class.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(
            f"Dataset folder {root} does not exist; pass a folder with one sub-folder per class."
        )
    if not root.is_dir():
        raise DatasetError(
            f"Expected a folder with one sub-folder per class; {root} is a file."
        )
    if not os.access(root, os.R_OK | os.X_OK):
        raise DatasetError(
            f"Dataset folder {root} cannot be listed (permission denied); make it readable."
        )
    return root


def _open_root(root: Path) -> tuple[_Walk, list[Path], list[tuple[str, str]]]:
    """Start the walk at `root`: (walk, top-level folders, top-level (full, relative) files)."""
    check_data_dir(root)
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
    return walk, top_dirs, top_files


def _class_folders(
    walk: _Walk,
    top_dirs: list[Path],
    top_files: list[tuple[str, str]],
    presplit_dirs: dict[str, Path] | None,
) -> tuple[list[_ClassDir], tuple[str, ...]]:
    """Return (every class folder, the splits given as folders); stray files are ignored."""
    walk.ignored.extend(rel for _, rel in top_files)
    if presplit_dirs is not None:
        given = tuple(s for s in SPLITS if s in presplit_dirs)
        class_dirs: list[_ClassDir] = []
        for split_name in given:
            sub_dirs, sub_files = _list_dir(walk, presplit_dirs[split_name])
            walk.ignored.extend(rel for _, rel in sub_files)
            class_dirs.extend((split_name, d.name, d) for d in sub_dirs or [])
        return class_dirs, given
    if not top_dirs:
        loose_images = [rel for _, rel in top_files if _is_image_name(rel)]
        if loose_images:
            raise DatasetError(
                f"Found {len(loose_images)} image(s) directly in {walk.root} but no class "
                "sub-folders; move each class's images into its own sub-folder."
            )
        _raise_no_images(walk.root)
    return [(None, d.name, d) for d in top_dirs], ()


def _probe_candidates(
    walk: _Walk, candidates: list[_Candidate], class_names: tuple[str, ...], *, progress: bool
) -> tuple[dict[str, list[ImageRecord]], dict[str, list[ImageRecord]]]:
    """Probe every candidate: (records to split by class, records of the given splits)."""
    label_of = {name: i for i, name in enumerate(class_names)}
    given_records: dict[str, list[ImageRecord]] = defaultdict(list)
    pool: dict[str, list[ImageRecord]] = defaultdict(list)
    with progress_bar(len(candidates), "Scanning images", enabled=progress) as bar:
        probes = probe_files([full for _, _, full, _ in candidates])
        for (split_name, class_name, _, rel), probe in zip(candidates, probes):
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
    return pool, given_records


def _raise_no_usable_images(walk: _Walk) -> NoReturn:
    """Raise the DatasetError of a folder whose images were all skipped (or that has none)."""
    if walk.skipped:
        first = walk.skipped[0]
        raise DatasetError(
            f"No usable images in {walk.root}: {len(walk.skipped)} file(s) skipped "
            f"(first: {first.path}: {first.reason}); fix or replace them."
        )
    _raise_no_images(walk.root)


def _raise_no_images(root: Path) -> NoReturn:
    """Raise the DatasetError of a folder without any image file."""
    raise DatasetError(
        f"No images found in {root}; expected {root}/<class>/<image> with extensions "
        f"{', '.join(sorted(config.IMAGE_EXTENSIONS))}."
    )


def _split(
    pool: dict[str, list[ImageRecord]],
    given_records: dict[str, list[ImageRecord]],
    class_names: tuple[str, ...],
    *,
    presplit: bool,
    given: tuple[str, ...],
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> dict[str, tuple[ImageRecord, ...]]:
    """Split the pool (or carve the missing splits from a given train), each split sorted by path."""
    splits: dict[str, list[ImageRecord]] = {name: [] for name in SPLITS}
    if not presplit:
        stratified_split(pool, splits, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    else:
        for split_name in given:
            splits[split_name] = list(given_records[split_name])
        carve_val = "val" not in given
        carve_test = "test" not in given
        if carve_val or carve_test:
            by_class: dict[str, list[ImageRecord]] = defaultdict(list)
            for r in splits["train"]:
                by_class[class_names[r.label]].append(r)
            splits["train"] = []
            stratified_split(
                by_class,
                splits,
                seed=seed,
                val_fraction=val_fraction if carve_val else 0.0,
                test_fraction=test_fraction if carve_test else 0.0,
            )
    return {name: tuple(sorted(splits[name], key=lambda r: r.path)) for name in SPLITS}


# --------------------------------------------------------------------------- #
# The folder walk
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

