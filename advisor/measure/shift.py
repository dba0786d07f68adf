"""The shift map (label-free): how far a sample's BatchNormalization input moments lie from the stored ones.

For each BN layer, the per-channel Gaussian KL divergence
``KL(N(mu_s, var_s) || N(mu_r, var_r))`` between the sample's moments of the
layer's input and the running moments stored from the backbone's training data
(ImageNet; for a ``--base`` model, the data it was trained on), averaged over
channels and summarised per block, with the first block whose mean KL exceeds
``config.SHIFT_DEPARTURE_KL``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from advisor import config
from advisor.measure.profile import ShiftMap


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
