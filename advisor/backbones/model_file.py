"""The exported model file: a plain ``.keras`` archive plus the class names.

``keras.saving.load_model(path)`` loads it (safe mode on, built-in layers only)
and predicts class probabilities from raw uint8 RGB images. The class names
travel inside the same archive as an extra ``class_names.json`` entry, which
Keras ignores; :func:`load_model` returns them with the model.

A regression model (``--targets``) outputs ``(N, 1)`` values in the targets'
units; its ``class_names.json`` holds the one output's name (the target's), and
a ``task.json`` entry (``{"task": "regression"}``, read by :func:`load_task`)
says so. Files without ``task.json`` are classifiers.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import keras

from advisor.cache import atomic_path
from advisor.errors import AdvisorError, missing_model_message

CLASS_NAMES_ENTRY = "class_names.json"
TASK_ENTRY = "task.json"
TASKS = ("classification", "regression")


class ModelFileError(AdvisorError):
    """A model file is missing, not a ``.keras`` archive, or lacks class names."""


def save_model(model, path: Path | str, class_names: Sequence[str], *,
               task: str = "classification") -> Path:
    """Save `model` as ``.keras`` with `class_names` and `task` inside, atomically.

    Args:
        model: A Keras model (uint8 images -> class probabilities, or values).
        path: Destination, ending in ``.keras``.
        class_names: Names of the model's outputs, in order (for regression:
            the target's name).
        task: ``"classification"`` or ``"regression"``. Defaults to `"classification"`.

    Returns:
        The written path.

    Example:
        >>> import tempfile
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
        ...                           keras.layers.Dense(2, activation="softmax")])
        >>> save_model(model, Path(tempfile.mkdtemp()) / "model.keras", ["cat", "dog"]).name
        'model.keras'
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"Expected a path ending in .keras. Received: path={str(path)!r}")
    if task not in TASKS:
        raise ModelFileError(f"Expected task in {TASKS}. Received: task={task!r}")
    n_outputs = int(model.outputs[0].shape[-1])
    if n_outputs != len(class_names):
        raise ModelFileError(
            f"The model has {n_outputs} outputs but {len(class_names)} class names were given; "
            "pass one name per class.")
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(CLASS_NAMES_ENTRY, json.dumps([str(n) for n in class_names]))
            archive.writestr(TASK_ENTRY, json.dumps({"task": task}))
    return path


def load_task(path: Path | str) -> str:
    """Return the task a model file was trained for: ``"classification"`` or ``"regression"``.

    Files written before ``task.json`` existed are classifiers.

    Raises:
        ModelFileError: The file is not a ``.keras`` archive or names an unknown task.

    Example:
        >>> import tempfile
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
        >>> path = save_model(model, Path(tempfile.mkdtemp()) / "model.keras", ["digit"], task="regression")
        >>> load_task(path)
        'regression'
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if TASK_ENTRY not in archive.namelist():
                return "classification"
            task = json.loads(archive.read(TASK_ENTRY)).get("task")
    except FileNotFoundError:
        raise ModelFileError(missing_model_message(path)) from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise ModelFileError(f"{path} is not a .keras model file; pass the model.keras of a run") from None
    except (ValueError, AttributeError):
        raise ModelFileError(f"{path} has a malformed {TASK_ENTRY}; re-export the model") from None
    if task not in TASKS:
        raise ModelFileError(f"{path} names an unknown task {task!r} in {TASK_ENTRY}; expected one of {TASKS}")
    return task


def load_class_names(path: Path | str) -> tuple[str, ...]:
    """Read the class names stored in a model file.

    Raises:
        ModelFileError: The file is not a ``.keras`` archive or has no class names.

    Example:
        >>> import tempfile
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
        ...                           keras.layers.Dense(2, activation="softmax")])
        >>> path = save_model(model, Path(tempfile.mkdtemp()) / "model.keras", ["cat", "dog"])
        >>> load_class_names(path)
        ('cat', 'dog')
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return tuple(json.loads(archive.read(CLASS_NAMES_ENTRY)))
    except FileNotFoundError:
        raise ModelFileError(missing_model_message(path)) from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise ModelFileError(f"{path} is not a .keras model file; pass the model.keras of a run") from None
    except KeyError:
        raise ModelFileError(
            f"{path} has no {CLASS_NAMES_ENTRY}; it was not written by finetune-advisor") from None


def load_model(path: Path | str):
    """Load a model file (safe mode) and its class names.

    Returns:
        ``(model, class_names)``.

    Raises:
        ModelFileError: The file is missing, malformed, or lacks class names.

    Example:
        >>> import tempfile
        >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
        ...                           keras.layers.Dense(2, activation="softmax")])
        >>> path = save_model(model, Path(tempfile.mkdtemp()) / "model.keras", ["cat", "dog"])
        >>> model, names = load_model(path)
        >>> names, model.predict(np.zeros((1, 8, 8, 3)), verbose=0).shape
        (('cat', 'dog'), (1, 2))
    """
    names = load_class_names(path)
    try:
        model = keras.saving.load_model(path)
    except (ValueError, OSError, TypeError) as exc:
        raise ModelFileError(f"{path} could not be loaded as a Keras model ({exc})") from None
    return model, names
