"""Measuring low-resolution sets at the plan's input size instead of 224 px (issue 18).

For each task the same stratified sample is measured twice with the same
weights: at the backbone's 224 px (decoded at 224 px, what ``advise`` did
before issue 18), and at the size the plan trains at
(the plan's rules, :func:`advisor.decide.choose_image_size` and
:func:`advisor.decide.inputs.choose_decode_size`, from the scan's image sizes: 96 px for 8 px
digits, 128 px for 28 px sets, decoded natively and upscaled in the graph). A plan is decided
from each profile. The table gives, per task and size: the similarity score
and its components, the shift map's score KL and first departing block, the
probes' best block and linear accuracy, the regime picked and the measuring
seconds. Then Spearman's rho of the two similarity orderings, and whether
every pick and first departing block is the same.

Sets at 64 px or more are measured at 224 px both ways (a control: the
figures must match). A set whose source is not installed is skipped.

Run::

    python -m benchmarks.bench_measure_size                      # the suite's tasks that are installed
    python -m benchmarks.bench_measure_size --tasks digits,mnist-5k-300 --results out.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

DEFAULT_TASKS = ("tuxpaint", "emoji", "lfw-faces", "digits", "digits-300", "mnist-5k-300", "mnist-5k",
                 "fashion-mnist-300", "fashion-mnist-1000", "fashion-mnist-10000",
                 "animal-silhouettes-1000", "animal-silhouettes")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated <set>[-<n>]")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--sample-cap", type=int, default=None, help="images measured (default: the advisor's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=None, help="JSON-lines file the rows are appended to")
    parser.add_argument("--native-224", action="store_true",
                        help="also measure at 224 px from images decoded natively and upscaled in the graph")
    return parser.parse_args(argv)


def _measure(dataset, name: str, image_size: int, decode_size: int | None, args) -> dict:
    from advisor import config
    from advisor.backbones import get_backbone
    from advisor.decide import decide
    from advisor.measure import measure_dataset

    network = get_backbone(name, image_size=image_size, input_size=decode_size)
    cap = config.SAMPLE_CAP if args.sample_cap is None else args.sample_cap
    started = time.perf_counter()
    profile = measure_dataset(dataset, network, sample_cap=cap, seed=args.seed)
    seconds = time.perf_counter() - started
    plan = decide(profile, backbone=network, seed=args.seed)
    shift, probes, similarity = profile.shift, profile.probes, profile.similarity
    return {"px": image_size, "decode_px": decode_size, "measure_s": seconds, "n_sampled": profile.n_sampled,
            "similarity": similarity.score, "components": dict(similarity.components),
            "score_kl": None if shift is None else shift.score_kl,
            "first_departing_block": None if shift is None else shift.first_departing_block,
            "best_block": None if probes is None else probes.best_block,
            "linear_accuracy": None if probes is None else probes.linear_accuracy,
            "regime": plan.regime.value, "plan_px": plan.image_size}


def _print(rows: list[dict]) -> None:
    header = (f"{'task':24} {'n':>6} {'side':>5} {'px':>4} {'dec':>4} {'sim':>5} {'shift':>5} {'head':>5} "
              f"{'probe':>5} {'score KL':>8} {'departs':>9} {'best blk':>9} {'lin acc':>7} {'pick':>10} "
              f"{'meas s':>6}")
    print("\n" + header)
    print("-" * len(header))
    for r in rows:
        c = r["components"]
        print(f"{r['task']:24} {r['n']:>6} {r['native_side']:>5.0f} {r['px']:>4} {str(r['decode_px'] or '-'):>4} "
              f"{r['similarity']:>5.2f} {c.get('shift', float('nan')):>5.2f} {c.get('head', float('nan')):>5.2f} "
              f"{c.get('probe', float('nan')):>5.2f} {r['score_kl'] or float('nan'):>8.3f} "
              f"{str(r['first_departing_block']):>9} {str(r['best_block']):>9} "
              f"{r['linear_accuracy'] or float('nan'):>7.3f} {r['regime']:>10} {r['measure_s']:>6.1f}")


def _summary(rows: list[dict]) -> None:
    from scipy.stats import spearmanr

    pairs = {}
    for r in rows:
        if r["mode"] in ("224", "plan"):
            pairs.setdefault(r["task"], {})[r["mode"]] = r
    natives = [(r, next(q for q in rows if q["task"] == r["task"] and q["mode"] == "224"))
               for r in rows if r["mode"] == "224-native"]
    if natives:
        print("224 px decoded natively vs at 224: |similarity change| max "
              f"{max(abs(r['similarity'] - q['similarity']) for r, q in natives):.4f}; picks changed on: "
              + (", ".join(r["task"] for r, q in natives if r["regime"] != q["regime"]) or "none"))
    both = [p for p in pairs.values() if len(p) == 2]
    if len(both) >= 3:
        rho = spearmanr([p["224"]["similarity"] for p in both], [p["plan"]["similarity"] for p in both])
        print(f"\nsimilarity ordering, 224 px vs plan size: Spearman rho {rho.statistic:.3f} "
              f"(p {rho.pvalue:.3g}, {len(both)} tasks)")
    for field in ("regime", "first_departing_block", "best_block"):
        changed = [t for t, p in pairs.items() if len(p) == 2 and p["224"][field] != p["plan"][field]]
        print(f"{field} changed on: {', '.join(changed) or 'none'}")
    diffs = [abs(p["224"]["similarity"] - p["plan"]["similarity"]) for p in both]
    if diffs:
        print(f"similarity |change|: mean {sum(diffs) / len(diffs):.3f}, max {max(diffs):.3f}")
    low = [p for p in both if p["plan"]["px"] < p["224"]["px"]]
    if low:
        ratio = sum(p["224"]["measure_s"] for p in low) / sum(p["plan"]["measure_s"] for p in low)
        print(f"measuring time on the low-resolution tasks: {ratio:.1f}x less at the plan's size")


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FINETUNE_ADVISOR_CACHE", tempfile.mkdtemp(prefix="bench-measure-size-"))
    import keras

    from advisor.data import scan_dataset
    from advisor.decide import choose_image_size
    from advisor.decide.inputs import choose_decode_size
    from advisor.environment import usable_cores
    from advisor.examples import write_dataset
    from advisor.examples.sources import SourceMissingError
    from benchmarks.advice_quality.runner import parse_task

    print(f"backend={keras.config.backend()} keras={keras.__version__} backbone={args.backbone} "
          f"cpu={platform.processor() or platform.machine()} cores={usable_cores()} seed={args.seed} "
          f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows: list[dict] = []
    for task in [t for t in args.tasks.split(",") if t]:
        name, n = parse_task(task)
        try:
            folder = write_dataset(name, n=n, seed=args.seed)
        except SourceMissingError as exc:
            print(f"# {task}: skipped ({exc})")
            continue
        dataset = scan_dataset(folder, seed=args.seed)
        width, height = dataset.summary.width, dataset.summary.height
        side, max_side = min(width.median, height.median), min(width.max, height.max)
        base = {"task": task, "n": dataset.summary.n_images, "native_side": side}
        plan_px = choose_image_size(side, 224)
        modes = [("224", (224, None)), ("plan", (plan_px, choose_decode_size(max_side, plan_px)))]
        if args.native_224 and choose_decode_size(max_side, 224) is not None:
            modes.append(("224-native", (224, choose_decode_size(max_side, 224))))
        for mode, (px, decode_px) in modes:
            row = base | {"mode": mode} | _measure(dataset, args.backbone, px, decode_px, args)
            rows.append(row)
            if args.results is not None:
                with args.results.open("a") as out:
                    out.write(json.dumps(row) + "\n")
        print(f"# {task}: " + ", ".join(f"{r['px']} px (decoded at {r['decode_px'] or r['px']}) sim "
                                       f"{r['similarity']:.3f} {r['regime']} {r['measure_s']:.1f} s"
                                       for r in rows if r["task"] == task), flush=True)
    _print(rows)
    _summary(rows)


if __name__ == "__main__":
    main()
