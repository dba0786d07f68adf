"""Benchmark the decode-once cache against ``keras.utils.image_dataset_from_directory``.

For each data set (Fashion-MNIST written as PNG class folders at several sizes,
Tux Paint photos) this measures, at the same output size:

- first pass: scanning + decoding into the cache (``advisor.data.scan`` +
  ``advisor.data.decode_cache``, run in a fresh child process so its peak RSS is
  the cost of building the cache alone) vs. iterating Keras' directory
  dataset once;
- one epoch once cached: iterating ``strategies.batches.ImageBatches`` over the
  memory-mapped cache vs. a second pass over the Keras dataset (it decodes
  again every epoch).

With ``--native`` each set is also timed on the native-size path (issue 16):
the cache holds every image at its own size (``decode_size``, the largest short
side, ``resize_ratio=1``: the central square, no resampling) when that is below
``--image-size``, and the model resizes to the image size inside its graph.
Keras' directory dataset still decodes and resizes to ``--image-size`` (what
the model needs), so the comparison is what each pipeline does to feed the
same network. ``up ep s`` is the cached epoch plus that in-graph resize and
crop, run here on the CPU (on an accelerator it runs on the device).

Targets (issue 4): first pass >= 2x faster, cached epochs >= 10x
faster, peak RSS while building the 70k cache well under 2 GB; issue 16 adds,
on the native path: the cache cut by the area ratio. Files are read
from the page cache in both runs (the data set was just written). CPU time per
image (all threads and worker processes) is printed too: on a shared machine
it is steadier than wall-clock rates.

Run::

    python -m benchmarks.bench_decode                      # 10k and 70k Fashion-MNIST, Tux Paint
    python -m benchmarks.bench_decode --sizes 10000 --datasets fashion-mnist
    python -m benchmarks.bench_decode --sizes 500 --datasets digits --image-size 64
    python -m benchmarks.bench_decode --sizes 10000 --datasets fashion-mnist --image-size 128 --native
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Batch size of both loaders.
BATCH_SIZE = 64


def _child(args: argparse.Namespace) -> None:
    """Scan + decode into a fresh cache; print timings and peak RSS as JSON."""
    from advisor.data import SPLITS, scan_dataset
    from advisor.data.decode_cache import decode_images

    rss_start = _vm_hwm_kb()
    cpu_start = time.process_time()
    t0 = time.perf_counter()
    ds = scan_dataset(Path(args.root), seed=args.seed)
    t1 = time.perf_counter()
    paths = [p for split in SPLITS for p in ds.files(split)]
    size, ratio = _decode_geometry(ds, args)
    decoded = decode_images(
        paths, size, resize_ratio=ratio, workers=args.workers or None, executor=args.executor
    )
    t2 = time.perf_counter()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve, so the child
    # would report the (Keras-loaded) parent's size. Worker processes, if any,
    # add their largest peak.
    peak_kb = _vm_hwm_kb() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cpu = sum(
        getattr(resource.getrusage(who), field)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for field in ("ru_utime", "ru_stime")
    )
    json.dump(
        {
            "n": len(paths),
            "cpu_s": cpu - cpu_start,
            "failed": len(decoded.failures),
            "scan_s": t1 - t0,
            "decode_s": t2 - t1,
            "rss_start_mb": rss_start / 1024,
            "peak_rss_mb": peak_kb / 1024,
            "cache_mb": decoded.cache_file.stat().st_size / 2**20,
            "decode_size": size,
        },
        sys.stdout,
    )


def _decode_geometry(ds, args: argparse.Namespace) -> tuple[int, float]:
    """(size, resize_ratio) of the decode: the image size, or with --native the largest short side."""
    from advisor import config

    largest = min(ds.summary.width.max, ds.summary.height.max)
    # The planner's rule (advisor.decide.inputs.choose_decode_size), not imported here:
    # advisor.decide loads Keras, whose import would count as decoding time and memory.
    if not args.native or largest >= args.image_size:
        return args.image_size, config.RESIZE_RATIO
    return largest, 1.0


def _vm_hwm_kb() -> int:
    """Peak resident memory of this process (kB), from /proc (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _ours_first_pass(root: Path, args: argparse.Namespace, executor: str, cache: Path) -> dict:
    env = dict(os.environ, FINETUNE_ADVISOR_CACHE=str(cache))
    command = [
        sys.executable, "-m", "benchmarks.bench_decode", "--child", "--root", str(root),
        "--image-size", str(args.image_size), "--seed", str(args.seed),
        "--executor", executor, "--workers", str(args.workers),
    ] + (["--native"] if args.native else [])
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ours_cached_epoch(root: Path, args: argparse.Namespace, cache: Path) -> dict:
    previous = os.environ.get("FINETUNE_ADVISOR_CACHE")
    os.environ["FINETUNE_ADVISOR_CACHE"] = str(cache)
    try:
        return _time_cached_epoch(root, args)
    finally:  # the data sets themselves live in the real cache
        if previous is None:
            del os.environ["FINETUNE_ADVISOR_CACHE"]
        else:
            os.environ["FINETUNE_ADVISOR_CACHE"] = previous


def _time_cached_epoch(root: Path, args: argparse.Namespace) -> dict:
    from advisor.data import SPLITS, scan_dataset
    from advisor.data.decode_cache import decode_images
    from strategies.batches import ImageBatches

    ds = scan_dataset(root, seed=args.seed)
    paths = [p for split in SPLITS for p in ds.files(split)]
    labels = [label for split in SPLITS for label in ds.labels(split)]
    size, ratio = _decode_geometry(ds, args)
    t0 = time.perf_counter()
    decoded = decode_images(paths, size, resize_ratio=ratio)
    t1 = time.perf_counter()
    assert decoded.from_cache, "expected a cache hit"
    batches = ImageBatches(
        decoded.images, labels, rows=decoded.rows, batch_size=BATCH_SIZE, shuffle=True, seed=args.seed
    )
    seen = 0
    for i in range(len(batches)):
        x, _ = batches[i]
        seen += len(x)
    t2 = time.perf_counter()
    upscaled_s = None
    if size != args.image_size:  # the same epoch through the model's in-graph resize and crop
        import keras

        from advisor.backbones.preprocessing import model_input

        inputs, x = model_input(args.image_size, size)
        front = keras.Model(inputs, x)
        front.predict_on_batch(batches[0][0])  # traced once, outside the timing
        t3 = time.perf_counter()
        for i in range(len(batches)):
            front.predict_on_batch(batches[i][0])
        upscaled_s = t2 - t1 + time.perf_counter() - t3
    return {"open_s": t1 - t0, "epoch_s": t2 - t1, "seen": seen, "upscaled_epoch_s": upscaled_s}


def _keras_passes(root: Path, args: argparse.Namespace) -> dict:
    import keras

    t0 = time.perf_counter()
    c0 = time.process_time()
    data = keras.utils.image_dataset_from_directory(
        root,
        image_size=(args.image_size, args.image_size),
        batch_size=BATCH_SIZE,
        shuffle=True,
        seed=args.seed,
        verbose=False,
    )
    seen = 0
    for x, _ in data:
        seen += int(x.shape[0])
    t1 = time.perf_counter()
    c1 = time.process_time()
    for _ in data:
        pass
    t2 = time.perf_counter()
    return {"n": seen, "first_s": t1 - t0, "first_cpu_s": c1 - c0, "epoch_s": t2 - t1}


def _datasets(args: argparse.Namespace) -> list[tuple[str, int | None]]:
    jobs: list[tuple[str, int | None]] = []
    sizes = [int(s) for s in args.sizes.split(",") if s]
    for name in args.datasets.split(","):
        if name in ("fashion-mnist", "digits", "mnist-5k"):
            jobs.extend((name, n) for n in sizes)
        else:
            jobs.append((name, None))
    return jobs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,70000", help="Subsample sizes of the MNIST-like sets.")
    parser.add_argument("--datasets", default="fashion-mnist,tuxpaint", help="Comma-separated set names.")
    parser.add_argument("--image-size", type=int, default=224, help="Output height and width.")
    parser.add_argument("--executor", default="thread", help="thread, process, or both: thread,process.")
    parser.add_argument("--workers", type=int, default=0, help="Decode workers (0: one per core).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-keras", action="store_true", help="Only time this layer.")
    parser.add_argument("--native", action="store_true",
                        help="Also time the native-size path (decode_size, resized in the model).")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import PIL

    from advisor.examples import write_dataset

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"backend={keras.backend.backend()}  keras={keras.__version__}  pillow={PIL.__version__}  "
        f"python={platform.python_version()}  cores={cores}  seed={args.seed}  "
        f"image_size={args.image_size}  batch={BATCH_SIZE}  workers={args.workers or cores}"
    )
    header = (
        f"{'dataset':<22}{'n':>7}{'decode':>7}{'executor':>9}{'scan s':>8}{'decode s':>9}{'ours img/s':>11}"
        f"{'keras img/s':>12}{'1st x':>7}{'ours ep s':>10}{'keras ep s':>11}{'epoch x':>8}"
        f"{'up ep s':>8}{'up x':>6}{'peak RSS MB':>12}{'cache MB':>9}{'cpu ms/img ours':>16}{'keras':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, n in _datasets(args):
        root = write_dataset(name, n=n, seed=args.seed)
        label = f"{name}" + (f"-{n}" if n else "")
        keras_result = None if args.skip_keras else _keras_passes(root, args)
        modes = (False, True) if args.native else (False,)
        for executor, native in ((e, native) for native in modes for e in args.executor.split(",")):
            run_args = argparse.Namespace(**{**vars(args), "native": native})
            with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
                cache = Path(tmp)
                first = _ours_first_pass(root, run_args, executor, cache)
                cached = _ours_cached_epoch(root, run_args, cache)
            n_images = first["n"]
            first_s = first["scan_s"] + first["decode_s"]
            ours_rate = n_images / first_s
            if keras_result:
                keras_rate = keras_result["n"] / keras_result["first_s"]
                k_rate, k_epoch = f"{keras_rate:,.0f}", f"{keras_result['epoch_s']:.2f}"
                k_cpu = f"{keras_result['first_cpu_s'] / keras_result['n'] * 1e3:.2f}"
                x_first = f"{ours_rate / keras_rate:.1f}"
                x_epoch = f"{keras_result['epoch_s'] / cached['epoch_s']:.0f}"
            else:
                k_rate = k_epoch = x_first = x_epoch = k_cpu = "-"
            up_s = cached["upscaled_epoch_s"]
            up_epoch = "-" if up_s is None else f"{up_s:.2f}"
            x_up = "-" if up_s is None or not keras_result else f"{keras_result['epoch_s'] / up_s:.1f}"
            print(
                f"{label:<22}{n_images:>7}{first['decode_size']:>7}{executor:>9}{first['scan_s']:>8.2f}"
                f"{first['decode_s']:>9.2f}"
                f"{ours_rate:>11,.0f}{k_rate:>12}{x_first:>7}{cached['epoch_s']:>10.2f}{k_epoch:>11}"
                f"{x_epoch:>8}{up_epoch:>8}{x_up:>6}{first['peak_rss_mb']:>12,.0f}"
                f"{first['cache_mb']:>9,.1f}{first['cpu_s'] / n_images * 1e3:>16.2f}{k_cpu:>6}",
                flush=True,
            )


if __name__ == "__main__":
    main()
