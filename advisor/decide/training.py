"""How the plan trains: optimizer, learning rates, batch size, epochs, warm-up and patience.

Each function decides one field for the regime and the task and returns
``(value, reason)``. Fine-tuning a classifier uses SGD with momentum; a
regression head (linear output, no saturating softmax) fine-tunes with AdamW at
``config.REGRESSION_FINE_TUNE_LEARNING_RATE``; a head trained alone uses AdamW.
"""

from __future__ import annotations

import math

from advisor import config
from advisor.plan import Optimizer, Regime, Task


def _clip(value: float, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return int(min(high, max(low, value)))


def _sgd_fine_tune(regime: Regime, task: Task) -> bool:
    """Whether the plan fine-tunes a classifier (SGD); otherwise AdamW."""
    return regime.fine_tunes_backbone and task is not Task.REGRESSION


def plan_optimizer(regime: Regime, task: Task) -> tuple[Optimizer, str]:
    """Return the optimizer and why: SGD to fine-tune a classifier, AdamW otherwise."""
    if _sgd_fine_tune(regime, task):
        return Optimizer.SGD, ("Fine-tuning pretrained layers: SGD with momentum 0.9 (the classic "
                               "fine-tuning recipe).")
    if regime.fine_tunes_backbone:
        return Optimizer.ADAMW, (
            "Regression fine-tuning: AdamW. A linear output has no saturating softmax, so SGD at the "
            "classification rate diverges on the unnormalised features; AdamW scales each step.")
    return Optimizer.ADAMW, f"Regime {regime.value!r} trains only a new head: AdamW, robust without tuning."


def plan_head_learning_rate(regime: Regime, task: Task) -> tuple[float, str]:
    """Return the new head's learning rate and why (by regime, task and so optimizer).

    Example:
        >>> plan_head_learning_rate(Regime.FULL, Task.CLASSIFICATION)[0]
        0.001
        >>> plan_head_learning_rate(Regime.PARTIAL, Task.CLASSIFICATION)[0]
        0.003
    """
    if _sgd_fine_tune(regime, task):
        if regime is not Regime.PARTIAL:
            rate = config.FINE_TUNE_HEAD_LEARNING_RATE
            return float(rate), (f"SGD fine-tuning after the linear probe: the head is already trained, "
                                 f"so it learns at a small {rate:g} (measured on digits: see "
                                 "config.FINE_TUNE_HEAD_LEARNING_RATE).")
        rate = config.FINE_TUNE_HEAD_LEARNING_RATE * config.PARTIAL_RATE_SCALE
        return float(rate), (
            f"SGD fine-tuning of the later blocks after the linear probe: {rate:g}, "
            f"{config.PARTIAL_RATE_SCALE:g}x full fine-tuning's rate. At full's rate `partial` "
            "ended at or below its probe start in 3 of 4 runs on MNIST and digits 300 "
            "(88.1% and 91.3% mean test accuracy); from 3x it scored 91.9% and 95.6% "
            "(config.PARTIAL_RATE_SCALE).")
    if regime.fine_tunes_backbone:
        rate = config.REGRESSION_FINE_TUNE_LEARNING_RATE
        return float(rate), (
            f"Fine-tuning a regression head with AdamW: {rate:g}, 10x below its rate alone, so "
            "AdamW's first (sign-like) steps do not throw the probe's fit away.")
    rate = config.HEAD_ONLY_LEARNING_RATE
    return float(rate), (
        f"A head trained alone with AdamW uses its default rate {rate:g}"
        + (" (the SVM itself is fitted in closed form over svm_c_grid)." if regime is Regime.SVM else ".")
    )


def plan_probe(regime: Regime) -> tuple[tuple[Optimizer, str], tuple[float, str]]:
    """Return the linear probe's ``(optimizer, why)`` and ``(learning rate, why)``.

    Fine-tuning starts from a linear probe trained on cached embeddings
    (LP-FT); it is a head trained alone, so it gets the frozen head's AdamW at
    its default rate, whatever optimizer the fine-tuning then uses.

    Example:
        >>> plan_probe(Regime.PARTIAL)[0][0], plan_probe(Regime.PARTIAL)[1][0]
        (<Optimizer.ADAMW: 'adamw'>, 0.001)
    """
    rate = float(config.HEAD_ONLY_LEARNING_RATE)
    if not regime.fine_tunes_backbone:
        why = f"Regime {regime.value!r} trains its head once (optimizer, head_learning_rate): no separate probe."
        return (Optimizer.ADAMW, why), (rate, why)
    return (Optimizer.ADAMW, "The linear probe fine-tuning starts from is a head trained alone: AdamW."), (
        rate, f"The probe learns at AdamW's default {rate:g}, as a frozen head does; at the "
              "fine-tuning rate (SGD 1e-3) it was undertrained (digits: validation 0.937 vs 0.959).")


def plan_backbone_learning_rate(regime: Regime, head_learning_rate: float) -> tuple[float, str]:
    """Return the backbone's learning rate (the head's x ``config.BACKBONE_LEARNING_RATE_FACTOR``) and why.

    Example:
        >>> plan_backbone_learning_rate(Regime.PARTIAL, 1e-3)[0]
        0.0001
    """
    if not regime.fine_tunes_backbone:
        return 0.0, f"Regime {regime.value!r} keeps the backbone frozen: rate 0."
    rate = head_learning_rate * config.BACKBONE_LEARNING_RATE_FACTOR
    return float(rate), (
        f"Backbone layers learn {1 / config.BACKBONE_LEARNING_RATE_FACTOR:.0f}x slower than the "
        f"head ({rate:g}) so the pretrained weights move little: with the backbone at 1e-3, 4 of 5 "
        "runs on digits diverged in their first epoch (the BatchNorm statistics are frozen, so "
        "nothing re-normalises what the trained layers change).")


def plan_batch_size(n_train: int) -> tuple[int, str]:
    """Return the batch size for `n_train` training images and why (small splits: small batches)."""
    if n_train < config.SMALL_BATCH_MAX_TRAIN:
        size = config.SMALL_BATCH_SIZE
        return size, (f"{n_train:,} training images < {config.SMALL_BATCH_MAX_TRAIN:,}: "
                      f"batches of {size} give more steps per epoch.")
    size = config.BATCH_SIZE
    return size, (f"{n_train:,} training images >= {config.SMALL_BATCH_MAX_TRAIN:,}: "
                  f"the default batch of {size}.")


def plan_head_epochs(steps: int) -> tuple[int, str]:
    """Return the linear probe's epochs for `steps` steps per epoch (about ``config.HEAD_TARGET_STEPS``)."""
    epochs = _clip(math.ceil(config.HEAD_TARGET_STEPS / steps), config.HEAD_EPOCH_RANGE)
    return epochs, (
        f"{steps} steps per epoch: {epochs} epochs give about {config.HEAD_TARGET_STEPS:,} head "
        f"steps (clipped to {config.HEAD_EPOCH_RANGE[0]}-{config.HEAD_EPOCH_RANGE[1]})."
    )


def plan_epochs(regime: Regime, steps: int, forced: int | None) -> tuple[int, str]:
    """Return the fine-tuning epochs (about ``config.FINE_TUNE_TARGET_STEPS`` steps, or `forced`) and why."""
    if not regime.fine_tunes_backbone:
        return 0, f"Regime {regime.value!r} does not fine-tune the backbone: 0 epochs."
    if forced is not None:
        return forced, f"{forced} fine-tuning epochs, forced by the caller (--epochs)."
    epochs = _clip(math.ceil(config.FINE_TUNE_TARGET_STEPS / steps), config.FINE_TUNE_EPOCH_RANGE)
    return epochs, (
        f"{steps} steps per epoch: {epochs} fine-tuning epochs give about "
        f"{config.FINE_TUNE_TARGET_STEPS:,} steps (clipped to "
        f"{config.FINE_TUNE_EPOCH_RANGE[0]}-{config.FINE_TUNE_EPOCH_RANGE[1]})."
    )


def plan_warmup_epochs(regime: Regime, epochs: int) -> tuple[int, str]:
    """Return the linear warm-up epochs (``config.WARMUP_FRACTION`` of `epochs`, at least 1) and why."""
    if not regime.fine_tunes_backbone:
        return 0, "Nothing is fine-tuned, so there is no warm-up."
    if not epochs:
        return 0, "No fine-tuning epochs were asked for, so there is no warm-up."
    return max(1, round(config.WARMUP_FRACTION * epochs)), (
        f"{config.WARMUP_FRACTION:.0%} of {epochs} epochs (at least 1) of linear warm-up protect "
        "the pretrained weights from the new head's first gradients.")


def plan_patience(epochs: int, head_epochs: int, warmup_epochs: int = 0) -> tuple[int, str]:
    """Return the early-stopping patience (a fraction of the longest phase's epochs) and why.

    The strategies count it after the `warmup_epochs` (an epoch of the warm-up
    can still become the best one, but none of them counts against the patience).

    Example:
        >>> plan_patience(30, 10, 3)[0]
        12
        >>> plan_patience(30, 10, 3)[1]  # doctest: +ELLIPSIS
        'Stop after 12 epochs without a better validation loss, counted after the 3 warm-up epochs: ...'
    """
    basis = epochs or head_epochs
    patience = _clip(round(config.PATIENCE_FRACTION * basis), config.PATIENCE_RANGE)
    after = (f", counted after the {warmup_epochs} warm-up epochs" if warmup_epochs else "")
    return patience, (
        f"Stop after {patience} epochs without a better validation loss{after}: "
        f"{config.PATIENCE_FRACTION:.0%} of {basis} epochs, clipped to "
        f"{config.PATIENCE_RANGE[0]}-{config.PATIENCE_RANGE[1]}"
        + (" (on MNIST 300 and digits 300 the validation accuracy dipped through the warm-up "
           "and a few epochs more; a patience counted from the start, or of 6 epochs, returned "
           "the probe)." if warmup_epochs else ".")
    )


def plan_select_on(regime: Regime, task: Task) -> tuple[str, str]:
    """Return what fine-tuning selects its epochs and rates on, and why.

    Example:
        >>> plan_select_on(Regime.PARTIAL, Task.CLASSIFICATION)[0]
        'calibrated-loss'
        >>> plan_select_on(Regime.LAST_LAYER, Task.CLASSIFICATION)[0]
        'loss'
    """
    if not _sgd_fine_tune(regime, task):
        what = ("does not fine-tune the backbone" if not regime.fine_tunes_backbone
                else "fine-tunes a regression head (no calibration)")
        return "loss", f"Regime {regime.value!r} {what}: early stopping on the validation loss."
    if config.FINE_TUNE_SELECT_ON == "loss":
        return "loss", "Fine-tuning keeps the epoch and rate of lowest validation loss."
    return config.FINE_TUNE_SELECT_ON, (
        "Fine-tuning keeps the epoch and rate of lowest validation loss after temperature scaling "
        "(the model that ships is calibrated): on the raw loss an over-confident fine-tuned network "
        "loses to its probe start at equal accuracy. On the benchmark's five converged tasks this "
        "raised fine-tuning's test accuracy on 6 of 10 runs (digits `partial` 0.917 -> 0.940) and "
        "lowered it on 2 (by at most 0.7 points).")


def plan_rate_scales(regime: Regime, task: Task, *, search: bool = True) -> tuple[tuple[float, ...], str]:
    """Return the scales of the fine-tuning rates searched on validation, and why.

    Args:
        regime: The plan's regime.
        task: Classification or regression.
        search: Search the rates (the default) or
            fine-tune once at the plan's rates (``--no-rate-search``: half the
            fine-tuning time of a two-rate search). Defaults to `True`.

    Returns:
        ``(scales, reason)``: ``(1.0,)`` when nothing is searched.

    Example:
        >>> plan_rate_scales(Regime.FULL, Task.CLASSIFICATION)[0]
        (1.0, 3.0)
        >>> plan_rate_scales(Regime.FULL, Task.CLASSIFICATION, search=False)[0]
        (1.0,)
        >>> plan_rate_scales(Regime.SVM, Task.CLASSIFICATION)[0]
        (1.0,)
    """
    if not _sgd_fine_tune(regime, task):
        what = ("does not fine-tune the backbone" if not regime.fine_tunes_backbone
                else "fine-tunes a regression head with AdamW (no search measured for it)")
        return (1.0,), f"Regime {regime.value!r} {what}: the plan's rates, no search."
    if not search:
        return (1.0,), (
            "The caller turned the rate search off (--no-rate-search): one fine-tuning run at the "
            "plan's rates, half the time of the search; on MNIST 300 `full` at these rates scored "
            "0.872 against 0.930 with the search.")
    scales = tuple(float(s) for s in config.FINE_TUNE_RATE_SCALES)
    listed = " and ".join(f"{s:g}x" for s in scales)
    return scales, (
        f"Fine-tune at {listed} the plan's rates, each from the probe to early stopping, and keep "
        "the lowest validation loss: on MNIST 300 `full` scored 0.852 at backbone 1e-4 and 0.912 "
        "at 3e-4 (head 10x), and 1e-3 diverged; on digits 1e-4 converged in every run: the best "
        "rate depends on the task (see config.FINE_TUNE_RATE_SCALES).")
