"""The callbacks of every training phase: the guard, its resumable state, one line per epoch.

:class:`TrainingGuard` keeps the starting weights as the epoch-0 candidate
(so a phase never returns a model worse on validation loss than the one it
started from), stops after ``patience`` epochs without improvement (counted
after the warm-up), and stops at once when the loss diverges (NaN, inf, or a jump above
``DIVERGENCE_FACTOR * start + DIVERGENCE_MARGIN`` and above
``DIVERGENCE_FACTOR`` times the loss of guessing uniformly, ``log(classes)``).

:class:`PhaseCheckpoint` keeps a phase resumable after ``kill -9``: after every
epoch it writes, each file atomically and ``state.json`` last, the model and
optimizer, the random generators' states, the guard's best weights and state
(best epoch, best loss, epochs without improvement) and every epoch's metrics;
a finished phase keeps its final weights, so a rerun restores it instead of
training it again.

:class:`EpochLog` writes one line per epoch (metrics, seconds) to a stream: the
progress of a run whose output is a log file or CI, not a terminal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import keras
import numpy as np

from advisor.cache import atomic_path, atomic_write_text
from advisor.errors import StorageError

logger = logging.getLogger(__name__)

#: A loss above ``DIVERGENCE_FACTOR * start + DIVERGENCE_MARGIN`` is a divergence, and
#: for a classifier only when it is also above ``DIVERGENCE_FACTOR * log(classes)``
#: (twice the cross-entropy of a uniform guess). Measured on MNIST 300 (partial, 3x
#: the default rates, benchmarks/README.md "Rate search"): fine-tuning after the probe
#: dips at the end of the warm-up (validation loss 0.75 -> 1.6-2.4, 10 classes) and
#: recovers to below its start (0.50 at epoch 12 in one run); a limit of 2 x start +
#: 0.5 (1.9-2.0 there) stopped that dip as a divergence. Real divergence (NaN, or
#: losses of 10 and more) is still caught at once.
DIVERGENCE_FACTOR = 2.0
DIVERGENCE_MARGIN = 0.5
#: Batches of an epoch seen before the running training loss is checked for a jump.
DIVERGENCE_MIN_BATCHES = 3
#: The file of a phase folder that names the rest; written last after each epoch.
STATE_FILE = "state.json"
#: Bump when the state's contents change; older states are not resumed.
STATE_VERSION = 1
#: A resumed phase's starting validation loss must match the saved one this closely
#: (relative), else the state belongs to another model and is discarded.
START_LOSS_RTOL = 1e-4


class TrainingGuard(keras.callbacks.Callback):
    """Early stopping with the starting state as candidate, after a warm-up, and a divergence check.

    The starting weights, with their validation loss `start_loss`, are the
    epoch-0 candidate: at the end of training the best of them and every
    epoch's weights (lowest validation loss) is restored. Training stops after
    `patience` epochs without improvement, or at once when the loss diverges:
    a NaN/inf loss, or a running training or validation loss above
    ``DIVERGENCE_FACTOR * start_loss + DIVERGENCE_MARGIN`` (and, given
    `chance_loss`, above ``DIVERGENCE_FACTOR * chance_loss``). As with Keras'
    ``EarlyStopping(start_from_epoch=...)``, the first `start_from_epoch`
    epochs (the warm-up) do not count against the patience, though one of them
    can still become the best candidate.

    Args:
        start_loss: Validation loss of the starting weights.
        patience: Epochs without improvement before stopping.
        start_from_epoch: Epochs before the patience starts counting.
            Defaults to `0`.
        chance_loss: The loss of an uninformed guess (``log(classes)`` for
            cross-entropy), or `None`. Defaults to `None`.
        monitor: The epoch log the candidates are compared on. Defaults to
            ``"val_loss"``; ``"val_calibrated_loss"`` compares them after
            temperature scaling (:mod:`strategies.selection`). The divergence
            check always reads ``val_loss``.
        start_score: The starting weights' `monitor` value. Defaults to
            `None` (`start_loss`).
        min_improvement: The fraction by which an epoch must lower the best
            `monitor` value to become the best candidate (and reset the
            patience). Defaults to `0.0` (any decrease), as Keras'
            ``EarlyStopping(min_delta=0)``.

    Attributes:
        best_epoch: 0 for the starting state, else the 1-based best epoch.
        best_loss: Its `monitor` value.
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

    def __init__(self, *, start_loss: float, patience: int, start_from_epoch: int = 0,
                 chance_loss: float | None = None, monitor: str = "val_loss",
                 start_score: float | None = None, min_improvement: float = 0.0) -> None:
        super().__init__()
        self.start_loss = float(start_loss)
        self.monitor = monitor
        self.min_improvement = float(min_improvement)
        self.patience = max(1, int(patience))
        self.start_from_epoch = max(0, int(start_from_epoch))
        self.limit = DIVERGENCE_FACTOR * self.start_loss + DIVERGENCE_MARGIN if math.isfinite(
            self.start_loss) else math.inf
        if chance_loss is not None:
            self.limit = max(self.limit, DIVERGENCE_FACTOR * float(chance_loss))
        start = self.start_loss if start_score is None else float(start_score)
        self.best_loss = start if math.isfinite(start) else math.inf
        self.best_epoch = 0
        self.diverged: str | None = None
        self.stopped_epoch: int | None = None
        self._best_weights: list[np.ndarray] | None = None
        self._wait = 0
        self._epoch = 0

    @property
    def best_weights(self) -> list[np.ndarray] | None:
        """The best candidate's weights (``model.get_weights()`` order), once training began."""
        return self._best_weights

    @property
    def finished(self) -> bool:
        """Whether the guard stopped training (no improvement for `patience`, or a divergence)."""
        return self.diverged is not None or self.stopped_epoch is not None

    def get_state(self) -> dict[str, Any]:
        """Return what a resumed phase needs to go on as if never interrupted (JSON-ready).

        Example:
            >>> TrainingGuard(start_loss=0.7, patience=2).get_state()
            {'best_epoch': 0, 'best_loss': 0.7, 'wait': 0, 'stopped_epoch': None, 'diverged': None}
        """
        return {"best_epoch": self.best_epoch, "best_loss": self.best_loss, "wait": self._wait,
                "stopped_epoch": self.stopped_epoch, "diverged": self.diverged}

    def set_state(self, state: Mapping[str, Any], *, best_weights: list[np.ndarray]) -> None:
        """Restore :meth:`get_state` and the best candidate's weights (before ``fit``).

        Args:
            state: A :meth:`get_state` dict.
            best_weights: The weights of epoch ``state["best_epoch"]`` (the
                starting weights when it is 0).
        """
        self.best_epoch = int(state["best_epoch"])
        self.best_loss = float(state["best_loss"])
        self._wait = int(state["wait"])
        self.stopped_epoch = None if state["stopped_epoch"] is None else int(state["stopped_epoch"])
        self.diverged = state["diverged"]
        self._best_weights = list(best_weights)

    def on_train_begin(self, logs=None):
        if self._best_weights is None:  # else restored by set_state (a resumed phase)
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
        score = val_loss if self.monitor == "val_loss" else float((logs or {}).get(self.monitor,
                                                                                  math.nan))
        if score < self.best_loss - self.min_improvement * abs(self.best_loss):
            self.best_loss, self.best_epoch, self._wait = score, epoch + 1, 0
            self._best_weights = self.model.get_weights()
            return
        if epoch + 1 <= self.start_from_epoch:  # the warm-up: the patience is not counting yet
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


def random_variables(obj: Any) -> list:
    """Return the random generators' state variables of a Keras layer or model.

    They are the variables that are not weights (``SeedGenerator`` states, of
    Dropout or random augmentation layers). ``save_weights`` leaves them out,
    so a resumed phase restores them from :class:`PhaseCheckpoint`'s files to
    draw what the uninterrupted run would have drawn.

    Example:
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.5, seed=1),
        ...                           keras.layers.Dense(2)])
        >>> [v.path.split("/")[-1] for v in random_variables(model)]
        ['seed_generator_state']
    """
    weights = {id(w) for w in obj.weights}
    return [v for v in obj.variables if id(v) not in weights]


def fingerprint(**parts: Any) -> str:
    """Return a short hash of `parts` (JSON): what a saved phase state must match.

    Example:
        >>> fingerprint(phase="head", epochs=3) == fingerprint(epochs=3, phase="head")
        True
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save_arrays(path: Path, arrays: Sequence[np.ndarray]) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, *[np.asarray(a) for a in arrays])


def _load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


class PhaseCheckpoint(keras.callbacks.Callback):
    """Keep a training phase resumable on disk: one complete state per epoch, written atomically.

    After each epoch, in this order: the guard's best weights when that epoch
    improved on them (``best-<epoch>.npz``), the model and optimizer
    (``epoch-<epoch>.weights.h5``, Keras' ``save_weights``), the random
    generators' states of the model and of `random_objects`
    (``epoch-<epoch>.random.npz``), and last ``state.json``, which names those
    files with the epoch, the guard's :meth:`~TrainingGuard.get_state`, the
    phase's starting validation metrics and every epoch's metrics. Each file is
    written under a temporary name and renamed, so a process killed at any
    moment leaves the last completed epoch's state whole; the files the state
    no longer names are then deleted. :meth:`finish` keeps only the final weights.

    Resuming (:meth:`load`, then ``fit(initial_epoch=resume_epoch(epochs))``):
    at the start of ``fit`` the callback loads the weights and optimizer,
    gives the guard its best weights and state, restores the random states and
    advances `batches` (a ``keras.utils.PyDataset`` that reshuffles in
    ``on_epoch_end``) past the epochs done, so the next epoch sees the batches
    and random draws it would have seen without the interruption. A state is
    resumed only when its `signature` and the starting validation loss match;
    else it is discarded with a warning and the phase starts afresh.

    Args:
        directory: The phase's folder (created on the first save).
        guard: The phase's :class:`TrainingGuard`; it must come before this
            callback in ``fit``'s list.
        signature: What a saved state must match to be resumed (see :func:`fingerprint`).
        start: Validation metrics of the starting weights (``loss`` and the others).
        batches: The training batches, advanced on a resume. Defaults to `None`.
        random_objects: Other Keras objects whose random state feeds the phase
            (the training batches' augmentation). Defaults to `()`.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "head"
        >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> def run(epochs):
        ...     keras.utils.set_random_seed(0)
        ...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        ...     model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        ...     start = model.evaluate(x, y, verbose=0, return_dict=True)
        ...     guard = TrainingGuard(start_loss=start["loss"], patience=5)
        ...     checkpoint = PhaseCheckpoint(folder, guard, signature="demo", start=start)
        ...     checkpoint.load()
        ...     initial = checkpoint.resume_epoch(epochs)
        ...     model.fit(x, y, validation_data=(x, y), epochs=epochs, initial_epoch=initial,
        ...               shuffle=False, callbacks=[guard, checkpoint], verbose=0)
        ...     return initial
        >>> run(epochs=2)  # two epochs, then "killed"
        0
        >>> run(epochs=4), json.loads((folder / STATE_FILE).read_text())["epoch"]  # on from epoch 2
        (2, 4)
    """

    def __init__(self, directory: Path | str, guard: TrainingGuard, *, signature: str,
                 start: Mapping[str, float], batches: keras.utils.PyDataset | None = None,
                 random_objects: Sequence[Any] = ()) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.guard = guard
        self.signature = signature
        self.start = {k: float(v) for k, v in start.items()}
        self.batches = batches
        self.random_objects = list(random_objects)
        self.epochs: list[dict[str, float]] = []  # every epoch's metrics, restored ones included
        self.state: dict[str, Any] | None = None  # the loaded state, until fit restores it
        self._best_file: str | None = None

    # ------------------------------------------------------------------ read
    def load(self) -> dict[str, Any] | None:
        """Read the saved state when it can be resumed (`None` if none; a mismatch is discarded)."""
        path = self.directory / STATE_FILE
        self.state = None
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            usable = (state.get("version") == STATE_VERSION and state.get("signature") == self.signature
                      and math.isclose(float(state["start"]["loss"]), self.start["loss"],
                                       rel_tol=START_LOSS_RTOL, abs_tol=1e-7)
                      and all((self.directory / name).is_file() for name in self._files(state)))
        except (OSError, ValueError, KeyError, TypeError):
            usable = False
        if not usable:
            logger.warning("Discarding the saved training state in %s: it does not match this "
                           "phase (another plan, model or data); training it from the start.",
                           self.directory)
            self.clear()
            return None
        self.state = state
        self.epochs = [dict(e) for e in state["epochs"]]
        return state

    @property
    def finished(self) -> bool:
        """Whether the loaded state is of a finished phase (:meth:`restore_final`, no ``fit``)."""
        return bool(self.state and self.state.get("final"))

    def resume_epoch(self, epochs: int) -> int:
        """Return ``fit``'s ``initial_epoch``: the epochs done, or `epochs` once the guard had stopped."""
        if self.state is None:
            return 0
        stopped = self.state["guard"]["stopped_epoch"] is not None or self.state["guard"]["diverged"]
        return epochs if stopped else int(self.state["epoch"])

    def restore_final(self, model: keras.Model) -> None:
        """Give a finished phase's `model` its final weights and the guard its outcome."""
        final = _load_arrays(self.directory / self.state["final"])
        self.guard.set_state(self.state["guard"], best_weights=final)
        model.set_weights(final)
        self.state = None

    def on_train_begin(self, logs=None):
        state, self.state = self.state, None
        if state is None:
            return
        folder, guard_state = self.directory, state["guard"]
        best = (self.guard.best_weights if guard_state["best_epoch"] == 0 or state["best"] is None
                else _load_arrays(folder / state["best"]))  # epoch 0 is the start, rebuilt the same
        self.guard.set_state(guard_state, best_weights=best)
        self._best_file = state["best"]
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:  # fit builds it at its first step
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(folder / state["weights"])
        saved = _load_arrays(folder / state["random"])
        variables = self._random_variables(self.model)
        if len(saved) == len(variables) and all(a.shape == tuple(v.shape) for a, v in zip(saved, variables)):
            for variable, value in zip(variables, saved):
                variable.assign(value)
        else:
            logger.warning("The random state saved in %s does not fit this model; the resumed "
                           "epochs draw other random numbers than an uninterrupted run.", folder)
        if self.batches is not None:
            for _ in range(int(state["epoch"])):  # each epoch's shuffle, as fit would have
                self.batches.on_epoch_end()
        logger.warning("Resuming %s after epoch %d (best so far: epoch %d).", folder.name,
                       state["epoch"], guard_state["best_epoch"])

    # ----------------------------------------------------------------- write
    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        done = epoch + 1
        try:
            if self.guard.best_epoch == done:  # this epoch is the new best candidate
                self._best_file = f"best-{done}.npz"
                _save_arrays(self.directory / self._best_file, self.guard.best_weights)
            weights, random = f"epoch-{done}.weights.h5", f"epoch-{done}.random.npz"
            with atomic_path(self.directory / weights, suffix=".weights.h5") as tmp:
                self.model.save_weights(tmp)
            _save_arrays(self.directory / random,
                         [keras.ops.convert_to_numpy(v) for v in self._random_variables(self.model)])
            self._write_state({"epoch": done, "weights": weights, "random": random, "final": None})
        except OSError as exc:
            raise self._error(exc) from None

    def finish(self, model: keras.Model) -> None:
        """Record the phase as finished, keeping only its final weights (call after ``fit``)."""
        epoch = self.epochs[-1]["epoch"] if self.epochs else 0
        self._best_file = None  # the final weights are the best candidate's
        try:
            _save_arrays(self.directory / "final.npz", model.get_weights())
            self._write_state({"epoch": epoch, "weights": None, "random": None, "final": "final.npz"})
        except OSError as exc:
            raise self._error(exc) from None

    def clear(self) -> None:
        """Delete the saved state."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def _write_state(self, files: Mapping[str, Any]) -> None:
        state = {"version": STATE_VERSION, "signature": self.signature, "start": self.start,
                 "guard": self.guard.get_state(), "best": self._best_file,
                 "epochs": self.epochs, **files}
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.directory / STATE_FILE, json.dumps(state, sort_keys=True))
        keep = set(self._files(state)) | {STATE_FILE}
        for path in self.directory.iterdir():  # older epochs, and temporaries of a killed write
            if path.name not in keep:  # (one writer per run folder: the run's lock)
                path.unlink(missing_ok=True)

    @staticmethod
    def _files(state: Mapping[str, Any]) -> list[str]:
        return [state[key] for key in ("weights", "random", "final", "best") if state.get(key)]

    def _random_variables(self, model: keras.Model) -> list:
        return [v for obj in (model, *self.random_objects) for v in random_variables(obj)]

    def _error(self, exc: OSError) -> StorageError:
        return StorageError(
            f"Could not save the training state in {self.directory} ({exc.strerror or exc}); free "
            "space there and run the same command again to resume from the last saved epoch")


class EpochLog(keras.callbacks.Callback):
    """Write one line per epoch to a text stream: phase, epoch, seconds and metrics.

    The progress of a run whose output is not a terminal (a log file, CI),
    where a progress bar would be noise and silence would look like a hang.
    The line reads like Keras' ``verbose=2`` line, with the phase in front.

    Args:
        phase: Name of the phase, first on each line.
        stream: Where to write. Defaults to `None` (``sys.stderr`` at the time
            of writing, so results on stdout stay clean).

    Example:
        >>> import io
        >>> stream = io.StringIO()
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> x = np.zeros((4, 2), "float32")
        >>> _ = model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[EpochLog("head", stream=stream)])
        >>> print(stream.getvalue().splitlines()[-1])  # doctest: +ELLIPSIS
        head epoch 2/2 - ...s - loss: 0
    """

    def __init__(self, phase: str, *, stream: TextIO | None = None) -> None:
        super().__init__()
        self.phase = phase
        self.stream = stream
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started
        metrics = " - ".join(f"{name}: {float(value):.4g}" for name, value in (logs or {}).items())
        total = self.params.get("epochs", "?") if self.params else "?"
        stream = self.stream or sys.stderr
        stream.write(f"{self.phase} epoch {epoch + 1}/{total} - {seconds:.1f}s - {metrics}\n")
        stream.flush()


def is_terminal(stream: TextIO | None) -> bool:
    """Whether `stream` is an interactive terminal (`False` for files, pipes, CI logs).

    Example:
        >>> import io
        >>> is_terminal(io.StringIO()), is_terminal(None)
        (False, False)
    """
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
