"""Write a packaged set (or a stratified subsample of it) as class folders, atomically.

:func:`write_dataset` turns one set of :mod:`advisor.examples.sources` into the
layout that ``keras.utils.image_dataset_from_directory`` reads,
``<root>/<folder_name>/<class>/<image>.png``, by default in the user cache
(``cache_dir("datasets")``), outside the repository. A folder is built beside
its final place, a marker file (:data:`MARKER_NAME`) is written last and the
folder is then renamed into place, so a finished folder is never half written
and a second call returns it without work. `n` draws a stratified subsample
(:func:`stratified_indices`), so one domain gives small and large variants
(``digits-300``, ``fashion-mnist-1000``); :func:`write_heldout` writes the
images such a subsample left out, for testing on many more images.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from advisor.cache import cache_dir
from advisor.config import MIN_IMAGES_PER_CLASS
from advisor.errors import DatasetError
from advisor.examples.sources import (
    DATASETS,
    Collection,
    DatasetRequestError,
    SourceMissingError,
    install_hint,
    resolve_name,
)

logger = logging.getLogger(__name__)

#: Written last inside a finished folder; its presence means "complete".
MARKER_NAME = ".complete.json"
#: Version of the marker's content.
MARKER_SCHEMA_VERSION = 1
#: Sub-folder of the user cache that holds the sets.
DATASETS_CACHE_FOLDER = "datasets"
#: Below this many images the writer stays in one process (a pool costs ~0.1 s).
PARALLEL_MIN_IMAGES = 2_000
#: Images handed to a worker process at a time.
WRITE_CHUNK_SIZE = 2_000
#: zlib level of the PNGs. Small images cost per file, not per byte; 1 keeps zlib cheap.
PNG_COMPRESS_LEVEL = 1


def folder_name(name: str, n: int | None = None, *, seed: int = 0) -> str:
    """Return the folder name that encodes a set, its subsample size and seed.

    Args:
        name: A set name (or alias).
        n: Subsample size, or `None` for the full set. Defaults to `None`.
        seed: Seed of the subsample; named only when `n` is given and it is not 0.
            Defaults to `0`.

    Returns:
        ``"digits"``, ``"fashion-mnist-1000"`` or ``"fashion-mnist-1000-seed3"``.

    Example:
        >>> folder_name("fashion-mnist", 1000)
        'fashion-mnist-1000'
    """
    canonical = resolve_name(name)
    if n is None:
        return canonical
    return f"{canonical}-{n}" if seed == 0 else f"{canonical}-{n}-seed{seed}"


def stratified_indices(
    labels: Sequence[str], n: int, *, seed: int = 0, min_per_class: int = MIN_IMAGES_PER_CLASS
) -> np.ndarray:
    """Pick `n` indices whose class shares follow those of `labels`.

    Each class gets ``n * share`` images rounded by largest remainder, and at least
    `min_per_class`, so every class survives. Within a class the images are drawn
    without replacement by a generator seeded with `seed`.

    Args:
        labels: Class of every image.
        n: How many to keep.
        seed: Seed of the draw. Defaults to `0`.
        min_per_class: Fewest images a class may keep. Defaults to
            `MIN_IMAGES_PER_CLASS`.

    Returns:
        Sorted `int` indices into `labels`, `n` of them.

    Raises:
        DatasetRequestError: If `n` exceeds the images, or is too small to give each
            class `min_per_class`.

    Example:
        >>> stratified_indices(["a"] * 6 + ["b"] * 2, 4).size
        4
    """
    classes, inverse, counts = np.unique(
        np.asarray(labels), return_inverse=True, return_counts=True)
    total = int(counts.sum())
    floor = np.minimum(counts, min_per_class)
    if not floor.sum() <= n <= total:
        raise DatasetRequestError(
            f"Subsample size n={n} must lie between {int(floor.sum())} ({min_per_class} per "
            f"class, {len(classes)} classes) and {total} (all images). Pass another --n.")
    exact = n * counts / total
    quota = np.clip(np.floor(exact).astype(int), floor, counts)
    while quota.sum() < n:  # Hand out what rounding left over, largest remainder first.
        room = np.where(quota < counts, exact - quota, -np.inf)
        quota[int(np.argmax(room))] += 1
    while quota.sum() > n:  # Take back what the per-class floor added, largest excess first.
        excess = np.where(quota > floor, quota - exact, -np.inf)
        quota[int(np.argmax(excess))] -= 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(inverse == c), size=int(q), replace=False)
        for c, q in enumerate(quota)
    ]
    return np.sort(np.concatenate(chosen))


def _write_images(collection: Collection, indices: np.ndarray, folder: Path) -> None:
    """Write the chosen images as ``folder/<class>/<stem>.png``, in parallel when many."""
    for label in sorted({collection.labels[i] for i in indices}):
        (folder / label).mkdir()
    paths = [folder / collection.labels[i] / f"{collection.stems[i]}.png" for i in indices]
    if len(set(paths)) != len(paths):
        raise DatasetError(
            f"Two images of one class share a file name in {folder}; the set's collector "
            "must give unique stems. This is a bug in advisor/examples/sources.py.")
    if isinstance(collection.items, np.ndarray):
        items: Sequence[Any] = collection.items[indices]
    else:
        items = [collection.items[i] for i in indices]
    if len(paths) < PARALLEL_MIN_IMAGES:
        _write_chunk(collection.render, items, paths)
        return
    starts = range(0, len(paths), WRITE_CHUNK_SIZE)
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        jobs = [
            pool.submit(_write_chunk, collection.render, items[s: s + WRITE_CHUNK_SIZE],
                        paths[s: s + WRITE_CHUNK_SIZE])
            for s in starts
        ]
        for job in jobs:
            job.result()


def _is_complete(folder: Path) -> bool:
    return (folder / MARKER_NAME).is_file()


def write_dataset(
    name: str, root: Path | None = None, *, n: int | None = None, seed: int = 0
) -> Path:
    """Write a packaged image set as class folders, or return it when already written.

    The set is read from its installed package, subsampled (stratified) when `n`
    is given, and written as ``<root>/<folder_name>/<class>/<image>.png`` in a
    temporary folder beside the target. A marker file (`MARKER_NAME`) is written
    last and the folder is renamed into place, so a folder that exists is complete.

    Args:
        name: A key of `DATASETS` (or an alias such as ``skimage-foolbox``).
        root: Folder that holds the sets. Defaults to `None`: ``cache_dir("datasets")``.
        n: Stratified subsample size. Defaults to `None` (every image).
        seed: Seed of the subsample. Defaults to `0`.

    Returns:
        The set's folder.

    Raises:
        DatasetRequestError: If `name` is unknown or `n` cannot be drawn (a `ValueError`).
        SourceMissingError: If the set's source is not installed; says what to install.
        DatasetError: If the target folder exists without a marker.

    Example:
        >>> folder = write_dataset("digits", n=100)
        >>> sorted(p.name for p in folder.iterdir() if p.is_dir())[:3]
        ['0', '1', '2']
    """
    canonical = resolve_name(name)
    root = Path(root) if root is not None else cache_dir(DATASETS_CACHE_FOLDER)

    def draw(labels: Sequence[str]) -> np.ndarray:
        return (np.arange(len(labels)) if n is None
                else stratified_indices(labels, n, seed=seed))

    marker = {"name": canonical, "n": n, "seed": seed}
    return _write_drawn(canonical, root / folder_name(canonical, n, seed=seed), draw, marker)


def write_heldout(
    name: str, n: int, size: int, root: Path | None = None, *, seed: int = 0
) -> Path | None:
    """Write images of a set that its `n`-image subsample left out, as class folders.

    The images are those of the source not drawn by ``write_dataset(name, n=n,
    seed=seed)``, subsampled (stratified, seed ``seed + 1``) to at most `size`.
    They come from the same source and classes as the subsample, and the advisor
    never sees them: a benchmark can score a small task on many more test images
    than its own split holds. Written like `write_dataset` (marker last, renamed
    into place), under ``<folder_name(name, n, seed=seed)>-heldout<size>``.

    Args:
        name: A key of `DATASETS` (or an alias).
        n: Size of the subsample the images are held out from.
        size: Most images to write.
        root: Folder that holds the sets. Defaults to `None`: ``cache_dir("datasets")``.
        seed: Seed of the subsample. Defaults to `0`.

    Returns:
        The folder, or `None` when the subsample left no image out.

    Raises:
        DatasetRequestError: If `name` is unknown or `n` cannot be drawn.
        SourceMissingError: If the set's source is not installed.

    Example:
        >>> folder = write_heldout("digits", n=300, size=500)
        >>> sum(1 for _ in folder.glob("*/*.png"))
        500
    """
    canonical = resolve_name(name)
    root = Path(root) if root is not None else cache_dir(DATASETS_CACHE_FOLDER)
    if size < 1:
        return None

    def draw(labels: Sequence[str]) -> np.ndarray:
        rest = np.setdiff1d(np.arange(len(labels)), stratified_indices(labels, n, seed=seed))
        if rest.size <= size:
            return rest
        rest_labels = [labels[i] for i in rest]
        return rest[stratified_indices(rest_labels, size, seed=seed + 1, min_per_class=0)]

    marker = {"name": canonical, "n": n, "seed": seed, "heldout_from": n, "size": size}
    target = root / f"{folder_name(canonical, n, seed=seed)}-heldout{size}"
    return _write_drawn(canonical, target, draw, marker, empty_ok=True)


def _write_drawn(
    canonical: str,
    target: Path,
    draw: Callable[[Sequence[str]], np.ndarray],
    marker: dict[str, Any],
    *,
    empty_ok: bool = False,
) -> Path | None:
    """Write the images `draw` picks from a set's collection to `target` (atomically)."""
    if _is_complete(target):
        return target
    if target.exists():
        raise DatasetError(
            f"Folder {target} exists but has no {MARKER_NAME}; it was not written by "
            "write_dataset. Delete it or pass another --root.")
    source = DATASETS[canonical]
    located = source.locate()
    if located is None:
        raise SourceMissingError(
            f"Dataset {canonical!r} needs {source.origin}, which is not installed. "
            f"Install it with: {install_hint(canonical)}")
    started = time.perf_counter()
    collection = source.collect(located)
    indices = draw(collection.labels)
    if empty_ok and len(indices) == 0:
        return None
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
    try:
        _write_images(collection, indices, building)
        counts = {c: 0 for c in sorted(set(collection.labels[i] for i in indices))}
        for i in indices:
            counts[collection.labels[i]] += 1
        marker = {**marker, "images": int(len(indices)), "classes": counts,
                  "source": str(located), "schema_version": MARKER_SCHEMA_VERSION}
        (building / MARKER_NAME).write_text(json.dumps(marker, indent=1, sort_keys=True))
        try:
            os.rename(building, target)
        except OSError:
            if not _is_complete(target):  # Not a concurrent writer that finished first.
                raise
            shutil.rmtree(building)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    logger.info("Wrote %d images of %r to %s in %.1f s.",
                len(indices), canonical, target, time.perf_counter() - started)
    return target




def _write_chunk(
    render: Callable[[Any], Image.Image], items: Sequence[Any], paths: Sequence[Path]
) -> int:
    """Render each item and save it as PNG at the matching path; return the count."""
    for item, path in zip(items, paths, strict=True):
        render(item).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return len(paths)
