"""``full``: every block fine-tuned after a linear probe (BatchNorm statistics stay frozen).

Everything happens in :class:`~strategies.base.KerasStrategy`; the plan's
``frozen_blocks`` is empty.
"""

from __future__ import annotations

from advisor.plan import Regime
from strategies.base import KerasStrategy
from strategies.registry import register_strategy


@register_strategy(Regime.FULL)
class FullStrategy(KerasStrategy):
    """LP-FT of the whole backbone at the plan's (10x smaller) backbone rate.

    Args:
        plan: The plan (rates, ``epochs``, ``warmup_epochs``, ``patience``...).
        backbone: The pretrained backbone; never modified (a copy is trained).

    Example:
        >>> FullStrategy(plan=plan, backbone=backbone).fit(train, val, class_names=names)  # doctest: +SKIP
    """
