"""Fine-tuning optimisers and rates after the linear probe, run to early stopping (issue 16, part 3).

For each task and fine-tuning regime the advisor's own plan (its image size,
cut, epochs, patience, warm-up and augmentation) is fitted once per candidate
``(optimizer, head rate, backbone rate)`` with the same split and seed. Each
row says whether fine-tuning diverged (and the guard retried), whether it beat
its linear-probe start on validation, the best and last epoch (a best epoch
before the last means early stopping, not the budget, ended the run), and the
test accuracy. One JSON line per run is appended to ``--jsonl``.

Run::

    python -m benchmarks.bench_fine_tune_rates                       # digits, partial + full
    python -m benchmarks.bench_fine_tune_rates --task mnist_5k:2000 --regime partial
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

#: Candidates: name -> (optimizer, head rate, backbone rate); ``plan`` is the
#: plan as decided (its own rates and rate search, ``Plan.rate_scales``).
CANDIDATES = {
    "plan": None,
    "sgd-1e-2/1e-3": ("sgd", 1e-2, 1e-3),
    "sgd-3e-3/3e-4": ("sgd", 3e-3, 3e-4),
    "sgd-1e-3/1e-4": ("sgd", 1e-3, 1e-4),
    "sgd-1e-3/1e-3": ("sgd", 1e-3, 1e-3),
    "adamw-1e-4/1e-5": ("adamw", 1e-4, 1e-5),
    "adamw-3e-5/3e-5": ("adamw", 3e-5, 3e-5),
}


def _parse_task(spec: str) -> tuple[str, int | None]:
    name, _, n = spec.partition(":")
    return name, int(n) if n else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", action="append", help="NAME[:N] of advisor.examples (default digits)")
    parser.add_argument("--regime", action="append", choices=("partial", "full"))
    parser.add_argument("--candidate", action="append", choices=tuple(CANDIDATES))
    parser.add_argument("--epochs", type=int, default=None, help="override the plan's epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jsonl", type=Path, default=Path("benchmarks/results/fine_tune_rates.jsonl"))
    args = parser.parse_args()
    import keras

    from advisor.backbones import get_backbone
    from advisor.data import decode_dataset, scan_dataset
    from advisor.decide import decide
    from advisor.examples import write_dataset
    from advisor.measure import measure_dataset
    from advisor.plan import Optimizer, Regime
    from strategies import LabelledImages, get_strategy

    print(f"backend {keras.backend.backend()}, Keras {keras.__version__}, "
          f"{platform.processor() or 'cpu'}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"{'task':>14} {'regime':>8} {'candidate':>16} {'px':>4} {'path':>12} {'probe val':>9} "
          f"{'best val':>8} {'best/last/max':>13} {'retried':>7} {'test acc':>8} {'wall s':>7}")
    for spec in args.task or ["digits"]:
        name, n = _parse_task(spec)
        folder = write_dataset(name, Path(tempfile.gettempdir()) / "bench-rates-data", n=n,
                               seed=args.seed)
        dataset = scan_dataset(folder, seed=args.seed)
        probe_backbone = get_backbone("mobilenet_v2")
        profile = measure_dataset(dataset, probe_backbone, sample_cap=300)
        for regime in args.regime or ["partial", "full"]:
            base = dataclasses.replace(  # decoded at the plan's size, as results/ were measured
                decide(profile, backbone=probe_backbone, regime=regime, epochs=args.epochs,
                       seed=args.seed), decode_size=None)
            backbone = get_backbone("mobilenet_v2", image_size=base.image_size)
            _, decoded = decode_dataset(dataset, base.image_size)
            parts = {s: LabelledImages(decoded[s].images, dataset.labels(s), decoded[s].rows)
                     for s in ("train", "val", "test")}
            for label in args.candidate or list(CANDIDATES):
                if CANDIDATES[label] is None:  # the plan's own rates and search
                    plan = base
                    optimizer, head_rate = base.optimizer.value, base.head_learning_rate
                    backbone_rate = base.backbone_learning_rate
                else:
                    optimizer, head_rate, backbone_rate = CANDIDATES[label]
                    plan = dataclasses.replace(base, optimizer=Optimizer(optimizer),
                                               head_learning_rate=head_rate,
                                               backbone_learning_rate=backbone_rate,
                                               rate_scales=(1.0,))  # one run per candidate
                keras.utils.set_random_seed(args.seed)
                started = time.perf_counter()
                strategy = get_strategy(Regime(regime))(plan=plan, backbone=backbone).fit(
                    parts["train"], parts["val"], class_names=dataset.class_names)
                wall = time.perf_counter() - started
                fine = strategy.history_["fine_tune"]
                test = parts["test"]
                accuracy = float((strategy.predict(test.images, rows=test.rows) == test.labels).mean())
                curve = [e["val_accuracy"] for e in fine["epochs"]]
                record = {
                    "task": spec, "regime": regime, "candidate": label, "optimizer": optimizer,
                    "head_learning_rate": head_rate, "backbone_learning_rate": backbone_rate,
                    "image_size": plan.image_size, "frozen_blocks": len(plan.frozen_blocks),
                    "epochs_max": plan.epochs, "patience": plan.patience,
                    "warmup_epochs": plan.warmup_epochs, "augmentation": list(plan.augmentation),
                    "path": fine.get("path"), "probe_val_accuracy": fine["start"]["val_accuracy"],
                    "val_accuracy_curve": curve, "best_epoch": fine["best_epoch"],
                    "epochs_run": len(curve), "retried": fine["retried"], "notes": fine["notes"],
                    "rate_scales": list(plan.rate_scales), "rate_search": fine.get("rate_search"),
                    "best_val_accuracy": max(curve) if curve else None, "test_accuracy": accuracy,
                    "wall_s": wall, "n_train": len(parts["train"].rows),
                    "n_test": len(test.rows), "backend": keras.backend.backend(),
                    "load": os.getloadavg()[0],
                }
                args.jsonl.parent.mkdir(parents=True, exist_ok=True)
                with args.jsonl.open("a") as out:
                    out.write(json.dumps(record) + "\n")
                best_val = f"{record['best_val_accuracy']:.3f}" if curve else "-"
                epochs = f"{fine['best_epoch']}/{len(curve)}/{plan.epochs}"
                print(f"{spec:>14} {regime:>8} {label:>16} {plan.image_size:>4} {fine.get('path'):>12} "
                      f"{record['probe_val_accuracy']:>9.3f} {best_val:>8} "
                      f"{epochs:>13} "
                      f"{str(fine['retried']):>7} {accuracy:>8.3f} {wall:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
