"""The plan's optimizer (strategies.optimizers): its settings and the per-variable rate."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from advisor import config
from advisor.plan import Optimizer, Plan
from strategies.optimizers import make_optimizer
from tests.strategies.fakes import fake_plan


def plan_with(**overrides) -> Plan:
    return fake_plan(**(dict(batch_size=8, head_epochs=1, epochs=1, warmup_epochs=0, patience=1)
                        | overrides))


def test_the_plans_momentum_and_weight_decay_reach_the_optimizer():
    assert make_optimizer(plan_with(), 0.1).momentum == config.SGD_MOMENTUM
    assert make_optimizer(plan_with(momentum=0.5), 0.1).momentum == 0.5
    adamw = plan_with(optimizer=Optimizer.ADAMW)
    assert make_optimizer(adamw, 1e-3).weight_decay == pytest.approx(config.ADAMW_WEIGHT_DECAY)
    decayed = plan_with(optimizer=Optimizer.ADAMW, weight_decay=0.05)
    assert make_optimizer(decayed, 1e-3).weight_decay == pytest.approx(0.05)


@pytest.mark.parametrize("optimizer", list(Optimizer), ids=[o.value for o in Optimizer])
def test_scaled_variables_step_at_the_rate_factor(optimizer):
    # One step from zero state: SGD moves by rate x gradient, AdamW (bias-corrected)
    # by about rate x sign(gradient); the scaled variable moves `factor` times as far.
    scaled, plain = (keras.Variable(np.ones(3, np.float32)) for _ in range(2))
    opt = make_optimizer(plan_with(optimizer=optimizer, weight_decay=0.0), 0.1,
                         scaled_variables=[scaled], rate_factor=0.25)
    gradient = keras.ops.convert_to_tensor(np.full(3, 0.5, np.float32))
    opt.apply([gradient, gradient], [scaled, plain])
    step_scaled = 1.0 - keras.ops.convert_to_numpy(scaled)
    step_plain = 1.0 - keras.ops.convert_to_numpy(plain)
    assert step_plain == pytest.approx(np.full(3, 0.05 if optimizer is Optimizer.SGD else 0.1), rel=1e-4)
    np.testing.assert_allclose(step_scaled, 0.25 * step_plain, rtol=1e-5)
