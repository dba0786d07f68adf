"""Scores of one task row and of the suite: oracle best, hit, regret, standard error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: A regime "hits" when within this many percentage points of the oracle best.
HIT_PP = 0.5
REGIMES = ("svm", "last-layer", "partial", "full")


def score_row(row: dict[str, Any]) -> dict[str, Any]:
    """Return the oracle best, hit, regret and time ratio of one task row."""
    accs = {r: v["test_accuracy"] for r, v in row["regimes"].items()}
    best_regime = max(accs, key=accs.get)
    best = accs[best_regime]
    good = [r for r in accs if accs[r] >= best - HIT_PP / 100]
    fastest = min(good, key=lambda r: row["regimes"][r]["fit_s"])
    pick = row["pick"]
    picked = accs.get(pick, row["plan"]["test_accuracy"])
    pick_s = row["regimes"][pick]["fit_s"] if pick in row["regimes"] else row["plan"]["fit_s"]
    return {
        "oracle_best": best, "oracle_regime": best_regime, "good_regimes": good,
        "fastest_good": fastest,
        "hit": bool(picked >= best - HIT_PP / 100),
        "regret_pp": 100 * (best - row["plan"]["test_accuracy"]),
        "time_vs_fastest_good": pick_s / max(row["regimes"][fastest]["fit_s"], 1e-9),
        # cheap when cheap is enough: never full when last-layer is within HIT_PP
        "too_expensive": bool(pick == "full" and "last-layer" in good),
        "test_se_pp": test_standard_error_pp(best, row.get("n_test")),
        "paired_p": paired_p_value(row["plan"].get("test_correct"),
                                   row["regimes"][best_regime].get("test_correct")),
        # the same test on each training seed, where the pick and the best both ran it
        "seed_paired_p": seed_paired_p(row["plan"], row["regimes"][best_regime]),
        "converged": all(run_converged(v) for v in row["regimes"].values()),
        # stopped by the budget, counted as converged by the doubled-budget check
        "converged_by_doubling": sorted(r for r, v in row["regimes"].items()
                                        if (not all(converged(b) for b in seed_budgets(v))
                                            or "capped" in v) and run_converged(v)),
        # fine-tuning that kept its starting probe (best epoch 0): converged to the start, or stopped early
        "returned_start": sorted(r for r, v in row["regimes"].items()
                                 if any(returned_start(b) for b in seed_budgets(v))),
        "seeds": sorted({len(v.get("seeds") or [0]) for v in row["regimes"].values()}),
    } | {"paired_hit": is_paired_hit(picked, best, row["plan"].get("test_correct"),
                                     row["regimes"][best_regime].get("test_correct"))}


#: The paired test calls the pick worse than the oracle's best below this p-value.
PAIRED_ALPHA = 0.05


def paired_p_value(a: str | None, b: str | None) -> float | None:
    """Exact McNemar p-value of two classifiers' per-image correctness (``"1"``/``"0"`` strings).

    Only the discordant images count: `a` right and `b` wrong, or the reverse;
    under "equally accurate" each is a fair coin (``scipy.stats.binomtest``).

    Example:
        >>> paired_p_value("1111100000", "1111100000")  # no discordant image
        1.0
        >>> round(paired_p_value("0" * 10 + "1" * 90, "1" * 100), 4)  # 10 to 0
        0.002
    """
    if not a or not b or len(a) != len(b):
        return None
    from scipy.stats import binomtest

    only_a = sum(x == "1" and y == "0" for x, y in zip(a, b))
    only_b = sum(x == "0" and y == "1" for x, y in zip(a, b))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue)


def seed_paired_p(plan: dict[str, Any], best: dict[str, Any]) -> list[float | None]:
    """McNemar p-values of the plan against the oracle's best, one per training seed both ran.

    Pooled runs (:mod:`.seeds`) keep each seed's per-image correctness; the
    images are the same for every seed, so the seeds are tested one at a time
    rather than as one sample of twice the size.

    Example:
        >>> plan = {"seeds": [0, 1], "seed_test_correct": ["1100", "1110"]}
        >>> seed_paired_p(plan, {"seeds": [0, 1], "seed_test_correct": ["1100", "1111"]})
        [1.0, 1.0]
        >>> seed_paired_p({"test_correct": "10"}, {"test_correct": "11"})  # one seed each
        []
    """
    mine = dict(zip(plan.get("seeds") or (), plan.get("seed_test_correct") or ()))
    theirs = dict(zip(best.get("seeds") or (), best.get("seed_test_correct") or ()))
    return [paired_p_value(mine[s], theirs[s]) for s in sorted(set(mine) & set(theirs))]


def seed_budgets(entry: dict[str, Any]) -> list[dict[str, Any] | None]:
    """The budget curve of each training seed of a regime entry (pooled runs keep each seed's).

    Example:
        >>> seed_budgets({"budget": {"converged": True}})
        [{'converged': True}]
        >>> len(seed_budgets({"budget": {}, "seed_budgets": [{}, {"converged": False}]}))
        2
    """
    return list(entry.get("seed_budgets") or [entry.get("budget")])


def _not_worse(pick: str | None, best: str | None) -> bool:
    """Whether the paired test cannot tell the pick from the best (p >= ``PAIRED_ALPHA``)."""
    p = paired_p_value(pick, best)
    return p is not None and p >= PAIRED_ALPHA


def is_paired_hit(picked: float, best: float, pick_correct: str | None, best_correct: str | None) -> bool:
    """The advice issue's hit: accuracy `picked` within ``HIT_PP`` of `best`, or not worse by
    McNemar's test on the same test images (per-image correctness strings).

    Example:
        >>> is_paired_hit(0.8, 0.9, "1" * 8 + "00", "1" * 9 + "0")  # one discordant image of ten
        True
        >>> is_paired_hit(0.8, 0.9, None, None)  # nothing to pair: the margin alone
        False
    """
    return bool(picked >= best - HIT_PP / 100) or _not_worse(pick_correct, best_correct)


def converged(budget: dict[str, Any] | None) -> bool:
    """Whether a run's budget curve (``strategies.budget.budget_curve``) ended at a plateau.

    Runs without one (the SVM's closed form) count as converged.

    Example:
        >>> converged(None), converged({"converged": True}), converged({"converged": False})
        (True, True, False)
    """
    return budget is None or bool(budget.get("converged"))


#: The fine-tuning issue's bar: a run stopped by its budget still converged when
#: doubling the budget moves its test accuracy by less than this many points.
DOUBLED_BUDGET_PP = 0.3


def run_converged(entry: dict[str, Any]) -> bool:
    """Whether a regime's chosen run converged: a plateau, or a doubled budget that moved it < 0.3 pp.

    `entry` is a row's regime entry; its ``doubled`` (from
    :func:`.merge.attach_doubled`) holds the change at ``--budget-scale 2``.

    Example:
        >>> run_converged({"budget": {"converged": False}})
        False
        >>> run_converged({"budget": {"converged": False}, "doubled": {"delta_pp": -0.1}})
        True
        >>> run_converged({"budget": {"converged": False}, "doubled": {"delta_pp": 0.6}})
        False
    """
    if all(converged(b) for b in seed_budgets(entry)):
        return True
    doubled = entry.get("doubled")
    return doubled is not None and abs(doubled["delta_pp"]) < DOUBLED_BUDGET_PP


def returned_start(budget: dict[str, Any] | None) -> bool:
    """Whether a run's best epoch was its start (fine-tuning returned the probe it started from).

    Example:
        >>> returned_start({"best_epoch": 0, "epochs_run": 6}), returned_start({"best_epoch": 7}), returned_start(None)
        (True, False, False)
    """
    return budget is not None and budget.get("best_epoch") == 0 and bool(budget.get("epochs_run"))


def test_standard_error_pp(accuracy: float, n_test: int | None) -> float | None:
    """Binomial standard error (pp) of an `accuracy` measured on `n_test` images.

    The hit margin ``HIT_PP`` is below one test image on every split under 200
    images; a regret smaller than about twice this error (the error of a
    difference of two accuracies on the same images is at most sqrt(2) times
    it) is within what the test split can resolve.
    """
    if not n_test:
        return None
    return 100 * math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n_test)


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return the suite's summary: hit rate, mean/max regret, total time, targets met."""
    regrets = [r["regret_pp"] for r in rows]
    summary = {
        "tasks": len(rows),
        "hit_rate": float(np.mean([r["hit"] for r in rows])) if rows else math.nan,
        # a hit by the paired test on the same test images (rows of older runs lack it)
        "paired_hit_rate": float(np.mean([r.get("paired_hit", r["hit"]) for r in rows])) if rows
        else math.nan,
        "not_converged": [r["task"] for r in rows if not r.get("converged", True)],
        "converged_by_doubling": {r["task"]: r["converged_by_doubling"] for r in rows
                                  if r.get("converged_by_doubling")},
        "returned_start": {r["task"]: r["returned_start"] for r in rows if r.get("returned_start")},
        "mean_regret_pp": float(np.mean(regrets)) if rows else math.nan,
        "max_regret_pp": float(np.max(regrets)) if rows else math.nan,
        "total_s": float(sum(r["wall_s"] for r in rows)),
        "full_when_last_layer_enough": [r["task"] for r in rows if r["too_expensive"]],
        # regret beyond two standard errors of the best: a miss the test split resolves
        "resolved_misses": [r["task"] for r in rows if r.get("test_se_pp") is not None
                            and r["regret_pp"] > 2 * r["test_se_pp"]],
    }
    # The advice issue's targets (#17): a hit judged by the paired test.
    summary["targets_met"] = {
        "paired_hit_rate>=0.8": summary["paired_hit_rate"] >= 0.8,
        "mean_regret<=0.5pp": summary["mean_regret_pp"] <= 0.5,
        "max_regret<=2pp": summary["max_regret_pp"] <= 2.0,
        "never_full_when_last_layer_enough": not summary["full_when_last_layer_enough"],
    }
    return summary
