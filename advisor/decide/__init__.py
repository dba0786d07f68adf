"""Decision: from a :class:`~advisor.measure.DatasetProfile` to a :class:`~advisor.plan.Plan`.

Reads records only (the profile, the backbone's block names); never trains.
"""

from advisor.decide.choices import (
    HEADS,
    choose_backbone,
    choose_head,
    choose_image_size,
    choose_regime,
    choose_task,
    decide,
)

__all__ = ["HEADS", "choose_backbone", "choose_head", "choose_image_size", "choose_regime",
           "choose_task", "decide"]
