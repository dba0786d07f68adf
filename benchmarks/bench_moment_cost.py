"""What the measuring pass costs beyond a bare forward pass, batch by batch (issue 18).

``bench_advisor`` compares whole passes (the measuring pass, then a bare one)
run a few times in turn; on this shared machine two passes over the same
batches differ by up to 10%, more than the target's margin (the measuring
pass >= 0.95x a bare forward pass). This script takes the noise out by
alternating *per batch*: each batch of a real sample goes, one after the
other, through

- ``bare``: ``backbone.model.predict_on_batch`` (the ImageNet logits only);
- ``pass``: the measuring pass's model
  (:func:`advisor.measure.forward.build_probe_model`) with its moments flag
  off, as on every batch after the first ``config.MOMENT_IMAGES`` images:
  logits, pooled features and probed blocks;
- ``pass + moments``: the same with the flag on: also every BatchNormalization
  input's per-channel mean and mean of squares (the shift map).

Each function is traced before timing. The table gives each one's median
milliseconds per batch and its cost relative to ``bare`` (the sum of its batch
times over the sum of ``bare``'s: 1.00 is free). From those two costs,
:func:`projected_ratio` gives the ratio the whole pass can reach on a sample of
``n`` images (``embed``'s batch order: the first ``ceil(moment_images / batch)``
batches reduce the moments), and the most moment images at which it still
reaches ``--target``. It leaves out what the graph does not do (reading the
decode cache, the host's copies, the trace), so it is the best the pass can do.

Run::

    python -m benchmarks.bench_moment_cost
    python -m benchmarks.bench_moment_cost --dataset digits --batches 10 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

#: The measuring pass's sample sizes in ``bench_advisor``'s table (1,000 images
#: sample 850, the others the cap of 2,000).
DEFAULT_SAMPLES = "850,2000"


def projected_ratio(n: int, batch_size: int, moment_images: int, pass_cost: float,
                    moment_cost: float) -> float:
    """Return a bare pass's time over the measuring pass's on `n` images, from per-batch costs.

    Args:
        n: Images in the sample.
        batch_size: Images per batch.
        moment_images: Images whose BN moments are reduced (all of them when
            `n` is not larger, as :func:`advisor.measure.forward.embed` does).
        pass_cost: A batch without the moments, relative to a bare batch.
        moment_cost: A batch with them, relative to a bare batch.

    Returns:
        The ratio (1.0: as fast as a bare pass).

    Example:
        >>> round(projected_ratio(2000, 32, 128, 1.0, 1.5), 3)  # 4 of 63 batches reduce
        0.969
        >>> round(projected_ratio(100, 32, 128, 1.0, 1.5), 3)  # every batch reduces
        0.667
    """
    batches = math.ceil(n / batch_size)
    reducing = batches if n <= moment_images else math.ceil(moment_images / batch_size)
    return batches / ((batches - reducing) * pass_cost + reducing * moment_cost)


def most_moment_images(n: int, batch_size: int, pass_cost: float, moment_cost: float,
                       target: float) -> int:
    """Return the most moment images (whole batches) at which :func:`projected_ratio` reaches `target`; 0 if none.

    Example:
        >>> most_moment_images(2000, 32, 1.0, 1.5, 0.95)  # 6 batches: 63 / 66 = 0.955
        192
        >>> most_moment_images(2000, 32, 1.1, 1.5, 0.95)
        0
    """
    best = 0
    for batches in range(1, math.ceil(n / batch_size)):
        if projected_ratio(n, batch_size, batches * batch_size, pass_cost, moment_cost) >= target:
            best = batches * batch_size
    return best


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="a packaged set (advisor.examples)")
    parser.add_argument("--n", type=int, default=1000, help="images written for the set (stratified)")
    parser.add_argument("--batches", type=int, default=20, help="batches timed per round")
    parser.add_argument("--rounds", type=int, default=3, help="passes over those batches")
    parser.add_argument("--samples", default=DEFAULT_SAMPLES, help="sample sizes to project")
    parser.add_argument("--target", type=float, default=0.95, help="the ratio the projection is held to")
    parser.add_argument("--results", type=Path, default=None, help="append one JSON line here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FINETUNE_ADVISOR_CACHE", tempfile.mkdtemp(prefix="bench-moment-cost-"))
    import keras
    import numpy as np

    from advisor import config
    from advisor.backbones import get_backbone
    from advisor.data import scan_dataset
    from advisor.data.decode_cache import decode_images
    from advisor.environment import usable_cores
    from advisor.examples import write_dataset
    from advisor.measure.forward import build_probe_model

    batch = config.EMBED_BATCH_SIZE
    backbone = get_backbone("mobilenet_v2")
    files = scan_dataset(write_dataset(args.dataset, n=args.n), seed=0).files("train")
    decoded = decode_images(files[: batch * args.batches], backbone.image_size)
    images = np.asarray(decoded.images[decoded.rows])
    probe = build_probe_model(backbone)
    off, on = (np.full((batch, 1), value, dtype="float32") for value in (0.0, 1.0))
    variants = {
        "bare": lambda b: backbone.model.predict_on_batch(b),
        "pass": lambda b: probe.predict_on_batch([b, off]),
        "pass + moments": lambda b: probe.predict_on_batch([b, on]),
    }
    for run in variants.values():  # traced before timing
        run(images[:batch])
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for start in range(0, len(images) - batch + 1, batch):
            for name, run in variants.items():
                began = time.perf_counter()
                run(images[start : start + batch])
                times[name].append(time.perf_counter() - began)
    bare = np.array(times["bare"])
    cost = {name: float(np.sum(t) / bare.sum()) for name, t in times.items()}

    print(f"backend={keras.config.backend()} keras={keras.__version__} backbone=mobilenet_v2 "
          f"size={backbone.image_size} batch={batch} cpu={platform.processor() or platform.machine()} "
          f"cores={usable_cores()} dataset={args.dataset} batches={len(bare)} "
          f"({args.batches} x {args.rounds} rounds, alternated per batch)")
    print(f"{'variant':<16}{'ms/batch':>10}{'img/s':>8}{'cost':>7}")
    for name, t in times.items():
        t = np.array(t)
        print(f"{name:<16}{1000 * np.median(t):>10.0f}{batch * len(t) / t.sum():>8.1f}{cost[name]:>7.3f}")
    print(f"\nprojected measuring pass / bare pass, {config.MOMENT_IMAGES} moment images "
          f"(target >= {args.target:g})")
    print(f"{'sample':>8}{'batches':>9}{'with moments':>14}{'ratio':>7}{'most moment images for target':>31}")
    projections = []
    for n in (int(s) for s in args.samples.split(",") if s):
        batches = math.ceil(n / batch)
        reducing = batches if n <= config.MOMENT_IMAGES else math.ceil(config.MOMENT_IMAGES / batch)
        ratio = projected_ratio(n, batch, config.MOMENT_IMAGES, cost["pass"], cost["pass + moments"])
        most = most_moment_images(n, batch, cost["pass"], cost["pass + moments"], args.target)
        projections.append({"n": n, "batches": batches, "moment_batches": reducing, "ratio": ratio,
                            "most_moment_images": most})
        print(f"{n:>8}{batches:>9}{reducing:>14}{ratio:>7.3f}{most:>31}")
    if args.results is not None:
        with args.results.open("a") as out:
            out.write(json.dumps({"dataset": args.dataset, "batch": batch, "batches": len(bare),
                                  "moment_images": config.MOMENT_IMAGES, "cost": cost,
                                  "ms_per_batch": {k: 1000 * float(np.median(v)) for k, v in times.items()},
                                  "projections": projections}) + "\n")


if __name__ == "__main__":
    main()
