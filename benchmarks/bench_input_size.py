"""Accuracy against input size for low-resolution images (issue 16, part 3: the 64 px rule).

The advisor upscales images whose short side is under
``config.LOW_RESOLUTION_SIDE`` and keeps the backbone's 224 px otherwise, so the
64 px emoji run at 224 px (12x the pixels of 64 px, ~3x those of 128 px). For
each task and size this fits the frozen-feature regimes (``svm`` and
``last-layer``: the advisor's plan for the task, with only ``image_size``
changed) on the same split and prints test accuracy and the fit's wall time, so
the rule can be set from the numbers. One JSON line per run goes to ``--jsonl``.

Run::

    python -m benchmarks.bench_input_size                         # emoji at 96/128/160/224
    python -m benchmarks.bench_input_size --task digits --size 96 --size 224
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", action="append", help="NAME[:N] of advisor.examples (default emoji)")
    parser.add_argument("--size", action="append", type=int, help="input sizes (default 96 128 160 224)")
    parser.add_argument("--regime", action="append", choices=("svm", "last-layer"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jsonl", type=Path, default=Path("benchmarks/results/input_size.jsonl"))
    args = parser.parse_args()
    import keras

    from advisor.backbones import get_backbone
    from advisor.data import decode_dataset, scan_dataset
    from advisor.decide import decide
    from advisor.examples import write_dataset
    from advisor.measure import measure_dataset
    from advisor.plan import Regime
    from strategies import LabelledImages, get_strategy

    print(f"backend {keras.backend.backend()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"{'task':>12} {'regime':>10} {'px':>4} {'native':>6} {'train':>6} {'test':>5} "
          f"{'test acc':>8} {'fit s':>6}")
    for spec in args.task or ["emoji"]:
        name, _, n = spec.partition(":")
        folder = write_dataset(name, Path(tempfile.gettempdir()) / "bench-size-data",
                               n=int(n) if n else None, seed=args.seed)
        dataset = scan_dataset(folder, seed=args.seed)
        probe = get_backbone("mobilenet_v2")
        profile = measure_dataset(dataset, probe, sample_cap=300)
        for size in args.size or [96, 128, 160, 224]:
            backbone = get_backbone("mobilenet_v2", image_size=size)
            _, decoded = decode_dataset(dataset, size)
            parts = {s: LabelledImages(decoded[s].images, dataset.labels(s), decoded[s].rows)
                     for s in ("train", "val", "test")}
            for regime in args.regime or ["svm", "last-layer"]:
                plan = dataclasses.replace(decide(profile, backbone=probe, regime=regime,
                                                  seed=args.seed), image_size=size, decode_size=None)
                keras.utils.set_random_seed(args.seed)
                started = time.perf_counter()
                strategy = get_strategy(Regime(regime))(plan=plan, backbone=backbone).fit(
                    parts["train"], parts["val"], class_names=dataset.class_names)
                wall = time.perf_counter() - started
                test = parts["test"]
                accuracy = float((strategy.predict(test.images, rows=test.rows) == test.labels).mean())
                record = {"task": spec, "regime": regime, "image_size": size,
                          "native_side": profile.native_side, "n_train": len(parts["train"].rows),
                          "n_test": len(test.rows), "test_accuracy": accuracy, "fit_s": wall,
                          "backend": keras.backend.backend()}
                args.jsonl.parent.mkdir(parents=True, exist_ok=True)
                with args.jsonl.open("a") as out:
                    out.write(json.dumps(record) + "\n")
                print(f"{spec:>12} {regime:>10} {size:>4} {profile.native_side:>6.0f} "
                      f"{record['n_train']:>6} {record['n_test']:>5} {accuracy:>8.3f} {wall:>6.0f}",
                      flush=True)


if __name__ == "__main__":
    main()
