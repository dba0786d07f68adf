"""``partial``: the plan's early blocks frozen, later ones fine-tuned after a linear probe.

Everything happens in :class:`~strategies.base.KerasStrategy`; the plan's
``frozen_blocks`` says where the cut is.
"""

from __future__ import annotations

from advisor.plan import Regime
from strategies.base import KerasStrategy
from strategies.registry import register_strategy


@register_strategy(Regime.PARTIAL)
class PartialStrategy(KerasStrategy):
    """LP-FT with the blocks in ``plan.frozen_blocks`` frozen and the later ones trained.

    Args:
        plan: The plan (``frozen_blocks``, rates, ``epochs``, ``patience``...).
        backbone: The pretrained backbone; never modified (a copy is trained).

    Example:
        >>> PartialStrategy(plan=plan, backbone=backbone).fit(train, val, class_names=names)  # doctest: +SKIP
    """
