"""Expected accuracy per regime: the probe's learning curve at the training split's size."""

from __future__ import annotations

import dataclasses

import pytest

from advisor import config
from advisor.decide.expectation import FineTuneGain, expected_accuracy, extrapolate_learning_curve
from tests.decide.test_decide import make_profile


def test_a_falling_error_extrapolates_above_the_last_point_and_a_flat_one_stays():
    rising = ((0.25, 0.7), (0.5, 0.8), (1.0, 0.85))
    assert extrapolate_learning_curve(rising, 1000, 4000) > 0.85
    assert extrapolate_learning_curve(rising, 1000, 1000) == pytest.approx(0.86, abs=0.01)
    assert extrapolate_learning_curve(((0.5, 0.8), (1.0, 0.78)), 1000, 4000) == 0.78
    assert extrapolate_learning_curve(((1.0, 0.8),), 1000, 4000) == 0.8


def test_frozen_regimes_get_a_closed_interval_and_fine_tuning_its_floor():
    profile = make_profile(3000, 0.4)
    svm = expected_accuracy(profile, "svm")
    assert svm.low < svm.estimate < svm.high
    assert expected_accuracy(profile, "last-layer") == svm
    big = make_profile(20_000, 0.4)  # 14,000 training images: beyond the measured gain
    full, svm = expected_accuracy(big, "full"), expected_accuracy(big, "svm")
    assert big.n_train > config.FINE_TUNE_GAIN["full"][3]
    assert f"at most {config.FINE_TUNE_GAIN['full'][3]:,} images" in full.basis
    assert full.high is None and full.low == svm.low
    assert full.describe().startswith(">= ")
    assert "not modelled" in expected_accuracy(profile, "full", gain=None).basis


def test_fine_tuning_within_the_measured_range_is_the_svm_estimate_moved_by_its_gain(monkeypatch):
    monkeypatch.setattr(config, "FINE_TUNE_GAIN", {"partial": (-1.0, 2.0, 5, 700), "full": (1.0, 1.0, 5, 700)})
    profile = make_profile(1000, 0.4)  # 700 training images
    svm = expected_accuracy(profile, "svm")
    full, partial = expected_accuracy(profile, "full"), expected_accuracy(profile, "partial")
    assert full.estimate == pytest.approx(svm.estimate + 0.01)
    assert partial.estimate == pytest.approx(svm.estimate - 0.01)
    # Closed intervals, wider than the svm's by the gain's spread (partial's is the wider).
    assert full.low < full.estimate < full.high and partial.low < partial.estimate < partial.high
    assert (svm.high - svm.low) < (full.high - full.low) < (partial.high - partial.low)
    assert "+1.0 points" in full.basis and "5 converged tasks" in full.basis
    # One image past the measured range: the floor again, open above.
    monkeypatch.setattr(config, "FINE_TUNE_GAIN", {"full": (1.0, 1.0, 5, 699)})
    assert expected_accuracy(profile, "full").high is None
    # The benchmark's leave-one-task-out check passes its own gain.
    own = FineTuneGain(mean_pp=3.0, sd_pp=0.5, tasks=4, max_train=900)
    assert expected_accuracy(profile, "full", gain=own).estimate == pytest.approx(svm.estimate + 0.03)
    assert expected_accuracy(profile, "full", gain=FineTuneGain(3.0, 0.5, 1, 900)).high is None  # one task


def test_the_interval_narrows_with_the_images_the_probe_was_scored_on():
    few = expected_accuracy(make_profile(300, 0.4), "svm")
    many = expected_accuracy(make_profile(3000, 0.4), "svm")
    assert (many.high - many.low) < (few.high - few.low)


def test_no_probes_no_expectation():
    profile = make_profile(3000, 0.4)
    assert expected_accuracy(dataclasses.replace(profile, probes=None), "svm") is None


def test_the_svm_estimate_moves_by_the_margin_of_the_block_it_reads():
    # The SVM reads the best block when one is within tolerance of the best probe
    # (plan_feature_layer); the learning curve is the bottleneck's (0.85 here).
    bottleneck = expected_accuracy(make_profile(3000, 0.4), "svm")
    block = make_profile(3000, 0.4, best_block="block_12")  # block_12 scores 0.86
    svm = expected_accuracy(block, "svm")
    assert svm.estimate == pytest.approx(bottleneck.estimate + 0.01)
    assert "block_12" in svm.basis and "+0.01" in svm.basis
    assert expected_accuracy(block, "last-layer") == bottleneck  # the head reads the bottleneck


def test_the_svm_on_several_layers_moves_by_the_layers_probe_only_when_its_plan_reads_them(monkeypatch):
    profile = make_profile(3000, 0.4)
    together = dataclasses.replace(profile, probes=dataclasses.replace(profile.probes, layers_accuracy=0.9))
    one_layer = expected_accuracy(profile, "svm")
    planned = expected_accuracy(together, "svm")  # as the planner would: several layers
    assert planned.estimate == pytest.approx(one_layer.estimate + 0.05)
    assert "together" in planned.basis
    read = expected_accuracy(together, "svm", feature_layers=("block_8_add", "pool"))
    assert read == planned
    alone = expected_accuracy(together, "svm", feature_layers=("pool",))  # the plan reads one layer
    assert alone == one_layer and "together" not in alone.basis
    assert expected_accuracy(together, "last-layer", feature_layers=("block_8_add", "pool")) == one_layer
    monkeypatch.setattr(config, "SVM_READS_PROBED_LAYERS", False)  # the planner's switch, asked once
    assert expected_accuracy(together, "svm") == one_layer
