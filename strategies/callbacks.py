"""The guard of every training phase: early stopping from the start, and divergence.

:class:`TrainingGuard` keeps the starting weights as the epoch-0 candidate
(so a phase never returns a model worse on validation loss than the one it
started from), stops after ``patience`` epochs without improvement, and stops
at once when the loss diverges (NaN, inf, or a jump above
``DIVERGENCE_FACTOR * start + DIVERGENCE_MARGIN``).
"""

from __future__ import annotations

import math

import keras
import numpy as np

#: A loss above ``DIVERGENCE_FACTOR * start + DIVERGENCE_MARGIN`` is a divergence.
DIVERGENCE_FACTOR = 2.0
DIVERGENCE_MARGIN = 0.5
#: Batches of an epoch seen before the running training loss is checked for a jump.
DIVERGENCE_MIN_BATCHES = 3


class TrainingGuard(keras.callbacks.Callback):
    """Early stopping with the starting state as candidate, and a divergence check.

    The starting weights, with their validation loss `start_loss`, are the
    epoch-0 candidate: at the end of training the best of them and every
    epoch's weights (lowest validation loss) is restored. Training stops after
    `patience` epochs without improvement, or at once when the loss diverges:
    a NaN/inf loss, or a running training or validation loss above
    ``DIVERGENCE_FACTOR * start_loss + DIVERGENCE_MARGIN``.

    Args:
        start_loss: Validation loss of the starting weights.
        patience: Epochs without improvement before stopping.

    Attributes:
        best_epoch: 0 for the starting state, else the 1-based best epoch.
        best_loss: Its validation loss.
        diverged: Why training diverged, or `None`.
        stopped_epoch: 1-based epoch at which training was stopped, or `None`.

    Example:
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        >>> model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        >>> guard = TrainingGuard(start_loss=model.evaluate(x, y, verbose=0), patience=3)
        >>> _ = model.fit(x, y, validation_data=(x, y), epochs=4, callbacks=[guard], verbose=0)
        >>> guard.best_epoch, guard.best_loss < guard.start_loss, guard.diverged
        (4, True, None)
    """

    def __init__(self, *, start_loss: float, patience: int) -> None:
        super().__init__()
        self.start_loss = float(start_loss)
        self.patience = max(1, int(patience))
        self.limit = DIVERGENCE_FACTOR * self.start_loss + DIVERGENCE_MARGIN if math.isfinite(
            self.start_loss) else math.inf
        self.best_loss = self.start_loss if math.isfinite(self.start_loss) else math.inf
        self.best_epoch = 0
        self.diverged: str | None = None
        self.stopped_epoch: int | None = None
        self._best_weights: list[np.ndarray] | None = None
        self._wait = 0
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self._best_weights = self.model.get_weights()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self._diverge(f"training loss became {loss} in epoch {self._epoch + 1}, batch {batch + 1}")
        elif batch + 1 >= DIVERGENCE_MIN_BATCHES and loss > self.limit:
            self._diverge(f"training loss jumped to {loss:.3g} (start {self.start_loss:.3g}) in "
                          f"epoch {self._epoch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged:
            return
        val_loss = float((logs or {}).get("val_loss", math.nan))
        if not math.isfinite(val_loss) or val_loss > self.limit:
            self._diverge(f"validation loss became {val_loss:.3g} (start {self.start_loss:.3g}) "
                          f"after epoch {epoch + 1}")
            return
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self._wait = val_loss, epoch + 1, 0
            self._best_weights = self.model.get_weights()
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)

    def _diverge(self, reason: str) -> None:
        if self.diverged is None:
            self.diverged = reason
            self.stopped_epoch = self._epoch + 1
        self.model.stop_training = True
