"""The SVM's C search: threaded (C, fold) fits choose what the serial search chooses (issue 18)."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from advisor import config
from advisor.plan import Optimizer, Plan, Regime
from strategies import svm


def svm_plan(seed: int = 0) -> Plan:
    return Plan(regime=Regime.SVM, backbone="mobilenet_v2", image_size=96, frozen_blocks=(),
                feature_layer="out_relu", optimizer=Optimizer.ADAMW, head_learning_rate=1e-3,
                backbone_learning_rate=0.0, batch_size=16, head_epochs=3, epochs=0, warmup_epochs=0,
                patience=3, augmentation=(), class_weights=None, svm_c_grid=config.SVM_C_GRID, seed=seed)


def embeddings_like(n: int = 360, dim: int = 96, classes: int = 6, seed: int = 0):
    """Non-negative, half-sparse features of overlapping classes (as pooled ReLU6 outputs are)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n // classes)
    latent = rng.normal(size=(classes, 16))[y] + 2.0 * rng.normal(size=(n, 16))
    x = np.maximum(latent @ rng.normal(size=(16, dim)) / 4 + rng.normal(scale=0.5, size=(n, dim)) - 0.3, 0)
    return x.astype(np.float32), y


@pytest.mark.parametrize("max_iter", [svm.SVM_MAX_ITER, 1], ids=["converged", "not-converged"])
def test_threaded_c_search_chooses_what_the_serial_search_chooses(monkeypatch, max_iter):
    monkeypatch.setattr(svm, "SVM_MAX_ITER", max_iter)  # 1: every fit warns; the note must survive threads
    x, y = embeddings_like()
    weights = {label: 1.0 + label / 10 for label in range(6)}
    serial, serial_record = svm.fit_linear_svm(x, y, svm_plan(), weights, n_jobs=1)
    threaded, threaded_record = svm.fit_linear_svm(x, y, svm_plan(), weights, n_jobs=2)
    assert threaded_record == serial_record
    assert len(set(serial_record["cv_accuracy"])) > 1  # the grid's C values are told apart
    assert 0.3 < max(serial_record["cv_accuracy"]) < 1.0  # overlapping classes, not a trivial task
    assert any("did not fully converge" in n for n in serial_record["notes"]) == (max_iter == 1)
    np.testing.assert_array_equal(threaded.coef_, serial.coef_)
    np.testing.assert_array_equal(threaded.predict(x), serial.predict(x))


def test_the_search_fits_run_in_worker_threads(monkeypatch):
    fitted_in: list[int] = []
    fit = LinearSVC.fit

    def recording_fit(self, *args, **kwargs):
        fitted_in.append(threading.get_ident())
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LinearSVC, "fit", recording_fit)
    x, y = embeddings_like(n=120, dim=16)
    _, record = svm.fit_linear_svm(x, y, svm_plan(), n_jobs=2)
    searched, refit = fitted_in[:-1], fitted_in[-1]
    assert len(searched) == record["cv_folds"] * len(record["c_grid"])
    assert threading.get_ident() not in searched and refit == threading.get_ident()


def test_tiny_inputs_search_serially():
    assert svm.search_jobs(100, 16, n_fits=20) == 1
    assert 1 <= svm.search_jobs(2_100, 1_280, n_fits=20) <= 20
    assert svm.search_jobs(2_100, 1_280, n_fits=1) == 1


def test_the_search_runs_at_liblinears_own_tolerance_on_the_plans_folds():
    # tol 1e-2 (liblinear's -e default) is what makes the search affordable on several layers;
    # the folds are the plan's (3 from config.SVM_CV_FOLDS_LARGE_FROM training images).
    x, y = embeddings_like(n=120, dim=16)
    fitted, record = svm.fit_linear_svm(x, y, dataclasses.replace(svm_plan(), svm_cv_folds=3), n_jobs=1)
    assert fitted.tol == svm.SVM_TOL == 1e-2 and fitted.dual is False
    assert record["cv_folds"] == 3
