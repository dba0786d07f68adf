"""``partial`` on cached frozen-prefix activations vs. end to end (issue 16, part 2).

On digits (scikit-learn's real scans) or another packaged set (``--dataset``),
with the advisor's ``partial`` plan at its own image size (or ``--image-size``), the same split and seed, each path fits once per cut: the
plan's own cut and a 2/3 cut (13 of MobileNetV2's 19 blocks frozen). The plan's
augmentation is dropped (``--augment`` keeps it: the cached path then trains on
``prefix_views`` precomputed views), so both paths see the same batches. Columns:
fine-tuning wall s (the training loop only), the prefix cache's one-time fill
(s and MB), training images/s (train images x epochs / fine-tune s), test
accuracy, and the frozen prefix's share of the forward time (one forward of
the training images through the prefix vs. the whole feature extractor),
whose bound on the speed-up is ``1 / (1 - share)`` for a forward-only pass.

A training epoch also runs the trained blocks backwards, which the cache does
not shorten, so the bound of a *training* epoch is the issue's own arithmetic
(forward 28.6 img/s, end to end 24.1 img/s, "so training only the blocks after
a 2/3 cut should reach ~60 img/s"): the end-to-end fine-tuning time over that
time less the prefix's forward passes it contains (each epoch's training and
validation images once through the prefix, timed as above), counting every
epoch the fine-tuning ran (both runs of the plan's rate search). Column
``bound`` is that ratio and ``of bound`` the measured speed-up over it; above
100% the cached path saved more than the prefix's forward passes (the
end-to-end path also converts, resizes and normalises every image each epoch).

Run::

    python -m benchmarks.bench_prefix_cache            # digits n=1000, 3 epochs
    python -m benchmarks.bench_prefix_cache --n 300 --epochs 2
    python -m benchmarks.bench_prefix_cache --dataset fashion-mnist --n 5000 --epochs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path


def _forward_s(model, images, rows, batch_size: int) -> float:
    from strategies.batches import ImageBatches

    batches = ImageBatches(images, rows * 0, rows=rows, batch_size=batch_size)
    model.predict_on_batch(batches[0][0])  # trace
    started = time.perf_counter()
    for index in range(len(batches)):
        model.predict_on_batch(batches[index][0])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="digits", help="a packaged set (advisor.examples)")
    parser.add_argument("--n", type=int, default=1000, help="images of the set")
    parser.add_argument("--image-size", type=int, default=None, help="default: the plan's")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true", help="keep the plan's augmentation")
    args = parser.parse_args()
    os.environ.setdefault("FINETUNE_ADVISOR_CACHE", tempfile.mkdtemp(prefix="bench-prefix-"))
    import keras

    from advisor.backbones import get_backbone
    from advisor.data import decode_dataset, scan_dataset
    from advisor.decide import decide
    from advisor.examples import write_dataset
    from advisor.measure import measure_dataset
    from advisor.plan import Regime
    from strategies import LabelledImages, get_strategy
    from strategies.graph import build_classifier, split_at_cut

    folder = write_dataset(args.dataset, Path(tempfile.mkdtemp()) / args.dataset, n=args.n, seed=args.seed)
    dataset = scan_dataset(folder, seed=args.seed)
    probe_backbone = get_backbone("mobilenet_v2")
    profile = measure_dataset(dataset, probe_backbone, sample_cap=200)
    plan = decide(profile, backbone=probe_backbone, regime="partial", epochs=args.epochs,
                  seed=args.seed)
    plan = dataclasses.replace(plan, image_size=args.image_size or plan.image_size)
    backbone = get_backbone("mobilenet_v2", image_size=plan.image_size)
    plan = dataclasses.replace(plan, patience=args.epochs + 1, decode_size=None,
                               augmentation=plan.augmentation if args.augment else ())
    _, decoded = decode_dataset(dataset, plan.image_size)
    parts = {s: LabelledImages(decoded[s].images, dataset.labels(s), decoded[s].rows)
             for s in ("train", "val", "test")}
    names = tuple(b.name for b in backbone.blocks)
    cuts = {"plan": plan.frozen_blocks, "2/3": names[:round(2 / 3 * len(names))]}
    print(f"backend {keras.backend.backend()}, Keras {keras.__version__}, {platform.processor() or 'cpu'}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, seed {args.seed}; {args.dataset} n={args.n} "
          f"({len(parts['train'].rows)} train), {plan.image_size} px, batch {plan.batch_size}, "
          f"{args.epochs} epochs, augmentation {plan.augmentation or 'none'}")
    print(f"{'cut':>22} {'path':>12} {'fine-tune s':>11} {'img/s':>7} {'cache s':>7} {'cache MB':>8} "
          f"{'test acc':>8} {'speed-up':>8} {'prefix share':>12} {'bound':>6} {'of bound':>8}")
    for label, frozen in cuts.items():
        model = build_classifier(backbone, feature_layer=backbone.feature_layer, n_classes=10)
        prefix, _ = split_at_cut(model, backbone, frozen)
        train = parts["train"]
        prefix_s = _forward_s(prefix, train.images, train.rows, plan.batch_size)
        share = prefix_s / _forward_s(model.get_layer("features"), train.images, train.rows,
                                      plan.batch_size)
        val = parts["val"]
        prefix_epoch_s = prefix_s + _forward_s(prefix, val.images, val.rows, plan.batch_size)
        wall = {}
        for cached in (False, True):
            keras.utils.set_random_seed(args.seed)
            run = dataclasses.replace(plan, frozen_blocks=frozen, prefix_cache=cached,
                                      prefix_views=plan.prefix_views if args.augment else 0)
            strategy = get_strategy(Regime.PARTIAL)(plan=run, backbone=backbone).fit(
                parts["train"], parts["val"], class_names=dataset.class_names)
            fine = strategy.history_["fine_tune"]
            wall[cached] = fine["wall_s"]
            # Every epoch the fine-tuning ran: the rate search's candidates, or the one run.
            epochs = (sum(c["epochs_run"] for c in fine["rate_search"]["candidates"])
                      if "rate_search" in fine else len(fine["epochs"]))
            test = parts["test"]
            accuracy = float((strategy.predict(test.images, rows=test.rows) == test.labels).mean())
            cache = fine.get("prefix_cache", {})
            speed = f"{wall[False] / wall[True]:.2f}x" if cached else ""
            if not cached:
                bound = wall[False] / max(1e-9, wall[False] - epochs * prefix_epoch_s)
            of_bound = f"{wall[False] / wall[True] / bound:.0%}" if cached else ""
            print(f"{label + f' ({len(frozen)}/{len(names)})':>22} {fine['path']:>12} "
                  f"{fine['wall_s']:>11.1f} {len(train.rows) * epochs / fine['wall_s']:>7.1f} "
                  f"{cache.get('wall_s', 0):>7.1f} {cache.get('mb', 0):>8.1f} {accuracy:>8.3f} "
                  f"{speed:>8} {share:>12.2f} {bound:>5.2f}x {of_bound:>8}")
    print(f"load at end {os.getloadavg()[0]:.2f}; plan.prefix_cache_mb {plan.prefix_cache_mb}, "
          f"reasons: {plan.reasons['prefix_cache_mb']}")


if __name__ == "__main__":
    main()
