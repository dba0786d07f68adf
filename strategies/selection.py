"""What a training phase selects its epochs on: the validation loss, raw or after temperature scaling.

Early stopping keeps the epoch with the lowest validation loss. Every
classifier is calibrated on the validation split after fitting
(:mod:`strategies.calibration`), so the loss that describes the model a run
ships is the loss *after* temperature scaling. The raw loss can disagree: a
fine-tuned network that classifies as well as its linear-probe start but is
over-confident has the higher raw loss, so the raw selection returns the
probe even when the fine-tuned weights are as good or better once calibrated
(seen on MNIST 300: accuracy 0.84 against 0.84, raw loss 1.1 against 0.69).

:class:`ValidationScores` scores the model on the validation split once per
epoch, in place of Keras' own validation pass (one forward pass either way),
and writes ``val_loss``, ``val_accuracy`` and ``val_calibrated_loss`` into the
epoch's logs, where :class:`~strategies.callbacks.TrainingGuard` and the
history read them. :func:`monitor_of` names the log a plan's ``select_on``
selects on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from advisor.errors import PlanError
from strategies.calibration import CALIBRATION_MIN_IMAGES, fit_temperature, negative_log_likelihood

#: ``select_on`` values, and the epoch log each selects on.
MONITORS = {"loss": "val_loss", "calibrated-loss": "val_calibrated_loss"}
#: On the calibrated loss an epoch must improve on the best by this fraction to count
#: (``TrainingGuard(min_improvement=...)``). Once a fine-tuned network fits its training
#: images, further epochs sharpen its scores and temperature scaling undoes it: the
#: calibrated loss then drifts down by 0.01-0.2% an epoch at a constant validation
#: accuracy (Fashion-MNIST 300, `partial`: 0.6698, 0.6696, 0.6687, 0.6699, 0.6685 over
#: epochs 15-19 at 0.78-0.80), and without a threshold each drift resets the patience
#: until the budget ends the run.
MIN_IMPROVEMENT = {"loss": 0.0, "calibrated-loss": 0.01}
#: Probabilities are clipped to this before the log, as Keras' cross-entropy clips them.
EPSILON = 1e-7


def monitor_of(select_on: str) -> str:
    """Return the epoch log that `select_on` selects on.

    Example:
        >>> monitor_of("loss"), monitor_of("calibrated-loss")
        ('val_loss', 'val_calibrated_loss')
        >>> monitor_of("accuracy")
        Traceback (most recent call last):
            ...
        advisor.errors.PlanError: Unknown select_on 'accuracy' in the plan. Known: loss, calibrated-loss.
    """
    if select_on not in MONITORS:
        raise PlanError(f"Unknown select_on {select_on!r} in the plan. Known: {', '.join(MONITORS)}.")
    return MONITORS[select_on]


def validation_scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Return the validation ``loss``, ``accuracy`` and ``calibrated_loss`` of softmax outputs.

    ``loss`` is the mean cross-entropy (as Keras computes it from
    probabilities: clipped to ``EPSILON`` and renormalised); ``calibrated_loss`` is the cross-entropy after
    the temperature :func:`~strategies.calibration.fit_temperature` fits to
    these outputs (``softmax(log p / T)``: the probabilities the calibrated
    model would give), or ``loss`` itself below ``CALIBRATION_MIN_IMAGES``
    images, where the calibration keeps ``T = 1``.

    Example:
        >>> labels = np.array([0, 1] * 10)
        >>> sure = np.where(np.eye(2)[labels] > 0, 0.999, 0.001)  # right with 0.999 ...
        >>> sure[:2] = sure[:2, ::-1]  # ... but two wrong with 0.999: over-confident
        >>> scores = validation_scores(sure, labels)
        >>> scores["accuracy"], round(scores["loss"], 2), round(scores["calibrated_loss"], 2)
        (0.9, 0.69, 0.33)
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    logits = np.log(p)
    loss = negative_log_likelihood(logits, labels)
    calibrated = loss
    if len(labels) >= CALIBRATION_MIN_IMAGES:
        calibrated = negative_log_likelihood(logits, labels, fit_temperature(logits, labels))
    return {"loss": loss, "accuracy": float(np.mean(p.argmax(axis=1) == labels)),
            "calibrated_loss": calibrated}


class ValidationScores(keras.callbacks.Callback):
    """Score the model on the validation split after each epoch: loss, accuracy, calibrated loss.

    Runs in place of ``fit``'s ``validation_data`` (pass none), first in the
    callback list, and writes :func:`validation_scores` into the epoch's logs
    with the ``val_`` prefix, so the callbacks after it, the History and the
    per-epoch log read them as they read Keras' own.

    Args:
        data: A ``keras.utils.PyDataset`` of ``(x, y)`` batches, not
            shuffled, or an ``(x, y)`` tuple of arrays.
        batch_size: Rows per batch for an array `data`.

    Example:
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        >>> model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        >>> scores = ValidationScores((x, y), batch_size=16)
        >>> history = model.fit(x, y, epochs=2, callbacks=[scores], verbose=0)
        >>> sorted(k for k in history.history if k.startswith("val_"))
        ['val_accuracy', 'val_calibrated_loss', 'val_loss']
    """

    def __init__(self, data: Any, *, batch_size: int) -> None:
        super().__init__()
        self.data = data
        self.batch_size = int(batch_size)
        if isinstance(data, keras.utils.PyDataset):
            if getattr(data, "shuffle", False):
                raise ValueError("ValidationScores needs unshuffled validation batches: the "
                                 "predictions are matched to the labels by position.")
            # The project's batch datasets hold their labels in batch order when unshuffled;
            # any other dataset is read once (its inputs too) for them.
            labels = getattr(data, "labels", None)
            self.labels = (np.asarray(labels).reshape(-1) if labels is not None else
                           np.concatenate([np.asarray(data[i][1]).reshape(-1)
                                           for i in range(len(data))]))
        else:
            self.labels = np.asarray(data[1]).reshape(-1)

    def score(self, model: keras.Model) -> dict[str, float]:
        """Return :func:`validation_scores` of `model` on the validation split."""
        if isinstance(self.data, keras.utils.PyDataset):
            probabilities = model.predict(self.data, verbose=0)
        else:
            probabilities = model.predict(self.data[0], batch_size=self.batch_size, verbose=0)
        return validation_scores(keras.ops.convert_to_numpy(probabilities), self.labels)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if logs is not None:
            logs.update({f"val_{name}": value for name, value in self.score(self.model).items()})
