"""Expected wall time of every regime on this machine, for the advice (``advise --estimate-cost``).

For each regime the advisor decides the plan it would run (the advice's own
plan for its regime), measures the images/s of that plan's graphs here
(:func:`strategies.throughput.measure_throughput`, a few batches, cached per
machine) and prices it with :func:`advisor.decide.cost.expected_cost`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from advisor.app.advice import Advice
from advisor.backbones import get_backbone
from advisor.decide import decide
from advisor.decide.cost import expected_cost
from advisor.plan import Regime
from strategies.throughput import measure_throughput


def estimate_costs(advice: Advice, *, regimes: tuple[Regime, ...] = tuple(Regime)) -> dict[str, Any]:
    """Return ``{regime: cost}`` for `regimes`: each plan's measured images/s and expected time.

    Args:
        advice: The advice (its profile decides the other regimes' plans).
        regimes: Regimes to price. Defaults to all four.

    Returns:
        ``{regime name: {"chosen": bool, "rates": Throughput dict, **expected_cost(...)}}``.

    Example:
        >>> advice = advise(digits_dir)  # measures at 224 px first  # doctest: +SKIP
        >>> estimate_costs(advice)["svm"]["sentence"]  # doctest: +SKIP
        'svm: about 9 s (9 s embedding).'
    """
    dataset, plan = advice.dataset, advice.plan
    sizes = {split: len(dataset.records(split)) for split in ("train", "val", "test")}
    measuring = get_backbone(plan.backbone)
    costs: dict[str, Any] = {}
    for regime in regimes:
        regime_plan = plan if regime is plan.regime else decide(
            advice.profile, backbone=measuring, regime=regime, seed=plan.seed, task=plan.task)
        network = get_backbone(regime_plan.backbone, image_size=regime_plan.image_size,
                               input_size=regime_plan.decode_size)
        rates = measure_throughput(regime_plan, network)
        costs[regime.value] = {"chosen": regime is plan.regime, "rates": rates.to_dict(),
                               **expected_cost(regime_plan, n_train=sizes["train"],
                                               n_val=sizes["val"], n_test=sizes["test"],
                                               forward_img_s=rates.forward_img_s,
                                               train_img_s=rates.train_img_s,
                                               prefix_img_s=rates.prefix_img_s)}
    return costs


def with_costs(advice: Advice) -> Advice:
    """Return `advice` with :func:`estimate_costs` of every regime filled in."""
    return dataclasses.replace(advice, costs=estimate_costs(advice))
