"""Why does fine-tuning dip after its probe? The plan's fine-tuning with one setting changed at a time.

On the converged oracle's digits 300 (issue 17) every ``full`` run's
validation accuracy fell from its probe's 0.94 to 0.69 within the warm-up and
was stopped by the patience while recovering, so the run returned its probe.
This fits the advisor's ``full`` (or ``partial``) plan for a task once per
named variant, each a :func:`dataclasses.replace` of the plan (one setting
changed), on the oracle's split, seed and test images
(:class:`benchmarks.advice_quality.runner.Runner`), and prints the per-epoch
training and validation accuracy, the best / run epochs and the test accuracy.
One JSON line per run goes to ``--results``.

Variants (``--variants``, comma-separated):

- ``plan``: the plan as the advisor writes it (one rate: ``rate_scales=(1,)``);
- ``no-aug``: no augmentation while fine-tuning;
- ``head-rate``: the head learns at the backbone's rate (no 10x head rate);
- ``no-warmup``: no warm-up epochs;
- ``adamw``: AdamW at the plan's rates instead of SGD with momentum;
- ``patience-12``: the plan with patience 12 (is the dip recovered?);
- ``budget-2x``: twice the plan's epochs and patience (was the run stopped by its budget?);
- ``rate-3x`` / ``rate-10x``: the backbone and head at 3x / 10x the plan's rates (is the
  oracle's rate grid wide enough?);
- ``fastai`` / ``fastai-budget-2x``: fastai's recipe as the oracle runs it
  (:func:`benchmarks.advice_quality.runner.recipe_plan`), at its budget and at twice it;
- ``calibrated`` / ``search-calibrated`` / ``search-loss``: epochs (and, in the search,
  rates) selected on the temperature-scaled validation loss / on the raw one
  (``select_on``, :mod:`strategies.selection`).

Every variant but ``patience-12`` and the ``budget-2x`` ones runs with the plan's patience, or
``--patience``.

Run::

    python -m benchmarks.bench_fine_tune_variants --task digits-300 --variants plan,no-aug,head-rate
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path


def twice_the_budget(plan):
    """Return `plan` with twice its fine-tuning epochs and patience (warm-up unchanged)."""
    return dataclasses.replace(plan, epochs=2 * plan.epochs, patience=2 * plan.patience)


def scaled_rates(plan, scale: float):
    """Return `plan` with its backbone and head rates multiplied by `scale`."""
    return dataclasses.replace(plan, backbone_learning_rate=scale * plan.backbone_learning_rate,
                               head_learning_rate=scale * plan.head_learning_rate)


def variants(plan) -> dict:
    """Return ``{name: plan with one setting changed}``.

    All at one rate (``rate_scales=(1,)``) but ``search`` (the plan itself, its
    rate search included) and ``search-rate-3x`` (that search from 3x the rates).
    """
    from advisor.plan import Optimizer
    from benchmarks.advice_quality.runner import recipe_plan

    one = dataclasses.replace(plan, rate_scales=(1.0,))
    fastai = recipe_plan("fastai", one)
    return {
        "plan": one,
        "no-aug": dataclasses.replace(one, augmentation=()),
        "head-rate": dataclasses.replace(one, head_learning_rate=one.backbone_learning_rate),
        "no-warmup": dataclasses.replace(one, warmup_epochs=0),
        "adamw": dataclasses.replace(one, optimizer=Optimizer.ADAMW),
        "patience-12": dataclasses.replace(one, patience=12),
        "budget-2x": twice_the_budget(one),
        "rate-3x": scaled_rates(one, 3.0),
        "rate-10x": scaled_rates(one, 10.0),
        "fastai": fastai,
        "fastai-budget-2x": twice_the_budget(fastai),
        "search": plan,  # the plan as advise runs it: every rate scale, the lowest validation loss kept
        "search-rate-3x": scaled_rates(plan, 3.0),
        "calibrated": dataclasses.replace(one, select_on="calibrated-loss"),
        "search-calibrated": dataclasses.replace(plan, select_on="calibrated-loss"),
        "search-loss": dataclasses.replace(plan, select_on="loss"),
    }


#: Variants whose patience is part of what they change (``--patience`` leaves them alone).
FIXED_PATIENCE = ("patience-12", "budget-2x", "fastai-budget-2x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="digits-300")
    parser.add_argument("--regime", default="full", choices=("partial", "full"))
    parser.add_argument("--variants", default="plan,no-aug,head-rate")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--patience", type=int, default=None,
                        help="every variant's patience (default: the plan's)")
    parser.add_argument("--heldout", type=int, default=2_000)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FINETUNE_ADVISOR_CACHE", tempfile.mkdtemp(prefix="bench-ft-variants-"))
    from benchmarks.advice_quality.report import append_line, load_line
    from benchmarks.advice_quality.runner import Runner, task_plan

    print(load_line(), flush=True)
    runner = Runner()
    advice, plan, heldout = task_plan(args.task, runner, args.regime, heldout=args.heldout)
    print(f"{args.task}: {args.regime} at {plan.image_size} px, head {plan.head_learning_rate:g}, "
          f"backbone {plan.backbone_learning_rate:g}, {plan.optimizer.value}, warm-up "
          f"{plan.warmup_epochs}, patience {plan.patience}, augmentation {plan.augmentation}, "
          f"batch {plan.batch_size}, frozen {len(plan.frozen_blocks)} blocks", flush=True)
    table = variants(plan)
    for seed in (int(s) for s in args.seeds.split(",")):
        for variant in args.variants.split(","):
            started = time.perf_counter()
            chosen = dataclasses.replace(table[variant], seed=seed)
            if args.patience is not None and variant not in FIXED_PATIENCE:
                chosen = dataclasses.replace(chosen, patience=args.patience)
            scores = runner.run(advice, chosen, heldout)
            budget = scores.get("budget") or {}
            row = {"task": args.task, "regime": args.regime, "variant": variant, "seed": seed,
                   "best_epoch": budget.get("best_epoch"), "epochs_run": budget.get("epochs_run"),
                   "start": budget.get("start"), "curve": budget.get("curve"),
                   "train_curve": scores.get("train_curve"),
                   "val_accuracy": scores["val_accuracy"], "test_accuracy": scores["test_accuracy"],
                   "n_test": len(scores["test_correct"]), "fit_s": scores["fit_s"],
                   "wall_s": time.perf_counter() - started}
            curve = " ".join(f"{v:.3f}" for v in row["curve"] or [])
            train = " ".join(f"{v:.3f}" for v in row["train_curve"] or [])
            print(f"{variant:12} seed {seed} best/run {row['best_epoch']}/{row['epochs_run']} "
                  f"val {row['val_accuracy']:.3f} test {row['test_accuracy']:.4f} "
                  f"fit {row['fit_s']:.0f} s\n  val   (start {row['start']:.3f}) {curve}\n"
                  f"  train {train}", flush=True)
            append_line(args.results, row)


if __name__ == "__main__":
    main()
