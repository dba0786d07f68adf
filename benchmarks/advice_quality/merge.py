"""Merging earlier results: a later run wins per task, every row re-picked under today's thresholds."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.advice_quality import calibration
from benchmarks.advice_quality.budget_check import budget_scale
from benchmarks.advice_quality.report import (
    machine,
    print_extras,
    suite_results,
    write_results,
)
from benchmarks.advice_quality.runner import SPLIT_SEED, task_folder
from benchmarks.advice_quality.scoring import score_row
from benchmarks.advice_quality.seeds import label_seeds, pool_regimes, seeds_from_sources

#: Where results are kept in the repository: a merged file's sources are looked up here by name.
RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def merge_rows(sources: Sequence[dict[str, Any]],
               scaled: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Return the task rows of several results, a later source winning per task, re-scored.

    A row of a run without regimes (``--regimes '' --recipes ... --expected-cost``)
    adds its recipes and expected costs to the earlier row of its task instead
    of replacing it. A later run of some regimes on the same test images (the
    same ``n_test`` and ``n_heldout``: the split and held-out draw are
    deterministic) replaces those regimes and keeps the earlier row's others,
    listed in ``regimes_from_earlier`` (e.g. ``--regimes svm,last-layer`` re-run
    after a change to the frozen regimes).

    Each row is re-picked under the regime thresholds in :mod:`advisor.config`
    now (the runs may predate them; ``pick_at_run`` keeps a pick that changed),
    and the advisor's plan is then scored at the picked regime's default rate:
    the run fitted that plan already, as part of the regime's rate search.
    Rows from runs before ``n_test`` was recorded get it by re-scanning the
    task's folder with the fixed split seed (the split is deterministic), or
    ``None`` when the set cannot be written on this machine.

    A row of a ``--no-plan`` run keeps the earlier row's plan (same test
    images), or is scored at its pick's default rate when it ran that regime.
    `scaled` (results at ``--budget-scale`` 2) are not rows: each regime entry
    whose chosen rate they re-ran gets its budget check (:func:`attach_doubled`).

    A later run of a regime with other training seeds (``--seeds 1`` after
    ``--seeds 0``) on the same test images is pooled with the earlier run
    (:func:`.seeds.pool_regimes`: means over the seeds, the rate chosen again),
    listed in ``pooled_seeds``, and the plan is scored again from the pooled
    run of its pick.
    """
    from advisor.decide import RegimeRules

    current = calibration.thresholds_of(RegimeRules())
    by_task: dict[str, dict[str, Any]] = {}
    for source in sources:
        seeds = (source.get("settings") or {}).get("seeds")
        for row in source["rows"]:
            row = label_seeds(row, seeds if seeds is not None or source.get("mode") != "merged"
                              else seeds_from_sources(source, row["task"], root=RESULTS_DIR))
            earlier = by_task.get(row["task"])
            if earlier is not None and not row["regimes"]:  # a recipes-only run: add what it ran
                earlier["recipes"] = {**earlier.get("recipes", {}), **row.get("recipes", {})}
                earlier["expected_cost"] = row.get("expected_cost") or earlier.get("expected_cost")
                continue
            row = dict(row)
            if row.get("plan") is None and earlier is not None and _same_test_images(earlier, row):
                row["plan"] = earlier["plan"]  # a --no-plan run: the earlier run fitted the plan
            if earlier is not None:  # a later regime run keeps what it did not re-run
                row["recipes"] = {**earlier.get("recipes", {}), **row.get("recipes", {})}
                row["expected_cost"] = row.get("expected_cost") or earlier.get("expected_cost")
                kept = sorted(set(earlier["regimes"]) - set(row["regimes"]))
                if _same_test_images(earlier, row):
                    row["regimes"], pooled = pool_regimes(earlier, row)
                    if pooled:
                        row["pooled_seeds"] = sorted({*earlier.get("pooled_seeds", ()), *pooled})
                        row["plan_unpooled"] = row.get("plan") or earlier.get("plan")
                        row["plan"] = None  # scored again below, from the pooled run of its pick
                    elif earlier.get("pooled_seeds"):
                        row["pooled_seeds"] = [r for r in earlier["pooled_seeds"] if r in kept]
                if kept and _same_test_images(earlier, row):
                    row["regimes"] = {**earlier["regimes"], **row["regimes"]}
                    row["regimes_from_earlier"] = kept
            by_task[row["task"]] = row
    attach_doubled([r for r in by_task.values() if r["regimes"]], scaled)
    rows = []
    for row in by_task.values():
        if not row["regimes"]:
            print(f"warning: {row['task']} has recipe runs only, and no regime run to merge them into",
                  file=sys.stderr)
            continue
        if row.get("n_test") is None:
            row["n_test"] = _count_test_images(row["task"])
        pick = calibration.picked_regime(row["profile"], current)
        entry = calibration.default_entry(row, pick)
        unpooled = row.pop("plan_unpooled", None)  # scratch of this merge, not a result
        if row.get("plan") is None and entry is None and unpooled:
            row["plan"] = unpooled  # its pick was not pooled: the earlier plan stands
        if row.get("plan") is None and entry is None:
            print(f"warning: {row['task']} has no plan run (--no-plan) and no run of its pick "
                  f"{pick!r} to score it by; left out", file=sys.stderr)
            continue
        if (pick != row["pick"] or row.get("plan") is None) and entry is not None:
            row["pick_at_run"] = row.get("pick_at_run", row["pick"])
            row["pick"] = pick
            row["plan"] = {"regime": pick, "test_accuracy": entry["test_accuracy"],
                           "fit_s": entry["fit_s"], "from_search": True,
                           "test_correct": entry.get("test_correct"),
                           "seeds": entry.get("seeds"), "seed_test_correct": entry.get("seed_test_correct")}
        row.update(score_row(row))
        rows.append(row)
    return rows


def _same_test_images(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    """Whether two rows of a task were scored on the same test images (so their regimes compare)."""
    return (earlier.get("n_test") is not None and earlier.get("n_test") == later.get("n_test")
            and earlier.get("n_heldout") == later.get("n_heldout"))


def _count_test_images(spec: str) -> int | None:
    from advisor.data import scan_dataset
    from advisor.errors import DatasetError
    try:
        return len(scan_dataset(task_folder(spec), seed=SPLIT_SEED).files("test"))
    except DatasetError as exc:  # e.g. the set's package is not installed here
        print(f"warning: no test size for {spec}: {exc}", file=sys.stderr)
        return None


def attach_doubled(rows: Sequence[dict[str, Any]], scaled: Sequence[dict[str, Any]]) -> int:
    """Give each regime of `rows` the budget check of its chosen rate, where `scaled` ran it.

    `scaled` are results at ``--budget-scale`` above 1 (:mod:`.budget_check`);
    the matching regime entry gets ``doubled`` (scale, change in points,
    verdict, where the longer run stopped), and :func:`.scoring.run_converged`
    counts a run stopped by its budget as converged when that change is under
    :data:`.scoring.DOUBLED_BUDGET_PP` (when the rows are scored after it).

    A run stopped by its budget whose longer run reached a plateau is replaced
    by that longer run (its test accuracy, per-image correctness and budget
    curve; the capped run's figures kept under ``capped``): the oracle's figure
    for the regime is then a converged run, whatever the change. Returns how
    many entries got a check.

    Example:
        >>> entry = {"chosen_rate": 0.001, "test_accuracy": 0.80, "budget": {"converged": False},
        ...          "search": [{"rate": 0.001, "test_accuracy": 0.80}]}
        >>> row = {"task": "t", "regimes": {"last-layer": entry}}
        >>> longer = {"settings": {"budget_scale": 2}, "rows": [{"task": "t", "regimes": {"last-layer": {
        ...     "search": [{"rate": 0.001, "test_accuracy": 0.801, "budget": {"best_epoch": 30}}]}}}]}
        >>> attach_doubled([row], [longer]), entry["doubled"]["verdict"]
        (1, 'under 0.3 pp')
        >>> plateau = {"best_epoch": 30, "epochs_run": 42, "converged": True}
        >>> longer["rows"][0]["regimes"]["last-layer"]["search"][0] |= {"test_accuracy": 0.79, "budget": plateau}
        >>> attach_doubled([row], [longer]), entry["test_accuracy"], entry["capped"]["test_accuracy"]
        (1, 0.79, 0.8)
    """
    from benchmarks.advice_quality.budget_check import compare, searched_runs
    from benchmarks.advice_quality.scoring import converged

    attached = 0
    base = {"rows": list(rows), "settings": {}}
    for source in scaled:
        runs = searched_runs(source)
        for record in compare(base, source):
            row = next(r for r in rows if r["task"] == record["task"])
            entry = row["regimes"][record["regime"]]
            if str(entry.get("chosen_rate")) != record["rate"]:
                continue  # a rate the oracle did not choose: not this entry's check
            entry["doubled"] = {k: record[k] for k in (
                "scale", "scaled_test", "delta_pp", "paired_p", "best_epoch", "epochs_run",
                "max_epochs", "verdict")}
            longer = runs[(record["task"], record["regime"], record["rate"])]
            capped = (entry.get("capped") or entry).get("budget")
            if longer.get("budget") is not None and converged(longer["budget"]) and not converged(capped):
                _replace_by_longer(entry, longer, (source.get("settings") or {}).get("seeds"))
            attached += 1
    return attached


#: What a converged longer run replaces in a capped run's entry (and in its searched rate).
REPLACED_BY_LONGER = ("test_accuracy", "split_test_accuracy", "heldout_accuracy", "test_correct", "budget")


def _replace_by_longer(entry: dict[str, Any], longer: dict[str, Any], seeds: Sequence[int] | None) -> None:
    """Put the converged longer run's figures in `entry` (and its chosen searched rate); keep the capped ones.

    `seeds` are the longer run's (its mean is over them).
    """
    entry.setdefault("capped", {k: entry.get(k) for k in (*REPLACED_BY_LONGER, "seeds")})
    searched = next((s for s in entry.get("search", ()) if str(s["rate"]) == str(entry["chosen_rate"])), None)
    for target in (entry, searched):
        if target is not None:
            target.update({k: longer[k] for k in REPLACED_BY_LONGER if k in longer})
            if seeds is not None:
                target["seeds"] = list(seeds)
            target.pop("seed_test_correct", None)  # per-seed figures of the capped run
            target.pop("seed_test_accuracy", None)
            target.pop("seed_budgets", None)
    if searched is not None and searched.get("default"):
        entry["default_rate_test_accuracy"] = searched["test_accuracy"]


def merge_results(paths: Sequence[Path], *, out: Path) -> dict[str, Any]:
    """Merge results JSONs, print their table, calibrate on the union and write the merged JSON.

    Results at ``--budget-scale`` other than 1 are budget checks, not rows
    (:func:`attach_doubled`).
    """
    loaded = [json.loads(Path(p).read_text()) for p in paths]
    scaled = [(p, src) for p, src in zip(paths, loaded) if budget_scale(src) != 1.0]
    kept = [(p, src) for p, src in zip(paths, loaded) if budget_scale(src) == 1.0]
    paths, sources = [p for p, _ in kept], [src for _, src in kept]
    rows = merge_rows(sources, [src for _, src in scaled])
    described = [{"path": str(p), "started": src.get("started"), "settings": src.get("settings"),
                  "machine": src.get("machine"), "tasks": [r["task"] for r in src["rows"]]}
                 for p, src in zip(paths, sources)]
    settings = [d["settings"] for d in described if d["settings"]]  # a merged file has none
    differing = sorted({k for one in settings for k in one
                        if k not in ("tasks", "no_plan") and len({json.dumps(s.get(k)) for s in settings}) > 1})
    if differing:
        print(f"warning: the merged runs differ in {', '.join(differing)}", file=sys.stderr)
    repicked = [r["task"] for r in rows if r.get("pick_at_run", r["pick"]) != r["pick"]]
    print(f"advice quality (merged from {len(paths)} run(s), {len(rows)} tasks; picks under the "
          f"thresholds in advisor.config now, changed on {', '.join(repicked) or 'none'})")
    checks = [{"path": str(p), "started": src.get("started"), "settings": src.get("settings"),
               "tasks": [r["task"] for r in src["rows"]]} for p, src in scaled]
    results: dict[str, Any] = {
        "mode": "merged", "sources": described, "budget_checks": checks, "settings_differ": differing,
        "machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **suite_results(rows), "wall_s": 0.0,
    }
    print_extras(results)
    return write_results(results, out)
