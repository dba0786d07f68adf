"""Score predictions on the held-out split: accuracy, macro-F1, per-class figures."""

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
