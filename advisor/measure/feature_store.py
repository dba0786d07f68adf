"""One embedding per image and layer: pooled features the measuring pass shares with the runs.

The measuring pass already computes, for every sampled image, the pooled
bottleneck and the pooled outputs of the probed blocks. The frozen regimes
(``svm``, ``last-layer``) read one of those same tensors for the training and
validation images, which for a set within the sample cap *are* the sample. So
the measuring pass files what it computed here, and
:class:`strategies.embeddings.Embedder` takes each image it finds instead of
running the backbone on it again (issue 18).

Images are keyed by their content: the SHA-256 of the decoded ``uint8``
pixels the network takes, so two decode-cache entries of the same files
share, whatever their file lists, and a pixel that differs (another decode
size or resize ratio) shares nothing. A namespace holds one backbone (name,
weights, network and input sizes) and one layer; it is a folder of batch files
(``.npz``: the pixel digests and their float32 features), each written
atomically by one measuring pass.

Each namespace keeps an index (``index.json``: the digests of each batch file)
so that a load opens only the batch files holding the wanted images, whatever
the number of passes filed. The index is a shortcut, never the truth: every
read checks it against the folder's listing, and a batch file it does not name
(one it lost to a concurrent writer, or every file when it is missing or
damaged) is read for its digests and added. It is rewritten atomically, under
the namespace's lock. A namespace stays under ``config.FEATURE_STORE_MAX_MB``:
after a save, the least recently used batch files go first (oldest
modification time; a load touches the files it reads).

API:
    pixel_digests(images, rows) -> list[str]
    namespace_dir(backbone, layer) -> Path | None
    save_features(backbone, layer, digests, features, *, max_mb=...) -> Path | None
    load_features(backbone, layer, digests, dim) -> (found: bool array, features: (N, D) float32)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advisor import config
from advisor.backbones import Backbone
from advisor.cache import cache_dir, cache_entry, entry_lock
from advisor.errors import StorageError

logger = logging.getLogger(__name__)

CACHE_SUBDIR = "features"
#: Bump when the pooled features change, to orphan older entries.
FEATURE_STORE_VERSION = 1
#: The namespace's index of its batch files (their names -> their digests).
INDEX_FILE = "index.json"
#: Bump when the index's layout changes; an index of another version is rebuilt.
INDEX_VERSION = 1
#: What reading a damaged batch file raises (a truncated zip, a foreign file).
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def pixel_digests(images: np.ndarray, rows: Sequence[int] | np.ndarray) -> list[str]:
    """Return the SHA-256 of each row's pixels (shape included), in the order of `rows`.

    Args:
        images: ``(N, S, S, 3)`` uint8 images (an array or a memory map).
        rows: The rows to digest.

    Returns:
        One hex digest per row.

    Example:
        >>> images = np.zeros((3, 4, 4, 3), np.uint8); images[2, 0, 0, 0] = 1
        >>> a, b, c = pixel_digests(images, [0, 1, 2])
        >>> a == b, a == c, len(a)
        (True, False, 64)
    """
    shape = repr(tuple(images.shape[1:])).encode()
    return [hashlib.sha256(shape + np.ascontiguousarray(images[int(row)]).tobytes()).hexdigest()
            for row in rows]


def namespace_dir(backbone: Backbone, layer: str) -> Path | None:
    """Return the folder of `backbone`'s pooled `layer` features, or `None` (random weights: never shared).

    Example:
        >>> a = namespace_dir(backbone, backbone.feature_layer)
        >>> a.parent.name, a == namespace_dir(backbone, "block_8_add")
        ('features', False)
    """
    if backbone.weights == "none":
        return None
    spec = {"version": FEATURE_STORE_VERSION, "backbone": backbone.name, "weights": backbone.weights,
            "image_size": backbone.image_size, "input_size": backbone.input_size, "layer": layer}
    return cache_dir(CACHE_SUBDIR) / hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def save_features(backbone: Backbone, layer: str, digests: Sequence[str], features: np.ndarray,
                  *, max_mb: float = config.FEATURE_STORE_MAX_MB) -> Path | None:
    """File pooled features of `layer`, one row per image digest; return the batch file.

    The batch file is written atomically, then added to the namespace's index;
    when the namespace's batch files then exceed `max_mb`, the least recently
    used ones (oldest modification time) are deleted, never the one just filed.

    Args:
        backbone: The network that computed them.
        layer: The layer whose pooled output they are (a name ``Embedder`` takes).
        digests: :func:`pixel_digests` of the images, aligned with `features`.
        features: ``(len(digests), D)`` float32.
        max_mb: Largest size of the namespace's batch files, in MB.
            Defaults to `config.FEATURE_STORE_MAX_MB`.

    Returns:
        The written batch file, or `None` when nothing is stored (random
        weights, no rows, or the same batch already filed: it then counts as
        used).

    Raises:
        StorageError: The batch file or the index could not be written (one line).
        ValueError: `features` has not one row per digest.

    Example:
        >>> digests = pixel_digests(np.zeros((2, 4, 4, 3), np.uint8), [0, 1])
        >>> save_features(backbone, "doc_layer", digests, np.ones((2, 3), np.float32)).suffix
        '.npz'
        >>> newest = save_features(backbone, "doc_layer", digests[:1], np.ones((1, 3)), max_mb=0)
        >>> [path.name for path in newest.parent.glob("*.npz")] == [newest.name]  # over the cap
        True
    """
    folder = namespace_dir(backbone, layer)
    if folder is None or len(digests) == 0:
        return None
    features = np.asarray(features, dtype=np.float32)
    if features.shape[0] != len(digests):
        raise ValueError(f"Expected one feature row per digest. Received: {features.shape[0]} rows "
                         f"for {len(digests)} digests")
    batch = hashlib.sha256("\n".join(digests).encode()).hexdigest()
    target = folder / f"{batch}.npz"
    if target.is_file():
        _touch(target)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with cache_entry(target, what="shared features", suffix=".npz") as tmp, open(tmp, "wb") as out:
        np.savez(out, digests=np.asarray(digests), features=features)
    with entry_lock(folder / INDEX_FILE):
        index, _ = _current_index(folder, known={target.name: [str(digest) for digest in digests]})
        for name in _evict(folder, max_bytes=max_mb * 1e6, keep=target.name):
            index.pop(name, None)
        _write_index(folder, index)
    return target


def load_features(backbone: Backbone, layer: str, digests: Sequence[str],
                  dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Return which of `digests` have filed features, and those features.

    Only the batch files that the namespace's index names for `digests` are
    opened (an index that is missing, damaged or behind the folder is first
    brought up to date from the batch files), and each one read is touched,
    so the features in use outlive the others when the namespace is full.

    Args:
        backbone: The network the features must come from.
        layer: The layer whose pooled output is wanted.
        digests: :func:`pixel_digests` of the images wanted.
        dim: Width of one feature row (a batch file of another width is ignored).

    Returns:
        ``(found, features)``: a bool array over `digests`, and a
        ``(len(digests), dim)`` float32 array whose rows where `found` is
        `False` are zeros.

    Example:
        >>> images = np.zeros((3, 4, 4, 3), np.uint8); images[2] = 9
        >>> digests = pixel_digests(images, [0, 1, 2])
        >>> _ = save_features(backbone, "doc_load", digests[:1], np.full((1, 2), 5, np.float32))
        >>> found, features = load_features(backbone, "doc_load", digests, dim=2)
        >>> found.tolist(), features[:, 0].tolist()
        ([True, True, False], [5.0, 5.0, 0.0])
    """
    found = np.zeros(len(digests), dtype=bool)
    features = np.zeros((len(digests), dim), dtype=np.float32)
    folder = namespace_dir(backbone, layer)
    if folder is None or not folder.is_dir() or len(digests) == 0:
        return found, features
    wanted: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        wanted.setdefault(digest, []).append(index)
    holders = {name: [digest for digest in filed if digest in wanted]
               for name, filed in _up_to_date_index(folder).items()}
    # The batches holding the most wanted images first; one whose images are all found is skipped.
    for name in sorted((name for name in holders if holders[name]), key=lambda n: (-len(holders[n]), n)):
        if all(found[wanted[digest][0]] for digest in holders[name]):
            continue
        batch = folder / name
        read = _read_batch(batch, "digests", "features")
        if read is None:  # a damaged (or just evicted) file shares nothing
            continue
        names, rows = read
        if rows.ndim != 2 or rows.shape[1] != dim:
            continue
        for position, digest in enumerate(names.tolist()):
            for index in wanted.get(digest, ()):
                if not found[index]:
                    features[index] = rows[position]
                    found[index] = True
        _touch(batch)
        if found.all():
            break
    return found, features


def _batch_files(folder: Path) -> list[Path]:
    """The namespace's batch files (not the hidden temporary files of writes in progress)."""
    return [path for path in folder.glob("*.npz") if not path.name.startswith(".")]


def _read_batch(batch: Path, *keys: str) -> tuple[np.ndarray, ...] | None:
    """The arrays `keys` of batch file `batch` (only those are read), or `None` when it is damaged."""
    try:
        with np.load(batch, allow_pickle=False) as entry:
            return tuple(entry[key] for key in keys)
    except _UNREADABLE as exc:
        logger.warning("Ignoring the shared-features file %s: %s", batch, exc)
        return None


def _read_digests(batch: Path) -> list[str]:
    """The digests filed in `batch` (its features are not read); none when it is damaged."""
    read = _read_batch(batch, "digests")
    return [] if read is None else [str(digest) for digest in read[0].tolist()]


def _read_index(folder: Path) -> dict[str, list[str]] | None:
    """The index as filed (batch file name -> digests), or `None` when missing or damaged."""
    path = folder / INDEX_FILE
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, not JSON
        logger.warning("Rebuilding the unreadable shared-features index %s: %s", path, exc)
        return None
    batches = data.get("batches") if isinstance(data, dict) and data.get("version") == INDEX_VERSION else None
    if not isinstance(batches, dict) or not all(
            isinstance(names, list) and all(isinstance(name, str) for name in names)
            for names in batches.values()):
        logger.warning("Rebuilding the shared-features index %s: not an index of version %d.",
                       path, INDEX_VERSION)
        return None
    return batches


def _current_index(folder: Path, known: dict[str, list[str]] | None = None
                   ) -> tuple[dict[str, list[str]], bool]:
    """The index made true to the batch files in `folder`, and whether it differs from the filed one.

    Entries of deleted files are dropped; files the index does not name take
    their digests from `known` (batch name -> digests) or from the file.
    """
    filed = _read_index(folder)
    on_disk = {path.name for path in _batch_files(folder)}
    index = {name: names for name, names in (filed or {}).items() if name in on_disk}
    changed = filed is None or len(index) != len(filed)
    for name in sorted(on_disk - index.keys()):
        index[name] = (known or {}).get(name) or _read_digests(folder / name)
        changed = True
    return index, changed


def _up_to_date_index(folder: Path) -> dict[str, list[str]]:
    """The index of `folder`, refiled when it was behind (best effort: a read-only cache still loads)."""
    index, changed = _current_index(folder)
    if changed:
        try:
            with entry_lock(folder / INDEX_FILE):
                index, changed = _current_index(folder, known=index)  # a writer may have moved on
                if changed:
                    _write_index(folder, index)
        except StorageError as exc:
            logger.debug("Not refiling the shared-features index of %s: %s", folder, exc)
    return index


def _write_index(folder: Path, index: dict[str, list[str]]) -> None:
    """Replace the index of `folder` atomically (the caller holds its lock)."""
    text = json.dumps({"version": INDEX_VERSION, "batches": index}, sort_keys=True)
    with cache_entry(folder / INDEX_FILE, what="the shared-features index", suffix=".json") as tmp:
        tmp.write_text(text, encoding="utf-8")


def _evict(folder: Path, *, max_bytes: float, keep: str) -> list[str]:
    """Delete the least recently used batch files until those in `folder` fit `max_bytes`; name them.

    The batch file named `keep` (the one just filed) is never deleted.
    """
    files = []
    for path in _batch_files(folder):
        try:
            stat = path.stat()
        except FileNotFoundError:  # deleted by another writer meanwhile
            continue
        files.append((stat.st_mtime, path.name, stat.st_size))
    total = sum(size for _, _, size in files)
    removed = []
    for _, name, size in sorted(files):
        if total <= max_bytes:
            break
        if name == keep:
            continue
        try:
            (folder / name).unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("Could not remove the shared-features file %s: %s", folder / name, exc)
            continue
        total -= size
        removed.append(name)
    if removed:
        logger.info("Removed %d least recently used shared-features file(s) from %s (over %.0f MB).",
                    len(removed), folder, max_bytes / 1e6)
    return removed


def _touch(batch: Path) -> None:
    """Mark `batch` as just used (its modification time), so eviction keeps it longest."""
    try:
        os.utime(batch)
    except OSError:  # a read-only cache, or evicted meanwhile: nothing to keep
        pass
