"""strategies.selection: validation scores, and a phase selecting on the calibrated loss (small fakes)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from advisor.errors import PlanError
from advisor.plan import Task
from strategies.batches import ImageBatches
from strategies.callbacks import TrainingGuard
from strategies.calibration import fit_temperature, negative_log_likelihood
from strategies.rate_search import search_rates
from strategies.selection import ValidationScores, validation_scores
from strategies.training import train
from tests.strategies.fakes import blobs, fake_plan, two_layer_model


def test_the_scores_are_kerases_loss_and_accuracy_and_the_shipped_models_loss():
    rng = np.random.default_rng(0)
    logits = 3.0 * rng.normal(size=(300, 4))
    labels = rng.integers(0, 4, 300)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    scores = validation_scores(p.astype("float32"), labels)
    keras_loss = keras.losses.SparseCategoricalCrossentropy()(labels, p.astype("float32"))
    assert scores["loss"] == pytest.approx(float(keras.ops.convert_to_numpy(keras_loss)), rel=1e-4)
    assert scores["accuracy"] == pytest.approx(np.mean(p.argmax(1) == labels))
    # The loss after the temperature the calibration would fold into the model.
    temperature = fit_temperature(logits, labels)
    assert scores["calibrated_loss"] == pytest.approx(
        negative_log_likelihood(logits, labels, temperature), rel=1e-4)
    assert scores["calibrated_loss"] < scores["loss"]  # random scores x3: over-confident


def test_too_few_images_to_calibrate_keep_the_raw_loss():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    scores = validation_scores(p, np.array([0, 1, 1]))
    assert scores["calibrated_loss"] == scores["loss"]


def guard_after(logs, *, monitor: str) -> TrainingGuard:
    guard = TrainingGuard(start_loss=0.5, start_score=0.45, patience=3, monitor=monitor)
    guard.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]))
    guard.on_train_begin()
    for epoch, entry in enumerate(logs):
        guard.on_epoch_begin(epoch)
        guard.on_epoch_end(epoch, entry)
    return guard


def test_the_guard_selects_on_its_monitor_and_checks_divergence_on_the_raw_loss():
    # Epoch 2 is over-confident (raw loss above the start) but best once calibrated.
    logs = [{"val_loss": 0.6, "val_calibrated_loss": 0.5},
            {"val_loss": 0.7, "val_calibrated_loss": 0.3},
            {"val_loss": 0.8, "val_calibrated_loss": 0.35}]
    assert guard_after(logs, monitor="val_loss").best_epoch == 0  # the raw loss keeps the start
    calibrated = guard_after(logs, monitor="val_calibrated_loss")
    assert (calibrated.best_epoch, calibrated.best_loss) == (2, 0.3)
    diverging = logs[:1] + [{"val_loss": 5.0, "val_calibrated_loss": 0.1}]
    guard = guard_after(diverging, monitor="val_calibrated_loss")
    assert guard.diverged and guard.best_epoch == 0


@pytest.mark.jax_slice
def test_a_phase_on_the_calibrated_loss_logs_it_and_keeps_its_lowest():
    keras.utils.set_random_seed(0)
    model, plan = two_layer_model(), fake_plan(epochs=6, patience=6)
    history = train(model, plan, blobs(), blobs(1), phase="fine-tune", learning_rate=0.05,
                    epochs=6, select_on="calibrated-loss")
    assert history["selected_on"] == "val_calibrated_loss"
    scores = [history["start"]["val_calibrated_loss"]] + [
        e["val_calibrated_loss"] for e in history["epochs"]]
    assert history["best_val_loss"] == pytest.approx(min(scores))
    assert history["best_epoch"] == int(np.argmin(scores))
    # The model ends with the chosen epoch's weights: its calibrated loss is the best one.
    x, y = blobs(1)
    assert validation_scores(keras.ops.convert_to_numpy(model(x)), y)["calibrated_loss"] == \
        pytest.approx(min(scores), rel=1e-4)
    assert {"val_loss", "val_accuracy"} <= set(history["epochs"][0])
    assert history["budget"]["metric"] == "val_accuracy"


def test_the_rate_search_compares_the_plans_selection():
    keras.utils.set_random_seed(0)
    model, plan = two_layer_model(), fake_plan(epochs=3, select_on="calibrated-loss")
    history = search_rates(model, plan, blobs(), blobs(1), phase="fine-tune", learning_rate=0.01,
                           epochs=3, scales=(1.0, 10.0))
    assert history["selected_on"] == "val_calibrated_loss"
    assert history["best_val_loss"] == min(c["best_val_loss"] for c in history["rate_search"]["candidates"])


def test_a_regression_plan_cannot_select_on_a_calibrated_loss():
    with pytest.raises(PlanError, match="regression"):
        train(two_layer_model(classes=1), fake_plan(task=Task.REGRESSION), blobs(), blobs(1),
              phase="fine-tune", learning_rate=0.01, epochs=1, select_on="calibrated-loss")


def test_the_scores_read_the_labels_of_image_batches_in_order():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(10, 8, 8, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    scores = ValidationScores(ImageBatches(images, labels, batch_size=4), batch_size=4)
    np.testing.assert_array_equal(scores.labels, labels)


def test_a_drift_below_the_minimum_improvement_neither_wins_nor_resets_the_patience():
    guard = TrainingGuard(start_loss=1.0, start_score=0.6, patience=2, monitor="val_calibrated_loss",
                          min_improvement=0.01)
    guard.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]))
    guard.on_train_begin()
    drift = [0.5, 0.499, 0.4985, 0.498, 0.4975]  # 0.1% an epoch after a real improvement
    for epoch, value in enumerate(drift):
        guard.on_epoch_begin(epoch)
        guard.on_epoch_end(epoch, {"val_loss": 1.0, "val_calibrated_loss": value})
        if guard.stopped_epoch is not None:
            break
    assert (guard.best_epoch, guard.stopped_epoch) == (1, 3)
