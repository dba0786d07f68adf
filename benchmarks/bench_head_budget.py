"""Does ``last-layer`` gain from a longer head budget? (issue 17: the converged oracle's budget check)

On the converged oracle's tasks every ``last-layer`` run reached its 100-epoch
head budget (best epoch = last): its validation accuracy was flat while its
loss kept falling. The issue counts a run stopped by a cap as converged only if
doubling the budget moves it by < 0.3 pp. This fits the advisor's
``last-layer`` plan for each task at its own ``head_epochs`` and at
``--factor`` times that, on the same split and seeds as the oracle
(:class:`benchmarks.advice_quality.runner.Runner`), and prints test accuracy
(the split's test images and the held-out ones), best / run epochs, and the
change in points. One JSON line per run goes to ``--results``.

Run::

    python -m benchmarks.bench_head_budget                       # mnist-5k-300, digits-300
    python -m benchmarks.bench_head_budget --tasks digits-300 --seeds 0 --factor 4
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="mnist-5k-300,digits-300")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--factor", type=int, default=2, help="the longer budget, in plan budgets")
    parser.add_argument("--heldout", type=int, default=2_000)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FINETUNE_ADVISOR_CACHE", tempfile.mkdtemp(prefix="bench-head-budget-"))
    from benchmarks.advice_quality.report import append_line, load_line
    from benchmarks.advice_quality.runner import Runner, task_plan

    print(load_line())
    header = f"{'task':16} {'seed':>4} {'head epochs':>11} {'best/run':>9} {'val':>6} {'test':>6} {'d test pp':>9}"
    print(header)
    print("-" * len(header))
    runner = Runner()
    for spec in args.tasks.split(","):
        advice, plan, heldout = task_plan(spec, runner, "last-layer", heldout=args.heldout)
        for seed in (int(s) for s in args.seeds.split(",")):
            base = None
            for epochs in (plan.head_epochs, plan.head_epochs * args.factor):
                longer = dataclasses.replace(plan, seed=seed, head_epochs=epochs)
                scores = runner.run(advice, longer, heldout)
                budget = scores.get("budget") or {}
                base = scores["test_accuracy"] if base is None else base
                row = {"task": spec, "seed": seed, "head_epochs": epochs, "image_size": plan.image_size,
                       "best_epoch": budget.get("best_epoch"), "epochs_run": budget.get("epochs_run"),
                       "val_accuracy": scores["val_accuracy"], "test_accuracy": scores["test_accuracy"],
                       "n_test": len(scores["test_correct"]), "fit_s": scores["fit_s"]}
                print(f"{spec:16} {seed:>4} {epochs:>11} {row['best_epoch']!s:>4}/{row['epochs_run']!s:<4} "
                      f"{row['val_accuracy']:>6.3f} {row['test_accuracy']:>6.3f} "
                      f"{100 * (row['test_accuracy'] - base):>+9.2f}", flush=True)
                append_line(args.results, row)


if __name__ == "__main__":
    main()
