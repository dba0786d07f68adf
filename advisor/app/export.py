"""Deployable copies of a run's model, each checked against ``model.keras`` before it is reported.

``advise export RUN --format litert|litert-dynamic|litert-int8|onnx|saved_model``
(or ``advise DATA_DIR --export ...``) reads the run folder's ``model.keras`` and
``split.json`` and:

1. exports the model with Keras' own exporter (:func:`strategies.export.export_model`;
   for ``litert-int8``, TensorFlow's post-training int8 quantization, calibrated
   on ``INT8_CALIBRATION_IMAGES`` images drawn from the run's training split
   with the split's seed; for ``litert-dynamic``, its dynamic-range
   quantization: int8 weights, float activations, nothing calibrated), into a
   temporary name beside the destination;
2. runs the export with its own runtime on the run's test split and compares
   it with ``model.keras`` on the same images: a float export must agree on the
   top-1 class of at least ``MIN_FLOAT_AGREEMENT`` of them (regression: on the
   value, within ``REGRESSION_TOLERANCE`` training-target standard deviations),
   or nothing is written; a quantized export (``litert-dynamic``,
   ``litert-int8``) reports its accuracy drop (regression: its MAE rise) and
   warns above ``INT8_WARN_DROP_PP`` points (``INT8_WARN_MAE_RISE``);
3. writes the sidecar ``<export>.json`` (format, class names or the
   regression target, input contract, the check) and renames the export into
   place, so an export that exists was checked.

The exported graph keeps the preprocessing: raw uint8 RGB pixels of shape
``(N, S, S, 3)`` in, as ``model.keras`` takes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np

from advisor.app.advice import MODEL_FILE, SPLIT_FILE
from advisor.app.export_formats import (
    TENSORFLOW_INSTALL,
    ExportError,
    ExportFormat,
    Quantization,
    check_requirements,
    get_export_format,
)
from advisor.backbones.model_file import load_model, load_task
from advisor.backbones.preprocessing import decode_resize_ratio
from advisor.cache import atomic_path, atomic_write_text
from advisor.data import Dataset
from advisor.data.decode_cache import decode_images
from strategies.export import export_model, load_exported

logger = logging.getLogger(__name__)

#: The sidecar's input contract: torchvision's decode, or a native one the graph resizes and crops.
_PIXELS = "RGB 0-255, short side resized to image_size * resize_ratio, centre-cropped to image_size"
_NATIVE_PIXELS = ("RGB 0-255, the central square of the short side at image_size (resize_ratio 1: "
                  "as it is when that is the image's size); the graph resizes and crops")
#: Least top-1 agreement with ``model.keras`` on the test split for a float export to be written.
MIN_FLOAT_AGREEMENT = 0.995
#: A quantized export whose test accuracy is this many points below ``model.keras``'s gets a warning.
INT8_WARN_DROP_PP = 1.0
#: Training images that calibrate int8 quantization (fewer when the split is smaller).
INT8_CALIBRATION_IMAGES = 128
#: Regression: a prediction agrees when within this many training-target standard deviations.
REGRESSION_TOLERANCE = 0.01
#: Regression: a quantized export whose test MAE is this fraction above ``model.keras``'s gets a warning.
INT8_WARN_MAE_RISE = 0.05
#: Images per runtime call while checking.
CHECK_BATCH_SIZE = 32
#: The sidecar's name is the export's plus this suffix (``model.tflite.json``, ``saved_model.json``).
SIDECAR_SUFFIX = ".json"
SIDECAR_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class ExportCheck:
    """How an export compares with ``model.keras`` on the run's test split.

    Attributes:
        n_images: Test images compared.
        agreement: Fraction with the same top-1 class (regression: a value
            within ``REGRESSION_TOLERANCE`` training standard deviations).
        metric: ``"accuracy"`` or (regression) ``"mae"``.
        value: The export's test accuracy (or MAE).
        reference: ``model.keras``'s, on the same images.
        change: Accuracy drop in points (positive: the export is worse); for
            regression the MAE's relative rise.
        max_abs_diff: Largest absolute difference of any output.
        min_agreement: The agreement a float export needs (`None`: quantized, reported only).
    """

    n_images: int
    agreement: float
    metric: str
    value: float
    reference: float
    change: float
    max_abs_diff: float
    min_agreement: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """A written, checked export.

    Attributes:
        format: The format's name (``"litert-int8"``).
        path: The export (a file, or the SavedModel folder).
        sidecar: Its ``.json`` sidecar (class names or target, input, check).
        bytes: Size on disk.
        export_s: Seconds the exporter took.
        check: The comparison with ``model.keras``.
        warning: Why the export may be worse than ``model.keras`` (quantized), or `None`.
    """

    format: str
    path: Path
    sidecar: Path
    bytes: int
    export_s: float
    check: ExportCheck
    warning: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"format": self.format, "path": str(self.path), "sidecar": str(self.sidecar),
                "bytes": self.bytes, "export_s": self.export_s, "check": self.check.to_dict(),
                "warning": self.warning}


def sidecar_path(export: Path | str) -> Path:
    """Return the sidecar of an export: its path plus ``.json``.

    Example:
        >>> sidecar_path(Path("run/model-int8.tflite")).name, sidecar_path(Path("run/saved_model")).name
        ('model-int8.tflite.json', 'saved_model.json')
    """
    export = Path(export)
    return export.with_name(export.name + SIDECAR_SUFFIX)


def check_backend(fmt: ExportFormat) -> ExportFormat:
    """Refuse a format that Keras' current backend cannot export or check.

    Every format goes through TensorFlow (the LiteRT converter, tf2onnx, the
    SavedModel writer); ``model.keras`` loads on any backend, so a run trained
    under JAX is exported by running ``advise export`` with
    ``KERAS_BACKEND=tensorflow``.

    Raises:
        ExportError: TensorFlow is not installed, or the backend is not TensorFlow.

    Example:
        >>> from advisor.app.export_formats import get_export_format
        >>> check_backend(get_export_format("litert")).name if keras.config.backend() == "tensorflow" else "litert"
        'litert'
    """
    check_requirements(fmt)
    if keras.config.backend() != "tensorflow":
        raise ExportError(
            f"The {fmt.name} export runs on Keras' TensorFlow backend; this process uses "
            f"KERAS_BACKEND={keras.config.backend()}. Run it again with KERAS_BACKEND=tensorflow "
            f"(model.keras loads on either; {TENSORFLOW_INSTALL.split(',')[0]} if it is missing).")
    return fmt


def export_run(run_dir: Path | str, fmt: str | ExportFormat, *, out: Path | str | None = None,
               calibration_images: int = INT8_CALIBRATION_IMAGES) -> ExportResult:
    """Export a run's ``model.keras``, check it on the run's test split, then write it.

    Args:
        run_dir: The folder of a finished run (``model.keras`` and ``split.json``).
        fmt: ``"litert"``, ``"litert-dynamic"``, ``"litert-int8"``, ``"onnx"`` or
            ``"saved_model"`` (or an :class:`ExportFormat`).
        out: Where to write the export. Defaults to `None`:
            ``run_dir / fmt.file_name`` (``model.tflite``, ``model-dynamic.tflite``,
            ``model-int8.tflite``, ``model.onnx``, ``saved_model/``). An existing
            export there is replaced.
        calibration_images: Training images that calibrate ``litert-int8``.
            Defaults to `INT8_CALIBRATION_IMAGES`.

    Returns:
        The :class:`ExportResult`; the export and its sidecar exist on return.

    Raises:
        ExportError: Unknown format, a missing package or the wrong backend,
            `out` with the wrong suffix, no usable run in `run_dir`, or a float
            export that disagrees with ``model.keras`` (nothing is written then).

    Example:
        >>> result = export_run("advise-runs/digits", "litert-int8")  # doctest: +SKIP
        >>> result.path.name, result.check.change  # accuracy drop in points  # doctest: +SKIP
        ('model-int8.tflite', 0.28)
    """
    [result] = export_run_formats(run_dir, [fmt], out=out, calibration_images=calibration_images)
    return result


def export_run_formats(run_dir: Path | str, formats: Sequence[str | ExportFormat], *,
                       out: Path | str | None = None,
                       calibration_images: int = INT8_CALIBRATION_IMAGES) -> list[ExportResult]:
    """Export a run in several formats: :func:`export_run` with one load of the model and test split.

    Each format is checked and written before the next starts; the first
    failure raises (the exports written before it stay).

    Args:
        run_dir: The folder of a finished run.
        formats: Format names (or :class:`ExportFormat` values).
        out: Where to write the export; only with one format. Defaults to `None`
            (``run_dir / fmt.file_name``).
        calibration_images: Training images that calibrate ``litert-int8``.
            Defaults to `INT8_CALIBRATION_IMAGES`.

    Returns:
        One :class:`ExportResult` per format, in order; ``[]`` for no format
        (the run is not read: ``advise`` calls this after every run).

    Raises:
        ExportError: As :func:`export_run`; also `out` with several formats.

    Example:
        >>> export_run_formats("/no/such/run", [])  # no format: nothing read, nothing written
        []
    """
    formats = [check_backend(get_export_format(f) if isinstance(f, str) else f) for f in formats]
    if not formats:  # nothing to check against: the model and test split are not read
        return []
    if out is not None and len(formats) != 1:
        raise ExportError(f"--out names one export; pass one format. Received: {len(formats)} formats")
    run_dir = Path(run_dir)
    targets = [_target(run_dir, fmt, out) for fmt in formats]
    run = _read_run(run_dir)
    calibrated = [fmt.quantization is Quantization.INT8 for fmt in formats]
    representative = _calibration(run, calibration_images) if any(calibrated) else None
    return [_export_one(run, fmt, target, representative if calibrate else None)
            for fmt, target, calibrate in zip(formats, targets, calibrated)]


def read_sidecar(export: Path | str) -> dict[str, Any]:
    """Read the sidecar of an export: task, class names (or target), input size, check.

    Args:
        export: A ``.tflite`` or ``.onnx`` file or SavedModel folder written by
            :func:`export_run`.

    Returns:
        The sidecar's dict; ``task``, ``output_names`` and ``image_size`` are there.

    Raises:
        ExportError: The sidecar is missing or malformed.

    Example:
        >>> read_sidecar(Path("/no/model.tflite"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.app.export_formats.ExportError: /no/model.tflite has no sidecar model.tflite.json (its class names); ...
    """
    export, path = Path(export), sidecar_path(export)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        version = int(info["schema_version"])
        _ = (info["task"], list(info["output_names"]), int(info["image_size"]))
    except FileNotFoundError:
        raise ExportError(f"{export} has no sidecar {path.name} (its class names); write the export "
                          "with advise export RUN --format FORMAT") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{path} is not an export sidecar ({type(exc).__name__}: {exc}); "
                          "export the run again") from None
    if version > SIDECAR_SCHEMA_VERSION:
        raise ExportError(f"{path} has schema_version {version}, newer than this advisor's "
                          f"({SIDECAR_SCHEMA_VERSION}); upgrade finetune-advisor")
    return info


# --------------------------------------------------------------------------- #
# Internals
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class _Run:
    """What every export of one run is checked against, read once."""

    folder: Path
    model: keras.Model
    names: tuple[str, ...]
    task: str
    dataset: Dataset
    test_images: np.ndarray  # the test images that decoded, uint8
    truth: np.ndarray  # their labels (or targets)
    reference: np.ndarray  # model.keras's outputs on them


def _read_run(run_dir: Path) -> _Run:
    model_path = run_dir / MODEL_FILE
    if not model_path.is_file() or not (run_dir / SPLIT_FILE).is_file():
        raise ExportError(f"{run_dir} has no {MODEL_FILE} and {SPLIT_FILE}; pass the folder of a "
                          "finished run (advise DATA_DIR --out RUN)")
    model, names = load_model(model_path)
    task = load_task(model_path)
    dataset = Dataset.load_split(run_dir / SPLIT_FILE)
    images, rows = _decoded(dataset, "test", model)
    images = _gather(images, rows)
    truth = (dataset.targets("test") if task == "regression" else dataset.labels("test"))[rows]
    reference = np.asarray(model.predict(images, batch_size=CHECK_BATCH_SIZE, verbose=0), dtype=np.float32)
    return _Run(run_dir, model, names, task, dataset, images, truth, reference)


def _calibration(run: _Run, n: int) -> np.ndarray:
    """`n` training images (all of them when fewer), drawn with the split's seed."""
    images, rows = _decoded(run.dataset, "train", run.model)
    chosen = np.random.default_rng(run.dataset.seed).choice(rows, min(n, len(rows)), replace=False)
    return np.asarray(images[np.sort(chosen)])


def _export_one(run: _Run, fmt: ExportFormat, target: Path,
                representative: np.ndarray | None) -> ExportResult:
    """Export into a temporary name, check, write the sidecar, rename into place."""
    with _atomic_export(target, fmt) as tmp:
        start = time.perf_counter()
        with _quiet_exporter():
            export_model(run.model, tmp, fmt.keras_format, quantization=fmt.quantization.value,
                         representative=representative)
        export_s = time.perf_counter() - start
        outputs = load_exported(tmp).predict(run.test_images, batch_size=CHECK_BATCH_SIZE)
        train_std = float(run.dataset.targets("train").std()) if run.task == "regression" else 0.0
        check = _compare(outputs, run.reference, run.truth, task=run.task, quantized=fmt.quantized,
                         train_std=train_std)
        if check.min_agreement is not None and check.agreement < check.min_agreement:
            raise ExportError(
                f"The {fmt.name} export of {run.folder} agrees with {MODEL_FILE} on "
                f"{check.agreement:.2%} of the {check.n_images} test images; expected at least "
                f"{check.min_agreement:.1%}. Not written; report it with the run's report.json")
        warning = _warning(fmt, check)
        sidecar = sidecar_path(target)
        info = _sidecar(fmt, target, run, check, representative=representative)
        atomic_write_text(sidecar, json.dumps(info, indent=2, sort_keys=True))
    logger.info("Wrote %s (%s), checked on %d test images", target, fmt.name, check.n_images)
    return ExportResult(format=fmt.name, path=target, sidecar=sidecar, bytes=_size(target),
                        export_s=export_s, check=check, warning=warning)


def _target(run_dir: Path, fmt: ExportFormat, out: Path | str | None) -> Path:
    target = run_dir / fmt.file_name if out is None else Path(out)
    if fmt.suffix and target.suffix != fmt.suffix:
        raise ExportError(f"A {fmt.name} export is a {fmt.suffix} file. Received: --out {target}")
    if not fmt.suffix and target.suffix:
        raise ExportError(f"A {fmt.name} export is a folder; pass --out without a suffix. "
                          f"Received: --out {target}")
    if target.exists() and not fmt.suffix and not (target / "saved_model.pb").is_file():
        raise ExportError(f"{target} exists and is not a SavedModel; choose another --out")
    if target.is_dir() and fmt.suffix:
        raise ExportError(f"{target} is a folder; pass --out as a {fmt.suffix} file")
    return target


def _decoded(dataset: Dataset, split: str, model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    """The split's decoded images (a memory map) and the rows that decoded, as the run saw them."""
    # At the model's input size, natively when the model resizes inside (a plan's decode_size).
    decoded = decode_images(dataset.files(split), int(model.inputs[0].shape[1]),
                            resize_ratio=decode_resize_ratio(model))
    if not len(decoded.rows):
        raise ExportError(f"None of the {len(decoded)} {split} images of {dataset.root} could be read; "
                          "the run's split.json names them: restore the data folder")
    return decoded.images, decoded.rows


def _gather(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return images if len(rows) == len(images) else images[rows]


def _compare(outputs: np.ndarray, reference: np.ndarray, truth: np.ndarray, *, task: str,
             quantized: bool, train_std: float) -> ExportCheck:
    """Compare the export's outputs with model.keras's on the same images (and with the truth)."""
    diff = float(np.max(np.abs(outputs - reference))) if len(outputs) else 0.0
    minimum = None if quantized else MIN_FLOAT_AGREEMENT
    if task == "regression":
        values, expected = outputs[:, 0].astype(np.float64), reference[:, 0].astype(np.float64)
        agreement = float(np.mean(np.abs(values - expected) <= REGRESSION_TOLERANCE * max(train_std, 1e-12)))
        mae, reference_mae = float(np.mean(np.abs(values - truth))), float(np.mean(np.abs(expected - truth)))
        rise = (mae - reference_mae) / reference_mae if reference_mae > 0 else 0.0
        return ExportCheck(len(values), agreement, "mae", mae, reference_mae, rise, diff, minimum)
    predicted, expected = outputs.argmax(axis=1), reference.argmax(axis=1)
    accuracy, reference_accuracy = float(np.mean(predicted == truth)), float(np.mean(expected == truth))
    return ExportCheck(len(predicted), float(np.mean(predicted == expected)), "accuracy", accuracy,
                       reference_accuracy, 100.0 * (reference_accuracy - accuracy), diff, minimum)


def _warning(fmt: ExportFormat, check: ExportCheck) -> str | None:
    if not fmt.quantized:
        return None
    instead = ("deploy litert-dynamic (int8 weights, float activations: about as small, and within "
               "2 test images of model.keras on the benchmark's digits and photos) or the float litert "
               "export where that matters" if fmt.name == "litert-int8"
               else "deploy the float litert export where that matters")
    if check.metric == "accuracy" and check.change > INT8_WARN_DROP_PP:
        return (f"The {fmt.name} export's test accuracy is {check.value:.4f}, {check.change:.1f} points "
                f"below {MODEL_FILE}'s {check.reference:.4f} (warned above {INT8_WARN_DROP_PP:g}); "
                + instead)
    if check.metric == "mae" and check.change > INT8_WARN_MAE_RISE:
        return (f"The {fmt.name} export's test MAE is {check.value:.4g}, {check.change:.1%} above "
                f"{MODEL_FILE}'s {check.reference:.4g} (warned above {INT8_WARN_MAE_RISE:.0%}); "
                + instead)
    return None


def _sidecar(fmt: ExportFormat, target: Path, run: _Run, check: ExportCheck, *,
             representative: np.ndarray | None) -> dict[str, Any]:
    names, task, dataset = run.names, run.task, run.dataset
    shape = [None if d is None else int(d) for d in run.model.inputs[0].shape]
    ratio = decode_resize_ratio(run.model)
    info: dict[str, Any] = {
        "schema_version": SIDECAR_SCHEMA_VERSION,
        "format": fmt.name,
        "file": target.name,
        "runtime": fmt.runtime,
        "task": task,
        "output_names": list(names),
        "image_size": shape[1],
        "input": {"shape": shape, "dtype": "uint8", "resize_ratio": ratio,
                  "pixels": _NATIVE_PIXELS if ratio == 1.0 else _PIXELS},
        "output": {"shape": [None, len(names)],
                   "meaning": "the target's value" if task == "regression" else "class probabilities, in output_names order"},
        "source": {"file": MODEL_FILE, "sha256": _sha256(run.folder / MODEL_FILE)},
        "check": {"split": "test", **check.to_dict()},
        "versions": {p: _version(p) for p in ("finetune-advisor", "keras", "tensorflow", "tensorflow-cpu")},
    }
    if task == "regression":
        train = dataset.targets("train")
        info["target"] = {"name": names[0], "units": None, "train_mean": float(train.mean()),
                          "train_std": float(train.std())}
    else:
        info["class_names"] = list(names)
    if representative is not None:
        info["quantization"] = {"scheme": "post-training int8 (weights and activations; float where no "
                                "int8 kernel), TensorFlow Lite converter",
                                "calibration": {"split": "train", "images": len(representative),
                                                "seed": dataset.seed}}
    elif fmt.quantization is Quantization.DYNAMIC_RANGE:
        info["quantization"] = {"scheme": "post-training dynamic-range (int8 weights, float activations), "
                                "TensorFlow Lite converter", "calibration": None}
    return info


@contextlib.contextmanager
def _atomic_export(target: Path, fmt: ExportFormat) -> Iterator[Path]:
    """Yield a temporary path beside `target` (a file, or a folder that does not exist yet).

    On success it replaces `target` in one rename; on an error it is removed
    and `target` is left as it was.
    """
    if fmt.suffix:
        with atomic_path(target, suffix=fmt.suffix) as tmp:
            yield tmp
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence what Keras' exporters print that is no use here (tf2onnx's numpy-2 patch)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"keras\.src\.export\..*")
        yield


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
