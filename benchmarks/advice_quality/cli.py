"""The command line: ``python -m benchmarks.advice_quality [--quick | --calibrate-from JSON...]``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.advice_quality.corruptions import (
    CORRUPTION_TASKS,
    corruption_correlation,
)
from benchmarks.advice_quality.merge import merge_results
from benchmarks.advice_quality.report import (
    machine,
    print_extras,
    suite_results,
    write_results,
)
from benchmarks.advice_quality.runner import (
    RECIPES,
    SPLIT_SEED,
    Runner,
    evaluate_task,
    parse_task,
    split_corruption,
)
from benchmarks.advice_quality.scoring import HIT_PP, REGIMES

#: A subsampled task (``<set>-<n>``) is also tested on up to this many images of
#: its set that the subsample left out (``advisor.examples.write_heldout``):
#: a 300-image task's own test split holds ~50 images, whose standard error
#: (~5 pp) hides any regime difference worth reporting.
HELDOUT_IMAGES = 2_000
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
#: ``name[-n]`` of the packaged sets (``advisor.examples``), near to far.
FULL_TASKS = ("tuxpaint", "emoji", "digits", "mnist-5k", "fashion-mnist-300",
              "fashion-mnist-1000", "fashion-mnist-2000", "fashion-mnist-5000", "fashion-mnist-10000",
              "fashion-mnist",
              "animal-silhouettes-1000", "animal-silhouettes")
QUICK_TASKS = ("tuxpaint", "digits-300", "fashion-mnist-300", "mnist-5k-300")
#: Backbone rates searched for ``partial``/``full`` (the head keeps the plan's head/backbone ratio);
#: the plans' own 1e-4 included.
FULL_LR_GRID = (1e-4, 3e-4, 1e-3)
QUICK_LR_GRID = (1e-4, 1e-3)
#: AdamW rates searched for the ``last-layer`` head; the plan's 1e-3 included.
FULL_HEAD_LR_GRID = (3e-4, 1e-3, 3e-3)
QUICK_HEAD_LR_GRID = (1e-3,)
FULL_SEEDS = (0, 1, 2)
QUICK_SEEDS = (0,)
#: Fine-tuning epochs and input size caps of ``--quick`` (all plans, the advisor's
#: included): on 2 CPU cores one 224 px fine-tuning epoch of Tux Paint takes minutes.
QUICK_EPOCHS = 2
QUICK_IMAGE_SIZE = 128


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.advice_quality",
                                     description=sys.modules[__package__].__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"Small tasks, one seed, fine-tuning capped at {QUICK_EPOCHS} epochs (CPU).")
    parser.add_argument("--tasks", type=_names,
                        help="Comma-separated <set>[-<n>], or <set>@<corruption>-<severity> for a whole "
                             "set corrupted ImageNet-C style (tuxpaint@contrast-3; default: by mode).")
    parser.add_argument("--regimes", type=_names, default=REGIMES, help="Oracle regimes (default: all four).")
    parser.add_argument("--recipes", type=_names, default=(),
                        help=f"Also run these recipes, fixed policies beside the oracle ({', '.join(RECIPES)}); "
                             "with --regimes '' only them, merged into an earlier run by --calibrate-from.")
    parser.add_argument("--expected-cost", action="store_true",
                        help="Also store the advice's expected time per regime (advise --estimate-cost), "
                             "for the prediction check.")
    parser.add_argument("--lr-grid", type=_floats,
                        help="Backbone rates for partial/full (head = 10x); '' for none: only the "
                             "plan's own rate search.")
    parser.add_argument("--head-lr-grid", type=_floats, help="AdamW rates for the last-layer head.")
    parser.add_argument("--seeds", type=_ints, help="Training seeds averaged per setting.")
    parser.add_argument("--epochs", type=int, help="Cap on fine-tuning epochs of every plan.")
    parser.add_argument("--head-epochs", type=int, help="Cap on head epochs of every plan.")
    parser.add_argument("--image-size", type=int, help="Cap on the input size of every plan.")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="Multiply every plan's fine-tuning and head epochs (and warm-up) by this; "
                             "2 is the doubled-budget check of a converged run (patience is kept).")
    parser.add_argument("--no-plan", action="store_true",
                        help="Do not fit the advisor's own plan: the rows are merged (--calibrate-from) "
                             "into an earlier run of the task, whose plan they keep, or are "
                             "budget checks (a regime run on its own, e.g. at --budget-scale 2).")
    parser.add_argument("--heldout", type=int, default=HELDOUT_IMAGES,
                        help="Also test a subsampled task on up to this many images of its set that "
                             f"the subsample left out (0: the split's test images only; default "
                             f"{HELDOUT_IMAGES}).")
    parser.add_argument("--backbone", default=None, help="Backbone (default: config.DEFAULT_BACKBONE).")
    parser.add_argument("--corruptions", dest="corruptions", action="store_true", default=None,
                        help="Also run the corruption-severity correlation (default: full mode only).")
    parser.add_argument("--no-corruptions", dest="corruptions", action="store_false")
    parser.add_argument("--corruption-tasks", type=_names, default=CORRUPTION_TASKS)
    parser.add_argument("--corruptions-only", action="store_true",
                        help="Skip the suite; run only the corruption-severity correlation.")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="Folder of the JSON results.")
    parser.add_argument("--calibrate-from", type=Path, nargs="+", metavar="JSON",
                        help="Run nothing: merge earlier results JSONs (a later file wins per task), "
                             "print their table and re-fit the thresholds on the union.")
    args = parser.parse_args(argv)
    for name in args.regimes:
        if name not in REGIMES:
            parser.error(f"--regimes: unknown regime {name!r}; known: {', '.join(REGIMES)}.")
    for name in args.recipes:
        if name not in RECIPES:
            parser.error(f"--recipes: unknown recipe {name!r}; known: {', '.join(RECIPES)}.")
    quick = args.quick
    args.tasks = args.tasks or (QUICK_TASKS if quick else FULL_TASKS)
    for spec in args.tasks:
        try:
            parse_task(split_corruption(spec)[0])
        except ValueError as exc:
            parser.error(f"--tasks: {exc}")
    if args.lr_grid is None:  # '' (an empty grid) runs only the plans' own rate search
        args.lr_grid = QUICK_LR_GRID if quick else FULL_LR_GRID
    args.head_lr_grid = args.head_lr_grid or (QUICK_HEAD_LR_GRID if quick else FULL_HEAD_LR_GRID)
    args.seeds = args.seeds or (QUICK_SEEDS if quick else FULL_SEEDS)
    if quick and args.epochs is None:
        args.epochs = QUICK_EPOCHS
    if quick and args.image_size is None:
        args.image_size = QUICK_IMAGE_SIZE
    if args.corruptions is None:
        args.corruptions = not quick
    if args.corruptions_only:
        args.tasks, args.corruptions = (), True
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the suite, print the table and write the JSON; return the results."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.calibrate_from:
        return merge_results(args.calibrate_from, out=args.out)

    from advisor import config

    args.backbone = args.backbone or config.DEFAULT_BACKBONE
    info = machine()
    mode = "corruptions" if args.corruptions_only else "quick" if args.quick else "full"
    print(f"advice quality ({mode}): backend={info['backend']} device={info['device']} "
          f"cores={info['usable_cores']} cpu={info.get('cpu_model', '?')} backbone={args.backbone} "
          f"seeds={list(args.seeds)} lr_grid={list(args.lr_grid)} head_lr_grid={list(args.head_lr_grid)} "
          f"epochs_cap={args.epochs} head_epochs_cap={args.head_epochs} image_size_cap={args.image_size} "
          f"budget_scale={args.budget_scale}")
    started = time.perf_counter()
    runner = Runner()
    rows = []
    for spec in args.tasks:
        log(f"task {spec}")
        rows.append(evaluate_task(spec, runner, args, log))
    results: dict[str, Any] = {
        "mode": mode, "machine": info, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {"tasks": list(args.tasks), "regimes": list(args.regimes),
                     "recipes": list(args.recipes), "expected_cost": args.expected_cost, "seeds": list(args.seeds),
                     "lr_grid": list(args.lr_grid), "head_lr_grid": list(args.head_lr_grid),
                     "epochs_cap": args.epochs, "head_epochs_cap": args.head_epochs,
                     "image_size_cap": args.image_size, "budget_scale": args.budget_scale,
                     "no_plan": args.no_plan,
                     "backbone": args.backbone,
                     "heldout": args.heldout,
                     "split_seed": SPLIT_SEED, "hit_pp": HIT_PP},
        **suite_results(rows),
    }
    if args.corruptions:
        log("corruption study")
        results["corruption_correlation"] = corruption_correlation(
            args.corruption_tasks, backbone=args.backbone, log=log)
    results["wall_s"] = time.perf_counter() - started
    print_extras(results)
    return write_results(results, args.out)
