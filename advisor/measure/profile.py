"""The profile record: what the measures found, as frozen dataclasses with a JSON form.

The measures themselves are pure functions in their own modules; each takes
NumPy arrays (from :mod:`advisor.measure.forward`'s one forward pass) and an
explicit `seed`, and returns one of these records:

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
    gaussian_kl, shift_map (advisor.measure.shift) -> ShiftMap
    head_stats (advisor.measure.head) -> HeadStats
    probe_accuracies (advisor.measure.probes) -> ProbeStats | None
    similarity_score (advisor.measure.similarity) -> Similarity
    reference_data(backbone) -> str
    in_network_order(block_accuracy, blocks) -> dict (probe blocks after a sorted JSON round trip)
    ShiftMap, HeadStats, ProbeStats, Similarity, DatasetProfile (frozen; to_dict/from_dict)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from advisor import config
from advisor.errors import PlanError
from advisor.records import check_schema, record_from_dict, record_to_dict

#: 2: the largest image sizes (``native_max_width``/``native_max_height``). Version 1
#: profiles still load (without them); the bump re-keys the profile cache, so a folder
#: is measured again once and its plan can decode at native size.
PROFILE_SCHEMA_VERSION = 2

_NUM_IMAGENET_CLASSES = 1000
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


def in_network_order(accuracy: Mapping[str, float], blocks: Sequence[str] | None = None) -> dict[str, float]:
    """Return `accuracy` (block name -> probe accuracy) with its blocks in network order.

    A JSON round trip with ``sort_keys`` files ``block_12`` before ``block_8``;
    this puts them back in the order of `blocks` (the shift map's, input side
    first). Blocks `blocks` lacks (or all, without it) follow by the number in
    their name, then by name.

    Args:
        accuracy: Block name -> accuracy, in any order.
        blocks: The network's block names, input side first. Defaults to `None`.

    Returns:
        A new dict, in network order.

    Example:
        >>> in_network_order({"block_12": 0.8, "block_14": 0.9, "block_8": 0.7})
        {'block_8': 0.7, 'block_12': 0.8, 'block_14': 0.9}
    """
    index = {name: i for i, name in enumerate(blocks or ())}

    def key(name: str) -> tuple[int, int, str]:
        digits = "".join(c for c in name if c.isdigit())
        return (index.get(name, len(index)), int(digits) if digits else 0, name)

    return {name: accuracy[name] for name in sorted(accuracy, key=key)}


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
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShiftMap:
        """Rebuild from :meth:`to_dict` output."""
        return record_from_dict(cls, data, record="profile shift map", error=PlanError,
                                allow_unknown=True)


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
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadStats:
        """Rebuild from :meth:`to_dict` output."""
        return record_from_dict(cls, data, record="profile head stats", error=PlanError,
                                allow_unknown=True)


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
            the best probe's (over the blocks and the bottleneck) minus
            ``config.PROBE_BLOCK_TOLERANCE``, or `None` when none is.
        layers_accuracy: Linear accuracy on the probed blocks and the bottleneck
            read together (:class:`advisor.measure.layer_features.LayerStandardizer`),
            the features of a multi-layer ``svm``; `None` without probed blocks
            (and in profiles written before it).
    """

    knn_accuracy: float
    linear_accuracy: float
    chance: float
    n_splits: int
    learning_curve: tuple[tuple[float, float], ...]
    block_accuracy: dict[str, float]
    best_block: str | None
    layers_accuracy: float | None = None

    @property
    def above_chance(self) -> float:
        """Linear accuracy rescaled so chance is 0 and perfect is 1, clipped to [0, 1]."""
        if self.chance >= 1.0:
            return 0.0
        return float(np.clip((self.linear_accuracy - self.chance) / (1.0 - self.chance), 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeStats:
        """Rebuild from :meth:`to_dict` output."""
        return record_from_dict(cls, data, record="profile probe stats", error=PlanError,
                                allow_unknown=True)


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
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Similarity:
        """Rebuild from :meth:`to_dict` output."""
        return record_from_dict(cls, data, record="profile similarity", error=PlanError,
                                allow_unknown=True)


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
        native_max_width: Largest image width in pixels. Defaults to `None`
            (not recorded: a profile measured before it was).
        native_max_height: Largest image height in pixels. Defaults to `None`.
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
    native_max_width: int | None = None
    native_max_height: int | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def native_side(self) -> float:
        """The shorter median side of the images, in pixels."""
        return min(self.native_width, self.native_height)

    @property
    def native_max_side(self) -> int | None:
        """No image's shorter side is longer than this (pixels), or `None` when not recorded.

        The smaller of the largest width and the largest height: exact for
        folders of square images, an upper bound otherwise.
        """
        if self.native_max_width is None or self.native_max_height is None:
            return None
        return min(self.native_max_width, self.native_max_height)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``json.dumps(..., sort_keys=True)`` round-trips).

        Example:
            >>> import json
            >>> from advisor.data import scan_dataset
            >>> from advisor.measure import measure_dataset
            >>> profile = measure_dataset(scan_dataset(digits_dir), backbone, sample_cap=20)
            >>> data = json.loads(json.dumps(profile.to_dict(), sort_keys=True))
            >>> DatasetProfile.from_dict(data) == profile
            True
        """
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetProfile:
        """Rebuild a profile from :meth:`to_dict` output.

        Raises:
            PlanError: A newer schema version, or missing fields.
        """
        check_schema(data, record="Profile", version=PROFILE_SCHEMA_VERSION, error=PlanError)
        # Unknown fields are ignored, as profiles always have been read.
        profile = record_from_dict(cls, data, record="profile", error=PlanError, allow_unknown=True)
        if profile.probes is None:
            return profile
        # Sorted JSON keys put block_12 before block_8: restore the network's order.
        ordered = in_network_order(profile.probes.block_accuracy,
                                   profile.shift.blocks if profile.shift is not None else None)
        return replace(profile, probes=replace(profile.probes, block_accuracy=ordered))

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
