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

API:
    pixel_digests(images, rows) -> list[str]
    save_features(backbone, layer, digests, features) -> Path | None
    load_features(backbone, layer, digests) -> (found: bool array, features: (N, D) float32)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advisor.backbones import Backbone
from advisor.cache import cache_dir, cache_entry

logger = logging.getLogger(__name__)

CACHE_SUBDIR = "features"
#: Bump when the pooled features change, to orphan older entries.
FEATURE_STORE_VERSION = 1


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


def save_features(backbone: Backbone, layer: str, digests: Sequence[str],
                  features: np.ndarray) -> Path | None:
    """File pooled features of `layer`, one row per image digest; return the batch file.

    Args:
        backbone: The network that computed them.
        layer: The layer whose pooled output they are (a name ``Embedder`` takes).
        digests: :func:`pixel_digests` of the images, aligned with `features`.
        features: ``(len(digests), D)`` float32.

    Returns:
        The written batch file, or `None` when nothing is stored (random
        weights, no rows, or the same batch already filed).

    Raises:
        StorageError: The batch file could not be written (one line).

    Example:
        >>> digests = pixel_digests(np.zeros((2, 4, 4, 3), np.uint8), [0, 1])
        >>> save_features(backbone, "doc_layer", digests, np.ones((2, 3), np.float32)).suffix
        '.npz'
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
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with cache_entry(target, what="shared features", suffix=".npz") as tmp:
        with open(tmp, "wb") as out:
            np.savez(out, digests=np.asarray(digests), features=features)
    return target


def load_features(backbone: Backbone, layer: str, digests: Sequence[str],
                  dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Return which of `digests` have filed features, and those features.

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
    for batch in sorted(folder.glob("*.npz")):
        try:
            with np.load(batch, allow_pickle=False) as entry:
                names, rows = entry["digests"], entry["features"]
        except (OSError, ValueError, KeyError) as exc:  # a damaged file shares nothing
            logger.warning("Ignoring the shared-features file %s: %s", batch, exc)
            continue
        if rows.ndim != 2 or rows.shape[1] != dim:
            continue
        for position, name in enumerate(names.tolist()):
            for index in wanted.get(name, ()):
                if not found[index]:
                    features[index] = rows[position]
                    found[index] = True
        if found.all():
            break
    return found, features
