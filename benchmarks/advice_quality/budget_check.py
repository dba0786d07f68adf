"""The doubled-budget check: did a fine-tuning run stop at a plateau, or at its budget?

A run converged when giving it more epochs does not move it. This module puts
the same settings of two advice-quality results side by side, one run at the
plans' own budget and one at ``--budget-scale 2`` (more fine-tuning, head and
warm-up epochs; the same patience), and prints per (task, regime, rate): the
test accuracy at each budget, the change, how far apart the seeds of the base
run were (the noise the change has to beat), an exact McNemar test of the first
seed's per-image correctness at the two budgets, and where the scaled run
stopped.

    python -m benchmarks.advice_quality.budget_check BASE.json SCALED.json

A setting *moved* when the change is at least ``DOUBLED_BUDGET_PP`` points, the paired
test tells the two budgets apart (p < ``scoring.PAIRED_ALPHA``) and the change
exceeds the base run's seed spread; the issue's bar is a change under 0.3 points.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.advice_quality.scoring import DOUBLED_BUDGET_PP, PAIRED_ALPHA, paired_p_value

#: The verdict of a setting that moved less than the bar.
UNDER_BAR = f"under {DOUBLED_BUDGET_PP:g} pp"
REGIMES = ("last-layer", "partial", "full")


def seed_accuracies(entry: dict[str, Any], seeds: int) -> list[float]:
    """Test accuracy per seed of one searched setting.

    Older results store only the mean and the first seed's per-image
    correctness; with two seeds the second is recovered from them.

    Example:
        >>> seed_accuracies({"test_accuracy": 0.75, "test_correct": "1110"}, 2)
        [0.75, 0.75]
        >>> seed_accuracies({"test_accuracy": 0.7, "test_correct": "1100"}, 2)
        [0.5, 0.9]
        >>> seed_accuracies({"seed_test_accuracy": [0.8, 0.6], "test_accuracy": 0.7}, 2)
        [0.8, 0.6]
    """
    if entry.get("seed_test_accuracy"):
        return [float(a) for a in entry["seed_test_accuracy"]]
    correct = entry.get("test_correct") or ""
    if seeds != 2 or not correct:  # one seed (its mean), or too little stored to separate them
        return [float(entry["test_accuracy"])]
    first = correct.count("1") / len(correct)
    return [round(first, 12), round(2 * float(entry["test_accuracy"]) - first, 12)]


def searched_runs(results: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """``{(task, regime, rate): searched run}`` of a results JSON (the rate as a string: ``"search"`` too)."""
    return {(row["task"], regime, str(s["rate"])): s
            for row in results["rows"] for regime, entry in row.get("regimes", {}).items()
            if regime in REGIMES for s in entry.get("search", ())}


def budget_scale(results: dict[str, Any]) -> float:
    """The ``--budget-scale`` a results JSON was run at (1 for the oracle, and for merged files).

    Example:
        >>> budget_scale({"settings": {"budget_scale": 2.0}}), budget_scale({"settings": None})
        (2.0, 1.0)
    """
    return float((results.get("settings") or {}).get("budget_scale") or 1.0)


def compare(base: dict[str, Any], scaled: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per setting run in both results (same task, regime and rate)."""
    seeds = (len(base.get("settings", {}).get("seeds", [0, 1])),
             len(scaled.get("settings", {}).get("seeds", [0, 1])))
    scale = budget_scale(scaled)
    old, new = searched_runs(base), searched_runs(scaled)
    records = []
    for key in sorted(old.keys() & new.keys()):
        a, b = old[key], new[key]
        base_seeds, scaled_seeds = seed_accuracies(a, seeds[0]), seed_accuracies(b, seeds[1])
        delta = 100 * (b["test_accuracy"] - a["test_accuracy"])
        spread = 100 * (max(base_seeds) - min(base_seeds)) if len(base_seeds) > 1 else math.nan
        p = paired_p_value(a.get("test_correct"), b.get("test_correct"))
        budget = b.get("budget") or {}
        moved = (abs(delta) >= DOUBLED_BUDGET_PP and p is not None and p < PAIRED_ALPHA
                 and not (abs(delta) <= spread))
        records.append({
            "task": key[0], "regime": key[1], "rate": key[2], "scale": scale,
            "base_test": a["test_accuracy"], "scaled_test": b["test_accuracy"], "delta_pp": delta,
            "base_seeds": base_seeds, "scaled_seeds": scaled_seeds, "seed_spread_pp": spread,
            "paired_p": p, "best_epoch": budget.get("best_epoch"), "epochs_run": budget.get("epochs_run"),
            "max_epochs": budget.get("max_epochs"),
            "verdict": (UNDER_BAR if abs(delta) < DOUBLED_BUDGET_PP else "moved" if moved
                        else "within noise")})
    return records


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """The printed table of :func:`compare`, and a one-line summary."""
    header = (f"{'task':<20}{'regime':<11}{'rate':>8}{'1x test':>9}{'2x test':>9}{'change':>8}"
              f"{'seeds 1x':>15}{'spread':>7}{'paired p':>9}{'2x stop':>12}  verdict")
    lines = [header, "-" * len(header)]
    for r in records:
        stop = (f"{r['best_epoch']}/{r['epochs_run']}/{r['max_epochs']}"
                if r["epochs_run"] is not None else "-")
        seeds = "/".join(f"{100 * s:.1f}" for s in r["base_seeds"])
        p = "-" if r["paired_p"] is None else f"{r['paired_p']:.3f}"
        lines.append(f"{r['task']:<20}{r['regime']:<11}{r['rate']:>8}{100 * r['base_test']:>9.1f}"
                     f"{100 * r['scaled_test']:>9.1f}{r['delta_pp']:>+8.1f}{seeds:>15}"
                     f"{r['seed_spread_pp']:>7.1f}{p:>9}{stop:>12}  {r['verdict']}")
    verdicts = [r["verdict"] for r in records]
    lines.append(f"{len(records)} settings: {verdicts.count(UNDER_BAR)} moved under {DOUBLED_BUDGET_PP} pp, "
                 f"{verdicts.count('within noise')} more within the seeds' spread or the paired test's "
                 f"noise, {verdicts.count('moved')} moved (2x stop: best epoch / epochs run / budget)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.advice_quality.budget_check",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path, help="Results JSON at the plans' own budget.")
    parser.add_argument("scaled", type=Path, nargs="+", help="Results JSON(s) at --budget-scale 2.")
    args = parser.parse_args(argv)
    base = json.loads(args.base.read_text())
    records = []
    for path in args.scaled:
        records += compare(base, json.loads(path.read_text()))
    print(format_table(records))
    return records


if __name__ == "__main__":
    main()
