"""Expected test accuracy of each regime, from the probes the measuring pass ran.

The frozen regimes (``svm``, ``last-layer``) train a linear classifier on the
same frozen features as the measuring pass's cross-validated linear probe, on
more images. :func:`expected_accuracy` extrapolates the probe's learning curve
(error linear in the number of training images on log-log axes, the usual
power law of learning curves) from the probe's training-fold size to the
training split's, with a 95% interval from the probe's own binomial error
on the images it was scored on.

The fine-tuning regimes start from such a probe (LP-FT) and keep their best
validation epoch, so the frozen estimate is their floor. How much they add is
what the converged advice-quality benchmark measures: a :class:`FineTuneGain`
per regime (the mean and spread of the achieved accuracy minus the ``svm``
estimate over its tasks, ``config.FINE_TUNE_GAIN``) moves the ``svm``
estimate on training splits as small as the benchmark's; on larger ones the
gain is not modelled, the estimate is the floor and its interval open above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from advisor import config
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


@dataclass(frozen=True, slots=True)
class FineTuneGain:
    """A fine-tuning regime's measured gain over the frozen ``svm`` estimate, in points.

    Args:
        mean_pp: Mean over the tasks of (achieved test accuracy - ``svm`` estimate).
        sd_pp: Its standard deviation between tasks.
        tasks: Tasks it was measured on.
        max_train: The largest training split among them: the gain applies up to it.

    Example:
        >>> gain = FineTuneGain(mean_pp=0.2, sd_pp=1.7, tasks=5, max_train=700)
        >>> gain.covers(500), gain.covers(5000)
        (True, False)
    """

    mean_pp: float
    sd_pp: float
    tasks: int
    max_train: int

    def covers(self, n_train: int) -> bool:
        """Whether a training split of `n_train` images lies within the measured range."""
        return self.tasks >= 2 and n_train <= self.max_train


def fine_tune_gain(regime: Regime | str) -> FineTuneGain | None:
    """Return `regime`'s gain from ``config.FINE_TUNE_GAIN``, or `None` (not measured).

    Example:
        >>> fine_tune_gain("full").tasks == config.FINE_TUNE_GAIN["full"][2], fine_tune_gain("svm")
        (True, None)
    """
    entry = config.FINE_TUNE_GAIN.get(Regime.parse(regime).value)
    if entry is None:
        return None
    mean, sd, tasks, max_train = entry
    return FineTuneGain(mean_pp=float(mean), sd_pp=float(sd), tasks=int(tasks), max_train=int(max_train))


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
                      feature_layers: Sequence[str] | None = None,
                      gain: FineTuneGain | None | str = "auto") -> Expectation | None:
    """Return `regime`'s expected test accuracy on `profile`'s data, or `None` without probes.

    Args:
        profile: The measured profile (its linear probe and learning curve).
        regime: Any of the four regimes.
        feature_layers: The layers the regime's plan reads together
            (``plan.feature_layers``): for ``svm`` on several layers the probe
            on those layers together moves the estimate. Defaults to `None`
            (as the planner would plan them:
            :func:`advisor.decide.blocks.svm_reads_several_layers`).
        gain: For ``partial`` and ``full``: their gain over the ``svm``
            estimate, `None` for none (the floor), or ``"auto"``
            (:func:`fine_tune_gain`, the benchmark's). The benchmark passes
            the gain fitted without the task it checks. Defaults to ``"auto"``.

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
    if isinstance(gain, str) and gain != "auto":
        raise ValueError(f"gain must be a FineTuneGain, None or 'auto'. Received: gain={gain!r}")
    model = fine_tune_gain(regime) if gain == "auto" else gain
    if model is None or not model.covers(profile.n_train):
        why = ("its gain is not modelled yet" if model is None else
               f"its gain over the frozen estimate was measured on training splits of at most "
               f"{model.max_train:,} images (the advice-quality benchmark's converged tasks), "
               f"not {profile.n_train:,}")
        return Expectation(estimate=estimate, low=low, high=None, basis=(
            f"At least the frozen estimate ({curve}): fine-tuning starts from a linear probe and "
            f"keeps its best validation epoch; {why}."))
    return _with_gain(expected_accuracy(profile, Regime.SVM), model)


def _with_gain(frozen: Expectation, gain: FineTuneGain) -> Expectation:
    """The ``svm`` expectation moved by a fine-tuning gain, its interval widened by the gain's spread.

    The interval is a prediction interval for a new task: the frozen estimate's
    own 95% half-width and the gain's spread between tasks (times
    ``sqrt(1 + 1/tasks)``, for its mean's error) added in quadrature.

    Example:
        >>> frozen = Expectation(0.90, 0.88, 0.92, "")
        >>> e = _with_gain(frozen, FineTuneGain(mean_pp=1.0, sd_pp=1.5, tasks=5, max_train=700))
        >>> round(e.estimate, 3), round(e.low, 3), round(e.high, 3)
        (0.91, 0.872, 0.948)
    """
    frozen_half = (frozen.high - frozen.low) / 2 if frozen.high is not None else 0.0
    spread = gain.sd_pp / 100 * math.sqrt(1 + 1 / gain.tasks)
    half = math.sqrt(frozen_half ** 2 + (Z_95 * spread) ** 2)
    estimate = min(1.0, max(0.0, frozen.estimate + gain.mean_pp / 100))
    return Expectation(estimate=estimate, low=max(0.0, estimate - half), high=min(1.0, estimate + half),
                       basis=(f"The frozen svm estimate {frozen.estimate:.2f} moved by {gain.mean_pp:+.1f} "
                              f"points, this regime's mean gain over it on the advice-quality "
                              f"benchmark's {gain.tasks} converged tasks (training splits up to "
                              f"{gain.max_train:,} images; the gain's spread between them, "
                              f"{gain.sd_pp:.1f} points, widens the interval). The svm estimate: "
                              f"{frozen.basis[:1].lower()}{frozen.basis[1:]}"))
