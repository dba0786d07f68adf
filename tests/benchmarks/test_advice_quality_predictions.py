"""Tests of `benchmarks.advice_quality.predictions`: expected accuracy and time against the oracle."""

from __future__ import annotations

import pytest

import json
from pathlib import Path

from advisor import config
from advisor.decide.expectation import expected_accuracy
from advisor.measure.profile import DatasetProfile
from benchmarks.advice_quality import predictions
from tests.decide.test_decide import make_profile


def _row(profile: DatasetProfile, accs: dict[str, float], *, expected_s=None, fit_s=100.0,
         task: str = "t") -> dict:
    row = {"task": task, "profile": profile.to_dict(),
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


def test_fine_tuning_is_predicted_with_the_gain_of_the_other_tasks_only():
    profiles = {f"t{i}": make_profile(n, 0.4) for i, n in enumerate((300, 400, 500))}
    svm = {t: expected_accuracy(p, "svm").estimate for t, p in profiles.items()}
    gains = {"t0": 1.0, "t1": 3.0, "t2": -2.0}  # points above the svm estimate, for full
    rows = [_row(p, {"svm": svm[t], "full": svm[t] + gains[t] / 100}, task=t) for t, p in profiles.items()]
    fitted = predictions.fit_gain_model(rows)["full"]
    assert fitted.mean_pp == pytest.approx(2 / 3) and fitted.tasks == 3
    assert fitted.max_train == profiles["t2"].n_train and predictions.fit_gain_model(rows)["partial"] is None
    check = predictions.prediction_check(rows)
    full = {p["task"]: p for p in check["pairs"] if p["regime"] == "full"}
    # t0 is predicted with the mean gain of t1 and t2 (0.5 points), never its own.
    assert full["t0"]["expected"] == pytest.approx(svm["t0"] + 0.005)
    assert full["t0"]["error_pp"] == pytest.approx(0.5 - 1.0)
    # t2 has the largest training split: the others' gain does not reach it, so it gets the floor.
    assert full["t2"]["high"] is None and full["t1"]["high"] is not None
    assert check["gain_model_pairs"] == 2 and check["gain_model"]["full"]["tasks"] == 3
    assert "left one task out, within 2 pp on" in predictions.format_prediction_check(check)


def test_the_configured_gain_is_the_fit_on_the_merged_results_it_names():
    results = json.loads((Path(__file__).parents[2] / config.FINE_TUNE_GAIN_SOURCE).read_text())
    fitted = predictions.fit_gain_model(results["rows"])
    for regime, (mean, sd, tasks, max_train) in config.FINE_TUNE_GAIN.items():
        got = fitted[regime]
        assert (round(got.mean_pp, 1), round(got.sd_pp, 1), got.tasks, got.max_train) == (
            mean, sd, tasks, max_train), regime
