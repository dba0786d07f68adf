"""Score predictions on the held-out split: accuracy, macro-F1, per-class figures; MAE, RMSE, R2.

A classification's :class:`Evaluation` also says how far its accuracy can be
trusted: beside it stand the majority-class baseline (always predicting the
largest class of the training split, scored on the same test images) and a
95% Wilson interval of the accuracy, and its ``warnings`` name the classes
that were never predicted, a test split too small to tell regimes apart, and
an accuracy that does not clearly beat the baseline.

It also says how far its probabilities can be trusted: the expected
calibration error (ECE) of the test split and its reliability bins
(:mod:`strategies.calibration`), and, given the temperature the model was
calibrated with, the same before calibration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from strategies.calibration import ece_of_bins, reliability_bins, uncalibrated

# These two would be named constants of advisor/config.py; they live here until
# that file is free to edit (issue 19).
#: Confidence level of the interval around the test accuracy.
ACCURACY_CONFIDENCE = 0.95
#: Half-width of that interval (5 percentage points) above which the test split
#: is too small to tell regimes apart, and a warning says so.
MAX_ACCURACY_HALF_WIDTH = 0.05


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Held-out results of one fitted model.

    Attributes:
        n_images: Number of evaluated images.
        accuracy: Fraction classified correctly.
        macro_f1: Unweighted mean of per-class F1.
        per_class: ``{class: {"precision", "recall", "f1", "support"}}``.
        confusion: Confusion matrix, rows = true class, columns = predicted.
        class_names: Class names in label order.
        accuracy_interval: ``(low, high)``: the 95% Wilson interval of
            `accuracy` (``ACCURACY_CONFIDENCE``); NaN without test images.
        baseline_accuracy: Accuracy on the same test images of always
            predicting `baseline_class`, or `None` when the training labels
            were not given.
        baseline_class: The largest class of the training split, or `None`.
        never_predicted: Classes present in the test split that the model
            never predicted (their recall is 0).
        warnings: Sentences for the reader: classes never predicted, an
            interval wider than ``MAX_ACCURACY_HALF_WIDTH`` either side, an
            accuracy whose interval reaches the baseline.
        ece: Expected calibration error of the test probabilities (as the
            model outputs them), or `None` (no test images, or a report
            written before it existed).
        reliability: Their reliability bins
            (:func:`~strategies.calibration.reliability_bins`), or `None`.
        temperature: The temperature the model was calibrated with, when given.
        ece_uncalibrated: The test ECE before that temperature, when given.
        reliability_uncalibrated: Its reliability bins, when given.
    """

    n_images: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: tuple[tuple[int, ...], ...]
    class_names: tuple[str, ...]
    accuracy_interval: tuple[float, float] = (math.nan, math.nan)
    baseline_accuracy: float | None = None
    baseline_class: str | None = None
    never_predicted: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    ece: float | None = None
    reliability: dict[str, list] | None = None
    temperature: float | None = None
    ece_uncalibrated: float | None = None
    reliability_uncalibrated: dict[str, list] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        data = asdict(self)
        data["confusion"] = [list(row) for row in self.confusion]
        data["class_names"] = list(self.class_names)
        data["accuracy_interval"] = list(self.accuracy_interval)
        data["never_predicted"] = list(self.never_predicted)
        data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict` (a report written before the baseline existed loads too)."""
        values = dict(data)
        values["confusion"] = tuple(tuple(int(v) for v in row) for row in data["confusion"])
        values["class_names"] = tuple(data["class_names"])
        for key in ("accuracy_interval", "never_predicted", "warnings"):
            if key in data:
                values[key] = tuple(data[key])
        return cls(**values)


def evaluate(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    train_labels: np.ndarray | None = None,
    temperature: float | None = None,
) -> Evaluation:
    """Score class probabilities against true labels, beside the majority-class baseline.

    The baseline always predicts the largest class of `train_labels` (the
    lowest label on a tie) and is scored on the same test images. The
    accuracy's interval is the Wilson score interval at
    ``ACCURACY_CONFIDENCE``. Warnings are added for classes of the test split
    that were never predicted, for an interval wider than
    ``MAX_ACCURACY_HALF_WIDTH`` either side, and for a baseline inside the
    interval. The expected calibration error and reliability bins are those
    of `probabilities`; with `temperature` (the model's, from its history's
    ``calibration``) they are given before calibration too.

    Args:
        y_true: ``(N,)`` integer labels.
        probabilities: ``(N, n_classes)`` predicted probabilities.
        class_names: Names of the classes, in label order.
        train_labels: Integer labels of the training split, for the
            majority-class baseline. Defaults to `None` (no baseline).
        temperature: The temperature `probabilities` were scaled with.
            Defaults to `None` (no before-calibration figures).

    Returns:
        The :class:`Evaluation`.

    Example:
        >>> evaluate(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"]).accuracy
        1.0
        >>> e = evaluate(np.array([0, 0, 0, 1]), np.array([[0.9, 0.1]] * 4), ["a", "b"],
        ...              train_labels=np.array([0, 0, 1]))
        >>> e.baseline_class, e.baseline_accuracy, e.never_predicted
        ('a', 0.75, ('b',))
        >>> round(e.ece, 2)  # said 0.9, right on 3 of 4
        0.15
        >>> e = evaluate(np.array([0, 0, 0, 1]), np.array([[0.75, 0.25]] * 4), ["a", "b"], temperature=0.5)
        >>> round(e.ece, 2), round(e.ece_uncalibrated, 2)  # before: T = 0.5 undone, 0.63 said
        (0.0, 0.12)
    """
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(probabilities).argmax(axis=1) if len(y_true) else np.zeros(0, np.int64)
    labels = np.arange(len(class_names))
    n = len(y_true)
    if n:
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0)
        matrix = confusion_matrix(y_true, y_pred, labels=labels)
        accuracy = float(accuracy_score(y_true, y_pred))
        macro_f1 = float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    else:  # no test split (test_fraction=0): nothing measured
        precision = recall = f1 = support = np.zeros(len(labels))
        matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
        accuracy = macro_f1 = float("nan")
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    }
    interval = accuracy_interval(int(np.sum(y_true == y_pred)), n)
    baseline_class, baseline = None, None
    if train_labels is not None and len(train_labels):
        majority = int(np.bincount(np.asarray(train_labels, dtype=np.int64),
                                   minlength=len(class_names)).argmax())
        baseline_class = str(class_names[majority])
        baseline = float(np.mean(y_true == majority)) if n else float("nan")
    predicted = matrix.sum(axis=0)
    never = tuple(str(name) for name, s, p in zip(class_names, support, predicted) if s > 0 and p == 0)
    reliability = reliability_bins(probabilities, y_true) if n else None
    before = (reliability_bins(uncalibrated(probabilities, temperature), y_true)
              if n and temperature is not None else None)
    return Evaluation(
        n_images=n,
        accuracy=accuracy,
        macro_f1=macro_f1,
        per_class=per_class,
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
        class_names=tuple(class_names),
        accuracy_interval=interval,
        baseline_accuracy=baseline,
        baseline_class=baseline_class,
        never_predicted=never,
        warnings=_warnings(n, accuracy, macro_f1, interval, baseline, baseline_class, never),
        ece=ece_of_bins(reliability) if reliability else None,
        reliability=reliability,
        temperature=None if temperature is None else float(temperature),
        ece_uncalibrated=ece_of_bins(before) if before else None,
        reliability_uncalibrated=before,
    )


def accuracy_interval(n_correct: int, n: int, *, confidence: float = ACCURACY_CONFIDENCE
                      ) -> tuple[float, float]:
    """Return the Wilson score interval of an accuracy of `n_correct` out of `n`.

    Args:
        n_correct: Images classified correctly.
        n: Images evaluated.
        confidence: Confidence level. Defaults to `ACCURACY_CONFIDENCE` (0.95).

    Returns:
        ``(low, high)``, or ``(nan, nan)`` when `n` is 0.

    Example:
        >>> low, high = accuracy_interval(29, 45)
        >>> round(low, 3), round(high, 3)
        (0.498, 0.768)
    """
    if n <= 0:
        return float("nan"), float("nan")
    ci = binomtest(int(n_correct), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _warnings(n: int, accuracy: float, macro_f1: float, interval: tuple[float, float],
              baseline: float | None, baseline_class: str | None,
              never: tuple[str, ...]) -> tuple[str, ...]:
    """The sentences that say how far the test accuracy can be trusted."""
    if n == 0:
        return ("The test split is empty: no accuracy was measured; add test images.",)
    out = []
    if never:
        out.append(f"{len(never)} class(es) of the test split were never predicted "
                   f"({', '.join(never[:8])}{' ...' if len(never) > 8 else ''}): their recall is 0; "
                   f"macro-F1 ({macro_f1:.3f}) is the fairer score.")
    low, high = interval
    half = (high - low) / 2
    if half > MAX_ACCURACY_HALF_WIDTH:
        out.append(f"The test split has only {n} images: the {ACCURACY_CONFIDENCE:.0%} interval of "
                   f"the accuracy is {low:.3f} to {high:.3f} (+-{half * 100:.0f} pp), wider than "
                   f"+-{MAX_ACCURACY_HALF_WIDTH * 100:.0f} pp, too wide to tell regimes apart; "
                   "add test images.")
    if baseline is not None and baseline >= low:
        out.append(f"The test accuracy ({accuracy:.3f}) does not clearly beat always predicting the "
                   f"largest training class, {baseline_class} ({baseline:.3f}): the baseline lies "
                   f"inside or above its {ACCURACY_CONFIDENCE:.0%} interval.")
    return tuple(out)


def most_confident_mistakes(y_true: np.ndarray, probabilities: np.ndarray, k: int = 8) -> list[int]:
    """Return indices of the `k` wrong predictions made with the highest confidence.

    Example:
        >>> most_confident_mistakes(np.array([0, 1]), np.array([[0.1, 0.9], [0.3, 0.7]]))
        [0]
    """
    y_pred = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    order = np.argsort(-probabilities[wrong].max(axis=1), kind="stable")
    return [int(i) for i in wrong[order][:k]]


@dataclass(frozen=True, slots=True)
class RegressionEvaluation:
    """Held-out results of one fitted regression, beside the "predict the training mean" baseline.

    Attributes:
        n_images: Number of evaluated images.
        mae: Mean absolute error, in target units.
        rmse: Root mean squared error, in target units.
        r2: Coefficient of determination (1 is perfect; 0 is the test mean).
        baseline_mae: MAE of always predicting the training targets' mean.
        baseline_rmse: Its RMSE.
        baseline_r2: Its R2 (at most 0).
        train_mean: The training targets' mean (the baseline's prediction).
        target_name: Name of the target.
    """

    n_images: int
    mae: float
    rmse: float
    r2: float
    baseline_mae: float
    baseline_rmse: float
    baseline_r2: float
    train_mean: float
    target_name: str

    @property
    def beats_baseline(self) -> bool:
        """Whether the model's MAE is below the mean predictor's."""
        return self.mae < self.baseline_mae

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (with ``task: "regression"``)."""
        return {"task": "regression", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegressionEvaluation:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: v for k, v in data.items() if k != "task"})


def _regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    if len(y_true) == 0:
        return float("nan"), float("nan"), float("nan")
    r2 = float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan")
    return (float(mean_absolute_error(y_true, y_pred)),
            float(np.sqrt(mean_squared_error(y_true, y_pred))), r2)


def evaluate_regression(y_true: np.ndarray, y_pred: np.ndarray, *, train_mean: float,
                        target_name: str = "target") -> RegressionEvaluation:
    """Score predicted values against true targets, and the training-mean baseline likewise.

    Args:
        y_true: ``(N,)`` true targets.
        y_pred: ``(N,)`` predicted targets.
        train_mean: Mean of the training targets (the baseline predicts it for every image).
        target_name: Name of the target. Defaults to `"target"`.

    Returns:
        The :class:`RegressionEvaluation`.

    Example:
        >>> e = evaluate_regression(np.array([1.0, 3.0]), np.array([1.5, 2.5]), train_mean=2.0)
        >>> e.mae, e.baseline_mae, e.r2
        (0.5, 1.0, 0.75)
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    mae, rmse, r2 = _regression_scores(y_true, y_pred)
    base_mae, base_rmse, base_r2 = _regression_scores(y_true, np.full_like(y_true, train_mean))
    return RegressionEvaluation(n_images=int(len(y_true)), mae=mae, rmse=rmse, r2=r2,
                                baseline_mae=base_mae, baseline_rmse=base_rmse, baseline_r2=base_r2,
                                train_mean=float(train_mean), target_name=str(target_name))


def largest_errors(y_true: np.ndarray, y_pred: np.ndarray, k: int = 8) -> list[int]:
    """Return indices of the `k` predictions with the largest absolute error, largest first.

    Example:
        >>> largest_errors(np.array([0.0, 1.0, 2.0]), np.array([0.1, 3.0, 2.5]), k=2)
        [1, 2]
    """
    errors = np.abs(np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64))
    return [int(i) for i in np.argsort(-errors, kind="stable")[:k]]
