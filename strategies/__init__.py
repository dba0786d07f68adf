"""Strategies execute plans; they never decide.

Importing the package fills the registry with the four regimes::

    strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)
    strategy.fit(train, val, class_names=names)
    model = strategy.export_model()  # saved with advisor.backbones.model_file.save_model
"""

from strategies import full, last_layer, partial, svm  # noqa: F401  (fill the registry)
from strategies.base import Strategy
from strategies.inputs import LabelledImages, NotFittedError
from strategies.registry import get_strategy, list_strategies, register_strategy

__all__ = [
    "LabelledImages",
    "NotFittedError",
    "Strategy",
    "get_strategy",
    "list_strategies",
    "register_strategy",
]
