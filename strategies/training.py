"""The one Keras training loop of every regime, and what it reads from the plan.

:func:`train` compiles a model with the plan's optimizer (warm-up + cosine
decay; the head's rate for the head and a smaller one for backbone
variables), keeps the starting state as the epoch-0 candidate, stops early on
validation loss, and on a divergence restores the best weights and retries
once at a 10x lower backbone rate (:class:`~strategies.callbacks.TrainingGuard`).
The probe on cached embeddings and the fine-tuning on images both run it.

With a ``work_dir`` every epoch leaves a complete state on disk
(:class:`~strategies.callbacks.PhaseCheckpoint`: weights, optimizer, random
states, the guard's best weights and counters, written atomically), so after
``kill -9`` the same call resumes from the last completed epoch and ends with
the weights an uninterrupted run would have had, and a phase that had finished
is restored instead of trained again. When stderr is not a terminal (a log
file, CI) and ``verbose`` is 0, each epoch writes one line there
(:class:`~strategies.callbacks.EpochLog`).

Also here: the plan's augmentation (:func:`augmentation_for`), class weights
(:func:`class_weight_dict`) and loss (:func:`loss_and_metrics`).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import keras

from advisor.errors import PlanError
from advisor.plan import Loss, Plan, Task
from strategies.batches import ImageBatches, build_augmentation
from strategies.budget import budget_curve
from strategies.callbacks import EpochLog, PhaseCheckpoint, TrainingGuard, fingerprint, is_terminal
from strategies.optimizers import learning_rate_schedule, make_optimizer
from strategies.selection import MIN_IMPROVEMENT, ValidationScores, monitor_of

logger = logging.getLogger(__name__)

#: Augmentation names a plan may list.
AUGMENTATION_NAMES = ("flip", "translate", "zoom")
#: On divergence the backbone rate (or, with no backbone variables, the rate) is
#: multiplied by this for the single retry.
RETRY_RATE_FACTOR = 0.1
#: Training steps per compiled call when a phase trains on in-memory arrays (the
#: head on cached embeddings). Identical weights; on 7,000 Fashion-MNIST
#: embeddings (219 steps an epoch, TF CPU) the head phase took 3.4 s instead of
#: 5.5 s. The divergence guard then sees the running loss every this many steps.
ARRAY_STEPS_PER_EXECUTION = 32
#: A phase with at most this many training steps runs eagerly: tracing a large
#: network's training step costs about as much as ten eager steps (MobileNetV2, CPU).
EAGER_MAX_STEPS = 8


# --------------------------------------------------------------------------- #
# What the loop reads from the plan
# --------------------------------------------------------------------------- #
def augmentation_strengths(plan: Plan) -> dict[str, dict[str, Any]]:
    """Return ``{augmentation name: build_augmentation keywords}`` at the plan's strengths.

    Example:
        >>> import dataclasses
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> plan = Plan(regime=Regime.LAST_LAYER, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> augmentation_strengths(plan)["zoom"]
        {'zoom': 0.1}
        >>> augmentation_strengths(dataclasses.replace(plan, augmentation_translate=0.2))["translate"]
        {'translate': 0.2}
    """
    return {"flip": {"flip": True}, "translate": {"translate": plan.augmentation_translate},
            "zoom": {"zoom": plan.augmentation_zoom}}


def augmentation_for(plan: Plan, *, seed: int):
    """Return the plan's augmentation as a Keras model (or `None`).

    Args:
        plan: Gives ``augmentation`` (names) and their strengths.
        seed: Seed of the random layers.

    Returns:
        A ``keras.Sequential`` of random layers, or `None` when the plan lists none.

    Raises:
        PlanError: An unknown augmentation name; the message lists the known ones.

    Example:
        >>> import dataclasses
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> plan = Plan(regime=Regime.LAST_LAYER, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=("flip", "zoom"), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> [layer.__class__.__name__ for layer in augmentation_for(plan, seed=0).layers]
        ['RandomFlip', 'RandomZoom']
        >>> augmentation_for(dataclasses.replace(plan, augmentation=()), seed=0) is None
        True
        >>> augmentation_for(dataclasses.replace(plan, augmentation=("blur",)), seed=0)
        Traceback (most recent call last):
            ...
        advisor.errors.PlanError: Unknown augmentation 'blur' in the plan. Known: flip, translate, zoom.
    """
    strengths = augmentation_strengths(plan)
    kwargs: dict[str, Any] = {}
    for name in plan.augmentation:
        if name not in strengths:
            raise PlanError(
                f"Unknown augmentation {name!r} in the plan. Known: {', '.join(AUGMENTATION_NAMES)}.")
        kwargs.update(strengths[name])
    return build_augmentation(seed=seed, **kwargs)


def class_weight_dict(plan: Plan, n_classes: int) -> dict[int, float] | None:
    """Return the plan's class weights as ``{label: weight}`` (or `None`).

    Raises:
        PlanError: The plan has a different number of weights than classes.
    """
    if plan.class_weights is None:
        return None
    if len(plan.class_weights) != n_classes:
        raise PlanError(
            f"The plan has {len(plan.class_weights)} class weights for {n_classes} classes; "
            "re-plan on this dataset.")
    return {i: float(w) for i, w in enumerate(plan.class_weights)}


def loss_and_metrics(plan: Plan) -> tuple[Any, list[str]]:
    """Return the ``compile`` loss and metrics of the plan's task and loss.

    Sparse categorical cross-entropy with accuracy for classification; for
    regression (on standardised targets) Huber (delta 1) or mean squared error,
    with mean absolute error.

    Example:
        >>> import dataclasses
        >>> from advisor.plan import Loss, Optimizer, Plan, Regime, Task
        >>> plan = Plan(regime=Regime.LAST_LAYER, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> loss_and_metrics(plan)
        ('sparse_categorical_crossentropy', ['accuracy'])
        >>> loss, metrics = loss_and_metrics(dataclasses.replace(plan, task=Task.REGRESSION, loss=Loss.MSE))
        >>> loss.__class__.__name__, metrics
        ('MeanSquaredError', ['mae'])
    """
    if plan.task is not Task.REGRESSION:
        return "sparse_categorical_crossentropy", ["accuracy"]
    loss = keras.losses.Huber(delta=1.0) if plan.loss is Loss.HUBER else keras.losses.MeanSquaredError()
    return loss, ["mae"]


# --------------------------------------------------------------------------- #
# The steps of one phase
# --------------------------------------------------------------------------- #
def _fit_kwargs(data: Any, batch_size: int, *, shuffle: bool) -> tuple[dict[str, Any], int]:
    """Return ``model.fit``/``evaluate`` kwargs for a PyDataset or an ``(x, y[, w])`` tuple.

    A PyDataset shuffles itself, seeded per epoch (:func:`strategies.batches.epoch_order`);
    Keras' own shuffle of its batch order would draw from the global Python RNG,
    which a resumed run cannot replay, so it is turned off.
    """
    if isinstance(data, keras.utils.PyDataset):
        return ({"x": data, "shuffle": False} if shuffle else {"x": data}), len(data)
    x, y, *weights = data
    kwargs = {"x": x, "y": y, "batch_size": batch_size}
    if shuffle:
        kwargs["shuffle"] = True
    if weights and weights[0] is not None:
        kwargs["sample_weight"] = weights[0]
    return kwargs, max(1, math.ceil(len(x) / batch_size))


def _steps_per_execution(train_kwargs: Mapping[str, Any], steps: int, eager: bool) -> int:
    """Steps per compiled call: several for in-memory arrays (a head on cached
    embeddings, where each step is tiny and the per-call overhead dominates),
    one for image batches and on the torch backend (which supports only one)."""
    if eager or "y" not in train_kwargs or keras.backend.backend() == "torch":
        return 1
    return max(1, min(steps, ARRAY_STEPS_PER_EXECUTION))


def _callbacks(scores: ValidationScores | None, guard: TrainingGuard,
               checkpoint: PhaseCheckpoint | None, work_dir: Path | None, name: str, *,
               log_epochs: bool) -> list:
    # The validation scores first (they write the epoch's validation logs), then the
    # guard: the others read it.
    callbacks: list[keras.callbacks.Callback] = [guard] if scores is None else [scores, guard]
    if checkpoint is not None:
        callbacks.append(checkpoint)
    if log_epochs:
        callbacks.append(EpochLog(name))
    if work_dir is not None and importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(Path(work_dir) / "logs" / name)))
    return callbacks


def _checkpoint(model: keras.Model, plan: Plan, train_data: Any, guard: TrainingGuard,
                start: Mapping[str, float], *, work_dir: Path | None, name: str,
                **settings: Any) -> PhaseCheckpoint | None:
    """The phase's resumable state in ``work_dir/backup/<name>``, keyed by all that shapes it."""
    if work_dir is None:
        return None
    signature = fingerprint(plan=plan.to_dict(), phase=name, keras=keras.__version__,
                            backend=keras.backend.backend(),
                            weights=[list(w.shape) for w in model.weights], **settings)
    batches = train_data if isinstance(train_data, keras.utils.PyDataset) else None
    augmentation = train_data.augmentation if isinstance(train_data, ImageBatches) else None
    return PhaseCheckpoint(Path(work_dir) / "backup" / name, guard, signature=signature,
                           start=start, batches=batches,
                           random_objects=() if augmentation is None else (augmentation,))


def _epoch_logs(fitted: keras.callbacks.History) -> list[dict[str, float]]:
    """Each epoch's metrics from a fit's History (Keras' real epoch indices, 1-based)."""
    return [{"epoch": int(epoch) + 1, **{k: float(v) for k, v in zip(fitted.history, values)}}
            for epoch, values in zip(fitted.epoch, zip(*fitted.history.values()))]


def _compile(model: keras.Model, plan: Plan, train_kwargs: Mapping[str, Any], *, steps: int,
             epochs: int, warmup_epochs: int, learning_rate: float,
             scaled_variables: Collection, rate_factor: float) -> None:
    """Compile `model` for one attempt: a fresh optimizer and schedule, the plan's loss."""
    schedule = learning_rate_schedule(learning_rate, steps_per_epoch=steps, epochs=epochs,
                                      warmup_epochs=warmup_epochs)
    optimizer = make_optimizer(plan, schedule, scaled_variables=scaled_variables,
                               rate_factor=rate_factor)
    loss, metrics = loss_and_metrics(plan)
    eager = steps * epochs <= EAGER_MAX_STEPS
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, run_eagerly=eager,
                  steps_per_execution=_steps_per_execution(train_kwargs, steps, eager))


def _record_attempt(history: dict[str, Any], epochs: list[dict[str, float]], guard: TrainingGuard,
                    *, attempt: int, start: Mapping[str, float], learning_rate: float,
                    backbone_learning_rate: float | None, resumed_from: int | None) -> None:
    """Append one attempt's epochs (restored ones included) and outcome to the phase history."""
    for entry in epochs:
        history["epochs"].append({"attempt": attempt, **entry})
    history["attempts"].append({
        "learning_rate": learning_rate,
        "backbone_learning_rate": backbone_learning_rate,
        "start_val_loss": float(start["loss"]), "best_epoch": guard.best_epoch,
        "best_val_loss": guard.best_loss, "stopped_epoch": guard.stopped_epoch,
        "diverged": guard.diverged, "resumed_from_epoch": resumed_from,
    })
    history["best_epoch"], history["best_val_loss"] = guard.best_epoch, guard.best_loss


def _after_divergence(history: dict[str, Any], guard: TrainingGuard, *, attempt: int, phase: str,
                      learning_rate: float, rate_factor: float,
                      scaled: bool) -> tuple[float, float]:
    """Note a divergence; return the ``(learning_rate, rate_factor)`` of the retry."""
    if attempt > 0:
        history["notes"].append(
            f"{phase}: the retry diverged too ({guard.diverged}); kept the best weights.")
        logger.warning(history["notes"][-1])
        return learning_rate, rate_factor
    if scaled:
        rate_factor *= RETRY_RATE_FACTOR
        what = f"backbone learning rate {learning_rate * rate_factor:.3g}"
    else:
        learning_rate *= RETRY_RATE_FACTOR
        what = f"learning rate {learning_rate:.3g}"
    history["retried"] = True
    history["notes"].append(
        f"{phase}: diverged ({guard.diverged}); restored the best weights and retried "
        f"once at a 10x lower {what}.")
    logger.warning(history["notes"][-1])
    return learning_rate, rate_factor


def chance_loss(model: keras.Model, plan: Plan) -> float | None:
    """The cross-entropy of a uniform guess over `model`'s classes, ``log(classes)``;
    `None` for a regression plan (its loss has no chance level).

    Example:
        >>> from advisor.plan import Optimizer, Regime
        >>> plan = Plan(regime=Regime.LAST_LAYER, backbone="mobilenet_v2", image_size=96,
        ...             frozen_blocks=(), feature_layer="features", optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(10, activation="softmax")])
        >>> round(chance_loss(model, plan), 3)
        2.303
    """
    classes = int(model.output_shape[-1] or 0)
    if plan.task is Task.REGRESSION or classes < 2:
        return None
    return math.log(classes)


# --------------------------------------------------------------------------- #
# The one training path
# --------------------------------------------------------------------------- #
def train(
    model: keras.Model,
    plan: Plan,
    train_data: Any,
    val_data: Any,
    *,
    phase: str,
    learning_rate: float,
    epochs: int,
    warmup_epochs: int = 0,
    scaled_variables: Collection = (),
    rate_factor: float = 1.0,
    work_dir: Path | None = None,
    verbose: int = 0,
    log_epochs: bool | None = None,
    retry: bool = True,
    select_on: str = "loss",
) -> dict[str, Any]:
    """Train `model` in place: the one training loop of every Keras regime.

    Compiles `model` (set ``trainable`` first) with the plan's optimizer, a
    warm-up + cosine-decay schedule peaking at `learning_rate` and
    ``rate_factor * learning_rate`` for `scaled_variables`, and the loss of
    :func:`loss_and_metrics` (sparse categorical cross-entropy, or the
    regression plan's Huber / MSE) (eagerly when the phase has at most
    ``EAGER_MAX_STEPS`` steps, where tracing would cost more than it saves). The starting weights are evaluated on
    `val_data` and kept as the epoch-0 candidate; early stopping (the plan's
    ``patience``, on validation loss, counted after the `warmup_epochs`)
    restores the best candidate, so the result is never worse on validation
    loss than the start. A diverging loss (NaN, or above twice the start and
    twice a uniform guess's) stops the phase, restores the best weights so far
    and (unless `retry` is `False`) retries once with the scaled variables'
    factor (or, when there are none, the rate) 10x lower; the returned
    history says so.

    With a `work_dir`, each attempt's state is saved after every epoch (model,
    optimizer, random generators, the guard's best weights and counters;
    :class:`~strategies.callbacks.PhaseCheckpoint`). Calling ``train`` again
    with the same arguments after the process was killed (even ``kill -9``)
    restores a finished attempt without training it and resumes an unfinished
    one from its last completed epoch. On PyDataset inputs (the fine-tuning)
    the resumed epochs see the same batches and random draws, so the result
    matches an uninterrupted run's up to floating-point noise; in-memory
    arrays (the head on embeddings) are reshuffled by Keras, so a phase
    interrupted there resumes close to, not exactly on, the uninterrupted
    path, as does a retry after a divergence.

    Args:
        model: A functional model with softmax outputs (a linear output for regression).
        plan: Gives the optimizer, batch size, patience and seed.
        train_data: ``keras.utils.PyDataset`` or ``(x, y)`` / ``(x, y, sample_weight)``.
        val_data: ``keras.utils.PyDataset`` or ``(x, y)``.
        phase: Name of the phase in the history and the work folder.
        learning_rate: Peak learning rate.
        epochs: Maximum epochs.
        warmup_epochs: Linear warm-up epochs. Defaults to `0`.
        scaled_variables: Variables trained at ``rate_factor`` x the rate.
            Defaults to `()`.
        rate_factor: Their factor (backbone rate / head rate). Defaults to `1.0`.
        work_dir: Folder for the resumable state (``backup/<phase>``) and,
            when ``tensorboard`` is installed, TensorBoard logs. Defaults to
            `None` (neither).
        verbose: Keras ``fit`` verbosity. Defaults to `0`.
        log_epochs: Write one line per epoch (phase, epoch, seconds, loss,
            metrics, validation) to stderr. Defaults to `None`: when `verbose`
            is 0 and stderr is not a terminal (a log file, CI), so a long run
            is never silent there and a terminal stays as quiet as before.
        retry: Whether a divergence is retried once at a 10x lower rate.
            Defaults to `True`; a rate search's candidates above the plan's
            rate pass `False` (a diverging candidate is simply discarded).
        select_on: What the early stopping compares the candidates on:
            ``"loss"`` (the validation loss, the default) or
            ``"calibrated-loss"`` (a classifier's validation loss after
            temperature scaling, :mod:`strategies.selection`; the history's
            ``best_val_loss`` is then that loss, and an epoch must lower it by
            1% to count as an improvement).

    Returns:
        The phase history: ``epochs`` (per-epoch metrics of each attempt),
        ``start`` (validation metrics of the starting weights), ``best_epoch``
        (0 = the start), ``best_val_loss``, ``attempts`` (rates, stop reason),
        ``retried``, ``notes`` (one sentence per event) and ``wall_s``.

    Raises:
        StorageError: The state cannot be saved in `work_dir` (a full disk).

    Example:
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> from strategies.graph import build_head
        >>> plan = Plan(regime=Regime.LAST_LAYER, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> head = build_head(8, 2)
        >>> history = train(head, plan, (x[:48], y[:48]), (x[48:], y[48:]), phase="head",
        ...                 learning_rate=1e-2, epochs=5)
        >>> history["phase"], history["best_val_loss"] < history["start"]["val_loss"]
        ('head', True)
        >>> history["retried"], history["notes"]
        (False, [])
    """
    started = time.perf_counter()
    monitor = monitor_of(select_on)
    if select_on != "loss" and plan.task is Task.REGRESSION:
        raise PlanError(f"select_on {select_on!r} calibrates a classifier; a regression plan "
                        "selects on 'loss'.")
    train_kwargs, steps = _fit_kwargs(train_data, plan.batch_size, shuffle=True)
    val_kwargs, _ = _fit_kwargs(val_data, plan.batch_size, shuffle=False)
    validation = val_kwargs["x"] if "y" not in val_kwargs else (val_kwargs["x"], val_kwargs["y"])
    scores = None if select_on == "loss" else ValidationScores(val_data, batch_size=plan.batch_size)
    history: dict[str, Any] = {"phase": phase, "epochs": [], "attempts": [], "notes": [],
                               "retried": False, "selected_on": monitor}
    if log_epochs is None:
        log_epochs = verbose == 0 and not is_terminal(sys.stderr)
    scaled = bool(scaled_variables)
    for attempt in range(2):
        _compile(model, plan, train_kwargs, steps=steps, epochs=epochs,
                 warmup_epochs=warmup_epochs, learning_rate=learning_rate,
                 scaled_variables=scaled_variables, rate_factor=rate_factor)
        start = (model.evaluate(**val_kwargs, verbose=0, return_dict=True) if scores is None
                 else scores.score(model))
        if attempt == 0:
            history["start"] = {f"val_{k}": float(v) for k, v in start.items()}
        guard = TrainingGuard(start_loss=start["loss"], patience=plan.patience,
                              start_from_epoch=warmup_epochs, chance_loss=chance_loss(model, plan),
                              monitor=monitor, start_score=start.get(monitor[len("val_"):]),
                              min_improvement=MIN_IMPROVEMENT[select_on])
        name = phase if attempt == 0 else f"{phase}-retry"
        checkpoint = _checkpoint(model, plan, train_data, guard, start, work_dir=work_dir, name=name,
                                 epochs=epochs, warmup_epochs=warmup_epochs, steps=steps,
                                 learning_rate=learning_rate, rate_factor=rate_factor,
                                 n_scaled=len(scaled_variables),
                                 **({} if select_on == "loss" else {"select_on": select_on}))
        resumed_from = None
        if checkpoint is not None and checkpoint.load() is not None:
            resumed_from = int(checkpoint.state["epoch"])
            history["notes"].append(
                f"{name}: restored as it finished before the run was interrupted." if checkpoint.finished
                else f"{name}: resumed after epoch {resumed_from}, from the state an interrupted "
                     "run saved.")
        if checkpoint is not None and checkpoint.finished:
            checkpoint.restore_final(model)  # finished before the interruption: not trained again
            epoch_logs = checkpoint.epochs
        else:
            fitted = model.fit(**train_kwargs, validation_data=validation if scores is None else None,
                               epochs=epochs,
                               initial_epoch=checkpoint.resume_epoch(epochs) if checkpoint else 0,
                               callbacks=_callbacks(scores, guard, checkpoint, work_dir, name,
                                                    log_epochs=log_epochs),
                               verbose=verbose)
            if checkpoint is not None:
                checkpoint.finish(model)
            epoch_logs = checkpoint.epochs if checkpoint is not None else _epoch_logs(fitted)
        _record_attempt(history, epoch_logs, guard, attempt=attempt, start=start,
                        learning_rate=learning_rate,
                        backbone_learning_rate=learning_rate * rate_factor if scaled else None,
                        resumed_from=resumed_from)
        if not guard.diverged:
            if guard.best_epoch == 0:
                what = "validation loss" if scores is None else "calibrated validation loss"
                history["notes"].append(
                    f"{phase}: no epoch beat the starting state on {what} "
                    f"({guard.best_loss:.4g}); kept the starting weights.")
            break
        if not retry:
            history["notes"].append(f"{phase}: diverged ({guard.diverged}); not retried.")
            logger.info(history["notes"][-1])
            break
        learning_rate, rate_factor = _after_divergence(
            history, guard, attempt=attempt, phase=phase, learning_rate=learning_rate,
            rate_factor=rate_factor, scaled=scaled)
    history["budget"] = budget_curve(history, max_epochs=epochs)
    history["wall_s"] = time.perf_counter() - started
    return history
