"""advise --budget at the app layer: the plan stands or is decided again, and advice.json says why."""

from __future__ import annotations

import pytest

from advisor.app import costs
from advisor.app.advice import Advice
from advisor.backbones import get_backbone
from advisor.decide import decide
from advisor.plan import Regime
from strategies.throughput import Throughput
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

    def priced(advice, regimes=tuple(Regime), **overrides):
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


class _Splits:
    """The split sizes `estimate_costs` reads from a dataset."""

    def records(self, split):
        return [None] * {"train": 700, "val": 150, "test": 150}[split]


def test_regimes_that_run_one_graph_are_measured_once_and_priced_as_before(monkeypatch, network):
    # Review finding: svm and last-layer ran the same frozen graph at the same size, measured twice.
    monkeypatch.setattr(costs, "get_backbone", lambda name, **kw: network)
    calls = []

    def fake_rates(plan, backbone):  # depends on the graph, as the measurement does
        calls.append(plan.regime)
        trains = plan.regime.fine_tunes_backbone
        return Throughput(forward_img_s=100.0 + plan.batch_size,
                          train_img_s=10.0 + len(plan.frozen_blocks) if trains else 80.0,
                          prefix_img_s=200.0 if trains and plan.prefix_cache else None,
                          trains_on_prefix_cache=trains and plan.prefix_cache,
                          batch_size=plan.batch_size, device="cpu")

    monkeypatch.setattr(costs, "measure_throughput", fake_rates)
    profile = make_profile(20_000, 0.3)
    advice = Advice(dataset=_Splits(), profile=profile, plan=decide(profile, backbone=network),
                    timings={})
    shared = costs.estimate_costs(advice)
    assert calls == [Regime.SVM, Regime.PARTIAL, Regime.FULL]  # last-layer reuses svm's graph
    calls.clear()
    monkeypatch.setattr(costs, "measured_graph", lambda plan: plan.regime)  # one per regime, as before
    assert costs.estimate_costs(advice) == shared and len(calls) == 4


def test_the_callers_epochs_price_every_regime_as_they_would_run(monkeypatch, network):
    # Review finding: --epochs shaped the advice's own plan only; the other regimes were priced
    # at their default epochs, so --budget could walk to a regime priced for another run.
    monkeypatch.setattr(costs, "get_backbone", lambda name, **kw: network)
    monkeypatch.setattr(costs, "measure_throughput", lambda plan, backbone: Throughput(
        forward_img_s=100.0, train_img_s=50.0, prefix_img_s=None, trains_on_prefix_cache=False,
        batch_size=plan.batch_size, device="cpu"))
    profile = make_profile(20_000, 0.3)
    advice = Advice(dataset=_Splits(), profile=profile,
                    plan=decide(profile, backbone=network, epochs=2), timings={})
    priced = costs.estimate_costs(advice, epochs=2)
    assert priced["full"]["epochs"] == priced["partial"]["epochs"] == 2
    assert costs.estimate_costs(advice)["partial"]["epochs"] > 2  # without it: the default
