"""Deployable exports (issue 21): per format, size, CPU latency, throughput and test accuracy.

For each data set, one run per regime (``svm``, ``last-layer``, ``partial``,
``full``; the advisor's plan for that regime, fine-tuning epochs capped by
``--epochs``) is written with ``pipeline.execute`` and exported in every format
with :func:`advisor.app.export.export_run_formats` (each export checked against
``model.keras`` on the run's test split before it is written). Then, per
format, ``model.keras`` included as the reference:

- file size (MB; the SavedModel folder's total),
- export s (Keras' exporter, plus the int8 calibration),
- agreement: top-1 agreement with ``model.keras`` on the test split,
- test accuracy on the run's test split,
- ms/image at batch 1: median of ``--repeats`` calls on one test image,
- images/s at batch 32: 32 test images per call, ``--repeats`` calls.

Runtimes: ``model.keras`` with ``predict_on_batch`` (Keras' compiled predict
step); ``.tflite`` on ``ai_edge_litert`` (else ``tf.lite.Interpreter``, with
XNNPACK); ``.onnx`` on ONNX Runtime's CPU provider; the SavedModel through
``keras.layers.TFSMLayer``. Every runtime gets the cores this process may use.
Wall times on a shared machine are upper bounds (load average printed).

Run::

    python -m benchmarks.bench_export --quick                    # digits n=300, 1 fine-tune epoch
    python -m benchmarks.bench_export --datasets digits,tuxpaint --n 600 --epochs 2

A set smaller than ``--n`` is used whole (Tux Paint has 263 images). Each
data set's rows are printed as soon as its four runs are measured, and every
row is appended to ``--results`` (JSON lines), so an interrupted run keeps
what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from importlib import metadata
from pathlib import Path

QUICK = {"n": 300, "epochs": 1, "repeats": 20}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="digits", help="comma-separated packaged sets (digits, tuxpaint)")
    parser.add_argument("--regimes", default="svm,last-layer,partial,full")
    parser.add_argument("--formats", default="litert,litert-dynamic,litert-int8,onnx,saved_model")
    parser.add_argument("--n", type=int, default=None, help="images per set (stratified); default 1000")
    parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs of partial/full; default 3")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per batch size; default 50")
    parser.add_argument("--sample-cap", type=int, default=200, help="images the advisor measures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=None,
                        help="JSON-lines file the rows are appended to as they are measured")
    parser.add_argument("--quick", action="store_true", help=f"n={QUICK['n']}, epochs={QUICK['epochs']}, "
                        f"repeats={QUICK['repeats']}")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else {"n": 1000, "epochs": 3, "repeats": 50}).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def _timings(predict, images, repeats: int) -> tuple[float, float]:
    """(median ms per image at batch 1, images/s at batch 32), after a warm-up call of each."""
    import numpy as np

    one = np.ascontiguousarray(images[:1])
    batch = np.ascontiguousarray(np.resize(images, (32, *images.shape[1:])))
    predict(one)
    singles = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(one)
        singles.append(time.perf_counter() - started)
    predict(batch)
    started = time.perf_counter()
    for _ in range(repeats):
        predict(batch)
    return 1000 * statistics.median(singles), 32 * repeats / (time.perf_counter() - started)


def _dataset_folder(name: str, n: int, seed: int) -> Path:
    """The set's stratified `n`-image subsample, or the whole set when it holds `n` images or fewer."""
    from advisor.examples import write_dataset
    from advisor.examples.sources import DatasetRequestError

    try:
        return write_dataset(name, n=n, seed=seed)
    except DatasetRequestError:
        whole = write_dataset(name, seed=seed)
        count = sum(1 for path in whole.rglob("*") if path.is_file() and path.parent != whole)
        if count > n:
            raise
        print(f"# {name}: {count} images, fewer than n={n}: the whole set", flush=True)
        return whole


def _run_dataset(name: str, args: argparse.Namespace, root: Path, rows: list[dict]) -> None:
    import keras
    import numpy as np

    from advisor.app import pipeline
    from advisor.app.export import export_run_formats
    from advisor.plan import Regime
    from strategies.export import load_exported

    folder = _dataset_folder(name, args.n, args.seed)
    for regime in [Regime.parse(r) for r in args.regimes.split(",") if r]:
        keras.utils.set_random_seed(args.seed)
        started = time.perf_counter()
        advice = pipeline.advise(folder, regime=regime, seed=args.seed, epochs=args.epochs,
                                 sample_cap=args.sample_cap)
        run = pipeline.execute(advice, root / name / regime.value, overwrite=True).out
        run_s = time.perf_counter() - started
        exports = export_run_formats(run, [f for f in args.formats.split(",") if f])
        model = keras.saving.load_model(run / pipeline.MODEL_FILE)
        images = np.asarray(_test_images(run, model))
        base = {"dataset": name, "regime": regime.value, "n_test": exports[0].check.n_images,
                "image_size": int(model.inputs[0].shape[1]), "run_s": run_s}
        ms, per_s = _timings(model.predict_on_batch, images, args.repeats)
        measured = [base | {"format": "model.keras", "mb": (run / pipeline.MODEL_FILE).stat().st_size / 1e6,
                            "export_s": None, "agreement": 1.0,
                            "accuracy": exports[0].check.reference, "ms_b1": ms, "per_s_b32": per_s}]
        for result in exports:
            runtime = load_exported(result.path)
            ms, per_s = _timings(lambda x, r=runtime: r.predict(x, batch_size=32), images, args.repeats)
            measured.append(base | {"format": result.format, "mb": result.bytes / 1e6, "export_s": result.export_s,
                                "agreement": result.check.agreement, "accuracy": result.check.value,
                                "ms_b1": ms, "per_s_b32": per_s})
        rows.extend(measured)
        if args.results is not None:
            with args.results.open("a") as out:
                out.writelines(json.dumps(row | {"seed": args.seed, "n": args.n, "epochs": args.epochs})
                               + "\n" for row in measured)
        print(f"# {name} {regime.value}: run {run_s:.0f} s, exports "
              + ", ".join(f"{r.format} {r.export_s:.1f} s" for r in exports), flush=True)


def _test_images(run: Path, model):
    """The run's test images that decoded, as `model` takes them (uint8, from the decode cache)."""
    from advisor.app.advice import SPLIT_FILE
    from advisor.backbones.preprocessing import decode_resize_ratio
    from advisor.data import Dataset
    from advisor.data.decode_cache import decode_images

    decoded = decode_images(Dataset.load_split(run / SPLIT_FILE).files("test"),
                            int(model.inputs[0].shape[1]), resize_ratio=decode_resize_ratio(model))
    return decoded.images[decoded.rows]


def _print(rows: list[dict]) -> None:
    header = (f"{'dataset':8} {'regime':10} {'px':>4} {'format':12} {'MB':>6} {'export s':>8} "
              f"{'agree':>6} {'test acc':>8} {'ms/img b1':>9} {'img/s b32':>9}")
    print("\n" + header)
    print("-" * len(header))
    for r in rows:
        export_s = "" if r["export_s"] is None else f"{r['export_s']:.1f}"
        print(f"{r['dataset']:8} {r['regime']:10} {r['image_size']:>4} {r['format']:12} {r['mb']:>6.2f} "
              f"{export_s:>8} {r['agreement']:>6.3f} {r['accuracy']:>8.4f} {r['ms_b1']:>9.2f} "
              f"{r['per_s_b32']:>9.0f}")


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FINETUNE_ADVISOR_CACHE", tempfile.mkdtemp(prefix="bench-export-"))
    import keras

    from advisor.environment import usable_cores

    litert = "ai_edge_litert " + _version("ai-edge-litert") if _version("ai-edge-litert") != "-" else "tf.lite"
    print(f"backend={keras.config.backend()} keras={keras.__version__} "
          f"tensorflow={_version('tensorflow-cpu') if _version('tensorflow-cpu') != '-' else _version('tensorflow')} "
          f"onnxruntime={_version('onnxruntime')} tf2onnx={_version('tf2onnx')} litert={litert} "
          f"cpu={platform.processor() or platform.machine()} cores={usable_cores()} seed={args.seed} "
          f"n={args.n} epochs={args.epochs} repeats={args.repeats}")
    print("NOTE: shared machine: wall times are upper bounds; load average "
          + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    started = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-export-runs-") as tmp:
        for name in args.datasets.split(","):
            start = len(rows)
            _run_dataset(name, args, Path(tmp), rows)
            _print(rows[start:])
    if len(args.datasets.split(",")) > 1:
        print("\nAll sets:")
        _print(rows)
    print(f"\ntest images per run: {', '.join(sorted({str(r['n_test']) for r in rows}))}; total "
          f"{time.perf_counter() - started:.0f} s; load average at end "
          + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
