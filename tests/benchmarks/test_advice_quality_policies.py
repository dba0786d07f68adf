"""Tests of `benchmarks.advice_quality.policies`: fixed-policy regrets and the similarity ablation."""

from __future__ import annotations

import pytest

from benchmarks.advice_quality import calibration, policies, score_row


def _row(task: str, accs: dict[str, float], pick: str, *, n: int, similarity: float,
         recipes: dict[str, float] | None = None) -> dict:
    row = {"task": task, "pick": pick, "wall_s": 1.0,
           "profile": {"n": n, "similarity": similarity},
           "regimes": {r: {"test_accuracy": a, "fit_s": 1.0,
                           "search": [{"default": True, "test_accuracy": a}]} for r, a in accs.items()},
           "plan": {"test_accuracy": accs[pick], "fit_s": 1.0}}
    if recipes:
        row["recipes"] = {k: {"test_accuracy": v} for k, v in recipes.items()}
    row.update(score_row(row))
    return row


def _fake_pick(profile, thresholds):
    # The table's shape, on the stub profile: size first, then similarity.
    if profile["n"] < thresholds["SVM_MAX_IMAGES"]:
        return "svm"
    near = profile["similarity"] >= thresholds["REGIME_SIMILARITY_THRESHOLD"]
    if profile["n"] < thresholds["LARGE_DATASET_IMAGES"]:
        return "last-layer" if near else "partial"
    return "partial" if near else "full"


@pytest.fixture
def rows(monkeypatch):
    monkeypatch.setattr(calibration, "picked_regime", _fake_pick)
    return [
        _row("small", {"svm": 0.90, "last-layer": 0.88, "partial": 0.85, "full": 0.84}, "svm",
             n=300, similarity=0.3, recipes={"fastai": 0.86}),
        _row("mid-near", {"svm": 0.80, "last-layer": 0.84, "partial": 0.83, "full": 0.82}, "svm",
             n=6000, similarity=0.7),
        _row("mid-far", {"svm": 0.70, "last-layer": 0.71, "partial": 0.78, "full": 0.77}, "svm",
             n=6000, similarity=0.3),
        _row("large", {"svm": 0.80, "last-layer": 0.80, "partial": 0.85, "full": 0.88}, "full",
             n=20000, similarity=0.3),
    ]


def test_every_fixed_policy_is_scored_against_the_oracle_best(rows):
    regrets = policies.policy_regrets(rows)
    assert regrets["always svm"]["per_task"] == pytest.approx(
        {"small": 0.0, "mid-near": 4.0, "mid-far": 8.0, "large": 8.0})
    assert regrets["always svm"]["max_regret_pp"] == pytest.approx(8.0)
    # CS231n's table at 5,000 / 10,000 / 0.5 picks svm, last-layer, partial, full here: no regret.
    assert regrets["cs231n"]["mean_regret_pp"] == pytest.approx(0.0)
    # The advisor is the plan as run (svm on both mid tasks: 4 and 8 pp).
    assert regrets["advisor"]["mean_regret_pp"] == pytest.approx(3.0)
    # A recipe counts only the tasks it ran on.
    assert regrets["fastai"]["tasks"] == 1 and regrets["fastai"]["mean_regret_pp"] == pytest.approx(4.0)
    assert regrets["scratch"]["tasks"] == 0
    assert policies.best_fixed_policy(regrets, tasks=len(rows)) == "cs231n"


def test_the_table_names_the_best_fixed_policy_and_the_advisors_margin(rows):
    regrets = policies.policy_regrets(rows)
    text = policies.format_policies(regrets, policies.similarity_ablation(rows), len(rows))
    assert "best fixed policy: cs231n (0.00 pp); the advisor is 3.00 pp above it" in text
    assert "scratch" in text and "not run" in text


def test_the_ablation_finds_similarity_useful_only_where_it_separates_winners(rows):
    ablation = policies.similarity_ablation(rows)
    # mid-near wants last-layer, mid-far partial: only similarity tells them apart.
    assert ablation["with_similarity"]["mean_regret_pp"] < ablation["without_similarity"]["mean_regret_pp"]
    assert ablation["similarity_helps"] is True

    same = [dict(r, regimes={**r["regimes"], "last-layer": r["regimes"]["partial"]})
            if r["task"] == "mid-near" else r for r in rows]
    same = [dict(r, **score_row(r)) for r in same]
    assert policies.similarity_ablation(same)["similarity_helps"] is False


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="Unknown policy"):
        policies.policy_accuracy({"regimes": {}}, "always guess")
