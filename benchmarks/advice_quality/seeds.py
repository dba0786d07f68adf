"""Pooling training seeds: runs of one regime with other seeds, on the same test images, become one entry.

The fine-tuning issue asks for two seeds on tasks under 2,000 images; a
converged task costs up to an hour per seed on 2 cores, so the second seed
runs on its own (``--seeds 1``) and is pooled here when merged
(``--calibrate-from``). Each searched rate's accuracies become the mean over
the seeds; the chosen rate is chosen again on the mean validation accuracy,
as a two-seed run would have chosen it; per-seed test accuracy, per-image
correctness and budget curves are kept, so the paired test and the
convergence check can look at every seed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.advice_quality.budget_check import seed_accuracies

#: Accuracies and times averaged over the seeds, weighted by how many seeds each run had.
MEAN_KEYS = ("val_accuracy", "test_accuracy", "split_test_accuracy", "heldout_accuracy", "fit_s")


def entry_seeds(entry: dict[str, Any], default: Sequence[int] | None) -> list[int] | None:
    """The training seeds a regime entry (or one searched rate) averaged: its own, else its run's.

    Rows of a merged file (which has no settings) say it only where they were
    merged after seeds were recorded per entry; before that only the per-seed
    test accuracies (``seed_test_accuracy``, the first seeds: 0, then 1) tell
    how many. Without either the seeds are unknown (``None``): the oracle's
    older rows ran seeds 0 and 1 or seed 0 alone, and nothing stored tells them apart.

    Example:
        >>> entry_seeds({"seeds": [0, 1]}, [0]), entry_seeds({}, [3])
        ([0, 1], [3])
        >>> entry_seeds({"seed_test_accuracy": [0.8, 0.9]}, None), entry_seeds({}, None) is None
        ([0, 1], True)
    """
    if "seeds" in entry:
        return None if entry["seeds"] is None else [int(s) for s in entry["seeds"]]
    if default is not None:
        return [int(s) for s in default]
    if entry.get("seed_test_accuracy"):
        return list(range(len(entry["seed_test_accuracy"])))
    return None


def seeds_from_sources(results: dict[str, Any], task: str, *, root: Path | None = None) -> list[int] | None:
    """The seeds every run of `task` merged into `results` used, when they all used the same; else ``None``.

    A merged file lists its sources (path, settings, tasks); a source that is
    itself a merged file is read in turn (from its path, or from `root` by
    its name). Used for rows merged before seeds were recorded per entry.

    Example:
        >>> merged = {"mode": "merged", "sources": [
        ...     {"path": "a.json", "settings": {"seeds": [0, 1]}, "tasks": ["t", "u"]},
        ...     {"path": "b.json", "settings": {"seeds": [0]}, "tasks": ["u"]}]}
        >>> seeds_from_sources(merged, "t"), seeds_from_sources(merged, "u")
        ([0, 1], None)
    """
    found = _source_seeds(results, task, root)
    return None if found is None or len(found) != 1 else list(next(iter(found)))


def _source_seeds(results: dict[str, Any], task: str, root: Path | None) -> set[tuple[int, ...]] | None:
    found: set[tuple[int, ...]] = set()
    for source in results.get("sources", ()):
        if task not in source.get("tasks", ()):
            continue
        settings = source.get("settings")
        if settings:
            found.add(tuple(int(s) for s in settings.get("seeds") or ()))
            continue
        path = Path(source["path"])
        if not path.exists() and root is not None:
            path = root / path.name
        if not path.exists():
            return None  # a merged source not on this machine: unknown
        nested = _source_seeds(json.loads(path.read_text()), task, root)
        if nested is None:
            return None
        found |= nested
    return found


def label_seeds(row: dict[str, Any], seeds: Sequence[int] | None) -> dict[str, Any]:
    """Return `row` with each regime entry and searched rate labelled with its seeds (kept where set).

    `seeds` are its run's ``--seeds``, or for a merged file's rows those of
    :func:`seeds_from_sources` (``None`` where unknown); an entry's own label
    (a file merged after labels existed) wins.
    """
    regimes = {}
    for regime, entry in row.get("regimes", {}).items():
        search = entry.get("search") or [entry]
        own = entry_seeds(entry, seeds if seeds is not None else entry_seeds(search[0], None))
        regimes[regime] = {**entry, "seeds": own,
                           "search": [{**s, "seeds": entry_seeds(s, own)} for s in entry.get("search", ())]}
    return {**row, "regimes": regimes}


def _per_seed(run: dict[str, Any], key: str, first_key: str) -> list[Any]:
    """Per-seed values of `key` (``seed_<key>``), else the first seed's `first_key` alone."""
    return list(run.get(f"seed_{key}") or [run.get(first_key)])


def pool_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One searched rate run with disjoint seeds `a` and `b`, pooled: means weighted by seed count.

    Example:
        >>> one = {"rate": 1e-4, "seeds": [0], "val_accuracy": 0.8, "test_accuracy": 0.70,
        ...        "fit_s": 10.0, "test_correct": "10", "budget": {"best_epoch": 4}}
        >>> two = {"rate": 1e-4, "seeds": [1], "val_accuracy": 0.9, "test_accuracy": 0.80,
        ...        "fit_s": 20.0, "test_correct": "11", "budget": {"best_epoch": 6}}
        >>> pooled = pool_runs(one, two)
        >>> pooled["seeds"], round(pooled["test_accuracy"], 3), pooled["seed_test_accuracy"]
        ([0, 1], 0.75, [0.7, 0.8])
        >>> pooled["test_correct"], pooled["seed_test_correct"], pooled["fit_s"]
        ('10', ['10', '11'], 15.0)
    """
    na, nb = len(a["seeds"]), len(b["seeds"])
    pooled = dict(a)
    for key in MEAN_KEYS:
        if a.get(key) is not None and b.get(key) is not None:
            pooled[key] = (na * a[key] + nb * b[key]) / (na + nb)
    pooled["seeds"] = [*a["seeds"], *b["seeds"]]
    pooled["seed_test_accuracy"] = [*seed_accuracies(a, na), *seed_accuracies(b, nb)]
    pooled["seed_test_correct"] = _per_seed(a, "test_correct", "test_correct") + _per_seed(
        b, "test_correct", "test_correct")
    pooled["seed_budgets"] = _per_seed(a, "budgets", "budget") + _per_seed(b, "budgets", "budget")
    return pooled


def pool_entries(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any] | None:
    """One regime entry from two runs with disjoint seeds; ``None`` when they cannot be pooled.

    Rates searched by both are pooled (:func:`pool_runs`); the chosen rate is the
    pooled rate with the best mean validation accuracy (then the faster), as
    :func:`.runner.evaluate_task` chooses it. Rates only one run searched stay
    in ``search`` but are not chosen. ``None`` when the seeds overlap (a re-run,
    which replaces the earlier entry), either's seeds are unknown, or no rate
    was searched by both.
    """
    if earlier.get("seeds") is None or later.get("seeds") is None:
        return None
    if set(earlier["seeds"]) & set(later["seeds"]):
        return None
    theirs = {str(s["rate"]): s for s in later.get("search", ())}
    pooled = [pool_runs(s, theirs[str(s["rate"])]) for s in earlier.get("search", ())
              if str(s["rate"]) in theirs]
    if not pooled:
        return None
    both = {str(s["rate"]) for s in pooled}
    alone = [s for s in [*earlier.get("search", ()), *later.get("search", ())] if str(s["rate"]) not in both]
    best = max(pooled, key=lambda s: (s["val_accuracy"], -s["fit_s"]))
    default = next((s for s in pooled if s.get("default")), None)
    entry = {**earlier, "seeds": pooled[0]["seeds"], "search": [*pooled, *alone],
             "chosen_rate": best["rate"], "default_rate_test_accuracy": None if default is None
             else default["test_accuracy"]}
    for key in ("test_accuracy", "split_test_accuracy", "val_accuracy", "fit_s", "test_correct", "budget",
                "seed_test_accuracy", "seed_test_correct", "seed_budgets"):
        entry[key] = best.get(key)
    entry.pop("doubled", None)  # a budget check of one seed's run: attached again after pooling
    return entry


def pool_regimes(earlier: dict[str, Any], later: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`later`'s regimes, each pooled with `earlier`'s run of it where the seeds differ; and which were.

    A regime both ran with overlapping seeds is replaced by `later`'s run, as a
    re-run always was.
    """
    regimes, pooled = dict(later["regimes"]), []
    for regime, entry in later["regimes"].items():
        if regime in earlier["regimes"]:
            both = pool_entries(earlier["regimes"][regime], entry)
            if both is not None:
                regimes[regime] = both
                pooled.append(regime)
    return regimes, sorted(pooled)
