"""The plan's optimizer, with a smaller rate for backbone variables, and its schedule.

- :func:`make_optimizer`: SGD with the plan's ``momentum`` or AdamW with its
  ``weight_decay``; the variables passed as `scaled_variables` (the trained
  backbone layers) learn at ``rate_factor`` times the rate of the others
  (the new head).
- :func:`learning_rate_schedule`: linear warm-up, then cosine decay to 0.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import keras

from advisor.plan import Optimizer, Plan


class _RateScaling:
    """Optimizer mixin: multiply the learning rate of some variables by a factor.

    The factors are filed in :meth:`build` by ``id`` of each variable and of
    its backend value (``Variable.value``): ``update_step`` receives the Keras
    variable on JAX and PyTorch, and the backend variable on TensorFlow. A
    variable the optimizer was not built with raises ``KeyError``.
    """

    def __init__(self, *args: Any, scaled_variables: Collection = (), rate_factor: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scaled_ids = {id(v) for v in scaled_variables}
        self._rate_factor = float(rate_factor)
        self._factors: dict[int, float] = {}

    def build(self, variables):
        super().build(variables)
        for variable in variables:
            factor = self._rate_factor if id(variable) in self._scaled_ids else 1.0
            self._factors[id(variable)] = self._factors[id(variable.value)] = factor

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[id(variable)]
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return super().update_step(gradient, variable, learning_rate)


class _ScaledSGD(_RateScaling, keras.optimizers.SGD):
    pass


class _ScaledAdamW(_RateScaling, keras.optimizers.AdamW):
    pass


def make_optimizer(plan: Plan, learning_rate, *, scaled_variables: Collection = (),
                   rate_factor: float = 1.0) -> keras.optimizers.Optimizer:
    """Return the plan's optimizer; `scaled_variables` learn at ``rate_factor`` x the rate.

    Args:
        plan: Gives ``optimizer`` (``sgd`` with ``plan.momentum``, or
            ``adamw`` with ``plan.weight_decay``).
        learning_rate: A float or a schedule.
        scaled_variables: Variables with a scaled rate (the backbone's).
            Defaults to `()`.
        rate_factor: Their rate factor. Defaults to `1.0`.

    Returns:
        A ``keras.optimizers.SGD`` or ``keras.optimizers.AdamW`` (subclass).

    Example:
        >>> import dataclasses
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> plan = Plan(regime=Regime.LAST_LAYER, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> optimizer = make_optimizer(plan, 1e-3)
        >>> optimizer.name, optimizer.weight_decay == plan.weight_decay
        ('adamw', True)
        >>> sgd = make_optimizer(dataclasses.replace(plan, optimizer=Optimizer.SGD), 1e-3)
        >>> sgd.name, sgd.momentum == plan.momentum
        ('sgd', True)
    """
    common = {"learning_rate": learning_rate, "scaled_variables": scaled_variables,
              "rate_factor": rate_factor}
    if plan.optimizer == Optimizer.SGD:
        return _ScaledSGD(momentum=plan.momentum, name="sgd", **common)
    return _ScaledAdamW(weight_decay=plan.weight_decay, name="adamw", **common)


def learning_rate_schedule(learning_rate: float, *, steps_per_epoch: int, epochs: int,
                           warmup_epochs: int = 0) -> keras.optimizers.schedules.LearningRateSchedule:
    """Return linear warm-up from 0 to `learning_rate`, then cosine decay to 0.

    Args:
        learning_rate: Peak rate.
        steps_per_epoch: Batches per epoch.
        epochs: Epochs of the phase.
        warmup_epochs: Warm-up epochs (capped below `epochs`). Defaults to `0`.

    Returns:
        A ``keras.optimizers.schedules.CosineDecay``.

    Example:
        >>> schedule = learning_rate_schedule(1e-3, steps_per_epoch=10, epochs=5, warmup_epochs=1)
        >>> round(float(schedule(10)), 8)  # the peak, after one warm-up epoch (float32)
        0.001
    """
    warmup_steps = steps_per_epoch * max(0, min(warmup_epochs, epochs - 1))
    decay_steps = max(1, steps_per_epoch * epochs - warmup_steps)
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps, warmup_target=learning_rate, warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
