"""Fixed policies a user could follow instead of the advisor, and the advisor without similarity.

The advisor earns its place only if its regret is below that of every rule a
user could follow without it: always the same regime, CS231n's table with its
seed thresholds, or a popular recipe. Each policy is scored like the advisor:
its regime's test accuracy at the plan's default rate (what a user following
it would run), against the oracle's best of the four regimes.

The ablation re-fits the advisor's thresholds leave-one-task-out with the
similarity threshold restricted to "every task near" or "every task far", so
the similarity score can no longer tell two tasks apart: if that fit does as
well, similarity did not matter on the suite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.advice_quality import calibration
from benchmarks.advice_quality.runner import RECIPES
from benchmarks.advice_quality.scoring import REGIMES

#: CS231n's table verbatim, with the seed thresholds the advisor started from
#: (5,000 images: below, a linear classifier on frozen features; 10,000: large)
#: and the similarity threshold on the measured score.
CS231N_THRESHOLDS = {"SVM_MAX_IMAGES": 5_000, "LARGE_DATASET_IMAGES": 10_000,
                     "REGIME_SIMILARITY_THRESHOLD": 0.5}
#: Runs of recipes that are not one of the four regimes (``runner.RECIPES``, named once there),
#: stored under ``row["recipes"]`` when the benchmark ran them (``--recipes``).
RECIPE_POLICIES = RECIPES
#: Similarity thresholds of the ablation: 0 makes every task "near", 10 every task "far".
NO_SIMILARITY_GRID = {**calibration.CALIBRATION_GRID, "REGIME_SIMILARITY_THRESHOLD": (0.0, 10.0)}


def policy_accuracy(row: dict[str, Any], policy: str) -> float | None:
    """Test accuracy of `policy` on one task row, or `None` where it was not run.

    `policy` is ``"always <regime>"``, ``"cs231n"`` or a recipe of
    ``RECIPE_POLICIES``.

    Example:
        >>> row = {"regimes": {"svm": {"test_accuracy": 0.9, "search": [
        ...     {"default": True, "test_accuracy": 0.9}]}}, "recipes": {"fastai": {"test_accuracy": 0.8}}}
        >>> policy_accuracy(row, "always svm"), policy_accuracy(row, "fastai")
        (0.9, 0.8)
        >>> policy_accuracy(row, "always full") is None
        True
    """
    if policy.startswith("always ") and policy.removeprefix("always ") in REGIMES:
        return calibration.regime_accuracy(row, policy.removeprefix("always "))
    if policy == "cs231n":
        return calibration.regime_accuracy(row, calibration.picked_regime(row["profile"], CS231N_THRESHOLDS))
    if policy in RECIPE_POLICIES:
        entry = row.get("recipes", {}).get(policy)
        return None if entry is None else entry["test_accuracy"]
    raise ValueError(f"Unknown policy {policy!r}.")


def policy_names() -> tuple[str, ...]:
    """Every fixed policy, in the order of the printed table."""
    return (*(f"always {r}" for r in REGIMES), "cs231n", *RECIPE_POLICIES)


def _regret_summary(regrets: dict[str, float]) -> dict[str, Any]:
    values = list(regrets.values())
    return {"tasks": len(values),
            "mean_regret_pp": float(np.mean(values)) if values else math.nan,
            "max_regret_pp": float(np.max(values)) if values else math.nan,
            "per_task": regrets}


def policy_regrets(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and max regret (pp below the oracle's best) of the advisor and every fixed policy.

    ``"advisor"`` is the plan as run; each policy counts the tasks where it ran
    (``tasks``), so compare means over the same tasks (``per_task``).
    """
    result = {"advisor": _regret_summary({r["task"]: r["regret_pp"] for r in rows})}
    for policy in policy_names():
        regrets = {}
        for row in rows:
            accuracy = policy_accuracy(row, policy)
            if accuracy is not None:
                regrets[row["task"]] = 100 * (row["oracle_best"] - accuracy)
        result[policy] = _regret_summary(regrets)
    return result


def best_fixed_policy(regrets: dict[str, dict[str, Any]], tasks: int) -> str | None:
    """The fixed policy with the lowest mean regret among those run on all `tasks` tasks."""
    complete = {k: v for k, v in regrets.items() if k != "advisor" and v["tasks"] == tasks}
    return min(complete, key=lambda k: complete[k]["mean_regret_pp"]) if complete else None


def similarity_ablation(rows: Sequence[dict[str, Any]],
                        calibrated: dict[str, Any] | None = None) -> dict[str, Any]:
    """Leave-one-task-out fit of the thresholds with and without the similarity column.

    Args:
        rows: The scored task rows.
        calibrated: :func:`~benchmarks.advice_quality.calibration.calibrate` of
            `rows` when the caller has it (the fit with similarity is not run
            twice). Defaults to `None` (fitted here).

    Returns:
        The two folds' summaries (``with_similarity``, ``without_similarity``)
        and ``similarity_helps``: whether the fit that may use similarity has
        the lower mean regret.
    """
    calibrated = calibration.calibrate(rows) if calibrated is None else calibrated
    with_similarity = calibrated.get("leave_one_task_out")
    without = calibration.calibrate(rows, NO_SIMILARITY_GRID).get("leave_one_task_out")
    if with_similarity is None or without is None:
        return {"note": "Needs at least 2 tasks run with all four regimes."}

    def brief(loto: dict[str, Any]) -> dict[str, Any]:
        return {k: loto[k] for k in ("hit_rate", "paired_hit_rate", "mean_regret_pp", "max_regret_pp")}

    return {"with_similarity": brief(with_similarity), "without_similarity": brief(without),
            "similarity_helps": bool(with_similarity["mean_regret_pp"] < without["mean_regret_pp"])}


def format_policies(regrets: dict[str, dict[str, Any]], ablation: dict[str, Any], tasks: int) -> str:
    """The printed lines: one per policy (mean/max regret, tasks run), the verdict and the ablation."""
    lines = [f"{'policy':<18}{'tasks':>6}{'mean regret pp':>16}{'max regret pp':>15}"]
    for name, value in regrets.items():
        if not value["tasks"]:
            lines.append(f"{name:<18}{0:>6}{'not run':>16}")
            continue
        lines.append(f"{name:<18}{value['tasks']:>6}{value['mean_regret_pp']:>16.2f}"
                     f"{value['max_regret_pp']:>15.2f}")
    best = best_fixed_policy(regrets, tasks)
    if best is not None:
        margin = regrets[best]["mean_regret_pp"] - regrets["advisor"]["mean_regret_pp"]
        lines.append(f"best fixed policy: {best} ({regrets[best]['mean_regret_pp']:.2f} pp); the advisor is "
                     f"{abs(margin):.2f} pp {'below' if margin > 0 else 'above'} it "
                     f"(target: >= 0.5 pp below)")
    if "with_similarity" in ablation:
        a, b = ablation["with_similarity"], ablation["without_similarity"]
        lines.append(f"ablation (leave one task out): with similarity {a['mean_regret_pp']:.2f} pp mean, "
                     f"{a['hit_rate']:.0%} hits ({a['paired_hit_rate']:.0%} paired); without "
                     f"{b['mean_regret_pp']:.2f} pp, {b['hit_rate']:.0%} ({b['paired_hit_rate']:.0%} paired): "
                     + ("similarity helps" if ablation["similarity_helps"]
                        else "similarity did not lower the regret on this suite"))
    return "\n".join(lines)
