"""The regime table's thresholds, as a value: :class:`RegimeRules`."""

from __future__ import annotations

from dataclasses import dataclass

from advisor import config


@dataclass(frozen=True, slots=True)
class RegimeRules:
    """Hold the thresholds of the regime table that :func:`~advisor.decide.decide` applies.

    The defaults are the calibrated constants of :mod:`advisor.config`; the
    advice-quality benchmark passes other values to score candidate thresholds,
    so nothing patches the module globals. The same size threshold that makes a
    dataset "large" in the table also places the ``partial`` cut (a large, near
    dataset freezes ``config.LARGE_SIMILAR_FROZEN_FRACTION`` of the blocks).

    Args:
        svm_max_images: Fewer images than this: ``svm`` (frozen
            features + linear SVM). Defaults to `config.SVM_MAX_IMAGES`.
        large_dataset_images: From this many images on a dataset is "large":
            ``partial`` (later blocks) for near data, ``full`` for far data.
            Defaults to `config.LARGE_DATASET_IMAGES`.
        regime_similarity_threshold: A similarity score at or above this is
            "near" the backbone's training data (the table's left column).
            Defaults to `config.REGIME_SIMILARITY_THRESHOLD`.

    Example:
        >>> rules = RegimeRules(svm_max_images=1_000)
        >>> rules.svm_max_images, rules.large_dataset_images == config.LARGE_DATASET_IMAGES
        (1000, True)
        >>> RegimeRules() == RegimeRules(svm_max_images=config.SVM_MAX_IMAGES)
        True
    """

    svm_max_images: int = config.SVM_MAX_IMAGES
    large_dataset_images: int = config.LARGE_DATASET_IMAGES
    regime_similarity_threshold: float = config.REGIME_SIMILARITY_THRESHOLD
