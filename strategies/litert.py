"""The LiteRT pieces Keras does not expose: quantizing converter options, and an interpreter.

``keras.Model.export(path, format="litert", **options)`` hands `options` to
TensorFlow's ``TFLiteConverter``; post-training quantization needs its
``tf.lite.Optimize.DEFAULT`` enum (alone: dynamic-range, int8 weights; next
to a representative dataset: int8 weights and activations), and no Keras API
names that enum. This module is therefore the one place in
``advisor/`` and ``strategies/`` that imports TensorFlow (the
``ignore_imports`` entry of the backend-agnostic contract in
``pyproject.toml``), and only inside the functions below: importing it
loads nothing, so a JAX-only set-up imports :mod:`strategies.export` fine and
gets a one-line error only when it asks for LiteRT.

A ``.tflite`` file runs on ``ai_edge_litert`` (the LiteRT package) when it is
installed, else on ``tf.lite.Interpreter`` (the same runtime, bundled with
TensorFlow and deprecated there).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def dynamic_range_converter_options() -> dict[str, Any]:
    """Return the ``TFLiteConverter`` options of post-training dynamic-range quantization.

    The weights are stored as int8 (scales per output channel where the
    converter can; TensorFlow Lite leaves tensors under 1,024 values float);
    activations stay float, and kernels with a hybrid form quantize them on
    the fly. No representative data: nothing is calibrated. The uint8 image
    input and float32 output are kept.

    Returns:
        Keyword arguments for ``model.export(path, format="litert", ...)``.

    Example:
        >>> [o.name for o in dynamic_range_converter_options()["optimizations"]]
        ['DEFAULT']
    """
    import tensorflow as tf

    return {"optimizations": [tf.lite.Optimize.DEFAULT]}


def int8_converter_options(representative: np.ndarray) -> dict[str, Any]:
    """Return the ``TFLiteConverter`` options of post-training int8 quantization.

    Weights and activations are quantized to int8, their ranges calibrated on
    `representative` (one image at a time); operations without an int8 kernel
    stay float. The model's uint8 image input and float32 output are kept, so
    the exported file takes the same raw RGB pixels as ``model.keras``.

    Args:
        representative: ``(N, S, S, 3)`` uint8 images, e.g. a sample of the
            training split.

    Returns:
        Keyword arguments for ``model.export(path, format="litert", ...)``.

    Example:
        >>> options = int8_converter_options(np.zeros((2, 8, 8, 3), "uint8"))
        >>> sorted(options), [x.shape for [x] in options["representative_dataset"]()]
        (['optimizations', 'representative_dataset'], [(1, 8, 8, 3), (1, 8, 8, 3)])
    """
    images = np.asarray(representative)

    def representative_dataset() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None]]

    return dynamic_range_converter_options() | {"representative_dataset": representative_dataset}


def interpreter_class() -> Callable[..., Any]:
    """Return the LiteRT ``Interpreter`` class: ``ai_edge_litert``'s, else TensorFlow's.

    Returns:
        A class taking ``model_path=`` and ``num_threads=``.

    Raises:
        ModuleNotFoundError: Neither ``ai_edge_litert`` nor ``tensorflow`` is installed.

    Example:
        >>> interpreter_class().__name__
        'Interpreter'
    """
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    import tensorflow as tf

    def interpreter(model_path: str | Path, **kwargs: Any) -> Any:
        with warnings.catch_warnings():  # "deprecated ... use ai_edge_litert": said in the README
            warnings.simplefilter("ignore", UserWarning)
            return tf.lite.Interpreter(model_path=str(model_path), **kwargs)

    interpreter.__name__ = "Interpreter"
    return interpreter
