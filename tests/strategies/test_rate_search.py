"""strategies.rate_search and the guard's warm-up: small fakes (no backbone)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from advisor.plan import Plan
from strategies.callbacks import TrainingGuard
from strategies.rate_search import search_rates
from strategies.training import train
from tests.strategies.fakes import blobs, fake_plan, two_layer_model


def model_and_plan(**overrides) -> tuple[keras.Model, Plan]:
    return two_layer_model(), fake_plan(**({"head_learning_rate": 0.01, "epochs": 4} | overrides))


def guard_after(val_losses, *, start_from_epoch: int) -> TrainingGuard:
    guard = TrainingGuard(start_loss=1.0, patience=2, start_from_epoch=start_from_epoch)
    guard.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]))
    guard.on_train_begin()
    for epoch, loss in enumerate(val_losses):
        guard.on_epoch_begin(epoch)
        guard.on_epoch_end(epoch, {"val_loss": loss})
        if guard.stopped_epoch is not None:
            break
    return guard


def test_the_warmup_epochs_do_not_count_against_the_patience():
    dip = [1.2, 1.3, 1.1, 0.9, 1.0]  # worse than the start through the warm-up, then better
    assert guard_after(dip, start_from_epoch=0).stopped_epoch == 2  # the dip ends the run
    kept = guard_after(dip, start_from_epoch=3)
    assert kept.stopped_epoch is None and kept.best_epoch == 4
    # A warm-up epoch can still be the best one.
    assert guard_after([0.5, 0.6, 0.7, 0.8, 0.9], start_from_epoch=2).best_epoch == 1


def test_train_counts_the_patience_after_its_warmup():
    keras.utils.set_random_seed(0)
    model, plan = model_and_plan(patience=1)
    # At rate 0 no epoch can beat the start: each one counts, after the warm-up.
    history = train(model, plan, blobs(), blobs(1), phase="fine-tune", learning_rate=0.0,
                    epochs=10, warmup_epochs=3)
    assert history["best_epoch"] == 0 and history["attempts"][0]["stopped_epoch"] == 4


def test_the_search_keeps_the_rate_with_the_lowest_validation_loss():
    keras.utils.set_random_seed(0)
    model, plan = model_and_plan()
    start = [w.copy() for w in model.get_weights()]
    history = search_rates(model, plan, blobs(), blobs(1), phase="fine-tune", learning_rate=0.01,
                           epochs=4, scales=(1.0, 10.0))
    search = history["rate_search"]
    losses = {c["scale"]: c["best_val_loss"] for c in search["candidates"]}
    assert search["chosen_scale"] == min(losses, key=losses.get) == 10.0  # 0.01 barely moves
    assert history["best_val_loss"] == losses[10.0]
    assert search["candidates"][1]["learning_rate"] == pytest.approx(0.1)
    assert "kept 10x the plan rates" in history["notes"][-1]
    # Each candidate started from the same weights: the model holds the chosen one's.
    def val_loss() -> float:
        return model.evaluate(*blobs(1), verbose=0, return_dict=True)["loss"]

    assert val_loss() == pytest.approx(losses[10.0], rel=1e-4)
    model.set_weights(start)
    assert val_loss() == pytest.approx(history["start"]["val_loss"], rel=1e-4)
    assert history["start"]["val_loss"] > losses[10.0]


def test_a_diverging_larger_rate_is_dropped_without_a_retry_and_stops_the_search():
    keras.utils.set_random_seed(0)
    model, plan = model_and_plan()
    history = search_rates(model, plan, blobs(), blobs(1), phase="fine-tune", learning_rate=0.01,
                           epochs=3, scales=(1.0, 1e7, 1e8),
                           scaled_variables=model.get_layer("body").trainable_variables)
    search = history["rate_search"]
    assert [c["scale"] for c in search["candidates"]] == [1.0, 1e7] and search["skipped"] == [1e8]
    assert search["candidates"][1]["diverged"] and not search["candidates"][1]["retried"]
    assert search["chosen_scale"] == 1.0 and not history["retried"]
    assert "not tried after a divergence" in search["sentence"]


def test_a_rerun_restores_finished_candidates_without_training_them(tmp_path):
    results, saved = [], {}
    for _ in range(2):
        keras.utils.set_random_seed(0)
        model, plan = model_and_plan()
        results.append(search_rates(model, plan, blobs(), blobs(1), phase="fine-tune",
                                    learning_rate=0.01, epochs=3, scales=(1.0, 3.0),
                                    work_dir=tmp_path))
        states = {p.parent.name: p.stat().st_mtime_ns for p in (tmp_path / "backup").glob("*/state.json")}
        saved = saved or states
    assert sorted(saved) == ["fine-tune", "fine-tune-x3"]
    assert states == saved, "the rerun trained a candidate again (its state was rewritten)"
    again = results[1]["rate_search"]
    assert again["chosen_scale"] == results[0]["rate_search"]["chosen_scale"]
    assert any("restored as it finished" in note for note in results[1]["notes"])
    assert [c["best_val_loss"] for c in again["candidates"]] == pytest.approx(
        [c["best_val_loss"] for c in results[0]["rate_search"]["candidates"]])


def test_a_dip_below_twice_a_uniform_guess_is_not_a_divergence():
    def guard(chance):
        g = TrainingGuard(start_loss=0.7, patience=5, chance_loss=chance)
        g.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]))
        g.on_train_begin()
        g.on_epoch_begin(0)
        g.on_epoch_end(0, {"val_loss": 2.4})  # the dip after the warm-up, 10 classes
        return g

    assert guard(None).diverged  # 2.4 > 2 x 0.7 + 0.5
    assert not guard(np.log(10)).diverged  # but below 2 x log(10) = 4.6
    late = guard(np.log(10))
    late.on_epoch_begin(1)
    late.on_epoch_end(1, {"val_loss": 5.0})
    assert late.diverged and "5" in late.diverged
