"""Pure measures of how a dataset looks to a pretrained backbone, and the profile record.

Everything here takes NumPy arrays (from :mod:`advisor.measure.forward`'s one forward
pass) and an explicit `seed`, and returns numbers or frozen records:

1. **Shift map** (label-free): for each BatchNormalization layer, the
   per-channel Gaussian KL divergence ``KL(N(mu_s, var_s) || N(mu_r, var_r))``
   between the sample's moments of the layer's input and the running moments
   stored from ImageNet training (for a ``--base`` model: from the data it was
   trained on), averaged over channels; summarised per block, with the first
   block whose mean KL exceeds ``config.SHIFT_DEPARTURE_KL``. A network without
   BatchNormalization layers has no shift map (``profile.shift is None``).
2. **ImageNet head** (label-free): mean max-softmax probability, mean predictive
   entropy, and the ImageNet classes each class folder is most often mapped to
   (for a ``--base`` model, its own head and classes).
3. **Probes** (label-aware): cross-validated accuracy of a k-NN and of a ridge
   linear classifier on the pooled bottleneck features, a learning curve, and
   the linear probe on pooled outputs of intermediate blocks.

:func:`similarity_score` combines them into one number in [0, 1]:

    shift = exp(-KL_mid / config.SHIFT_SCORE_SCALE)
    head  = mean max-softmax probability over the 1,000 ImageNet classes
    probe = clip((linear accuracy - chance) / (1 - chance), 0, 1)
    score = sum(w_c * c) / sum(w_c)   over the components present,
            w = config.SIMILARITY_WEIGHTS

where ``KL_mid`` is the mean KL of the blocks in ``config.SHIFT_SCORE_DEPTH``
and chance is the majority-class rate. 1 means "looks like ImageNet" (or like
a base model's training data). Without a shift map the score is the probe's
alone (the head's when there are no labels either), and the profile's
``notes`` say so.

API:
    gaussian_kl(mean, var, ref_mean, ref_var, *, epsilon) -> np.ndarray
    shift_map(moments, reference, blocks, *, epsilon, departure_kl) -> ShiftMap
    head_stats(logits, labels=None, class_names=(), *, imagenet_names=None,
               top_k) -> HeadStats
    probe_accuracies(features, labels, *, block_features=None, seed) -> ProbeStats | None
    similarity_score(shift, head, probes) -> Similarity
    reference_data(backbone) -> str
    ShiftMap, HeadStats, ProbeStats, Similarity, DatasetProfile (frozen; to_dict/from_dict)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from advisor import config
from advisor.errors import PlanError

PROFILE_SCHEMA_VERSION = 1
#: The profile note of a network without BatchNormalization layers.
NO_BATCHNORM_NOTE = ("this model has no BatchNormalization layers: shift map unavailable, "
                     "similarity from probes only")
#: The same note when there are no labels (so no probes) either.
NO_BATCHNORM_NO_PROBES_NOTE = ("this model has no BatchNormalization layers: shift map "
                               "unavailable, similarity from its head only")


def reference_data(backbone: str) -> str:
    """Return what a profile measured with `backbone` compares the data with.

    Args:
        backbone: The profile's backbone name.

    Returns:
        ``"ImageNet"``, or ``"the base model's training data"`` for a
        ``base:`` (``advise --base``) backbone.

    Example:
        >>> reference_data("mobilenet_v2"), reference_data("base:/runs/cars/model.keras")
        ('ImageNet', "the base model's training data")
    """
    if backbone.startswith(config.BASE_MODEL_PREFIX):
        return config.REFERENCE_BASE_MODEL
    return config.REFERENCE_IMAGENET


# --------------------------------------------------------------------------- #
# Records
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, slots=True)
class ShiftMap:
    """Where, over depth, the data stops looking like ImageNet to the backbone.

    Args:
        layers: BatchNormalization layer names, in graph order.
        layer_kl: Mean per-channel KL of each layer's input (aligned with `layers`).
        blocks: Names of the blocks holding BN layers, in graph order.
        block_kl: Mean of `layer_kl` over each block's BN layers.
        mean_kl: Mean of `layer_kl` over all BN layers.
        score_kl: Mean of `block_kl` over the blocks in ``config.SHIFT_SCORE_DEPTH``
            (the similarity score's input).
        departure_kl: The threshold a block's KL must exceed to depart.
        first_departing_block: First block whose KL exceeds `departure_kl`, or
            `None` when none does.
        n_images: Images the moments were computed over (0: not recorded).
    """

    layers: tuple[str, ...]
    layer_kl: tuple[float, ...]
    blocks: tuple[str, ...]
    block_kl: tuple[float, ...]
    mean_kl: float
    score_kl: float
    departure_kl: float
    first_departing_block: str | None
    n_images: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "layers": list(self.layers),
            "layer_kl": list(self.layer_kl),
            "blocks": list(self.blocks),
            "block_kl": list(self.block_kl),
            "mean_kl": self.mean_kl,
            "score_kl": self.score_kl,
            "departure_kl": self.departure_kl,
            "first_departing_block": self.first_departing_block,
            "n_images": self.n_images,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShiftMap:
        """Rebuild from :meth:`to_dict` output."""
        first = data["first_departing_block"]
        return cls(
            layers=tuple(str(x) for x in data["layers"]),
            layer_kl=tuple(float(x) for x in data["layer_kl"]),
            blocks=tuple(str(x) for x in data["blocks"]),
            block_kl=tuple(float(x) for x in data["block_kl"]),
            mean_kl=float(data["mean_kl"]),
            score_kl=float(data["score_kl"]),
            departure_kl=float(data["departure_kl"]),
            first_departing_block=None if first is None else str(first),
            n_images=int(data.get("n_images", 0)),
        )


@dataclass(frozen=True, slots=True)
class HeadStats:
    """How confidently the ImageNet head classifies the data.

    Args:
        mean_max_probability: Mean over images of the largest softmax probability.
        mean_entropy: Mean predictive entropy, in nats (at most ``log(1000)``).
        top_classes: Class folder -> ``((ImageNet class, share of its images), ...)``,
            most frequent argmax first; ``"*"`` for all images when there are no labels.
    """

    mean_max_probability: float
    mean_entropy: float
    top_classes: dict[str, tuple[tuple[str, float], ...]]

    @property
    def normalized_entropy(self) -> float:
        """Mean entropy divided by ``log(number of ImageNet classes)``, in [0, 1]."""
        return self.mean_entropy / math.log(_NUM_IMAGENET_CLASSES)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "mean_max_probability": self.mean_max_probability,
            "mean_entropy": self.mean_entropy,
            "top_classes": {k: [[n, s] for n, s in v] for k, v in self.top_classes.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadStats:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            mean_max_probability=float(data["mean_max_probability"]),
            mean_entropy=float(data["mean_entropy"]),
            top_classes={
                str(k): tuple((str(n), float(s)) for n, s in v)
                for k, v in data["top_classes"].items()
            },
        )


@dataclass(frozen=True, slots=True)
class ProbeStats:
    """Cross-validated accuracies of cheap classifiers on frozen features.

    Args:
        knn_accuracy: k-NN (cosine) accuracy on the pooled bottleneck features.
        linear_accuracy: Ridge linear-classifier accuracy on the same.
        chance: Majority-class rate (the accuracy of always guessing it).
        n_splits: Folds of the stratified cross-validation.
        learning_curve: ``((fraction of each training fold, linear accuracy), ...)``.
        block_accuracy: Intermediate block name -> linear accuracy on its pooled output.
        best_block: The earliest intermediate block whose accuracy is at least
            `linear_accuracy` minus ``config.PROBE_BLOCK_TOLERANCE``, or `None`.
    """

    knn_accuracy: float
    linear_accuracy: float
    chance: float
    n_splits: int
    learning_curve: tuple[tuple[float, float], ...]
    block_accuracy: dict[str, float]
    best_block: str | None

    @property
    def above_chance(self) -> float:
        """Linear accuracy rescaled so chance is 0 and perfect is 1, clipped to [0, 1]."""
        if self.chance >= 1.0:
            return 0.0
        return float(np.clip((self.linear_accuracy - self.chance) / (1.0 - self.chance), 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "knn_accuracy": self.knn_accuracy,
            "linear_accuracy": self.linear_accuracy,
            "chance": self.chance,
            "n_splits": self.n_splits,
            "learning_curve": [[f, a] for f, a in self.learning_curve],
            "block_accuracy": dict(self.block_accuracy),
            "best_block": self.best_block,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeStats:
        """Rebuild from :meth:`to_dict` output."""
        best = data["best_block"]
        return cls(
            knn_accuracy=float(data["knn_accuracy"]),
            linear_accuracy=float(data["linear_accuracy"]),
            chance=float(data["chance"]),
            n_splits=int(data["n_splits"]),
            learning_curve=tuple((float(f), float(a)) for f, a in data["learning_curve"]),
            block_accuracy={str(k): float(v) for k, v in data["block_accuracy"].items()},
            best_block=None if best is None else str(best),
        )


@dataclass(frozen=True, slots=True)
class Similarity:
    """The combined similarity score and its components, each in [0, 1].

    Args:
        score: Weighted mean of the components present (1 = looks like ImageNet).
        components: ``"shift"``, ``"head"`` and (with labels) ``"probe"``.
        weights: The weight of each component present.
    """

    score: float
    components: dict[str, float]
    weights: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"score": self.score, "components": dict(self.components), "weights": dict(self.weights)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Similarity:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            score=float(data["score"]),
            components={str(k): float(v) for k, v in data["components"].items()},
            weights={str(k): float(v) for k, v in data["weights"].items()},
        )


@dataclass(frozen=True, slots=True)
class DatasetProfile:
    """Everything measured about a dataset that the decision reads.

    Args:
        backbone: Registry name of the backbone measured with.
        image_size: Input size the measurement ran at.
        class_names: Class names, sorted (labels index into them).
        class_counts: Usable images per class, aligned with `class_names`.
        n_images: Usable images, all splits.
        n_train: Images in the training split.
        imbalance_ratio: Largest class count divided by the smallest.
        native_width: Median image width in pixels, before resizing.
        native_height: Median image height in pixels, before resizing.
        n_sampled: Images embedded for the measures.
        seed: Seed of the sample and of the probes' folds.
        shift: The layer-wise shift map, or `None` for a network without
            BatchNormalization layers.
        head: The ImageNet head's view (a base model's own head).
        probes: Frozen-feature probes, or `None` without enough labels.
        similarity: The combined score and its components.
        schema_version: Version of this record's JSON form.
        notes: Sentences for the reader about what could not be measured.
            Defaults to `()`.
    """

    backbone: str
    image_size: int
    class_names: tuple[str, ...]
    class_counts: tuple[int, ...]
    n_images: int
    n_train: int
    imbalance_ratio: float
    native_width: float
    native_height: float
    n_sampled: int
    seed: int
    shift: ShiftMap | None
    head: HeadStats
    probes: ProbeStats | None
    similarity: Similarity
    schema_version: int = PROFILE_SCHEMA_VERSION
    notes: tuple[str, ...] = ()

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def native_side(self) -> float:
        """The shorter median side of the images, in pixels."""
        return min(self.native_width, self.native_height)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``json.dumps(..., sort_keys=True)`` round-trips).

        Example:
            >>> DatasetProfile.from_dict(profile.to_dict()) == profile  # doctest: +SKIP
            True
        """
        return {
            "backbone": self.backbone,
            "image_size": self.image_size,
            "class_names": list(self.class_names),
            "class_counts": list(self.class_counts),
            "n_images": self.n_images,
            "n_train": self.n_train,
            "imbalance_ratio": self.imbalance_ratio,
            "native_width": self.native_width,
            "native_height": self.native_height,
            "n_sampled": self.n_sampled,
            "seed": self.seed,
            "shift": None if self.shift is None else self.shift.to_dict(),
            "head": self.head.to_dict(),
            "probes": None if self.probes is None else self.probes.to_dict(),
            "similarity": self.similarity.to_dict(),
            "schema_version": self.schema_version,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetProfile:
        """Rebuild a profile from :meth:`to_dict` output.

        Raises:
            PlanError: A newer schema version, or missing fields.
        """
        version = int(data.get("schema_version", PROFILE_SCHEMA_VERSION))
        if version > PROFILE_SCHEMA_VERSION:
            raise PlanError(
                f"Profile schema_version {version} is newer than this advisor's "
                f"({PROFILE_SCHEMA_VERSION}); upgrade finetune-advisor"
            )
        try:
            return cls(
                backbone=str(data["backbone"]),
                image_size=int(data["image_size"]),
                class_names=tuple(str(c) for c in data["class_names"]),
                class_counts=tuple(int(c) for c in data["class_counts"]),
                n_images=int(data["n_images"]),
                n_train=int(data["n_train"]),
                imbalance_ratio=float(data["imbalance_ratio"]),
                native_width=float(data["native_width"]),
                native_height=float(data["native_height"]),
                n_sampled=int(data["n_sampled"]),
                seed=int(data["seed"]),
                shift=None if data["shift"] is None else ShiftMap.from_dict(data["shift"]),
                head=HeadStats.from_dict(data["head"]),
                probes=None if data["probes"] is None else ProbeStats.from_dict(data["probes"]),
                similarity=Similarity.from_dict(data["similarity"]),
                schema_version=version,
                notes=tuple(str(note) for note in data.get("notes", ())),
            )
        except KeyError as exc:
            raise PlanError(f"Malformed profile: missing field {exc.args[0]!r}") from None

    def to_json(self) -> str:
        """Return the profile as sorted-key JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_json(cls, text: str) -> DatasetProfile:
        """Parse :meth:`to_json`'s output.

        Raises:
            PlanError: The text is not a valid profile.
        """
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise PlanError(f"Profile JSON is malformed: {exc}") from None


# --------------------------------------------------------------------------- #
# 1. Shift map
# --------------------------------------------------------------------------- #
_NUM_IMAGENET_CLASSES = 1000


def gaussian_kl(
    mean: np.ndarray,
    var: np.ndarray,
    ref_mean: np.ndarray,
    ref_var: np.ndarray,
    *,
    epsilon: float = config.SHIFT_KL_EPSILON,
) -> np.ndarray:
    """Return the per-channel KL divergence ``KL(N(mean, var) || N(ref_mean, ref_var))``.

    Args:
        mean: Sample channel means.
        var: Sample channel variances.
        ref_mean: Reference (ImageNet running) means.
        ref_var: Reference running variances.
        epsilon: Added to both variances (BatchNorm's own epsilon). Defaults to
            `config.SHIFT_KL_EPSILON`.

    Returns:
        A float64 array of per-channel divergences (>= 0).

    Example:
        >>> float(gaussian_kl(np.zeros(1), np.ones(1), np.zeros(1), np.ones(1))[0])
        0.0
    """
    var = np.asarray(var, dtype=np.float64) + epsilon
    ref_var = np.asarray(ref_var, dtype=np.float64) + epsilon
    diff = np.asarray(mean, dtype=np.float64) - np.asarray(ref_mean, dtype=np.float64)
    return 0.5 * (np.log(ref_var / var) + (var + diff**2) / ref_var - 1.0)


def shift_map(
    moments: Mapping[str, tuple[np.ndarray, np.ndarray]],
    reference: Mapping[str, tuple[np.ndarray, np.ndarray]],
    blocks: Sequence[tuple[str, Sequence[str]]],
    *,
    epsilon: float = config.SHIFT_KL_EPSILON,
    departure_kl: float = config.SHIFT_DEPARTURE_KL,
    score_depth: tuple[float, float] = config.SHIFT_SCORE_DEPTH,
) -> ShiftMap:
    """Compare each BN layer's input moments with its stored ImageNet moments.

    Args:
        moments: BN layer -> ``(channel means, channel variances)`` of the sample,
            in graph order.
        reference: BN layer -> ``(running mean, running variance)`` from ImageNet.
        blocks: ``(block name, layer names)`` of the backbone, in graph order.
        epsilon: Variance epsilon of the KL. Defaults to `config.SHIFT_KL_EPSILON`.
        departure_kl: A block departs above this KL. Defaults to
            `config.SHIFT_DEPARTURE_KL`.
        score_depth: Depth range of the blocks averaged into ``score_kl``.
            Defaults to `config.SHIFT_SCORE_DEPTH`.

    Returns:
        The :class:`ShiftMap`.

    Raises:
        ValueError: `moments` is empty or names a layer missing from `reference`.

    Example:
        >>> m = {"bn": (np.zeros(2), np.ones(2))}
        >>> shift_map(m, m, [("b", ["bn"])]).mean_kl
        0.0
    """
    if not moments:
        raise ValueError("Expected moments of at least one BatchNormalization layer. Received: none.")
    missing = [name for name in moments if name not in reference]
    if missing:
        raise ValueError(f"Expected reference moments for every layer. Missing: {missing[:5]}")
    layers = tuple(moments)
    layer_kl = tuple(
        float(gaussian_kl(*moments[name], *reference[name], epsilon=epsilon).mean()) for name in layers
    )
    by_layer = dict(zip(layers, layer_kl))
    block_names, block_kl, depths = [], [], []
    n_blocks = len(blocks)
    for index, (name, block_layers) in enumerate(blocks):
        values = [by_layer[layer] for layer in block_layers if layer in by_layer]
        if values:
            block_names.append(name)
            block_kl.append(float(np.mean(values)))
            depths.append(index / max(1, n_blocks - 1))
    low, high = score_depth
    in_range = [kl for kl, depth in zip(block_kl, depths) if low <= depth <= high]
    score_kl = float(np.mean(in_range)) if in_range else float(np.mean(layer_kl))
    first = next((name for name, kl in zip(block_names, block_kl) if kl > departure_kl), None)
    return ShiftMap(
        layers=layers,
        layer_kl=layer_kl,
        blocks=tuple(block_names),
        block_kl=tuple(block_kl),
        mean_kl=float(np.mean(layer_kl)),
        score_kl=score_kl,
        departure_kl=float(departure_kl),
        first_departing_block=first,
    )


# --------------------------------------------------------------------------- #
# 2. ImageNet head
# --------------------------------------------------------------------------- #
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
        from advisor.backbones.imagenet_labels import imagenet_class_names

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


# --------------------------------------------------------------------------- #
# 3. Probes
# --------------------------------------------------------------------------- #
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
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeClassifier(alpha=config.PROBE_RIDGE_ALPHA))


def _knn_probe(n_train: int):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

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
    part (stratified, same test part), and on each block's pooled output.

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
    from sklearn.model_selection import StratifiedKFold

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
    n = labels.size
    linear = correct["linear"] / n
    curve = tuple((float(f), correct[f"curve:{f}"] / n) for f in fractions) + ((1.0, linear),)
    block_accuracy = {name: correct[f"block:{name}"] / n for name in blocks}
    best = next(
        (name for name, acc in block_accuracy.items()
         if acc >= linear - config.PROBE_BLOCK_TOLERANCE),
        None,
    )
    return ProbeStats(
        knn_accuracy=correct["knn"] / n,
        linear_accuracy=float(linear),
        chance=float(counts.max() / n),
        n_splits=n_splits,
        learning_curve=curve,
        block_accuracy=block_accuracy,
        best_block=best,
    )


# --------------------------------------------------------------------------- #
# Combined score
# --------------------------------------------------------------------------- #
def similarity_score(
    shift: ShiftMap | None,
    head: HeadStats | None,
    probes: ProbeStats | None = None,
    *,
    weights: Mapping[str, float] = config.SIMILARITY_WEIGHTS,
    shift_scale: float = config.SHIFT_SCORE_SCALE,
) -> Similarity:
    """Combine the shift map, the head and the probes into one score in [0, 1].

    ``shift = exp(-shift.score_kl / shift_scale)``, ``head = mean max-softmax
    probability``, ``probe = linear accuracy rescaled from chance (0) to
    perfect (1)``; the score is their weighted mean over the components present
    (the probe is absent without labels, so the label-free part never depends
    on labels; the shift is absent for a network without BatchNormalization).

    Args:
        shift: The shift map, or `None` (left out).
        head: The head statistics, or `None` (left out).
        probes: The probes, or `None`. Defaults to `None`.
        weights: Weight of each component. Defaults to `config.SIMILARITY_WEIGHTS`.
        shift_scale: KL scale of the shift component. Defaults to
            `config.SHIFT_SCORE_SCALE`.

    Returns:
        The :class:`Similarity`.

    Raises:
        ValueError: No component is given.

    Example:
        >>> similarity_score(shift, head).score  # doctest: +SKIP
        0.87
    """
    components = {}
    if shift is not None:
        components["shift"] = float(math.exp(-shift.score_kl / shift_scale))
    if head is not None:
        components["head"] = float(head.mean_max_probability)
    if probes is not None:
        components["probe"] = probes.above_chance
    if not components:
        raise ValueError("Expected at least one of shift, head or probes. Received: none.")
    used = {name: float(weights[name]) for name in components}
    total = sum(used.values())
    score = sum(used[name] * value for name, value in components.items()) / total
    return Similarity(score=float(np.clip(score, 0.0, 1.0)), components=components, weights=used)
