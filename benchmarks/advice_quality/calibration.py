"""Calibration of the regime thresholds (leave one task out) and the similarity-gap correlation."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.advice_quality.runner import CORRUPTION_MARK
from benchmarks.advice_quality.scoring import HIT_PP, REGIMES, is_paired_hit

if TYPE_CHECKING:
    from advisor.decide import RegimeRules

#: Candidate thresholds of the leave-one-task-out fit (current value included).
CALIBRATION_GRID = {
    "SVM_MAX_IMAGES": (0, 250, 500, 1_000, 2_000, 5_000, 10**9),
    # From 250 on: the converged tasks (300 images, far) found `full` best, which the
    # table can say only when "large" reaches down to them.
    "LARGE_DATASET_IMAGES": (250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 10**9),
    "REGIME_SIMILARITY_THRESHOLD": (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7),
}
#: Ties in the fit go to the grid point nearest these: CS231n's seed rules. They are
#: fixed, not read from advisor.config: once the fitted constants are written there,
#: anchoring on them would let each leave-one-task-out fold lean on a fit that saw
#: its held-out task.
SEED_THRESHOLDS = {"SVM_MAX_IMAGES": 1_000, "LARGE_DATASET_IMAGES": 10_000,
                   "REGIME_SIMILARITY_THRESHOLD": 0.5}


def rules_for(thresholds: dict[str, float]) -> RegimeRules:
    """Return the :class:`~advisor.decide.RegimeRules` of `thresholds`, keyed by config name.

    The keys are the names of the constants in :mod:`advisor.config` (as in
    ``CALIBRATION_GRID`` and the results JSON); thresholds not given keep their
    defaults.

    Example:
        >>> rules_for({"SVM_MAX_IMAGES": 1_000}).svm_max_images
        1000
    """
    from advisor.decide import RegimeRules

    return RegimeRules(**{name.lower(): value for name, value in thresholds.items()})


def thresholds_of(rules: RegimeRules, names: Sequence[str] = tuple(CALIBRATION_GRID)) -> dict[str, float]:
    """Return `rules` as ``{config name: value}`` for `names`, the inverse of :func:`rules_for`."""
    return {name: getattr(rules, name.lower()) for name in names}


def picked_regime(profile_dict: dict[str, Any], thresholds: dict[str, float]) -> str:
    """Return the regime :func:`advisor.decide.choose_regime` picks under `thresholds` (see :func:`rules_for`)."""
    from advisor.decide import choose_regime
    from advisor.measure.profile import DatasetProfile

    profile = DatasetProfile.from_dict(profile_dict)
    return choose_regime(profile, rules_for(thresholds))[0].value


def regime_accuracy(row: dict[str, Any], regime: str) -> float | None:
    """Test accuracy of `regime` at the plan's default rate (what the advisor would run).

    Falls back to the rate the search chose when no searched run was at the default.
    """
    run = _scored_run(row, regime)
    return None if run is None else run["test_accuracy"]


def _scored_run(row: dict[str, Any], regime: str) -> dict[str, Any] | None:
    """The run of `regime` the calibration scores: at the default rate, else the search's choice."""
    entry = row["regimes"].get(regime)
    if entry is None:
        return None
    return default_entry(row, regime) or entry


def default_entry(row: dict[str, Any], regime: str) -> dict[str, Any] | None:
    """The searched run of `regime` at the plan's default rate (the SVM's only run), or `None`."""
    entry = row["regimes"].get(regime)
    if entry is None:
        return None
    return next((r for r in entry.get("search", ()) if r.get("default")), None)


def paired_hit(row: dict[str, Any], regime: str) -> bool:
    """Whether `regime` is a hit on `row`: within ``HIT_PP`` of the oracle's best, or
    not worse by McNemar's test on the same test images (the advice issue's hit).

    Example:
        >>> row = {"oracle_best": 0.9, "oracle_regime": "full", "regimes": {
        ...     "full": {"test_accuracy": 0.9, "test_correct": "1" * 9 + "0"},
        ...     "svm": {"test_accuracy": 0.8, "test_correct": "1" * 8 + "00"}}}
        >>> paired_hit(row, "svm")  # 0.1 below, on one discordant image of ten
        True
    """
    run = _scored_run(row, regime)
    if run is None:
        return False
    best = row["regimes"].get(row.get("oracle_regime"), {}).get("test_correct")
    return is_paired_hit(run["test_accuracy"], row["oracle_best"], run.get("test_correct"), best)


def _outcome(rows: Sequence[dict[str, Any]], thresholds: dict[str, float]) -> dict[str, float]:
    """``hit_rate`` (within ``HIT_PP``), ``paired_hit_rate`` (:func:`paired_hit`) and
    ``mean_regret_pp`` of the regimes picked under `thresholds` at default rates."""
    hits, paired, regrets = [], [], []
    for row in rows:
        regime = picked_regime(row["profile"], thresholds)
        acc = regime_accuracy(row, regime)
        if acc is None:
            continue
        hits.append(acc >= row["oracle_best"] - HIT_PP / 100)
        paired.append(paired_hit(row, regime))
        regrets.append(100 * (row["oracle_best"] - acc))

    def mean(values: list) -> float:
        return float(np.mean(values)) if values else math.nan

    return {"hit_rate": mean(hits), "paired_hit_rate": mean(paired), "mean_regret_pp": mean(regrets)}


def fit_thresholds(rows: Sequence[dict[str, Any]], grid: dict[str, Sequence[float]],
                   anchor: dict[str, float]) -> dict[str, float]:
    """Return the grid point with the lowest mean regret on `rows` (ties: most paired hits, then nearest `anchor`)."""
    names = list(grid)

    def distance(values: dict[str, float]) -> float:
        return sum(abs(math.log(max(values[k], 1e-9) / max(anchor[k], 1e-9))) for k in names)

    best_key, best = None, None
    for combo in itertools.product(*(grid[k] for k in names)):
        values = dict(zip(names, combo))
        if values["LARGE_DATASET_IMAGES"] < values["SVM_MAX_IMAGES"]:
            continue
        outcome = _outcome(rows, values)
        key = (round(outcome["mean_regret_pp"], 6), -outcome["paired_hit_rate"], distance(values))
        if best_key is None or key < best_key:
            best_key, best = key, values
    return best


def task_family(spec: str) -> str:
    """The task a corrupted task corrupts (:func:`~benchmarks.advice_quality.runner.split_corruption`), else itself.

    Example:
        >>> task_family("tuxpaint@contrast-3"), task_family("digits-300")
        ('tuxpaint', 'digits-300')
    """
    return spec.partition(CORRUPTION_MARK)[0]


def calibrate(rows: Sequence[dict[str, Any]], grid: dict[str, Sequence[float]] | None = None, *,
              current: RegimeRules | None = None) -> dict[str, Any]:
    """Fit the regime thresholds on all tasks and leave-one-task-out; return the figures.

    A fold that holds out a corrupted task (or a clean one) also leaves out the
    other tasks of its family (:func:`task_family`): the same images, corrupted
    otherwise, would tell the fit the held-out answer.

    `current` (the advisor's rules now; default ``RegimeRules()``, the constants in
    :mod:`advisor.config`) is reported and scored in sample, but the fit does not
    lean on it: ties go to ``SEED_THRESHOLDS``.
    """
    from advisor.decide import RegimeRules

    grid = grid or CALIBRATION_GRID
    current = thresholds_of(RegimeRules() if current is None else current, tuple(grid))
    usable = [r for r in rows if all(reg in r["regimes"] for reg in REGIMES)]
    result: dict[str, Any] = {"current": current, "tasks": [r["task"] for r in usable]}
    if len(usable) < 2:
        result["note"] = "Needs at least 2 tasks run with all four regimes."
        return result
    result["current_in_sample"] = _outcome(usable, current)
    anchor = {k: SEED_THRESHOLDS.get(k, current[k]) for k in grid}
    fitted = fit_thresholds(usable, grid, anchor)
    result["fitted_all_tasks"] = fitted
    result["fitted_in_sample"] = _outcome(usable, fitted)
    folds = []
    for held in usable:  # a corrupted task's fold leaves out its clean task and their other corruptions
        train = [r for r in usable if task_family(r["task"]) != task_family(held["task"])]
        values = fit_thresholds(train, grid, anchor)
        outcome = _outcome([held], values)
        folds.append({"held_out": held["task"], "thresholds": values,
                      "pick": picked_regime(held["profile"], values), "hit": bool(outcome["hit_rate"]),
                      "paired_hit": bool(outcome["paired_hit_rate"]),
                      "regret_pp": outcome["mean_regret_pp"]})
    result["leave_one_task_out"] = {
        "hit_rate": float(np.mean([f["hit"] for f in folds])),
        "paired_hit_rate": float(np.mean([f["paired_hit"] for f in folds])),
        "mean_regret_pp": float(np.mean([f["regret_pp"] for f in folds])),
        "max_regret_pp": float(np.max([f["regret_pp"] for f in folds])),
        "folds": folds,
    }
    return result


def curve_gain_pp(profile_dict: dict[str, Any]) -> float | None:
    """The linear probe's accuracy gain over its learning curve's last doubling, in points.

    A steep curve says the frozen features have not saturated on this many
    images (a candidate input of a fine-tuning gain model, issue 17).

    Example:
        >>> curve_gain_pp({"probes": {"learning_curve": [[0.25, 0.74], [0.5, 0.84], [1.0, 0.912]]}})
        7.2
        >>> curve_gain_pp({"probes": None}) is None
        True
    """
    curve = (profile_dict.get("probes") or {}).get("learning_curve") or []
    if len(curve) < 2:
        return None
    return round(100 * (curve[-1][1] - curve[-2][1]), 6)


#: The measured inputs whose rank correlation with the fine-tuning gap is reported:
#: ``{name: row -> value or None}``.
GAP_INPUTS = {
    "similarity": lambda row: row["similarity"],
    "curve_gain_pp": lambda row: curve_gain_pp(row["profile"]),
    "probe_accuracy": lambda row: row.get("probe_accuracy"),
    "images": lambda row: row["n"],
}


#: Up to this many tasks the rank correlation's p-value is exact (every permutation).
EXACT_P_MAX_TASKS = 8


def spearman_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided p-value of Spearman's rho: exact over every permutation for a few tasks.

    SciPy's t approximation says p = 0 for a perfect rank order of three tasks,
    where one order in three of the six permutations is as extreme.

    Example:
        >>> spearman_p([1, 2, 3], [10, 20, 30])
        0.333333
    """
    from scipy.stats import spearmanr

    if len(x) > EXACT_P_MAX_TASKS:
        return float(spearmanr(x, y)[1])
    observed = abs(spearmanr(x, y)[0]) - 1e-12
    orders = list(itertools.permutations(y))
    extreme = sum(bool(abs(spearmanr(x, list(order))[0]) >= observed) for order in orders)
    return round(float(extreme) / len(orders), 6)


def gap_correlation(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Spearman rho of each measured input (``GAP_INPUTS``) with (best fine-tuned - best frozen) accuracy.

    ``rho`` / ``p_value`` are the similarity score's (the product's own
    input); ``inputs`` holds every input's, over the tasks where it is known.
    """
    from scipy.stats import spearmanr

    points = []
    for row in rows:
        regs = row["regimes"]
        tuned = [regs[r]["test_accuracy"] for r in ("partial", "full") if r in regs]
        frozen = [regs[r]["test_accuracy"] for r in ("svm", "last-layer") if r in regs]
        if tuned and frozen:
            points.append({"task": row["task"], "gap_pp": 100 * (max(tuned) - max(frozen)),
                           **{name: value(row) for name, value in GAP_INPUTS.items()}})
    result: dict[str, Any] = {"points": points, "inputs": {}}
    for name in GAP_INPUTS:
        known = [p for p in points if p[name] is not None]
        if len(known) >= 3 and len({k[name] for k in known}) > 1:  # a constant input ranks nothing
            x, y = [k[name] for k in known], [k["gap_pp"] for k in known]
            rho = float(spearmanr(x, y)[0])
            result["inputs"][name] = {"rho": rho, "p_value": spearman_p(x, y), "tasks": len(known)}
    if "similarity" in result["inputs"]:
        result.update(rho=result["inputs"]["similarity"]["rho"],
                      p_value=result["inputs"]["similarity"]["p_value"])
    result["families"] = _family_correlations(points)
    return result


def _family_correlations(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Similarity vs gap within each family of 3+ tasks (one task at several corruptions).

    The same images at several similarities: what similarity alone does to the
    fine-tuned-minus-frozen gap, without the differences between sets.
    """
    from scipy.stats import spearmanr

    families: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        if point.get("similarity") is not None:
            families.setdefault(task_family(point["task"]), []).append(point)
    result = {}
    for family, members in families.items():
        if len(members) < 3 or len({m["similarity"] for m in members}) < 2:
            continue
        members = sorted(members, key=lambda m: -m["similarity"])
        x, y = [m["similarity"] for m in members], [m["gap_pp"] for m in members]
        result[family] = {"rho": float(spearmanr(x, y)[0]), "p_value": spearman_p(x, y),
                          "tasks": [{"task": m["task"], "similarity": m["similarity"], "gap_pp": m["gap_pp"]}
                                    for m in members]}
    return result
