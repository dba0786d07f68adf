"""Tests of `benchmarks.advice_quality.predictions`: expected accuracy and time against the oracle."""

from __future__ import annotations

import pytest

from advisor.decide.expectation import expected_accuracy
from advisor.measure.profile import DatasetProfile
from benchmarks.advice_quality import predictions
from tests.decide.test_decide import make_profile


def _row(profile: DatasetProfile, accs: dict[str, float], *, expected_s=None, fit_s=100.0) -> dict:
    row = {"task": "t", "profile": profile.to_dict(),
           "regimes": {r: {"test_accuracy": a, "fit_s": fit_s,
                           "search": [{"default": True, "test_accuracy": a}]} for r, a in accs.items()}}
    if expected_s is not None:
        row["expected_cost"] = {r: {"total_s": expected_s} for r in accs}
    return row


def test_frozen_pairs_count_within_two_points_and_fine_tuning_above_its_floor():
    profile = make_profile(3000, 0.4)
    frozen = expected_accuracy(profile, "svm")
    accs = {"svm": frozen.estimate + 0.01, "last-layer": frozen.estimate - 0.05,
            "partial": frozen.estimate + 0.04, "full": frozen.low - 0.01}
    check = predictions.prediction_check([_row(profile, accs, expected_s=150.0)])
    by_regime = {p["regime"]: p for p in check["pairs"]}
    assert by_regime["svm"]["within"] and not by_regime["last-layer"]["within"]
    assert by_regime["partial"]["within"] and not by_regime["full"]["within"]
    assert by_regime["svm"]["error_pp"] == pytest.approx(-1.0)
    assert check["accuracy_within"] == 0.5 and check["frozen_accuracy_within"] == 0.5
    assert check["time_within"] == 1.0 and by_regime["svm"]["time_ratio"] == pytest.approx(1.5)
    assert not check["targets_met"]["accuracy_within_2pp>=0.8"]
    assert "expected accuracy within 2 pp on 50% of 4" in predictions.format_prediction_check(check)


def test_rows_without_stored_costs_leave_the_time_check_empty():
    profile = make_profile(3000, 0.4)
    check = predictions.prediction_check([_row(profile, {"svm": 0.85})])
    assert len(check["pairs"]) == 1 and "time_ratio" not in check["pairs"][0]
    assert "within 2x on -" in predictions.format_prediction_check(check)
