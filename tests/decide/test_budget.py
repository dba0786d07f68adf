"""advise --budget: parsing a duration and the regime expected to fit in it."""

from __future__ import annotations

import pytest

from advisor.decide.budget import choose_within_budget, parse_budget
from advisor.errors import PlanError
from advisor.plan import Regime

TIMES = {Regime.SVM: 40.0, Regime.LAST_LAYER: 60.0, Regime.PARTIAL: 1500.0, Regime.FULL: 3000.0}


@pytest.mark.parametrize("text", ["", "ten minutes", "0", "-5m", "10d"])
def test_a_budget_that_is_not_a_duration_is_refused_with_the_format(text):
    with pytest.raises(PlanError, match="write it like 90s, 10m or 1.5h"):
        parse_budget(text)


def test_the_pick_stands_when_it_fits():
    regime, why = choose_within_budget(Regime.FULL, TIMES, 3600)
    assert regime is Regime.FULL and "within it" in why


def test_over_budget_walks_down_to_the_nearest_regime_that_fits():
    assert choose_within_budget(Regime.FULL, TIMES, 2000)[0] is Regime.PARTIAL
    assert choose_within_budget(Regime.FULL, TIMES, 100)[0] is Regime.LAST_LAYER
    assert choose_within_budget(Regime.PARTIAL, TIMES, 50)[0] is Regime.SVM


def test_expected_accuracy_outranks_nearness_when_known():
    accuracy = {Regime.SVM: 0.93, Regime.LAST_LAYER: 0.90, Regime.PARTIAL: 0.90, Regime.FULL: 0.90}
    regime, why = choose_within_budget(Regime.FULL, TIMES, 100, expected_accuracy=accuracy)
    assert regime is Regime.SVM and "expected accuracy 0.93" in why


def test_when_nothing_fits_the_cheapest_runs_and_the_reason_says_so():
    regime, why = choose_within_budget(Regime.FULL, TIMES, 10)
    assert regime is Regime.SVM
    assert "no regime fits" in why and "the cheapest" in why
