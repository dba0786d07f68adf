"""The similarity score: the shift map, the head and the probes combined into one number in [0, 1]."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from advisor import config
from advisor.measure.profile import HeadStats, ProbeStats, ShiftMap, Similarity


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
        >>> from advisor.measure import shift_map
        >>> from advisor.measure.head import head_stats
        >>> moments = {"bn": (np.zeros(2), np.ones(2))}
        >>> shift = shift_map(moments, moments, [("block", ["bn"])])  # no shift: component 1
        >>> head = head_stats(np.zeros((2, 1000)))  # uniform logits: mean max probability 0.001
        >>> similarity = similarity_score(shift, head)
        >>> round(similarity.score, 4), similarity.weights
        (0.6254, {'shift': 0.5, 'head': 0.3})
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
