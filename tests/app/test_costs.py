"""advise --budget at the app layer: the plan stands or is decided again, and advice.json says why."""

from __future__ import annotations

import pytest

from advisor.app import costs
from advisor.app.advice import Advice
from advisor.backbones import get_backbone
from advisor.decide import decide
from advisor.plan import Regime
from tests.decide.test_decide import make_profile


@pytest.fixture(scope="module")
def network():
    return get_backbone("mobilenet_v2", image_size=224, weights=None)  # decide reads no weights


@pytest.fixture
def advice(monkeypatch, network):
    monkeypatch.setattr(costs, "get_backbone", lambda name, **kw: network)
    profile = make_profile(20_000, 0.3)  # large and far: the table picks full
    plan = decide(profile, backbone=network)
    assert plan.regime is Regime.FULL
    seconds = {"svm": 40.0, "last-layer": 60.0, "partial": 1500.0, "full": 3000.0}

    def priced(advice, regimes=tuple(Regime)):
        return {name: {"chosen": name == "full", "total_s": s, "expected_accuracy": None,
                       "sentence": f"{name}: about {s:.0f} s."} for name, s in seconds.items()}

    monkeypatch.setattr(costs, "estimate_costs", priced)
    return Advice(dataset=None, profile=profile, plan=plan, timings={})


def test_a_budget_the_pick_fits_keeps_the_plan(advice):
    fitted = costs.fit_budget(advice, 3600)
    assert fitted.plan == advice.plan
    assert fitted.budget["regime"] == "full" and fitted.budget["fits"]


def test_a_tight_budget_decides_the_plan_again_and_says_why(advice):
    fitted = costs.fit_budget(advice, 600)
    assert fitted.plan.regime is Regime.LAST_LAYER and fitted.plan.epochs == 0
    assert fitted.plan.reasons["regime"].startswith("Forced to 'last-layer' by --budget 10 min: 'full'")
    assert fitted.budget == {"budget_s": 600, "pick": "full", "regime": "last-layer", "expected_s": 60.0,
                             "fits": True, "reason": fitted.budget["reason"]}
    assert [name for name, cost in fitted.costs.items() if cost["chosen"]] == ["last-layer"]
