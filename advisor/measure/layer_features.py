"""Features of several layers read together: each standardised, each layer weighted the same.

A linear classifier on the pooled outputs of several blocks of a frozen
network (Head2Toe, Evci et al. 2022) reads what the early blocks keep and the
bottleneck drops: on the benchmark's far tasks a linear SVM on the three
probed blocks and the bottleneck scored 2-5 points above the SVM on one layer
(``benchmarks/bench_multilayer_svm.py``). The layers differ in width (64 to
1,280 channels for MobileNetV2), so every column is standardised on the
training images and each layer's columns are weighted by one over the square
root of its width: every layer brings the same total variance, and the
bottleneck does not drown the blocks.

The same transform serves the measuring pass's probe of the layers together
(:mod:`advisor.measure.probes`) and the ``svm`` regime (:mod:`strategies.svm`),
which folds it into the exported model's output layer
(:meth:`LayerStandardizer.affine`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data


def layer_weights(widths: Sequence[int]) -> np.ndarray:
    """Return one weight per column: ``1 / sqrt(width)`` of the layer the column belongs to.

    Example:
        >>> layer_weights([1, 4]).tolist()
        [1.0, 0.5, 0.5, 0.5, 0.5]
    """
    widths = [int(w) for w in widths]
    if not widths or min(widths) < 1:
        raise ValueError(f"Expected one positive width per layer; received widths={widths}.")
    return np.repeat(1.0 / np.sqrt(widths), widths)


class LayerStandardizer(TransformerMixin, BaseEstimator):
    """Standardise concatenated layer features; weight each layer by ``1 / sqrt(width)``.

    Args:
        widths: Columns of each layer, in the order they are concatenated.
            Defaults to `None` (one layer: every column weighted 1 / sqrt(D)).

    Attributes:
        scaler_: The fitted :class:`~sklearn.preprocessing.StandardScaler`.
        weights_: ``(D,)`` per-column layer weight.

    Example:
        >>> x = np.array([[0.0, 10.0, 1.0], [2.0, 30.0, 3.0]])
        >>> z = LayerStandardizer(widths=(2, 1)).fit_transform(x)
        >>> np.round(z, 3).tolist()
        [[-0.707, -0.707, -1.0], [0.707, 0.707, 1.0]]
        >>> scale, offset = LayerStandardizer(widths=(2, 1)).fit(x).affine()
        >>> bool(np.allclose(x * scale - offset, z))
        True
    """

    def __init__(self, widths: Sequence[int] | None = None) -> None:
        self.widths = widths

    def fit(self, x, y=None) -> LayerStandardizer:
        """Fit the per-column mean and scale on `x` (``(N, D)``)."""
        x = validate_data(self, x, dtype=np.float64)
        widths = self.widths if self.widths is not None else (x.shape[1],)
        if sum(int(w) for w in widths) != x.shape[1]:
            raise ValueError(f"The widths {list(widths)} add up to {sum(int(w) for w in widths)} "
                             f"columns; the features have {x.shape[1]}.")
        self.scaler_ = StandardScaler().fit(x)
        self.weights_ = layer_weights(widths)
        return self

    def transform(self, x) -> np.ndarray:
        """Return ``(x - mean) / scale * weight``, float64."""
        check_is_fitted(self)
        x = validate_data(self, x, dtype=np.float64, reset=False)
        return self.scaler_.transform(x) * self.weights_

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(scale, offset)``, ``(D,)`` each, with ``transform(x) == x * scale - offset``.

        A linear layer ``z @ W + b`` on the transformed features is the linear
        layer ``x @ (scale[:, None] * W) + (b - offset @ W)`` on the raw ones.
        """
        check_is_fitted(self)
        scale = self.weights_ / self.scaler_.scale_
        return scale, self.scaler_.mean_ * scale
