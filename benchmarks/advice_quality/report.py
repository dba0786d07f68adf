"""Output: the printed table and summary lines, the machine description and the results JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.advice_quality import calibration, policies, predictions
from benchmarks.advice_quality.budget_check import budget_scale
from benchmarks.advice_quality.scoring import DOUBLED_BUDGET_PP, HIT_PP, REGIMES, summarise


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Return the printed table: one line per task, then the summary lines."""
    header = (f"{'task':<24}{'n':>7}{'cls':>4}{'sim':>6} {'peak block':<11}{'probe':>6}"
              + "".join(f"{r:>11}" for r in REGIMES)
              + f"{'oracle':>8} {'pick':<11}{'plan acc':>9}{'regret pp':>10}{'time x':>8}"
              + f"{'test n':>7}{'se pp':>6}{'paired p':>9}{'conv':>5}{'seeds':>6}")
    lines = [header, "-" * len(header)]
    for row in rows:
        accs = "".join(f"{_pct(row['regimes'][r]['test_accuracy']) if r in row['regimes'] else '-':>11}"
                       for r in REGIMES)
        probe = "-" if row["probe_accuracy"] is None else f"{row['probe_accuracy']:.2f}"
        lines.append(
            f"{row['task']:<24}{row['n']:>7}{row['classes']:>4}{row['similarity']:>6.2f} "
            f"{row['shift_peak_block']!s:<11}{probe:>6}{accs}{_pct(row['oracle_best']):>8} "
            f"{row['pick'] + ('' if row['hit'] else '*'):<11}{_pct(row['plan']['test_accuracy']):>9}"
            f"{row['regret_pp']:>10.1f}{row['time_vs_fastest_good']:>8.2f}"
            f"{row.get('n_test') or '-':>7}{_num(row.get('test_se_pp')):>6}"
            f"{'-' if row.get('paired_p') is None else format(row['paired_p'], '.3f'):>9}"
            f"{_converged_cell(row):>5}{_seeds_cell(row):>6}")
    lines.append("")
    lines.append(f"hit rate {summary['hit_rate']:.0%} ({summary['tasks']} tasks; * = miss, "
                 f"pick > {HIT_PP} pp below the oracle best)")
    if "paired_hit_rate" in summary:
        lines.append(f"paired hit rate {summary['paired_hit_rate']:.0%} (a miss only when McNemar's "
                     f"exact test on the same test images puts the pick below the best, p < 0.05)")
        lines.append("runs stopped by the budget, not a plateau (conv NO): "
                     f"{', '.join(summary.get('not_converged', [])) or 'none'}")
        doubled = summary.get("converged_by_doubling", {})
        lines.append(f"stopped by the budget, but doubling it moved test accuracy < {DOUBLED_BUDGET_PP} pp, "
                     "or the doubled run reached a plateau and stands in its place (conv 2x): " + ("; ".join(f"{t} {', '.join(r)}" for t, r in doubled.items())
                                      or "none"))
        starts = summary.get("returned_start", {})
        lines.append("fine-tuning that returned its starting probe (best epoch 0, at the chosen rate): "
                     + ("; ".join(f"{t} {', '.join(r)}" for t, r in starts.items()) or "none"))
    per_seed = {r["task"]: r["seed_paired_p"] for r in rows if len(r.get("seed_paired_p") or ()) > 1}
    if per_seed:  # rows pooled from runs of several seeds: the paired test of each seed alone
        lines.append("paired p per seed (pick against the best, seeds pooled from separate runs): " + "; ".join(
            f"{t} " + "/".join("-" if p is None else f"{p:.3f}" for p in ps) for t, ps in per_seed.items()))
    lines.append(f"regret: mean {summary['mean_regret_pp']:.2f} pp, max {summary['max_regret_pp']:.2f} pp")
    if "resolved_misses" in summary:
        lines.append(f"regret > 2 se of the best (a miss the test split resolves): "
                     f"{', '.join(summary['resolved_misses']) or 'none'}")
    lines.append(f"total time {summary['total_s']:.0f} s")
    lines.append("targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in summary["targets_met"].items()))
    return "\n".join(lines)


def _converged_cell(row: dict[str, Any]) -> str:
    """``yes`` (every run at a plateau), ``2x`` (some only by the doubled-budget check) or ``NO``."""
    if not row.get("converged", True):
        return "NO"
    return "2x" if row.get("converged_by_doubling") else "yes"


def _seeds_cell(row: dict[str, Any]) -> str:
    """Training seeds per regime: ``2``, or ``1-2`` when the regimes ran different numbers."""
    counts = row.get("seeds") or [1]
    return str(counts[0]) if len(counts) == 1 else f"{min(counts)}-{max(counts)}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def append_line(path: Path | None, row: dict[str, Any]) -> None:
    """Append `row` as one JSON line to `path` (``--results`` of the single-question benchmarks); `None`: nothing."""
    if path is not None:
        with path.open("a") as out:
            out.write(json.dumps(row) + "\n")


def load_line() -> str:
    """One line for a benchmark's log: the Keras backend and version and the load average."""
    import keras

    return (f"backend={keras.config.backend()} keras={keras.__version__} load average "
            + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


def machine() -> dict[str, Any]:
    """Return the machine and software description stored with the results."""
    from advisor.environment import describe_environment

    info = describe_environment()
    info["processor"] = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["usable_cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return info


def suite_results(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Print the table of `rows`; return them with their summary, calibration, gap correlation and policies.

    Rows of a recipes-only run (no regime run, so no oracle) and of a ``--no-plan`` run
    (no plan of its own) are kept but not scored.
    """
    scored = [r for r in rows if "oracle_best" in r]
    summary = summarise(scored)
    if scored:
        print(format_table(scored, summary))
    calibrated = calibration.calibrate(scored)
    return {"rows": list(rows), "summary": summary,
            "calibration": calibrated, "gap_correlation": calibration.gap_correlation(scored),
            "policies": policies.policy_regrets(scored),
            "similarity_ablation": policies.similarity_ablation(scored, calibrated),
            "predictions": predictions.prediction_check(scored)}


def write_results(results: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write `results` to ``out/advice_quality-<mode>-<time>.json``; return them with ``path`` added.

    A run at ``--budget-scale`` 2 (a budget check, not oracle rows) is named
    ``advice_quality-budget2x-<time>.json``.
    """
    out.mkdir(parents=True, exist_ok=True)
    scale = budget_scale(results)
    kind = results["mode"] if scale == 1.0 else f"budget{scale:g}x"
    path = out / f"advice_quality-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str))
    print(f"results: {path}")
    results["path"] = str(path)
    return results


def _hits(outcome: dict[str, Any]) -> str:
    """``hit 62% (paired 88%)``: within the fixed margin, and by McNemar's test (results of older runs lack it)."""
    paired = outcome.get("paired_hit_rate")
    return f"hit {outcome['hit_rate']:.0%}" + ("" if paired is None else f" (paired {paired:.0%})")


def print_extras(results: dict[str, Any]) -> None:
    cal = results["calibration"]
    if "leave_one_task_out" in cal:
        loto = cal["leave_one_task_out"]
        print(f"calibration: current thresholds {cal['current']} -> in-sample "
              f"{_hits(cal['current_in_sample'])}, regret {cal['current_in_sample']['mean_regret_pp']:.2f} pp")
        print(f"calibration: fitted on all tasks {cal['fitted_all_tasks']} -> in-sample "
              f"{_hits(cal['fitted_in_sample'])}, regret {cal['fitted_in_sample']['mean_regret_pp']:.2f} pp")
        print(f"calibration: leave-one-task-out {_hits(loto)}, regret mean "
              f"{loto['mean_regret_pp']:.2f} pp, max {loto['max_regret_pp']:.2f} pp")
    else:
        print(f"calibration: {cal.get('note')}")
    gap = results["gap_correlation"]
    for name, fit in (gap.get("inputs") or ({"similarity": gap} if "rho" in gap else {})).items():
        print(f"{name} vs fine-tuned-minus-frozen gap: Spearman rho {fit['rho']:.2f} "
              f"(p {fit['p_value']:.2g}, {fit.get('tasks', len(gap['points']))} tasks)")
    if gap.get("points"):
        print("gap pp per task: " + ", ".join(
            f"{p['task']} {p['gap_pp']:+.1f} (curve {_signed(p.get('curve_gain_pp'))})"
            for p in gap["points"]))
    for family, fit in (gap.get("families") or {}).items():
        print(f"within {family} ({len(fit['tasks'])} tasks, the same images corrupted): similarity vs gap "
              f"Spearman rho {fit['rho']:.2f} (p {fit['p_value']:.2g}); " + ", ".join(
                  f"{t['task']} {t['similarity']:.2f} {t['gap_pp']:+.1f}" for t in fit["tasks"]))
    if results.get("policies") and results["policies"]["advisor"]["tasks"]:
        print(policies.format_policies(results["policies"], results.get("similarity_ablation", {}),
                                       results["policies"]["advisor"]["tasks"]))
    if results.get("predictions", {}).get("pairs"):
        print(predictions.format_prediction_check(results["predictions"]))
    for task, kinds in results.get("corruption_correlation", {}).items():
        print(f"similarity vs corruption severity on {task}: " + ", ".join(
            f"{k} rho {v['rho']:.2f}" for k, v in kinds.items() if isinstance(v, dict)))
