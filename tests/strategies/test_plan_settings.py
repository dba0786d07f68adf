"""Settings that change results are read from the Plan: augmentation, probe views,
SVM folds, precision (the optimizer's are in test_optimizers.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advisor.errors import PlanError
from advisor.plan import Optimizer, Plan, Regime
from strategies.base import probe_training_set
from strategies.devices import dtype_policy
from strategies.inputs import LabelledImages
from strategies.svm import fit_linear_svm
from strategies.training import augmentation_for
from tests.strategies.fakes import fake_plan


def plan_with(**overrides) -> Plan:
    return fake_plan(**(dict(regime=Regime.LAST_LAYER, image_size=8, optimizer=Optimizer.ADAMW,
                             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=8,
                             head_epochs=1, epochs=0, warmup_epochs=0, patience=1,
                             svm_c_grid=(0.1, 1.0)) | overrides))


def test_augmentation_strengths_come_from_the_plan():
    plan = plan_with(augmentation=("translate", "zoom"), augmentation_translate=0.2,
                     augmentation_zoom=0.3)
    translate, zoom = augmentation_for(plan, seed=0).layers
    assert translate.height_factor == translate.width_factor == 0.2
    assert zoom.height_factor == zoom.width_factor == 0.3
    with pytest.raises(PlanError, match="Known: flip, translate, zoom"):
        augmentation_for(plan_with(augmentation=("mixup",)), seed=0)


class RecordingEmbedder:
    """Stands in for strategies.embeddings.Embedder: records the cache keys asked for."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []

    def embed(self, images, *, rows, key=None, augmentation=None, augmentation_key=None):
        self.keys.append(augmentation_key)
        return np.zeros((len(rows), 2), np.float32)


def test_probe_trains_on_the_plans_number_of_augmented_views():
    data = LabelledImages(np.zeros((5, 8, 8, 3), np.uint8), np.array([0, 1, 0, 1, 0]))
    embedder = RecordingEmbedder()
    x, y = probe_training_set(embedder, data, plan_with(augmentation=("flip",), augmented_views=3))
    assert x.shape == (20, 2) and y.tolist() == data.labels.tolist() * 4
    # The cache key of a view is what it was before the strengths became plan fields.
    assert embedder.keys[1] == json.dumps(
        {"augmentation": {"flip": {"flip": True}}, "seed": 0, "view": 1}, sort_keys=True)
    assert len(set(embedder.keys)) == 4


def test_svm_cross_validation_folds_come_from_the_plan():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    x = rng.normal(size=(20, 4)) + 3.0 * y[:, None]
    assert fit_linear_svm(x, y, plan_with())[1]["cv_folds"] == 5
    assert fit_linear_svm(x, y, plan_with(svm_cv_folds=3))[1]["cv_folds"] == 3


def test_precision_names_the_dtype_policy():
    assert dtype_policy("float32") == "float32"
    assert dtype_policy("mixed_bfloat16") == "mixed_bfloat16"
    assert dtype_policy("auto") in ("float32", "mixed_bfloat16")
    assert plan_with().precision == "auto"
    with pytest.raises(PlanError, match="Known: auto, float32, mixed_bfloat16"):
        dtype_policy("half")
