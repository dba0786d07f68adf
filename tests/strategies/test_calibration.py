"""Every regime's scores are calibrated on the validation split, inside the model (issue 19).

The pure parts (the temperature, the ECE, the inverse) run on small arrays; the
strategies run on the doctests' real digit scans and MobileNetV2 at 96 px (the
session fixtures of the root ``conftest.py``), so their embeddings are cached
once for the whole session.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from advisor.app.evaluation import evaluate
from advisor.data import decode_dataset, scan_dataset
from advisor.plan import Optimizer, Plan, Regime
from strategies import LabelledImages, calibration, get_strategy
from strategies.calibration import (
    TEMPERATURE_BOUNDS,
    calibration_record,
    expected_calibration_error,
    fit_temperature,
    output_logits,
    softmax,
    uncalibrated,
)


@pytest.fixture(scope="module")
def parts(doctest_digits_dir, doctest_backbone):
    """The 100 real digit scans decoded at 96 px: train, val and test LabelledImages."""
    ds, decoded = decode_dataset(scan_dataset(doctest_digits_dir), doctest_backbone.image_size)
    return ds.class_names, {s: LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
                            for s in ("train", "val", "test")}


def plan(regime: Regime, backbone) -> Plan:
    return Plan(regime=regime, backbone=backbone.name, image_size=backbone.image_size,
                frozen_blocks=tuple(b.name for b in backbone.blocks),
                feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
                head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
                head_epochs=3, epochs=0, warmup_epochs=0, patience=3, augmentation=(),
                class_weights=None, svm_c_grid=(0.1, 1.0, 10.0), seed=0)


@pytest.mark.slow
def test_svm_scores_are_calibrated_on_validation_and_the_temperature_is_in_the_model(
        parts, doctest_backbone):
    """The SVM's output, and through the shared hook every Keras regime's (``KerasStrategy.fit``'s
    doctest checks last-layer; ``test_strategies`` fits and reloads all four)."""
    class_names, data = parts
    regime = Regime.SVM
    keras.utils.set_random_seed(0)
    strategy = get_strategy(regime)(plan=plan(regime, doctest_backbone), backbone=doctest_backbone)
    strategy.fit(data["train"], data["val"], class_names=class_names)
    record = strategy.history_["calibration"]
    assert record["method"] == "temperature scaling" and record["n_images"] == len(data["val"].rows)
    assert TEMPERATURE_BOUNDS[0] < record["temperature"] < TEMPERATURE_BOUNDS[1]
    assert record["val_nll_after"] <= record["val_nll_before"] + 1e-3
    # The model itself outputs the calibrated probabilities (export_model copies its weights,
    # and test_strategies checks that the saved model predicts what predict_proba does).
    val, test = data["val"], data["test"]
    proba = strategy.predict_proba(val.images, rows=val.rows)
    assert expected_calibration_error(proba, val.labels) == pytest.approx(record["val_ece_after"], abs=1e-4)
    # Regression test of issue 19: a softmax over the SVM's margins said 0.44 where it was
    # right; the temperature sharpens them, and the ECE drops on validation and on test.
    assert record["temperature"] < 1
    assert record["val_ece_before"] > 0.2 > record["val_ece_after"]
    scored = evaluate(test.labels, strategy.predict_proba(test.images, rows=test.rows),
                      class_names, temperature=record["temperature"])
    assert scored.ece < scored.ece_uncalibrated


def test_a_probe_not_fine_tuned_is_calibrated_without_a_second_pass_over_validation(
        parts, doctest_backbone, monkeypatch):
    """Review finding: calibrating a last-layer model ran the validation images through the
    backbone again, though the probe had embedded them; their logits are the same scores."""
    class_names, data = parts
    val, passes = data["val"], []
    real = calibration.predict_batches

    def counted(model, batches):  # the forward pass output_logits would run
        passes.append(len(batches))
        return real(model, batches)

    monkeypatch.setattr(calibration, "predict_batches", counted)
    regime = Regime.LAST_LAYER
    keras.utils.set_random_seed(0)
    chosen = dataclasses.replace(plan(regime, doctest_backbone), head_units=(16,))  # hidden layers too
    strategy = get_strategy(regime)(plan=chosen, backbone=doctest_backbone)
    strategy.fit(data["train"], val, class_names=class_names)
    assert passes == []
    record = strategy.history_["calibration"]
    assert record["n_images"] == len(val.rows)
    # The temperature that pass would have fitted: the model's logits times T undo the fold
    # (equal up to float32 rounding of the folded weights and of the features).
    monkeypatch.setattr(calibration, "predict_batches", real)
    logits = output_logits(strategy.model_, val, batch_size=chosen.batch_size) * record["temperature"]
    assert calibration_record(logits, val.labels)["temperature"] == pytest.approx(
        record["temperature"], rel=1e-5)


def test_temperature_undoes_a_known_overconfidence_and_keeps_the_argmax():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=3_000)
    log_odds = 2.0 * (rng.normal(size=(3_000, 4)) + 2.0 * np.eye(4)[labels])  # calibrated at T = 1
    t1, t3 = fit_temperature(log_odds, labels), fit_temperature(3.0 * log_odds, labels)
    assert t1 == pytest.approx(1.0, abs=0.08) and t3 == pytest.approx(3.0 * t1, rel=1e-3)
    record = calibration_record(3.0 * log_odds, labels)
    assert record["val_ece_after"] < record["val_ece_before"] / 2
    assert record["val_nll_after"] < record["val_nll_before"]
    np.testing.assert_array_equal(softmax(log_odds, 3.0).argmax(1), log_odds.argmax(1))
    calibrated = softmax(3.0 * log_odds, record["temperature"]).astype(np.float32)
    np.testing.assert_allclose(uncalibrated(calibrated, record["temperature"]), softmax(3.0 * log_odds),
                               atol=1e-5)


def test_a_small_split_classified_without_error_keeps_a_finite_temperature():
    labels = np.repeat(np.arange(5), 4)  # 20 images, all right by a wide margin
    logits = 3.0 * np.eye(5)[labels]
    record = calibration_record(logits, labels)
    top = softmax(logits, record["temperature"]).max(axis=1)
    assert TEMPERATURE_BOUNDS[0] < record["temperature"] and not record["notes"]
    assert 0.9 < top.min() and top.max() < 0.999  # Platt's targets: 21/22, not 1
    few = calibration_record(logits[:5], labels[:5])
    assert few["temperature"] == 1.0 and "only 5 validation image(s)" in few["notes"][0]
