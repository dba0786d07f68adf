"""Small fakes shared by the strategies' tests: a plan of no real backbone, a two-layer model, blobs.

As Keras' ``early_stopping_test.py`` keeps its tiny models beside the tests:
nothing here loads weights or images, so a test that uses them runs in
seconds and claims nothing about accuracy on real data.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from advisor.plan import Optimizer, Plan, Regime
from strategies.embeddings import Embedder
from strategies.graph import OUTPUT_LAYER

#: Every field a ``Plan`` needs, for a model whose "backbone" is the layer ``body``.
FAKE_PLAN_SETTINGS: dict[str, Any] = dict(
    regime=Regime.FULL, backbone="fake", image_size=32, frozen_blocks=(), feature_layer="body",
    optimizer=Optimizer.SGD, head_learning_rate=0.1, backbone_learning_rate=0.01, batch_size=20,
    head_epochs=5, epochs=5, warmup_epochs=1, patience=2, augmentation=(), class_weights=None,
    svm_c_grid=(1.0,), seed=0)


def fake_plan(**overrides: Any) -> Plan:
    """Return a plan for a fake backbone (`FAKE_PLAN_SETTINGS`), `overrides` replacing fields.

    Example:
        >>> fake_plan(epochs=2).epochs, fake_plan().backbone
        (2, 'fake')
    """
    return Plan(**(FAKE_PLAN_SETTINGS | overrides))


def two_layer_model(hidden: int = 16, classes: int = 3, features: int = 8) -> keras.Model:
    """Return ``features -> Dense(hidden, relu, "body") -> Dense(classes, softmax, OUTPUT_LAYER)``."""
    inputs = keras.Input((features,))
    body = keras.layers.Dense(hidden, activation="relu", name="body")(inputs)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", name=OUTPUT_LAYER)(body))


def blobs(seed: int = 0, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Return `n` points of 3 Gaussian blobs in 8 dimensions (3 standard deviations apart) and labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8)).astype(np.float32) + 3.0 * np.eye(3, 8)[y].astype(np.float32)
    return x, y


def count_embedded_rows(monkeypatch) -> list[int]:
    """Record how many rows each ``Embedder`` forward pass computes (a list the caller reads)."""
    computed: list[int] = []
    original = Embedder._compute

    def compute(self, images, rows, augmentation):
        computed.append(len(rows))
        return original(self, images, rows, augmentation)

    monkeypatch.setattr(Embedder, "_compute", compute)
    return computed
