"""The ImageNet head (label-free): how confidently the backbone's own classifier reads the images.

Mean max-softmax probability, mean predictive entropy, and the ImageNet classes
each class folder is most often mapped to (for a ``--base`` model, its own head
and classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from advisor import config
from advisor.backbones.imagenet_labels import imagenet_class_names
from advisor.measure.profile import HeadStats


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def head_stats(
    logits: np.ndarray,
    labels: np.ndarray | None = None,
    class_names: Sequence[str] = (),
    *,
    imagenet_names: Sequence[str] | None = None,
    top_k: int = config.HEAD_TOP_CLASSES,
) -> HeadStats:
    """Summarise the ImageNet head's predictions on the sample.

    Args:
        logits: ``(N, K)`` logits of the backbone's head (ImageNet: K = 1000).
        labels: Integer labels indexing `class_names`, or `None` (all images
            are summarised under ``"*"``). Defaults to `None`.
        class_names: Class folder names. Defaults to `()`.
        imagenet_names: Names of the head's classes (a base model's own).
            Defaults to `None` (:func:`advisor.backbones.imagenet_labels.imagenet_class_names`);
            when their number is not K, the classes are named ``"class <i>"``.
        top_k: ImageNet classes listed per folder. Defaults to
            `config.HEAD_TOP_CLASSES`.

    Returns:
        The :class:`HeadStats`.

    Example:
        >>> head_stats(np.zeros((2, 1000))).mean_max_probability
        0.001
    """
    if imagenet_names is None:
        imagenet_names = imagenet_class_names()
    probs = _softmax(logits)
    entropy = -(probs * np.log(np.clip(probs, 1e-300, 1.0))).sum(axis=1)
    argmax = probs.argmax(axis=1)
    groups: dict[str, np.ndarray] = {}
    if labels is None:
        groups["*"] = argmax
    else:
        labels = np.asarray(labels)
        for index, name in enumerate(class_names):
            groups[str(name)] = argmax[labels == index]
    if len(imagenet_names) != probs.shape[1]:  # a head with other classes: number them
        imagenet_names = [f"class {i}" for i in range(probs.shape[1])]
    top: dict[str, tuple[tuple[str, float], ...]] = {}
    for name, hits in groups.items():
        if hits.size == 0:
            top[name] = ()
            continue
        classes, counts = np.unique(hits, return_counts=True)
        order = np.lexsort((classes, -counts))[:top_k]
        top[name] = tuple(
            (str(imagenet_names[classes[i]]), float(counts[i] / hits.size)) for i in order
        )
    return HeadStats(
        mean_max_probability=float(probs.max(axis=1).mean()),
        mean_entropy=float(entropy.mean()),
        top_classes=top,
    )
