"""Measure once: profiles cached by what they were measured on.

A profile is keyed by the exact split (every file's relative path, label, split
and content hash, which the scan already computed), the backbone, its input
size and weights, the sample cap, the seed, the profile's schema version and
``MEASUREMENT_VERSION`` (what the measuring pass computes).
``advise DATA_DIR --dry-run`` followed by ``advise DATA_DIR`` therefore measures
once; any changed, added or removed file measures again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from advisor import config
from advisor.cache import atomic_write_text, cache_dir
from advisor.data import SPLITS, Dataset
from advisor.errors import PlanError
from advisor.measure.profile import PROFILE_SCHEMA_VERSION, DatasetProfile

logger = logging.getLogger(__name__)

CACHE_SUBDIR = "profiles"
#: Bump when the measuring pass computes something new, so that profiles cached
#: before it are measured again (2: the probe on the probed blocks and the
#: bottleneck together, ``ProbeStats.layers_accuracy``).
MEASUREMENT_VERSION = 2


def profile_key(dataset: Dataset, *, backbone: str, image_size: int, weights: str,
                sample_cap: int, seed: int, input_size: int | None = None) -> str:
    """Return the hex key of a profile measured with these inputs.

    `input_size` is the size the images were decoded at when the network
    upscaled them in its graph (`None`, or `image_size`: decoded at `image_size`).

    Example:
        >>> from advisor.data import scan_dataset
        >>> ds = scan_dataset(digits_dir)
        >>> key = profile_key(ds, backbone="mobilenet_v2", image_size=224, weights="imagenet",
        ...                   sample_cap=2000, seed=0)
        >>> len(key), key == profile_key(ds, backbone="mobilenet_v2", image_size=96,
        ...                              weights="imagenet", sample_cap=2000, seed=0)
        (64, False)
    """
    digest = hashlib.sha256()
    header = [PROFILE_SCHEMA_VERSION, backbone, image_size, weights, sample_cap, seed,
              config.MOMENT_IMAGES, list(dataset.class_names), MEASUREMENT_VERSION]
    if input_size is not None and input_size != image_size:  # keys of images decoded at size unchanged
        header.append(input_size)
    digest.update(json.dumps(header).encode())
    for split in SPLITS:
        for record in dataset.records(split):
            digest.update(f"{split}|{record.label}|{record.path}|{record.sha256}\n".encode())
    return digest.hexdigest()


def _path(key: str) -> Path:
    return cache_dir(CACHE_SUBDIR) / f"{key}.json"


def load_profile(key: str) -> DatasetProfile | None:
    """Return the cached profile for `key`, or `None` (also for an unreadable entry)."""
    path = _path(key)
    if not path.is_file():
        return None
    try:
        return DatasetProfile.from_json(path.read_text(encoding="utf-8"))
    except (PlanError, OSError) as exc:
        logger.warning("Ignoring unreadable cached profile %s (%s)", path, exc)
        return None


def save_profile(key: str, profile: DatasetProfile) -> Path:
    """Store `profile` under `key`, atomically."""
    path = _path(key)
    atomic_write_text(path, profile.to_json())
    return path
