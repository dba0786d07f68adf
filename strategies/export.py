"""Deployable copies of a fitted model: Keras' own exporters, and the runtimes that load them.

:func:`export_model` calls ``model.export(path, format=...)`` (LiteRT, ONNX or
a TensorFlow SavedModel), with TensorFlow's converter options for int8
(:mod:`strategies.litert`) when a representative set is given, or for int8
weights alone (dynamic-range) when asked; nothing is serialised by hand. The
exported graph is the model's whole graph, so its preprocessing stays inside:
uint8 ``(N, S, S, 3)`` RGB pixels in, class probabilities (or a regression's
values) out, as ``model.keras``.

:func:`load_exported` opens an export with its own runtime (``ai_edge_litert``
or ``tf.lite.Interpreter`` for ``.tflite``, ONNX Runtime for ``.onnx``,
``keras.layers.TFSMLayer`` for a SavedModel folder) and predicts batches of
images, so an export can be checked against ``model.keras`` and used by
``advise predict``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from advisor.backbones.model_file import ModelFileError
from advisor.environment import usable_cores
from strategies.litert import dynamic_range_converter_options, int8_converter_options, interpreter_class

#: Keras' names of the formats :func:`export_model` writes.
KERAS_FORMATS = ("litert", "onnx", "tf_saved_model")
#: The SavedModel endpoint Keras writes and :func:`load_exported` calls.
SAVED_MODEL_ENDPOINT = "serve"
#: Name of the image input in the exported graphs.
INPUT_NAME = "images"
#: Post-training quantizations of a ``"litert"`` export (``advisor.app.export_formats.Quantization``'s values).
QUANTIZATIONS = ("float", "dynamic-range", "int8")


def export_model(model: keras.Model, path: Path | str, keras_format: str, *,
                 quantization: str = "float", representative: np.ndarray | None = None) -> Path:
    """Write `model` in a deployable format with Keras' own exporter.

    Args:
        model: A built single-input Keras model (e.g. a run's ``model.keras``).
        path: Destination: a ``.tflite`` file for ``"litert"``, any file for
            ``"onnx"``, a folder (which must not exist) for ``"tf_saved_model"``.
        keras_format: ``"litert"``, ``"onnx"`` or ``"tf_saved_model"``.
        quantization: For ``"litert"``, TensorFlow Lite's post-training
            quantization: ``"float"`` (none), ``"dynamic-range"`` (int8
            weights, float activations, no calibration) or ``"int8"`` (int8
            weights and activations, calibrated on `representative`). Defaults
            to `"float"`.
        representative: For ``"int8"``: uint8 images that calibrate the
            activations' ranges. Defaults to `None`.

    Returns:
        `path`.

    Raises:
        ValueError: `keras_format` or `quantization` is unknown, a
            quantization is asked of another format than ``"litert"``, or
            `representative` is missing for ``"int8"`` (or given for another).

    Example:
        >>> import tempfile
        >>> model = keras.Sequential([keras.Input((8, 8, 3), dtype="uint8"), keras.layers.Rescaling(1 / 255),
        ...                           keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
        >>> path = export_model(model, Path(tempfile.mkdtemp()) / "model.tflite", "litert")
        >>> images = np.zeros((3, 8, 8, 3), "uint8")
        >>> np.allclose(load_exported(path).predict(images), model.predict(images, verbose=0), atol=1e-6)
        True
    """
    if keras_format not in KERAS_FORMATS:
        raise ValueError(f"Expected keras_format in {KERAS_FORMATS}. Received: keras_format={keras_format!r}")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"Expected quantization in {QUANTIZATIONS}. Received: quantization={quantization!r}")
    if quantization != "float" and keras_format != "litert":
        raise ValueError(f"Quantization applies to litert only. Received: keras_format={keras_format!r}")
    if (representative is not None) != (quantization == "int8"):
        raise ValueError("representative calibrates int8 quantization and only it. Received: "
                         f"quantization={quantization!r}, representative="
                         f"{'None' if representative is None else 'images'}")
    spec = model.inputs[0]
    signature = [keras.InputSpec(shape=tuple(spec.shape), dtype=spec.dtype, name=INPUT_NAME)]
    options = (int8_converter_options(representative) if quantization == "int8"
               else dynamic_range_converter_options() if quantization == "dynamic-range" else {})
    if keras_format == "onnx":
        model = rescaling_for_normalization(model)
    model.export(str(path), format=keras_format, verbose=False, input_signature=signature, **options)
    return Path(path)


def rescaling_for_normalization(model: keras.Model) -> keras.Model:
    """Return `model` with each per-channel ``Normalization`` layer as the equivalent ``Rescaling``.

    ``(x - mean) / sqrt(variance)`` is ``x * scale + offset`` with
    ``scale = 1 / sqrt(variance)`` and ``offset = -mean * scale``. The ONNX
    exporter needs it: a ``Normalization`` layer keeps its statistics as eager
    tensors, which the traced function captures, and tf2onnx turns every
    captured tensor that is not a variable into an extra graph input (the
    exported ONNX model would then ask for the statistics as inputs). A
    ``Rescaling`` layer makes them constants of the graph. Every other layer
    is shared with `model` (same weights); a model without such a layer is
    returned as is.

    Args:
        model: A functional or sequential Keras model.

    Returns:
        The model with the same outputs up to float rounding.

    Example:
        >>> inputs = keras.Input((4, 4, 3))
        >>> norm = keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 4.0, 1.0])
        >>> model = keras.Model(inputs, norm(inputs))
        >>> swapped = rescaling_for_normalization(model)
        >>> [type(layer).__name__ for layer in swapped.layers]
        ['InputLayer', 'Rescaling']
        >>> x = np.random.default_rng(0).normal(size=(2, 4, 4, 3))
        >>> np.allclose(swapped.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
        True
    """

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if not isinstance(layer, keras.layers.Normalization) or layer.invert:
            return layer
        mean = keras.ops.convert_to_numpy(layer.mean).astype(np.float64)
        variance = keras.ops.convert_to_numpy(layer.variance).astype(np.float64)
        if mean.size != mean.shape[-1]:  # statistics along another axis than the channels
            return layer
        scale = 1.0 / np.maximum(np.sqrt(variance.ravel()), keras.config.epsilon())
        return keras.layers.Rescaling(scale=scale.tolist(), offset=(-mean.ravel() * scale).tolist(),
                                      name=layer.name, dtype=layer.dtype_policy)

    if not any(isinstance(layer, keras.layers.Normalization) for layer in _layers(model)):
        return model
    return keras.models.clone_model(model, clone_function=swap, recursive=True)


def _layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of `model`, nested models' layers included."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(_layers(layer))
    return found


class ExportedModel:
    """An export opened with its runtime: uint8 images in, the model's outputs out.

    Build it with :func:`load_exported`.

    Attributes:
        path: The export.
        runtime: ``"litert"``, ``"onnxruntime"`` or ``"saved_model"``.
    """

    def __init__(self, path: Path, runtime: str, run: Callable[[np.ndarray], np.ndarray]) -> None:
        self.path = path
        self.runtime = runtime
        self._run = run

    def predict(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Return the outputs for `images`, `batch_size` at a time.

        Args:
            images: ``(N, S, S, 3)`` uint8 RGB pixels (an array or a memory map).
            batch_size: Images per call of the runtime. Defaults to `32`.

        Returns:
            ``(N, outputs)`` float32.
        """
        chunks = [self._run(np.ascontiguousarray(images[i:i + batch_size], dtype=np.uint8))
                  for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks).astype(np.float32, copy=False)


def load_exported(path: Path | str, *, num_threads: int | None = None) -> ExportedModel:
    """Open an export written by :func:`export_model` with its runtime.

    ``.tflite`` runs on ``ai_edge_litert`` (else ``tf.lite.Interpreter``),
    ``.onnx`` on ONNX Runtime's CPU provider and a SavedModel folder through
    ``keras.layers.TFSMLayer`` (TensorFlow backend).

    Args:
        path: A ``.tflite`` or ``.onnx`` file, or a SavedModel folder.
        num_threads: CPU threads of the LiteRT and ONNX runtimes. Defaults to
            `None` (the cores this process may use).

    Returns:
        The :class:`ExportedModel`.

    Raises:
        ModelFileError: The file is missing, of an unknown kind, or its runtime
            is not installed; one line that says what to install.

    Example:
        >>> import tempfile
        >>> model = keras.Sequential([keras.Input((8, 8, 3), dtype="uint8"), keras.layers.Flatten(),
        ...                           keras.layers.Dense(2)])
        >>> path = export_model(model, Path(tempfile.mkdtemp()) / "model.tflite", "litert")
        >>> exported = load_exported(path)
        >>> exported.runtime, exported.predict(np.zeros((5, 8, 8, 3), "uint8"), batch_size=2).shape
        ('litert', (5, 2))
    """
    path = Path(path)
    threads = num_threads or usable_cores()
    if not path.exists():
        raise ModelFileError(f"{path} does not exist; write it with advise export RUN --format FORMAT")
    if path.suffix == ".tflite":
        return _litert(path, threads)
    if path.suffix == ".onnx":
        return _onnxruntime(path, threads)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _saved_model(path)
    raise ModelFileError(f"{path} is not an export (.tflite, .onnx or a SavedModel folder); "
                         "pass a file written by advise export")


def _litert(path: Path, threads: int) -> ExportedModel:
    if not any(importlib.util.find_spec(m) for m in ("ai_edge_litert", "tensorflow")):
        raise ModelFileError(f"Running {path.name} needs LiteRT: pip install ai-edge-litert")
    interpreter = interpreter_class()(model_path=str(path), num_threads=threads)
    [given], [taken] = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.allocate_tensors()

    def run(batch: np.ndarray) -> np.ndarray:
        if tuple(interpreter.get_input_details()[0]["shape"]) != batch.shape:
            interpreter.resize_tensor_input(given["index"], batch.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(given["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(taken["index"]).copy()

    return ExportedModel(path, "litert", run)


def _onnxruntime(path: Path, threads: int) -> ExportedModel:
    if importlib.util.find_spec("onnxruntime") is None:
        raise ModelFileError(f"Running {path.name} needs ONNX Runtime: pip install onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    [given] = session.get_inputs()

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {given.name: batch})[0]

    return ExportedModel(path, "onnxruntime", run)


def _saved_model(path: Path) -> ExportedModel:
    if keras.config.backend() != "tensorflow":
        raise ModelFileError(f"Running the SavedModel {path} needs Keras' TensorFlow backend; run with "
                             f"KERAS_BACKEND=tensorflow. Received: KERAS_BACKEND={keras.config.backend()}")
    layer = keras.layers.TFSMLayer(str(path), call_endpoint=SAVED_MODEL_ENDPOINT)

    def run(batch: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(layer(batch))

    return ExportedModel(path, "saved_model", run)
