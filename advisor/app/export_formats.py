"""The deployable formats of a run's model: their names, files and what each needs installed.

``advise export RUN --format NAME`` and ``advise DATA_DIR --export NAME`` take
these names. Only the standard library is imported here (the packages are
looked up with :func:`importlib.util.find_spec`, never imported), so a
mistyped format or a missing package is reported before TensorFlow loads and
before a run trains. :mod:`advisor.app.export` writes and checks the files.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from advisor.errors import AdvisorError

#: How to install TensorFlow, in messages (the package this project depends on, per platform).
TENSORFLOW_INSTALL = ("pip install tensorflow-cpu (Linux x86-64) or tensorflow, "
                      "then run with KERAS_BACKEND=tensorflow")
#: How to install the ONNX exporter and runtime (the ``[onnx]`` extra).
ONNX_INSTALL = "pip install tf2onnx onnx onnxruntime (finetune-advisor's onnx extra)"


class ExportError(AdvisorError):
    """A model cannot be exported, checked or run in the asked format."""


class Quantization(str, Enum):
    """What TensorFlow Lite's post-training quantization does to an export, if anything.

    ``FLOAT``: nothing, float32 as ``model.keras``. ``DYNAMIC_RANGE``: the
    weights are stored as int8 and the activations stay float (kernels that
    can quantize them on the fly do; no calibration). ``INT8``: weights and
    activations are int8, the activations' ranges calibrated on training
    images (float where an operation has no int8 kernel).
    """

    FLOAT = "float"
    DYNAMIC_RANGE = "dynamic-range"
    INT8 = "int8"


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """One deployable format.

    Attributes:
        name: The name users type (``--format``, ``--export``, the sidecar's ``format``).
        keras_format: What ``keras.Model.export(format=...)`` calls it.
        file_name: The export's name inside a run folder.
        suffix: What an export's path must end with (``""``: a folder).
        quantization: What post-training quantization does to it (a
            :class:`Quantization`); a quantized export's check is reported, not enforced.
        runtime: The runtime that checks and runs it, in messages.
        requires: ``(module, install hint)`` pairs the export and its check import.
    """

    name: str
    keras_format: str
    file_name: str
    suffix: str
    quantization: Quantization
    runtime: str
    requires: tuple[tuple[str, str], ...]

    @property
    def quantized(self) -> bool:
        """Whether its numbers differ from ``model.keras``'s by quantization (int8 weights at least)."""
        return self.quantization is not Quantization.FLOAT


_TF = ("tensorflow", TENSORFLOW_INSTALL)
_FLOAT, _DYNAMIC, _INT8 = Quantization.FLOAT, Quantization.DYNAMIC_RANGE, Quantization.INT8
FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("litert", "litert", "model.tflite", ".tflite", _FLOAT, "LiteRT", (_TF,)),
    ExportFormat("litert-dynamic", "litert", "model-dynamic.tflite", ".tflite", _DYNAMIC, "LiteRT",
                 (_TF,)),
    ExportFormat("litert-int8", "litert", "model-int8.tflite", ".tflite", _INT8, "LiteRT", (_TF,)),
    ExportFormat("onnx", "onnx", "model.onnx", ".onnx", _FLOAT, "ONNX Runtime",
                 (_TF, ("tf2onnx", ONNX_INSTALL), ("onnx", ONNX_INSTALL), ("onnxruntime", ONNX_INSTALL))),
    ExportFormat("saved_model", "tf_saved_model", "saved_model", "", _FLOAT, "TensorFlow SavedModel",
                 (_TF,)),
)}


def get_export_format(name: str) -> ExportFormat:
    """Return the format called `name`.

    Args:
        name: ``"litert"``, ``"litert-dynamic"``, ``"litert-int8"``, ``"onnx"`` or ``"saved_model"``.

    Returns:
        The :class:`ExportFormat`.

    Raises:
        ExportError: `name` is not a known format; the message lists them.

    Example:
        >>> get_export_format("litert-int8").file_name, get_export_format("litert-dynamic").quantization.value
        ('model-int8.tflite', 'dynamic-range')
        >>> get_export_format("tflite")
        Traceback (most recent call last):
        ...
        advisor.app.export_formats.ExportError: Unknown export format 'tflite'. Known: litert, litert-dynamic, litert-int8, onnx, saved_model.
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise ExportError(f"Unknown export format {name!r}. Known: {', '.join(FORMATS)}.") from None


def parse_formats(text: str) -> tuple[ExportFormat, ...]:
    """Return the formats of a comma-separated list (``--export litert,onnx``), each once.

    Example:
        >>> [f.name for f in parse_formats("onnx, litert,onnx")]
        ['onnx', 'litert']
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ExportError(f"Expected one or more of {', '.join(FORMATS)}. Received: {text!r}")
    return tuple(get_export_format(n) for n in dict.fromkeys(names))


def check_requirements(fmt: ExportFormat, *,
                       installed: Callable[[str], bool] | None = None) -> ExportFormat:
    """Refuse a format whose packages are not installed, importing none of them.

    Args:
        fmt: The format.
        installed: Says whether a module can be imported. Defaults to `None`
            (:func:`importlib.util.find_spec`).

    Returns:
        `fmt`.

    Raises:
        ExportError: A package is missing; one line that names what to install.

    Example:
        >>> jax_only = lambda module: module != "tensorflow"
        >>> check_requirements(get_export_format("litert"), installed=jax_only)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.app.export_formats.ExportError: The litert export needs tensorflow, which is not installed (a JAX-only set-up?): pip install tensorflow-cpu ...
    """
    installed = installed or _importable
    for module, hint in fmt.requires:
        if not installed(module):
            setup = " (a JAX-only set-up?)" if module == "tensorflow" else ""
            raise ExportError(f"The {fmt.name} export needs {module}, which is not installed{setup}: {hint}")
    return fmt


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
