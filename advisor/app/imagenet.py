"""What the pretrained network sees in a few images: its top ImageNet classes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advisor import config
from advisor.backbones import get_backbone
from advisor.backbones.imagenet_labels import imagenet_class_names
from advisor.data.images import find_image_files, load_image


def imagenet_top_k(paths: Sequence[Path], *, backbone_name: str = config.DEFAULT_BACKBONE,
                   k: int = 5, limit: int = 8) -> list[tuple[Path, list[tuple[str, float]]]]:
    """Return the top-`k` ImageNet classes and probabilities of up to `limit` images.

    Args:
        paths: Image files, or folders searched recursively.
        backbone_name: A registered backbone. Defaults to `"mobilenet_v2"`.
        k: Classes per image. Defaults to `5`.
        limit: At most this many images (in sorted order). Defaults to `8`.

    Returns:
        ``[(path, [(class name, probability), ...]), ...]``.

    Raises:
        DatasetError: No image could be found or read.

    Example:
        >>> image = next((digits_dir / "3").iterdir())
        >>> path, top = imagenet_top_k([image], k=3)[0]
        >>> path == image, len(top), all(isinstance(name, str) and 0 < p < 1 for name, p in top)
        (True, 3, True)
    """
    backbone = get_backbone(backbone_name)
    files = find_image_files(paths)[:limit]
    batch = np.stack([load_image(f, backbone.image_size) for f in files])
    logits = np.asarray(backbone.model.predict(batch, verbose=0), dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    names = backbone.class_names or imagenet_class_names()  # a base: model's own classes
    return [(f, [(names[i], float(p[i])) for i in np.argsort(-p)[:k]]) for f, p in zip(files, probs)]
