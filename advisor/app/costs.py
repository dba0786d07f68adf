"""Expected wall time and accuracy of every regime here (``advise --estimate-cost``, ``--budget``).

For each regime the advisor decides the plan it would run (the advice's own
plan for its regime), measures the images/s of that plan's graphs here
(:func:`strategies.throughput.measure_throughput`, a few batches, cached per
machine; once per distinct graph, :func:`strategies.throughput.measured_graph`,
so ``svm`` and ``last-layer`` share one measurement), prices it with
:func:`advisor.decide.cost.expected_cost` and adds its expected accuracy
(:func:`advisor.decide.expectation.expected_accuracy`).
:func:`fit_budget` then keeps the plan, or re-decides it for the regime
:func:`advisor.decide.budget.choose_within_budget` picks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from advisor.app.advice import Advice
from advisor.app.built_backbones import get_backbone
from advisor.backbones import Backbone
from advisor.decide import decide
from advisor.decide.budget import choose_within_budget
from advisor.decide.cost import expected_cost
from advisor.decide.expectation import expected_accuracy
from advisor.plan import Regime
from strategies.throughput import Throughput, measure_throughput, measured_graph


def estimate_costs(advice: Advice, *, regimes: tuple[Regime, ...] = tuple(Regime),
                   epochs: int | None = None, head: str | None = None,
                   backbone: Backbone | None = None, rate_search: bool = True) -> dict[str, Any]:
    """Return ``{regime: cost}`` for `regimes`: each plan's measured images/s and expected time.

    Args:
        advice: The advice (its profile decides the other regimes' plans).
        regimes: Regimes to price. Defaults to all four.
        epochs: The caller's fine-tuning epochs override (``--epochs``), which the
            other regimes' plans get as the advice's own plan did. Defaults to `None`.
        head: The caller's head override (``--head``), likewise. Defaults to `None`.
        backbone: The advice's backbone at its measuring size, when the caller
            has it built already. Defaults to `None` (built here).
        rate_search: `False` for the caller's ``--no-rate-search``, likewise
            (a fine-tuning regime is priced at each searched rate). Defaults to `True`.

    Returns:
        ``{regime name: {"chosen": bool, "throughput": Throughput dict, "expected_accuracy":
        Expectation dict or None, **expected_cost(...)}}`` (whose ``rates`` counts the
        fine-tuning runs of the rate search).

    Example:
        >>> advice = advise(digits_dir)  # measures at 224 px first  # doctest: +SKIP
        >>> estimate_costs(advice)["svm"]["sentence"]  # doctest: +SKIP
        'svm: about 9 s (9 s embedding).'
    """
    dataset, plan = advice.dataset, advice.plan
    sizes = {split: len(dataset.records(split)) for split in ("train", "val", "test")}
    measuring = get_backbone(plan.backbone) if backbone is None else backbone
    costs: dict[str, Any] = {}
    measured: dict[tuple, Throughput] = {}
    for regime in regimes:
        regime_plan = plan if regime is plan.regime else decide(
            advice.profile, backbone=measuring, regime=regime, seed=plan.seed, task=plan.task,
            epochs=epochs, head=head, rate_search=rate_search)
        graph = measured_graph(regime_plan)
        if graph not in measured:  # a graph another regime runs too is measured once
            network = get_backbone(regime_plan.backbone, image_size=regime_plan.image_size,
                                   input_size=regime_plan.decode_size)
            measured[graph] = measure_throughput(regime_plan, network)
        rates = measured[graph]
        expectation = expected_accuracy(advice.profile, regime,
                                       feature_layers=regime_plan.head_input_layers)
        costs[regime.value] = {"chosen": regime is plan.regime, "throughput": rates.to_dict(),
                               "expected_accuracy": None if expectation is None else expectation.to_dict(),
                               **expected_cost(regime_plan, n_train=sizes["train"],
                                               n_val=sizes["val"], n_test=sizes["test"],
                                               forward_img_s=rates.forward_img_s,
                                               train_img_s=rates.train_img_s,
                                               prefix_img_s=rates.prefix_img_s)}
    return costs


def with_costs(advice: Advice, *, epochs: int | None = None, head: str | None = None,
               backbone: Backbone | None = None, rate_search: bool = True) -> Advice:
    """Return `advice` with :func:`estimate_costs` of every regime filled in (the caller's overrides kept)."""
    if advice.costs is not None:
        return advice
    return dataclasses.replace(advice, costs=estimate_costs(advice, epochs=epochs, head=head,
                                                            backbone=backbone, rate_search=rate_search))


def fit_budget(advice: Advice, budget_s: float, *, epochs: int | None = None,
               head: str | None = None, rate_search: bool = True) -> Advice:
    """Return `advice` with the regime expected to finish within `budget_s` seconds here.

    Prices every regime (:func:`with_costs`); the plan stands when its regime
    fits, else it is decided again for the regime
    :func:`~advisor.decide.budget.choose_within_budget` picks, with that
    sentence as the regime's reason (with the caller's `epochs`, `head` and
    `rate_search` overrides, as ``advise`` decided the first plan). ``advice.budget`` records the choice.
    """
    plan = advice.plan
    # One measuring backbone for the pricing and a second decision (weights load once).
    measuring = get_backbone(plan.backbone) if advice.costs is None else None
    advice = with_costs(advice, epochs=epochs, head=head, backbone=measuring, rate_search=rate_search)
    expected_s = {Regime(name): cost["total_s"] for name, cost in advice.costs.items()}
    accuracy = {Regime(name): cost["expected_accuracy"]["estimate"] for name, cost in advice.costs.items()
                if cost.get("expected_accuracy")}
    chosen, why = choose_within_budget(plan.regime, expected_s, budget_s, expected_accuracy=accuracy)
    if chosen is not plan.regime:
        measuring = get_backbone(plan.backbone) if measuring is None else measuring
        plan = decide(advice.profile, backbone=measuring, regime=chosen, seed=plan.seed,
                      task=plan.task, epochs=epochs, head=head, forced_by=why.rstrip("."),
                      rate_search=rate_search)
    costs = {name: {**cost, "chosen": name == chosen.value} for name, cost in advice.costs.items()}
    return dataclasses.replace(advice, plan=plan, costs=costs, budget={
        "budget_s": budget_s, "pick": advice.plan.regime.value, "regime": chosen.value,
        "expected_s": expected_s[chosen], "fits": expected_s[chosen] <= budget_s, "reason": why})
