"""Expected test accuracy of each regime, from the probes the measuring pass ran.

The frozen regimes (``svm``, ``last-layer``) train a linear classifier on the
same frozen features as the measuring pass's cross-validated linear probe, on
more images. :func:`expected_accuracy` extrapolates the probe's learning curve
(error linear in the number of training images on log-log axes, the usual
power law of learning curves) from the probe's training-fold size to the
training split's, with a 95% interval from the probe's own binomial error
on the images it was scored on.

The fine-tuning regimes start from such a probe (LP-FT) and keep their best
validation epoch, so the frozen estimate is their floor; how much they add
is what the converged advice-quality benchmark measures, and no gain model
is fitted yet: their estimate is the floor, their interval is open above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from advisor.decide.blocks import svm_reads_several_layers
from advisor.measure.profile import DatasetProfile
from advisor.plan import Regime
from advisor.records import record_to_dict

#: z of a two-sided 95% interval.
Z_95 = 1.96


@dataclass(frozen=True, slots=True)
class Expectation:
    """A regime's expected test accuracy with a 95% interval, and what it rests on.

    Args:
        estimate: Expected accuracy (for fine-tuning: its floor, the frozen estimate).
        low: Lower end of the interval.
        high: Upper end, or `None` when open (fine-tuning's gain is not modelled).
        basis: One sentence: what the figure rests on.
    """

    estimate: float
    low: float
    high: float | None
    basis: str

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return record_to_dict(self)

    def describe(self) -> str:
        """``"0.93 (0.90-0.96)"`` or ``">= 0.90"`` for an interval open above.

        Example:
            >>> Expectation(0.931, 0.902, 0.96, "").describe(), Expectation(0.93, 0.9, None, "").describe()
            ('0.93 (0.90-0.96)', '>= 0.90')
        """
        if self.high is None:
            return f">= {self.low:.2f}"
        return f"{self.estimate:.2f} ({self.low:.2f}-{self.high:.2f})"


def extrapolate_learning_curve(points: tuple[tuple[float, float], ...], fold_images: float,
                               n_train: int) -> float:
    """Accuracy at `n_train` images from ``(fraction of fold, accuracy)`` points.

    Fits ``log(1 - accuracy)`` linearly in ``log(images)`` (a power law of the
    error) and evaluates it at `n_train`; a curve that does not fall (or has
    fewer than two points) is read as flat: the last point's accuracy.

    Example:
        >>> round(extrapolate_learning_curve(((0.25, 0.8), (0.5, 0.9), (1.0, 0.95)), 400, 1600), 4)
        0.9875
        >>> extrapolate_learning_curve(((0.5, 0.9), (1.0, 0.9)), 400, 4000)
        0.9
    """
    usable = [(f * fold_images, a) for f, a in points if f > 0 and 0 < a < 1]
    last = points[-1][1] if points else 0.0
    if len(usable) < 2:
        return float(last)
    x = np.log([n for n, _ in usable])
    y = np.log([1 - a for _, a in usable])
    slope, intercept = np.polyfit(x, y, 1)
    if slope > -1e-9:  # flat (or rising error): no gain from more images
        return float(last)
    return float(1 - math.exp(intercept + slope * math.log(max(n_train, 1))))


def expected_accuracy(profile: DatasetProfile, regime: Regime | str, *,
                      feature_layers: Sequence[str] | None = None) -> Expectation | None:
    """Return `regime`'s expected test accuracy on `profile`'s data, or `None` without probes.

    Args:
        profile: The measured profile (its linear probe and learning curve).
        regime: Any of the four regimes.
        feature_layers: The layers the regime's plan reads together
            (``plan.feature_layers``): for ``svm`` on several layers the probe
            on those layers together moves the estimate. Defaults to `None`
            (as the planner would plan them:
            :func:`advisor.decide.blocks.svm_reads_several_layers`).

    Example:
        >>> profile.probes.linear_accuracy, profile.n_train  # doctest: +SKIP
        (0.971, 1259)
        >>> expected_accuracy(profile, "svm").describe()  # doctest: +SKIP
        '0.97 (0.96-0.98)'
        >>> expected_accuracy(profile, "full").describe()  # doctest: +SKIP
        '>= 0.96'
    """
    probes = profile.probes
    if probes is None or not probes.learning_curve:
        return None
    regime = Regime.parse(regime)
    folds = max(probes.n_splits, 2)
    fold_images = profile.n_sampled * (folds - 1) / folds
    estimate = extrapolate_learning_curve(probes.learning_curve, fold_images, profile.n_train)
    # The SVM reads the probes' best block when one comes within tolerance of the
    # best (advisor.decide.blocks.plan_feature_layer); the learning curve is the
    # bottleneck's, so it moves by that block's margin over the bottleneck. On the
    # converged tasks this took Fashion-MNIST 300's estimate from 4.3 points below
    # the achieved to within 0.5 (benchmarks/README.md, "Three converged tasks").
    block = probes.best_block if regime is Regime.SVM else None
    margin = (probes.block_accuracy[block] - probes.linear_accuracy
              if block in probes.block_accuracy else 0.0)
    # When the SVM reads the probed blocks and the bottleneck together
    # (plan.feature_layers), the probe on those layers together says by how much.
    several = (svm_reads_several_layers(profile) if feature_layers is None
               else len(feature_layers) > 1)
    together = regime is Regime.SVM and several and probes.layers_accuracy is not None
    if together:
        margin = probes.layers_accuracy - probes.linear_accuracy
    estimate = min(1.0, max(0.0, estimate + margin))
    # The probe's accuracy was measured on n_sampled images (each scored once
    # across the folds): its binomial error bounds what the curve can say.
    p = probes.linear_accuracy
    half = Z_95 * math.sqrt(max(p * (1 - p), 1e-4) / max(profile.n_sampled, 1))
    low, high = max(0.0, estimate - half), min(1.0, estimate + half)
    curve = (f"the linear probe's learning curve ({probes.linear_accuracy:.2f} cross-validated on "
             f"{profile.n_sampled:,} sampled images) extrapolated to the {profile.n_train:,} training "
             f"images, +-{half:.2f} (95%, the probe's binomial error)")
    if margin and together:
        curve += (f", moved by {margin:+.2f}: the SVM reads the probed blocks and the bottleneck "
                  f"together, whose probe scored {probes.layers_accuracy:.2f} against the "
                  f"bottleneck's {probes.linear_accuracy:.2f}")
    elif margin:
        curve += (f", moved by {margin:+.2f}: the SVM reads {block}, whose probe scored "
                  f"{probes.block_accuracy[block]:.2f} against the bottleneck's {probes.linear_accuracy:.2f}")
    if not regime.fine_tunes_backbone:
        return Expectation(estimate=estimate, low=low, high=high, basis=f"From {curve}.")
    return Expectation(estimate=estimate, low=low, high=None, basis=(
        f"At least the frozen estimate ({curve}): fine-tuning starts from a linear probe and keeps "
        "its best validation epoch; its gain is not modelled yet (see the advice-quality benchmark)."))
