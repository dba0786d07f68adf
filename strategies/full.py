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
        >>> from advisor.data import decode_dataset, scan_dataset
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> from strategies import LabelledImages
        >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
        >>> train, val = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
        ...               for s in ("train", "val"))
        >>> def one_per_class(data):
        ...     first = np.unique(data.labels, return_index=True)[1]
        ...     return LabelledImages(data.images, data.labels[first], data.rows[first])
        >>> train, val = one_per_class(train), one_per_class(val)  # 10 images each
        >>> plan = Plan(regime=Regime.FULL, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=(), feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=1e-4, batch_size=10,
        ...             head_epochs=1, epochs=1, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> strategy = FullStrategy(plan=plan, backbone=backbone)
        >>> strategy = strategy.fit(train, val, class_names=ds.class_names)  # one epoch, one step
        >>> len(strategy.history_["fine_tune"]["trained_blocks"])
        19
    """
