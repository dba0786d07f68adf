"""Score predictions on the held-out split: accuracy, macro-F1, per-class figures; MAE, RMSE, R2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


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
    """

    n_images: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: tuple[tuple[int, ...], ...]
    class_names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        data = asdict(self)
        data["confusion"] = [list(row) for row in self.confusion]
        data["class_names"] = list(self.class_names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["confusion"] = tuple(tuple(int(v) for v in row) for row in data["confusion"])
        values["class_names"] = tuple(data["class_names"])
        return cls(**values)


def evaluate(y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]) -> Evaluation:
    """Score class probabilities against true labels.

    Args:
        y_true: ``(N,)`` integer labels.
        probabilities: ``(N, n_classes)`` predicted probabilities.
        class_names: Names of the classes, in label order.

    Returns:
        The :class:`Evaluation`.

    Example:
        >>> evaluate(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"]).accuracy
        1.0
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(probabilities).argmax(axis=1)
    labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    }
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return Evaluation(
        n_images=int(len(y_true)),
        accuracy=float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        macro_f1=float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        per_class=per_class,
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
        class_names=tuple(class_names),
    )


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
