"""How many images the shift map's BN moments need (issue 18, ``config.MOMENT_IMAGES``).

The measuring pass reduces each BatchNormalization layer's input moments (the
shift map) on only the first ``config.MOMENT_IMAGES`` images of a seeded batch
order; a batch that reduces them costs ~40% more than one that does not
(``bench_advisor``). This script asks how few images give the same answer.

Per task, the advisor's sample is decoded and embedded once at the plan's size
with the moments of *every* image kept, then the moments are re-reduced on the
subsets :func:`advisor.measure.forward.embed` would use for each candidate
``moment_images`` and batch-order seed (its ``_batch_order``), and the profile
and plan recomputed (the probes, which do not depend on the moments, once per
task). The table gives, per task and candidate, the largest change over seeds
of the shift's score KL and of the similarity score against the all-images
reference, and on how many seeds the first departing block or the pick changed.

Run::

    python -m benchmarks.bench_moment_images
    python -m benchmarks.bench_moment_images --tasks digits,fashion-mnist-1000 --candidates 256,128
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

DEFAULT_TASKS = ("tuxpaint", "emoji", "lfw-faces", "digits", "digits-300", "mnist-5k", "fashion-mnist-300",
                 "fashion-mnist-1000", "fashion-mnist-10000", "animal-silhouettes-1000", "animal-silhouettes")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated <set>[-<n>]")
    parser.add_argument("--candidates", default="256,128,96,64", help="moment_images values to compare")
    parser.add_argument("--seeds", type=int, default=5, help="batch-order seeds per candidate")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dataset and the sample")
    parser.add_argument("--results", type=Path, default=None, help="JSON-lines file the rows are appended to")
    return parser.parse_args(argv)


def _per_image_pass(backbone, images, rows, batch_size: int):
    """Embed ``images[rows]`` with the BN moments reduced on every batch; keep them per image."""
    import keras
    import numpy as np

    from advisor.measure import forward

    model = forward.build_probe_model(backbone)
    flag = np.ones((batch_size, 1), dtype="float32")
    kept: dict[str, list] = {}
    for start in range(0, len(rows), batch_size):
        batch_rows = rows[start : start + batch_size]
        batch = forward._padded(forward.read_rows(images, batch_rows), batch_size)
        out = model.predict_on_batch([batch, flag])
        for key, value in out.items():
            kept.setdefault(key, []).append(np.asarray(keras.ops.convert_to_numpy(value))[: len(batch_rows)])
    return {key: np.concatenate(parts) for key, parts in kept.items()}


def _profile(per_image, subset, backbone, labels, dataset, seed, probes):
    """Profile and plan with the BN moments reduced over `subset` (indices into the sample)."""
    import numpy as np

    from advisor.decide import decide
    from advisor.measure import forward

    mean = per_image[forward.BN_MEAN][subset].astype(np.float64).mean(axis=0)
    var = np.maximum(per_image[forward.BN_SQ][subset].astype(np.float64).mean(axis=0) - mean**2, 0.0)
    blocks = forward.probe_blocks(backbone)
    channels = tuple(int(backbone.model.get_layer(n).input.shape[-1]) for n in backbone.bn_layers)
    activations = forward.Activations(
        logits=per_image[forward.LOGITS], features=per_image[forward.FEATURES],
        block_features={b.name: per_image[forward.BLOCK_PREFIX + b.name] for b in blocks},
        bn_layers=tuple(backbone.bn_layers), bn_channels=channels, bn_mean=mean, bn_var=var,
        n_images=len(labels), n_moment_images=len(subset))
    original = forward.probe_accuracies
    forward.probe_accuracies = lambda *args, **kwargs: probes  # the probes do not read the moments
    try:
        profile = forward.profile_activations(activations, labels, backbone=backbone, summary=dataset.summary,
                                              class_names=dataset.class_names, seed=seed)
    finally:
        forward.probe_accuracies = original
    plan = decide(profile, backbone=backbone, seed=seed)
    return {"score_kl": profile.shift.score_kl, "departs": profile.shift.first_departing_block,
            "similarity": profile.similarity.score, "regime": plan.regime.value}


def _task_rows(task: str, candidates: list[int], args) -> list[dict]:
    import numpy as np

    from advisor import config
    from advisor.backbones import get_backbone
    from advisor.data import scan_dataset
    from advisor.data.decode_cache import decode_images
    from advisor.decide import choose_image_size
    from advisor.decide.inputs import choose_decode_size
    from advisor.examples import write_dataset
    from advisor.measure import forward
    from advisor.measure.probes import probe_accuracies
    from benchmarks.advice_quality.runner import parse_task

    name, n = parse_task(task)
    dataset = scan_dataset(write_dataset(name, n=n, seed=args.seed), seed=args.seed)
    width, height = dataset.summary.width, dataset.summary.height
    px = choose_image_size(min(width.median, height.median), 224)
    backbone = get_backbone(args.backbone, image_size=px,
                            input_size=choose_decode_size(min(width.max, height.max), px))
    files = [p for split in forward.ADVICE_SPLITS for p in dataset.files(split)]
    labels = np.concatenate([dataset.labels(split) for split in forward.ADVICE_SPLITS])
    picked = forward.stratified_sample(labels, config.SAMPLE_CAP, seed=args.seed)
    decoded = decode_images([files[i] for i in picked], backbone.input_size,
                            resize_ratio=backbone.decode_resize_ratio)
    labels = labels[picked][decoded.rows]
    started = time.perf_counter()
    per_image = _per_image_pass(backbone, decoded.images, decoded.rows, config.EMBED_BATCH_SIZE)
    embed_s = time.perf_counter() - started
    blocks = forward.probe_blocks(backbone)
    probes = probe_accuracies(per_image[forward.FEATURES], labels, seed=args.seed,
                              block_features={b.name: per_image[forward.BLOCK_PREFIX + b.name] for b in blocks})
    sampled = len(labels)
    reference = _profile(per_image, np.arange(sampled), backbone, labels, dataset, args.seed, probes)
    rows = [{"task": task, "px": px, "sampled": sampled, "moment_images": sampled, "seeds": 1,
             "used": sampled, **reference, "d_kl": 0.0, "d_sim": 0.0, "departs_changed": 0,
             "regime_changed": 0, "embed_s": embed_s}]
    for m in candidates:
        results = []
        for seed in range(args.seeds):
            order, batches = forward._batch_order(sampled, config.EMBED_BATCH_SIZE, m, seed)
            subset = order[: batches * config.EMBED_BATCH_SIZE]
            results.append((len(subset), _profile(per_image, subset, backbone, labels, dataset, args.seed, probes)))
            if sampled <= m:
                break  # every image, whatever the seed
        rows.append({
            "task": task, "px": px, "sampled": sampled, "moment_images": m, "seeds": len(results),
            "used": results[0][0],
            "score_kl": float(np.mean([r["score_kl"] for _, r in results])),
            "d_kl": max(abs(r["score_kl"] - reference["score_kl"]) for _, r in results),
            "d_sim": max(abs(r["similarity"] - reference["similarity"]) for _, r in results),
            "departs": reference["departs"],
            "departs_changed": sum(r["departs"] != reference["departs"] for _, r in results),
            "regime": reference["regime"],
            "regime_changed": sum(r["regime"] != reference["regime"] for _, r in results),
            "similarity": float(np.mean([r["similarity"] for _, r in results])), "embed_s": float("nan"),
        })
    return rows


def _print(rows: list[dict]) -> None:
    header = (f"{'task':24} {'px':>4} {'sampled':>7} {'moments':>7} {'seeds':>5} {'score KL':>8} {'max dKL':>7} "
              f"{'sim':>5} {'max dsim':>8} {'departs':>8} {'changed':>7} {'pick':>10} {'changed':>7}")
    print("\n" + header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['task']:24} {r['px']:>4} {r['sampled']:>7} {r['used']:>7} {r['seeds']:>5} {r['score_kl']:>8.3f} "
              f"{r['d_kl']:>7.4f} {r['similarity']:>5.3f} {r['d_sim']:>8.4f} {str(r['departs']):>8} "
              f"{r['departs_changed']:>7} {r['regime']:>10} {r['regime_changed']:>7}")


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FINETUNE_ADVISOR_CACHE", tempfile.mkdtemp(prefix="bench-moment-images-"))
    import keras

    from advisor.environment import usable_cores
    from advisor.examples.sources import SourceMissingError

    candidates = [int(c) for c in args.candidates.split(",") if c]
    print(f"backend={keras.config.backend()} keras={keras.__version__} backbone={args.backbone} "
          f"cpu={platform.processor() or platform.machine()} cores={usable_cores()} seeds={args.seeds} "
          f"candidates={candidates}")
    rows: list[dict] = []
    for task in [t for t in args.tasks.split(",") if t]:
        try:
            task_rows = _task_rows(task, candidates, args)
        except SourceMissingError as exc:
            print(f"# {task}: skipped ({exc})")
            continue
        rows += task_rows
        if args.results is not None:
            with args.results.open("a") as out:
                for row in task_rows:
                    out.write(json.dumps(row) + "\n")
        print(f"# {task}: " + ", ".join(f"{r['moment_images']}: dKL {r['d_kl']:.4f} pick changed "
                                       f"{r['regime_changed']}/{r['seeds']}" for r in task_rows[1:]), flush=True)
    _print(rows)
    for m in candidates:
        picked = [r for r in rows if r["moment_images"] == m]
        if picked:
            print(f"moment_images={m}: max dKL {max(r['d_kl'] for r in picked):.4f}, max dsim "
                  f"{max(r['d_sim'] for r in picked):.4f}, departs changed on "
                  f"{sum(r['departs_changed'] for r in picked)} runs, pick changed on "
                  f"{sum(r['regime_changed'] for r in picked)} runs")


if __name__ == "__main__":
    main()
