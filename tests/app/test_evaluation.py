"""How far a test accuracy can be trusted: baseline, interval, classes never predicted (issue 19)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from advisor.app.evaluation import (
    MAX_ACCURACY_HALF_WIDTH,
    Evaluation,
    accuracy_interval,
    evaluate,
)


def one_hot(predicted: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes)[predicted] * 0.9 + 0.1 / n_classes


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval, written out."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_issue_19_small_run_beside_its_baseline():
    # The issue's run: 45 test images, 0.644 accuracy, the largest class alone scores 0.578,
    # two classes never predicted.
    names = ["a", "b", "c", "d"]
    y_true = np.array([0] * 26 + [1] * 9 + [2] * 5 + [3] * 5)
    y_pred = np.array([0] * 23 + [1] * 3 + [1] * 6 + [0] * 3 + [0] * 5 + [1] * 5)
    train = np.array([0] * 120 + [1] * 40 + [2] * 25 + [3] * 25)
    e = evaluate(y_true, one_hot(y_pred, 4), names, train_labels=train)
    assert (e.n_images, round(e.accuracy, 3)) == (45, 0.644)
    assert e.baseline_class == "a" and e.baseline_accuracy == pytest.approx(26 / 45)
    assert e.accuracy_interval == pytest.approx(wilson(29, 45))
    assert e.never_predicted == ("c", "d")
    never, small, baseline = e.warnings
    assert "(c, d)" in never and "recall is 0" in never
    assert "only 45 images" in small and "+-5 pp" in small
    assert "does not clearly beat" in baseline and "a (0.578)" in baseline


def test_a_large_clear_result_has_no_warnings():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 2000)
    y_pred = np.where(rng.random(2000) < 0.97, y_true, (y_true + 1) % 3)
    e = evaluate(y_true, one_hot(y_pred, 3), ["x", "y", "z"], train_labels=y_true)
    low, high = e.accuracy_interval
    assert low < e.accuracy < high and (high - low) / 2 < MAX_ACCURACY_HALF_WIDTH
    assert e.warnings == () and e.never_predicted == ()
    assert e.baseline_accuracy < low


def test_baseline_ties_and_absent_training_labels():
    y = np.array([0, 1, 1])
    p = one_hot(y, 2)
    assert evaluate(y, p, ["a", "b"], train_labels=np.array([0, 1])).baseline_class == "a"
    plain = evaluate(y, p, ["a", "b"])
    assert plain.baseline_accuracy is None and plain.baseline_class is None
    assert not any("baseline" in w for w in plain.warnings)


def test_empty_test_split_says_so():
    e = evaluate(np.zeros(0, int), np.zeros((0, 2)), ["a", "b"], train_labels=np.array([0, 1, 1]))
    assert math.isnan(e.accuracy) and all(math.isnan(v) for v in e.accuracy_interval)
    assert e.warnings == ("The test split is empty: no accuracy was measured; add test images.",)
    assert accuracy_interval(0, 0) != accuracy_interval(0, 0)  # NaN


def test_json_round_trip_and_reports_written_before_issue_19():
    y = np.array([0, 0, 1, 2])
    e = evaluate(y, one_hot(np.array([0, 0, 1, 1]), 3), ["a", "b", "c"], train_labels=np.array([1, 1, 0]))
    data = json.loads(json.dumps(e.to_dict(), sort_keys=True))
    assert data["baseline_class"] == "b" and data["never_predicted"] == ["c"]
    assert Evaluation.from_dict(data) == e
    old = {k: v for k, v in data.items()
           if k not in ("accuracy_interval", "baseline_accuracy", "baseline_class", "never_predicted", "warnings")}
    loaded = Evaluation.from_dict(old)
    assert loaded.accuracy == e.accuracy and loaded.baseline_accuracy is None and loaded.warnings == ()
