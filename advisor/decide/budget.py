"""A time budget for the run (``advise --budget 10m``): the regime expected to fit in it.

The regime table's pick stands when its expected wall time on this machine
(:func:`advisor.decide.cost.expected_cost`) is within the budget. Otherwise
the regimes that fit compete on expected accuracy
(:mod:`advisor.decide.expectation`); ties (the frozen regimes share one
estimate, and fine-tuning beyond the benchmark's sizes has only its floor) go to the regime that
adapts the network most without exceeding the pick: ``full`` -> ``partial``
-> ``last-layer`` -> ``svm``. When none fits, the cheapest runs, and the
reason says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from advisor.decide.cost import format_duration
from advisor.errors import PlanError
from advisor.plan import Regime

#: Regimes from the most adapted to the least: a budget walks down from the pick.
ADAPTATION_ORDER = (Regime.FULL, Regime.PARTIAL, Regime.LAST_LAYER, Regime.SVM)
_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_budget(text: str) -> float:
    """Seconds of a budget written ``"90s"``, ``"10m"``, ``"1.5h"`` or ``"600"`` (seconds).

    Raises:
        PlanError: The text is not a positive duration.

    Example:
        >>> parse_budget("10m"), parse_budget("90s"), parse_budget("1.5h"), parse_budget("600")
        (600.0, 90.0, 5400.0, 600.0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*", str(text).lower())
    if match is None or float(match.group(1)) <= 0:
        raise PlanError(f"--budget {text!r} is not a duration: write it like 90s, 10m or 1.5h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def choose_within_budget(pick: Regime, expected_s: Mapping[Regime, float], budget_s: float, *,
                         expected_accuracy: Mapping[Regime, float] | None = None) -> tuple[Regime, str]:
    """Return the regime to run within `budget_s` seconds, and why.

    Args:
        pick: The regime table's pick.
        expected_s: Expected wall seconds of each priced regime (an upper bound for fine-tuning).
        budget_s: The budget in seconds.
        expected_accuracy: Expected test accuracy of each regime, where known.
            Defaults to `None` (ties everywhere: the adaptation order decides).

    Example:
        >>> times = {Regime.SVM: 40.0, Regime.LAST_LAYER: 60.0, Regime.PARTIAL: 1500.0, Regime.FULL: 3000.0}
        >>> choose_within_budget(Regime.PARTIAL, times, 3600)[0]
        <Regime.PARTIAL: 'partial'>
        >>> regime, why = choose_within_budget(Regime.PARTIAL, times, 600)
        >>> regime, why  # doctest: +ELLIPSIS
        (<Regime.LAST_LAYER: 'last-layer'>, "--budget 10 min: 'partial' is expected to take up to 25 min; ...")
        >>> choose_within_budget(Regime.FULL, times, 10)[0]  # nothing fits: the cheapest
        <Regime.SVM: 'svm'>
    """
    accuracy = expected_accuracy or {}
    budget = f"--budget {format_duration(budget_s)}"
    if pick not in expected_s:
        raise PlanError(f"{budget}: no expected time for the pick {pick.value!r}")
    if expected_s[pick] <= budget_s:
        return pick, (f"{budget}: {pick.value!r} is expected to take up to "
                      f"{format_duration(expected_s[pick])}, within it.")
    over = f"{budget}: {pick.value!r} is expected to take up to {format_duration(expected_s[pick])}"
    below = ADAPTATION_ORDER[ADAPTATION_ORDER.index(pick):]
    fitting = [r for r in ADAPTATION_ORDER if r in expected_s and expected_s[r] <= budget_s]
    if not fitting:
        cheapest = min(expected_s, key=expected_s.get)
        return cheapest, (f"{over}, and no regime fits: {cheapest.value!r}, the cheapest "
                          f"(up to {format_duration(expected_s[cheapest])}), runs.")

    def rank(regime: Regime) -> tuple[float, int, int]:
        # Highest expected accuracy, then the most adaptation that does not exceed the pick.
        return (round(accuracy.get(regime, 0.0), 3), regime in below,
                -abs(ADAPTATION_ORDER.index(regime) - ADAPTATION_ORDER.index(pick)))

    chosen = max(fitting, key=rank)
    known = f", expected accuracy {accuracy[chosen]:.2f}" if chosen in accuracy else ""
    return chosen, (f"{over}; {chosen.value!r} fits (up to {format_duration(expected_s[chosen])}"
                    f"{known}), the regime nearest the pick among those that fit.")
