"""Where and in what precision a strategy trains: the dtype policy and the device scope.

The plan's ``precision`` names the dtype policy of fine-tuning (``"auto"``:
``config.ACCELERATOR_POLICY`` when an accelerator is visible, float32 on CPU).
Several accelerators are used data-parallel on the JAX backend.
"""

from __future__ import annotations

import contextlib

import keras

from advisor import config
from advisor.environment import accelerators
from advisor.errors import PlanError

#: Values of ``Plan.precision``.
PRECISIONS = ("auto", "float32", "mixed_bfloat16")


def dtype_policy(precision: str = config.PRECISION) -> str:
    """Return the Keras dtype policy of a plan's `precision`.

    Args:
        precision: ``"auto"`` (``"mixed_bfloat16"`` when an accelerator is
            visible, else ``"float32"``), ``"float32"`` or ``"mixed_bfloat16"``.
            Defaults to `config.PRECISION`.

    Returns:
        The dtype policy name.

    Raises:
        PlanError: `precision` is not one of ``PRECISIONS``.

    Example:
        >>> dtype_policy("float32")
        'float32'
        >>> dtype_policy() == (config.ACCELERATOR_POLICY if accelerators() else "float32")
        True
    """
    if precision not in PRECISIONS:
        raise PlanError(f"Unknown precision {precision!r} in the plan. "
                        f"Known: {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    return config.ACCELERATOR_POLICY if accelerators() else "float32"


def device_scope() -> contextlib.AbstractContextManager:
    """Return a data-parallel scope over all accelerators when there are several.

    Uses ``keras.distribution.DataParallel`` (JAX backend only); elsewhere, or
    with fewer than two accelerators, a no-op context.

    Example:
        >>> with device_scope():
        ...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        ...     model.compile(optimizer="sgd", loss="mse")
        ...     history = model.fit(np.zeros((8, 4)), np.zeros(8), epochs=1, verbose=0)
        >>> len(history.history["loss"])
        1
    """
    devices = accelerators()
    if len(devices) > 1 and keras.config.backend() == "jax":
        return keras.distribution.DataParallel(devices=devices).scope()
    return contextlib.nullcontext()
