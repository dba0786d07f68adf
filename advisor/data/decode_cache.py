"""Decode images once into an on-disk uint8 cache, then memory-map it.

Each list of files is decoded (with :func:`advisor.data.images.load_image`: short
side resized, centre crop, JPEG draft mode) into one ``(N, size, size, 3)``
uint8 ``.npy`` file under ``cache_dir("decoded")``. Low-resolution folders are
decoded at their native size (``resize_ratio=1``: the central square of each
short side, kept as it is when it is `size` px; a plan's ``decode_size``), and
the model upscales them inside its graph, so an entry holds the source pixels
and not an upscaled copy (a 28 px digit is 2.3 KB instead of 150 KB at 224 px).
The file's name is a
SHA-256 over the cache version, the target size, the resize ratio (when not the
default) and, per file, its absolute
path, device and inode numbers, byte size and ``mtime_ns``: touching, replacing or renaming any file
gives a new key, so stale pixels are never served. A second call with the same
unchanged files only opens the ``.npy`` read-only with ``np.load(mmap_mode="r")``;
nothing is decoded. Entries are written atomically (temporary file, then
rename), with rows written through ordinary file writes (not a writable map),
so memory stays flat while building even a 70,000-image cache. When an entry
for the same files and size is rebuilt, the stale one is deleted.

Runs that share the cache take turns per entry (:func:`advisor.cache.entry_lock`):
a second process asking for an entry being built waits, then opens it. An entry
is the ``.npy`` *and* its ``.json``, written in that order; one without the
other is never read. The disk space of a new entry is reserved before decoding,
so a full disk fails at once, with a one-line
:class:`~advisor.errors.StorageError` naming the cache folder, and leaves no entry.

Decoding runs on a thread pool over all cores by default (Pillow releases the
GIL while decoding and resizing); ``executor="process"`` uses a process pool
instead. Files that fail to decode are reported, not raised: their rows stay
zero, ``ok`` is false for them and ``failures`` says why.

API:
    decode_images(paths, size, *, resize_ratio=config.RESIZE_RATIO, progress=False,
                  workers=None, executor="auto") -> DecodedImages
    decode_dataset(dataset, size, *, resize_ratio=config.RESIZE_RATIO, progress=False,
                   workers=None, executor="auto") -> tuple[Dataset, dict[str, DecodedImages]]
    DecodedImages (frozen): images, ok, failures, paths, size, cache_file,
        from_cache, resize_ratio; .rows; len()
    DecodeFailure (frozen): index, path, reason
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from advisor import config
from advisor.cache import cache_dir, cache_entry, entry_lock, remove_stale_temporaries, reserve_space
from advisor.data.dataset import Dataset
from advisor.data.images import ImageReadError, load_image
from advisor.data.records import SPLITS
from advisor.environment import usable_cores
from advisor.progress import progress_bar

logger = logging.getLogger(__name__)

CACHE_SUBDIR = "decoded"


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """One file that could not be decoded.

    Args:
        index: Its position in the list passed to :func:`decode_images`.
        path: The file, as passed.
        reason: One line saying why (e.g. ``"cannot decode (image file is truncated)"``).
    """

    index: int
    path: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"index": self.index, "path": self.path, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecodeFailure:
        """Rebuild from :meth:`to_dict` output."""
        return cls(index=int(data["index"]), path=str(data["path"]), reason=str(data["reason"]))


@dataclass(frozen=True, slots=True, eq=False)
class DecodedImages:
    """Decoded images of one file list, backed by a read-only memory map.

    Args:
        images: ``(N, size, size, 3)`` uint8 array (a read-only ``np.memmap``
            unless `N` is 0); rows of failed files are zero.
        ok: ``(N,)`` bool array, false for files that failed to decode.
        failures: The failed files, with reasons, by index.
        paths: The files, in the order given.
        size: Height and width of each image.
        cache_file: The ``.npy`` file backing `images` (``None`` when empty).
        from_cache: Whether the images were read from an existing cache entry.
        resize_ratio: The short side was resized to ``size * resize_ratio``
            before the centre crop (:func:`~advisor.data.images.load_image`).
            Defaults to `config.RESIZE_RATIO`.
    """

    images: np.ndarray
    ok: np.ndarray
    failures: tuple[DecodeFailure, ...]
    paths: tuple[Path, ...]
    size: int
    cache_file: Path | None
    from_cache: bool
    resize_ratio: float = config.RESIZE_RATIO

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def rows(self) -> np.ndarray:
        """Indices of the images that decoded (``np.flatnonzero(ok)``), as int64."""
        return np.flatnonzero(self.ok)


def decode_images(
    paths: Sequence[Path | str],
    size: int = config.DEFAULT_IMAGE_SIZE,
    *,
    resize_ratio: float = config.RESIZE_RATIO,
    progress: bool = False,
    workers: int | None = None,
    executor: Literal["auto", "thread", "process"] = "auto",
) -> DecodedImages:
    """Decode image files once into the on-disk cache and memory-map the result.

    The cache entry is keyed by the files' absolute paths, inodes, byte sizes
    and modification times, the target `size`, `resize_ratio` and
    ``config.DECODE_CACHE_VERSION``; when it exists the call only opens it.
    Otherwise the files are decoded in parallel with
    :func:`advisor.data.images.load_image` and written atomically.

    Args:
        paths: Image files, in the order the rows should have.
        size: Output height and width. Defaults to `config.DEFAULT_IMAGE_SIZE`.
        resize_ratio: Short side resized to ``size * resize_ratio``, then the
            centre crop; ``1`` for a native-size decode (the central square).
            Defaults to `config.RESIZE_RATIO` (torchvision's 256 / 224).
        progress: Show a progress bar on stderr when decoding takes more than
            ``config.PROGRESS_DELAY_S`` seconds. Defaults to `False`.
        workers: Parallel decoders. Defaults to `None` (one per usable core).
        executor: ``"thread"`` (a thread pool), ``"process"`` (a spawned
            process pool) or ``"auto"`` (processes from
            ``config.DECODE_PROCESS_MIN_IMAGES`` files on). Defaults to `"auto"`.

    Returns:
        A :class:`DecodedImages`; files that failed have ``ok`` false and are
        listed in ``failures``.

    Raises:
        ValueError: `size` is not positive, `resize_ratio` is below 1 or
            `executor` is unknown.
        StorageError: The entry cannot be written (a full disk, an unwritable
            cache folder); no part of it is left to be read later.

    Example:
        >>> from advisor.data import scan_dataset
        >>> decoded = decode_images(scan_dataset(digits_dir).files("train"), 96)
        >>> decoded.images.shape, decoded.images.dtype, len(decoded.failures)
        ((60, 96, 96, 3), dtype('uint8'), 0)
        >>> decode_images(scan_dataset(digits_dir).files("train"), 96).from_cache
        True
        >>> native = decode_images(scan_dataset(digits_dir).files("train"), 8, resize_ratio=1)
        >>> native.images.shape, native.images.nbytes  # the 8x8 scans themselves
        ((60, 8, 8, 3), 11520)
    """
    if size < 1:
        raise ValueError(f"Expected size >= 1. Received: size={size}")
    if not resize_ratio >= 1:
        raise ValueError(f"Expected resize_ratio >= 1. Received: resize_ratio={resize_ratio!r}")
    if executor not in ("auto", "thread", "process"):
        raise ValueError(
            f"Expected executor='auto', 'thread' or 'process'. Received: executor={executor!r}")
    paths = tuple(Path(p) for p in paths)
    resize_ratio = float(resize_ratio)
    if not paths:
        return _empty(size, resize_ratio)
    key, set_id = _cache_key(paths, size, resize_ratio)
    folder = cache_dir(CACHE_SUBDIR)
    npy_file = folder / f"{key}.npy"
    meta_file = folder / f"{key}.json"
    cached = _open_entry(npy_file, meta_file, paths, size, resize_ratio)
    if cached is not None:
        logger.debug("Decoded-image cache hit: %s", npy_file)
        return cached
    with entry_lock(npy_file):
        cached = _open_entry(npy_file, meta_file, paths, size, resize_ratio)  # built while we waited
        if cached is not None:
            return cached
        remove_stale_temporaries(folder)
        failed = _build_entry(npy_file, meta_file, paths, size, resize_ratio, set_id=set_id,
                              progress=progress, workers=workers or usable_cores(),
                              executor=executor)
        _remove_stale(folder, keep=key, set_id=set_id)
    if failed:
        logger.info("%d of %d image(s) failed to decode.", len(failed), len(paths))
    ok = np.ones(len(paths), dtype=bool)
    ok[[f.index for f in failed]] = False
    images = np.load(npy_file, mmap_mode="r")
    ok.flags.writeable = False
    return DecodedImages(images, ok, failed, paths, size, npy_file, False, resize_ratio)


def decode_dataset(
    dataset: Dataset,
    size: int = config.DEFAULT_IMAGE_SIZE,
    *,
    resize_ratio: float = config.RESIZE_RATIO,
    progress: bool = False,
    workers: int | None = None,
    executor: Literal["auto", "thread", "process"] = "auto",
) -> tuple[Dataset, dict[str, DecodedImages]]:
    """Decode every split of a dataset and drop the files that failed.

    Each split gets its own cache entry. Files that fail to decode are removed
    from the returned dataset and listed in its ``summary.skipped``; use
    ``decoded[split].rows`` to select the matching rows of
    ``decoded[split].images`` (they align with ``new_dataset.labels(split)``).

    Args:
        dataset: A scanned dataset.
        size: Output height and width. Defaults to `config.DEFAULT_IMAGE_SIZE`.
        resize_ratio: Short side resized to ``size * resize_ratio`` before the
            centre crop (``1``: native size, a plan's ``decode_size``). Defaults
            to `config.RESIZE_RATIO`.
        progress: Show progress bars for long decodes. Defaults to `False`.
        workers: Parallel decoders. Defaults to `None` (one per usable core).
        executor: ``"auto"``, ``"thread"`` or ``"process"``. Defaults to `"auto"`.

    Returns:
        ``(dataset without failed files, {split: DecodedImages})``.

    Raises:
        DatasetError: Dropping the failed files leaves a class too small.

    Example:
        >>> from advisor.data import scan_dataset
        >>> from strategies.batches import ImageBatches
        >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), 96)
        >>> batches = ImageBatches(decoded["train"].images, ds.labels("train"),
        ...                        rows=decoded["train"].rows, batch_size=32)
        >>> len(batches), batches[0][0].shape
        (2, (32, 96, 96, 3))
    """
    decoded = {
        split: decode_images(
            dataset.files(split), size, resize_ratio=resize_ratio, progress=progress,
            workers=workers, executor=executor,
        )
        for split in SPLITS
    }
    failures = [(f.path, f.reason) for split in SPLITS for f in decoded[split].failures]
    return dataset.drop_failed(failures), decoded


# --------------------------------------------------------------------------- #
# Internals
# --------------------------------------------------------------------------- #
def _empty(size: int, resize_ratio: float) -> DecodedImages:
    """The decoded images of an empty file list (no cache entry)."""
    empty = np.zeros((0, size, size, 3), dtype=np.uint8)
    empty.flags.writeable = False
    return DecodedImages(empty, np.zeros(0, dtype=bool), (), (), size, None, False, resize_ratio)


def _build_entry(
    npy_file: Path,
    meta_file: Path,
    paths: tuple[Path, ...],
    size: int,
    resize_ratio: float,
    *,
    set_id: str,
    progress: bool,
    workers: int,
    executor: str,
) -> tuple[DecodeFailure, ...]:
    """Decode `paths` into a new cache entry (the ``.npy`` then its ``.json``, each atomically).

    The ``.json`` is what makes the entry readable: it is written last, and a
    failure writing it removes the ``.npy`` too.
    """
    n = len(paths)
    logger.info("Decoding %d image(s) at %dx%d into %s.", n, size, size, npy_file)
    meta_file.unlink(missing_ok=True)  # a damaged entry being rebuilt: never pair old with new
    with cache_entry(npy_file, what="decoded images", suffix=".npy") as tmp:
        header = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        offset = header.offset
        del header
        reserve_space(tmp, offset + n * size * size * 3)  # a full disk fails now, not at 90%
        failures = _decode_into(tmp, offset, paths, size, resize_ratio, progress=progress,
                                workers=workers, executor=executor)
    failed = tuple(DecodeFailure(i, str(paths[i]), reason) for i, reason in sorted(failures))
    meta = {
        "version": config.DECODE_CACHE_VERSION,
        "set_id": set_id,
        "n": n,
        "size": size,
        "resize_ratio": resize_ratio,
        "failures": [f.to_dict() for f in failed],
    }
    try:
        with cache_entry(meta_file, what="the index of decoded images") as tmp:
            tmp.write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
    except BaseException:
        npy_file.unlink(missing_ok=True)
        raise
    return failed


def _cache_key(paths: Sequence[Path], size: int, resize_ratio: float) -> tuple[str, str]:
    """(key over paths, inodes, sizes, mtimes, size, ratio, version; id of the path set, size, ratio)."""
    key = hashlib.sha256()
    set_id = hashlib.sha256()
    # The default ratio adds nothing, so entries written before it was a parameter still match.
    ratio = "" if resize_ratio == config.RESIZE_RATIO else f"|ratio={resize_ratio!r}"
    head = f"v{config.DECODE_CACHE_VERSION}|size={size}{ratio}|n={len(paths)}\n".encode()
    key.update(head)
    set_id.update(head)
    for path in paths:
        # abspath plus (device, inode) pins the file as well as realpath does, and
        # costs one stat instead of one per path component.
        resolved = os.path.abspath(path).encode("utf-8", "surrogateescape")
        try:
            st = os.stat(path)
            stamp = f"|{st.st_dev}:{st.st_ino}|{st.st_size}|{st.st_mtime_ns}\n".encode()
        except OSError as exc:
            stamp = f"|missing:{exc.errno}\n".encode()
        key.update(resolved + stamp)
        set_id.update(resolved + b"\n")
    return key.hexdigest(), set_id.hexdigest()


def _open_entry(
    npy_file: Path, meta_file: Path, paths: tuple[Path, ...], size: int, resize_ratio: float
) -> DecodedImages | None:
    """Open a complete cache entry, or return None when there is none (or it is bad)."""
    if not (npy_file.exists() and meta_file.exists()):
        return None
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        images = np.load(npy_file, mmap_mode="r")
        failures = tuple(DecodeFailure.from_dict(f) for f in meta["failures"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("Ignoring a damaged decode-cache entry %s (%s).", npy_file, exc)
        return None
    n = len(paths)
    if (
        meta.get("version") != config.DECODE_CACHE_VERSION
        or meta.get("n") != n
        or meta.get("resize_ratio", config.RESIZE_RATIO) != resize_ratio
        or images.shape != (n, size, size, 3)
        or images.dtype != np.uint8
    ):
        logger.warning("Ignoring a mismatched decode-cache entry %s.", npy_file)
        return None
    ok = np.ones(n, dtype=bool)
    ok[[f.index for f in failures]] = False
    ok.flags.writeable = False
    # Report paths as given this time (the key already pins the resolved files).
    failures = tuple(DecodeFailure(f.index, str(paths[f.index]), f.reason) for f in failures)
    return DecodedImages(images, ok, failures, paths, size, npy_file, True, resize_ratio)


def _remove_stale(folder: Path, *, keep: str, set_id: str) -> None:
    """Delete older entries for the same files and size (their bytes changed)."""
    for meta_file in folder.glob("*.json"):
        if meta_file.stem == keep:
            continue
        try:
            if json.loads(meta_file.read_text(encoding="utf-8")).get("set_id") != set_id:
                continue
        except (OSError, ValueError, AttributeError):
            continue
        logger.debug("Removing stale decode-cache entry %s.", meta_file.stem)
        meta_file.unlink(missing_ok=True)
        meta_file.with_suffix(".npy").unlink(missing_ok=True)


def _decode_into(
    npy_path: Path,
    offset: int,
    paths: tuple[Path, ...],
    size: int,
    resize_ratio: float,
    *,
    progress: bool,
    workers: int,
    executor: str,
) -> list[tuple[int, str]]:
    """Decode all files into the rows of `npy_path`; return (index, reason) failures."""
    items = [(i, str(p)) for i, p in enumerate(paths)]
    chunk = config.DECODE_CHUNK_SIZE
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    failures: list[tuple[int, str]] = []
    with progress_bar(len(items), f"Decoding {len(items)} images", enabled=progress) as bar:
        if workers == 1 or len(items) < config.DECODE_MIN_PARALLEL:
            for part in chunks:
                failures.extend(_decode_chunk(str(npy_path), offset, size, resize_ratio, part))
                bar.advance(len(part))
            return failures
        if executor == "auto":
            # Threads share Pillow's per-file Python overhead under the GIL; past a
            # few thousand files a spawned process pool pays for its start-up
            # (bench_decode: 2.9x faster on 70k Fashion-MNIST PNGs, slower on small sets).
            executor = "process" if len(items) >= config.DECODE_PROCESS_MIN_IMAGES else "thread"
        if executor == "process":
            pool: futures.Executor = futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn")
            )
        else:
            pool = futures.ThreadPoolExecutor(workers, thread_name_prefix="decode")
        done: set[int] = set()
        try:
            with pool:
                jobs = {pool.submit(_decode_chunk, str(npy_path), offset, size, resize_ratio, part): i
                        for i, part in enumerate(chunks)}
                try:
                    for job in futures.as_completed(jobs):
                        failures.extend(job.result())
                        bar.advance(len(chunks[jobs[job]]))
                        done.add(jobs[job])
                except BaseException:
                    for job in jobs:
                        job.cancel()
                    raise
        except futures.process.BrokenProcessPool as exc:
            # e.g. a main script read from stdin, which spawned workers cannot import.
            logger.warning("The decoder processes failed (%s); decoding in this process.", exc)
            for part in (part for i, part in enumerate(chunks) if i not in done):
                failures.extend(_decode_chunk(str(npy_path), offset, size, resize_ratio, part))
                bar.advance(len(part))
    return failures


def _decode_chunk(
    npy_path: str, offset: int, size: int, resize_ratio: float, items: list[tuple[int, str]]
) -> list[tuple[int, str]]:
    """Decode `items` and write each into its row of the ``.npy`` at `npy_path`."""
    row_bytes = size * size * 3
    failures: list[tuple[int, str]] = []
    with open(npy_path, "r+b") as out:
        for index, path in items:
            try:
                pixels = load_image(path, size, resize_ratio=resize_ratio)
            except ImageReadError as exc:
                failures.append((index, _reason(exc, path)))
                continue
            out.seek(offset + index * row_bytes)
            out.write(np.ascontiguousarray(pixels, dtype=np.uint8).data)
    return failures


def _reason(exc: ImageReadError, path: str) -> str:
    """The reason part of an ImageReadError ("<path>: <reason>")."""
    message = str(exc)
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
