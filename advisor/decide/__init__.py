"""Decision: from a :class:`~advisor.measure.DatasetProfile` to a :class:`~advisor.plan.Plan`.

Reads records only (the profile, the backbone's block names and activation shapes); never trains.

- ``rules.py``: :class:`RegimeRules`, the regime table's thresholds as a value.
- ``regime.py``: the regime table (:func:`choose_regime`).
- ``inputs.py``, ``blocks.py``, ``training.py``, ``prefix.py``, ``head.py``, ``task.py``,
  ``backbone.py``: one function per plan field, each returning ``(value, reason)``.
- ``planner.py``: :func:`decide`, which composes them into the plan.
"""

from advisor.decide.backbone import choose_backbone
from advisor.decide.head import HEADS, choose_head
from advisor.decide.inputs import choose_image_size
from advisor.decide.planner import decide
from advisor.decide.regime import choose_regime
from advisor.decide.rules import RegimeRules
from advisor.decide.task import choose_task

__all__ = ["HEADS", "RegimeRules", "choose_backbone", "choose_head", "choose_image_size",
           "choose_regime", "choose_task", "decide"]
