"""``last-layer``: frozen backbone, a new softmax layer trained on cached embeddings.

The plan freezes every block and asks for no fine-tuning epochs, so
:class:`~strategies.base.KerasStrategy` stops after the linear probe; the
exported model is the backbone's features -> the trained ``Dense`` layer.
"""

from __future__ import annotations

from advisor.plan import Regime
from strategies.base import KerasStrategy
from strategies.registry import register_strategy


@register_strategy(Regime.LAST_LAYER)
class LastLayerStrategy(KerasStrategy):
    """A new softmax layer on frozen backbone features (trained on cached embeddings).

    Args:
        plan: The plan (``head_learning_rate``, ``head_epochs``, ``augmentation``...).
        backbone: The pretrained backbone; never modified.

    Example:
        >>> LastLayerStrategy(plan=plan, backbone=backbone).fit(train, val, class_names=names)  # doctest: +SKIP
    """
