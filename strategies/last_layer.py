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
        >>> from advisor.data import decode_dataset, scan_dataset
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> from strategies import LabelledImages
        >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
        >>> train, val = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
        ...               for s in ("train", "val"))
        >>> plan = Plan(regime=Regime.LAST_LAYER, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> strategy = LastLayerStrategy(plan=plan, backbone=backbone)
        >>> strategy = strategy.fit(train, val, class_names=ds.class_names)
        >>> sorted(strategy.history_), strategy.model_.output_shape
        (['calibration', 'embed', 'head', 'wall_s'], (None, 10))
    """
