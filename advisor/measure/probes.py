"""The probes (label-aware): how separable the classes are in the backbone's features.

Cross-validated accuracy of a k-NN and of a ridge linear classifier on the
pooled bottleneck features, a learning curve, and the linear probe on pooled
outputs of intermediate blocks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from advisor import config
from advisor.measure.layer_features import LayerStandardizer
from advisor.measure.profile import ProbeStats


def _subsample(indices: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Keep `fraction` of each class's `indices` (at least one), drawn with `rng`."""
    if fraction >= 1.0:
        return indices
    kept = []
    for label in np.unique(labels[indices]):
        members = indices[labels[indices] == label]
        take = max(1, int(round(fraction * members.size)))
        kept.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(kept))


def _linear_probe():

    return make_pipeline(StandardScaler(), RidgeClassifier(alpha=config.PROBE_RIDGE_ALPHA))


def _layers_probe(widths):

    # The layer weights leave the columns a mean variance of len(widths) / sum(widths)
    # where the one-layer probe's have 1: the same penalty relative to the data is
    # the ridge alpha times that.
    alpha = config.PROBE_RIDGE_ALPHA * len(widths) / sum(widths)
    return make_pipeline(LayerStandardizer(widths), RidgeClassifier(alpha=alpha))


def _knn_probe(n_train: int):

    # On L2-normalised rows, Euclidean neighbours are cosine neighbours.
    k = max(1, min(config.PROBE_KNN_NEIGHBORS, n_train))
    return make_pipeline(Normalizer(), KNeighborsClassifier(n_neighbors=k))


def probe_accuracies(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    block_features: Mapping[str, np.ndarray] | None = None,
    seed: int = config.DEFAULT_SEED,
) -> ProbeStats | None:
    """Cross-validate cheap classifiers on frozen features.

    Stratified k-fold with ``min(config.PROBE_MAX_FOLDS, smallest class count)``
    folds, shuffled with `seed`. Per fold: a k-NN (cosine) and a ridge linear
    classifier on standardised bottleneck features, the same linear probe
    trained on ``config.PROBE_LEARNING_CURVE`` fractions of the fold's training
    part (stratified, same test part), on each block's pooled output, and on
    the blocks and the bottleneck together (each layer standardised and
    weighted the same, :class:`~advisor.measure.layer_features.LayerStandardizer`).

    Args:
        features: ``(N, D)`` pooled bottleneck features.
        labels: ``(N,)`` integer labels.
        block_features: Intermediate block name -> ``(N, C)`` pooled outputs, in
            graph order. Defaults to `None` (none).
        seed: Seed of the folds and the learning-curve subsamples. Defaults to
            `config.DEFAULT_SEED`.

    Returns:
        The :class:`ProbeStats`, or `None` when fewer than 2 classes have at
        least 2 images each (nothing to cross-validate).

    Example:
        >>> x = np.r_[np.zeros((4, 3)), np.ones((4, 3))] + np.arange(8)[:, None] * 0.01
        >>> probe_accuracies(x, np.array([0] * 4 + [1] * 4), seed=0).linear_accuracy
        1.0
    """

    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    _, labels = np.unique(labels, return_inverse=True)
    counts = np.bincount(labels)
    usable = counts >= 2
    if usable.sum() < 2:
        return None
    keep = usable[labels]  # classes with a single image cannot be both trained and tested
    features, labels = features[keep], np.unique(labels[keep], return_inverse=True)[1]
    blocks = {name: np.asarray(x, dtype=np.float32)[keep] for name, x in (block_features or {}).items()}
    counts = np.bincount(labels)
    n_splits = int(min(config.PROBE_MAX_FOLDS, counts.min()))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    rng = np.random.default_rng(seed)
    fractions = tuple(f for f in config.PROBE_LEARNING_CURVE if f < 1.0)
    correct = {"knn": 0, "linear": 0, **{f"curve:{f}": 0 for f in fractions}}
    correct |= {f"block:{b}": 0 for b in blocks}
    together = np.concatenate([*blocks.values(), features], axis=1) if blocks else None
    widths = [x.shape[1] for x in blocks.values()] + [features.shape[1]]
    correct["layers"] = 0

    def hits(model, x, test) -> int:
        return int((model.predict(x[test]) == labels[test]).sum())

    for train, test in folds.split(features, labels):
        correct["knn"] += hits(_knn_probe(train.size).fit(features[train], labels[train]), features, test)
        correct["linear"] += hits(_linear_probe().fit(features[train], labels[train]), features, test)
        for fraction in fractions:
            part = _subsample(train, labels, fraction, rng)
            if np.unique(labels[part]).size >= 2:  # one class cannot be fitted: counts as wrong
                correct[f"curve:{fraction}"] += hits(_linear_probe().fit(features[part], labels[part]),
                                                     features, test)
        for name, x in blocks.items():
            correct[f"block:{name}"] += hits(_linear_probe().fit(x[train], labels[train]), x, test)
        if together is not None:
            correct["layers"] += hits(_layers_probe(widths).fit(together[train], labels[train]), together, test)
    n = labels.size
    linear = correct["linear"] / n
    curve = tuple((float(f), correct[f"curve:{f}"] / n) for f in fractions) + ((1.0, linear),)
    block_accuracy = {name: correct[f"block:{name}"] / n for name in blocks}
    best = earliest_best_block(block_accuracy, linear)
    return ProbeStats(
        knn_accuracy=correct["knn"] / n,
        linear_accuracy=float(linear),
        chance=float(counts.max() / n),
        n_splits=n_splits,
        learning_curve=curve,
        block_accuracy=block_accuracy,
        best_block=best,
        layers_accuracy=None if together is None else correct["layers"] / n,
    )


def earliest_best_block(block_accuracy: dict[str, float], bottleneck_accuracy: float) -> str | None:
    """Return the earliest block within ``config.PROBE_BLOCK_TOLERANCE`` of the best probe, or `None`.

    The best is the highest linear-probe accuracy over the intermediate blocks
    and the bottleneck; `None` means no intermediate block comes within the
    tolerance of it (the bottleneck is clearly best). `block_accuracy` is in
    block order.

    Example:
        >>> earliest_best_block({"block_8": 0.694, "block_12": 0.70, "block_14": 0.729}, 0.702)
        'block_14'
        >>> earliest_best_block({"block_8": 0.80, "block_14": 0.795}, 0.805)
        'block_8'
        >>> earliest_best_block({"block_8": 0.60, "block_14": 0.70}, 0.80) is None
        True
    """
    best = max([bottleneck_accuracy, *block_accuracy.values()])
    return next((name for name, accuracy in block_accuracy.items()
                 if accuracy >= best - config.PROBE_BLOCK_TOLERANCE), None)
