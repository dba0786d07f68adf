"""Predict with a saved model: files in, top-k classes out; bad files skipped and listed."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import DatasetError
from advisor.images import ImageReadError, find_image_files, load_image
from advisor.model_file import load_model

PREDICT_BATCH_SIZE = 64


@dataclass(frozen=True, slots=True)
class Prediction:
    """Top classes of one image."""

    path: Path
    classes: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Predictions:
    """Predictions of a batch of files, with the files that could not be read."""

    rows: tuple[Prediction, ...]
    skipped: tuple[tuple[Path, str], ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "predictions": [{"path": str(r.path), "classes": [
                {"class": n, "probability": p} for n, p in r.classes]} for r in self.rows],
            "skipped": [{"path": str(p), "reason": reason} for p, reason in self.skipped],
        }

    def to_csv(self) -> str:
        """Return one CSV row per image and rank: path, rank, class, probability."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "rank", "class", "probability"])
        for row in self.rows:
            for rank, (name, p) in enumerate(row.classes, start=1):
                writer.writerow([row.path, rank, name, f"{p:.6f}"])
        return buffer.getvalue()


def predict_files(model_path: Path, paths: Sequence[Path], *, k: int = 3) -> Predictions:
    """Predict the top-`k` classes of image files with a saved model.

    Files that cannot be read are skipped and listed, never fatal.

    Args:
        model_path: A ``model.keras`` written by a run.
        paths: Image files, or folders searched recursively.
        k: Classes per image. Defaults to `3`.

    Returns:
        The :class:`Predictions`.

    Raises:
        ModelFileError: The model file cannot be used.
        DatasetError: No path exists or no image could be read.

    Example:
        >>> predict_files(Path("run/model.keras"), [Path("cat.jpg")]).rows[0].classes[0]  # doctest: +SKIP
        ('cat', 0.98)
    """
    model, class_names = load_model(model_path)
    size = int(model.inputs[0].shape[1])
    images, kept, skipped = [], [], []
    for path in find_image_files(paths):
        try:
            images.append(load_image(path, size))
            kept.append(path)
        except ImageReadError as exc:
            skipped.append((path, str(exc).removeprefix(f"{path}: ")))
    if not images:
        raise DatasetError(f"none of the {len(skipped)} file(s) could be read as an image")
    probabilities = np.asarray(model.predict(np.stack(images), batch_size=PREDICT_BATCH_SIZE, verbose=0))
    k = min(k, len(class_names))
    rows = tuple(
        Prediction(path, tuple((class_names[i], float(p[i])) for i in np.argsort(-p)[:k]))
        for path, p in zip(kept, probabilities))
    return Predictions(rows=rows, skipped=tuple(skipped))
