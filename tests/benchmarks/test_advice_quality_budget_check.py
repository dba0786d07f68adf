"""Tests of `benchmarks.advice_quality.budget_check`: the doubled-budget comparison."""

from __future__ import annotations

import json

import pytest

from benchmarks.advice_quality import budget_check


def _results(settings: dict, *, scale: float = 1.0) -> dict:
    """Results with one task; `settings` maps (regime, rate) to (mean, seed-0 correctness, budget)."""
    regimes: dict = {}
    for (regime, rate), (mean, correct, budget) in settings.items():
        regimes.setdefault(regime, {"search": []})["search"].append(
            {"rate": rate, "test_accuracy": mean, "test_correct": correct, "budget": budget})
    return {"settings": {"seeds": [0, 1], "budget_scale": scale},
            "rows": [{"task": "digits-300", "regimes": {"svm": {"search": [{"rate": None}]}, **regimes}}]}


def test_settings_run_at_both_budgets_are_compared_and_judged_against_the_noise(tmp_path, capsys):
    same = "1" * 90 + "0" * 10
    better = "1" * 100  # 10 images more, every one of them discordant one way
    base = _results({("partial", 1e-4): (0.90, same, {"best_epoch": 25, "epochs_run": 30, "max_epochs": 30}),
                     ("full", 1e-4): (0.90, same, None), ("full", "search"): (0.85, "1" * 80 + "0" * 20, None)})
    scaled = _results({("partial", 1e-4): (0.901, same, {"best_epoch": 31, "epochs_run": 43, "max_epochs": 60}),
                       ("full", 1e-4): (0.95, better, None), ("full", "search"): (0.88, "1" * 86 + "0" * 14, None)},
                      scale=2.0)
    records = {(r["regime"], r["rate"]): r for r in budget_check.compare(base, scaled)}
    assert set(records) == {("partial", "0.0001"), ("full", "0.0001"), ("full", "search")}  # not the svm
    partial, full, search = records["partial", "0.0001"], records["full", "0.0001"], records["full", "search"]
    assert partial["verdict"] == "under 0.3 pp" and partial["delta_pp"] == pytest.approx(0.1)
    assert (partial["best_epoch"], partial["epochs_run"], partial["max_epochs"]) == (31, 43, 60)
    assert full["verdict"] == "moved" and full["paired_p"] < 0.05 and full["delta_pp"] == pytest.approx(5.0)
    # The base run's seeds were 80 and 90 (mean 85, the first 80): a 3-point change is inside that spread.
    assert search["base_seeds"] == pytest.approx([0.8, 0.9]) and search["seed_spread_pp"] == pytest.approx(10)
    assert search["verdict"] == "within noise"
    (tmp_path / "a.json").write_text(json.dumps(base))
    (tmp_path / "b.json").write_text(json.dumps(scaled))
    budget_check.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    out = capsys.readouterr().out
    assert "3 settings: 1 moved under 0.3 pp, 1 more within" in out and "31/43/60" in out
