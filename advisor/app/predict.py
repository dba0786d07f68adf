"""Predict with a saved model: files in, top-k classes (or a regression model's values) out;
bad files skipped and listed.

The model is a run's ``model.keras`` or one of its exports (``advise export``):
a ``.tflite`` or ``.onnx`` file or a SavedModel folder, whose class names (or
target) are read from the sidecar ``<export>.json`` written beside it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor import config
from advisor.app.export import read_sidecar
from advisor.backbones.model_file import load_model, load_task
from advisor.backbones.preprocessing import decode_resize_ratio
from advisor.data.images import ImageReadError, find_image_files, load_image
from advisor.errors import DatasetError
from strategies.export import load_exported

PREDICT_BATCH_SIZE = 64
#: Files `predict_files` runs as exports (a SavedModel is a folder).
EXPORT_SUFFIXES = (".tflite", ".onnx")


@dataclass(frozen=True, slots=True)
class Prediction:
    """Top classes of one image, or its predicted value (regression models)."""

    path: Path
    classes: tuple[tuple[str, float], ...]
    value: float | None = None


@dataclass(frozen=True, slots=True)
class Predictions:
    """Predictions of a batch of files, with the files that could not be read.

    For a regression model `task` is ``"regression"``, `target_name` names
    the target and each row's ``value`` holds the prediction.
    """

    rows: tuple[Prediction, ...]
    skipped: tuple[tuple[Path, str], ...]
    task: str = "classification"
    target_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        if self.task == "regression":
            return {
                "task": "regression", "target": self.target_name,
                "predictions": [{"path": str(r.path), "value": r.value} for r in self.rows],
                "skipped": [{"path": str(p), "reason": reason} for p, reason in self.skipped],
            }
        return {
            "predictions": [{"path": str(r.path), "classes": [
                {"class": n, "probability": p} for n, p in r.classes]} for r in self.rows],
            "skipped": [{"path": str(p), "reason": reason} for p, reason in self.skipped],
        }

    def to_csv(self) -> str:
        """Return one CSV row per image and rank: path, rank, class, probability.

        For a regression model: one row per image, path and the predicted value
        (the column is named after the target).
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if self.task == "regression":
            writer.writerow(["path", self.target_name or "value"])
            for row in self.rows:
                writer.writerow([row.path, f"{row.value:.6g}"])
            return buffer.getvalue()
        writer.writerow(["path", "rank", "class", "probability"])
        for row in self.rows:
            for rank, (name, p) in enumerate(row.classes, start=1):
                writer.writerow([row.path, rank, name, f"{p:.6f}"])
        return buffer.getvalue()


#: Unreadable files named in the error when none could be read.
_UNREADABLE_NAMED = 3


def _unreadable_message(skipped: Sequence[tuple[Path, str]]) -> str:
    """Say, in one line, that no file could be read: the first few with their reasons, then a count.

    Example:
        >>> _unreadable_message([(Path("a.png"), "empty file (0 bytes)")])
        'none of the 1 file(s) could be read as an image (a.png: empty file (0 bytes)); pass readable JPEG, PNG, BMP, GIF, TIFF or WebP images'
        >>> _unreadable_message([(Path(f"{i}.png"), "not an image Pillow can read") for i in range(5)])[-71:]
        '... and 2 more); pass readable JPEG, PNG, BMP, GIF, TIFF or WebP images'
    """
    named = "; ".join(f"{path}: {reason}" for path, reason in skipped[:_UNREADABLE_NAMED])
    rest = len(skipped) - _UNREADABLE_NAMED
    more = f"; ... and {rest} more" if rest > 0 else ""
    return (f"none of the {len(skipped)} file(s) could be read as an image ({named}{more}); "
            "pass readable JPEG, PNG, BMP, GIF, TIFF or WebP images")


def predict_files(model_path: Path, paths: Sequence[Path], *, k: int = 3) -> Predictions:
    """Predict the top-`k` classes of image files with a saved model (or their values).

    A class's probability is the model's output: for a model written by
    ``advise`` it is calibrated on the run's validation split (temperature
    scaling, folded into the output layer; :mod:`strategies.calibration`), so
    0.8 means right about 8 times in 10 on data like the validation split.
    A regression model (``task.json`` says ``regression``) gives each image
    its predicted value instead of classes. Files that cannot be read are
    skipped and listed, never fatal. An export (``.tflite``, ``.onnx`` or a
    SavedModel folder, written by ``advise export``) runs on its own runtime,
    with the class names of its sidecar.

    Args:
        model_path: A ``model.keras`` written by a run, or one of its exports.
        paths: Image files, or folders searched recursively.
        k: Classes per image. Defaults to `3`.

    Returns:
        The :class:`Predictions`.

    Raises:
        ModelFileError: The model file cannot be used (or its runtime is not installed).
        ExportError: An export has no readable sidecar.
        DatasetError: No path exists or no image could be read.

    Example:
        >>> import tempfile
        >>> from advisor.backbones.model_file import save_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
        ...                           keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
        >>> model_path = save_model(model, tmp / "model.keras", ["even", "odd"])
        >>> _ = (tmp / "broken.png").write_bytes(b"not a PNG")
        >>> predictions = predict_files(model_path, [digits_dir / "3", tmp / "broken.png"], k=1)
        >>> len(predictions.rows), predictions.rows[0].classes[0][0] in ("even", "odd")
        (10, True)
        >>> [(path.name, reason) for path, reason in predictions.skipped]  # doctest: +ELLIPSIS
        [('broken.png', '...')]
    """
    return predict_image_files(model_path, find_image_files(paths), k=k)


def predict_image_files(model_path: Path, files: Sequence[Path], *, k: int = 3) -> Predictions:
    """Predict like :func:`predict_files` (same arguments, result and errors), for image files already found.

    For callers that walked the paths already (``advise predict`` does, in
    :func:`~advisor.app.preflight.check_predict_paths`, before Keras loads):
    each of `files` (as :func:`~advisor.data.images.find_image_files` returns
    them) is read as it is and no folder is searched again.

    Example:
        >>> import tempfile
        >>> from advisor.backbones.model_file import save_model
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
        ...                           keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
        >>> model_path = save_model(model, Path(tempfile.mkdtemp()) / "model.keras", ["even", "odd"])
        >>> files = find_image_files([digits_dir / "3"])
        >>> [row.path for row in predict_image_files(model_path, files, k=1).rows] == files
        True
    """
    model_path = Path(model_path)
    if model_path.suffix in EXPORT_SUFFIXES or (model_path / "saved_model.pb").is_file():
        info = read_sidecar(model_path)
        exported = load_exported(model_path)
        size, class_names, task = int(info["image_size"]), tuple(info["output_names"]), info["task"]
        ratio = float(info.get("input", {}).get("resize_ratio", config.RESIZE_RATIO))

        def predict(x: np.ndarray) -> np.ndarray:
            return exported.predict(x, batch_size=PREDICT_BATCH_SIZE)
    else:
        model, class_names = load_model(model_path)
        size, task = int(model.inputs[0].shape[1]), load_task(model_path)
        ratio = decode_resize_ratio(model)  # 1: a native-size input, resized inside the model

        def predict(x: np.ndarray) -> np.ndarray:
            return model.predict(x, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    images, kept, skipped = [], [], []
    for path in files:
        try:
            images.append(load_image(path, size, resize_ratio=ratio))
            kept.append(path)
        except ImageReadError as exc:
            skipped.append((path, str(exc).removeprefix(f"{path}: ")))
    if not images:
        raise DatasetError(_unreadable_message(skipped))
    probabilities = np.asarray(predict(np.stack(images)))
    if task == "regression":
        rows = tuple(Prediction(path, (), value=float(v[0])) for path, v in zip(kept, probabilities))
        return Predictions(rows=rows, skipped=tuple(skipped), task="regression",
                           target_name=class_names[0] if class_names else None)
    k = min(k, len(class_names))
    rows = tuple(
        Prediction(path, tuple((class_names[i], float(p[i])) for i in np.argsort(-p)[:k]))
        for path, p in zip(kept, probabilities))
    return Predictions(rows=rows, skipped=tuple(skipped))
