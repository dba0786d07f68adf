"""Temperature scaling: one number, fitted on the validation split, that makes scores probabilities.

A classifier's softmax is often over- or under-confident: a fine-tuned network
says 0.99 where it is right 90% of the time, and the softmax over an SVM's
decision values (which are margins, not log-odds) says 0.44 where it is right
95% of the time. Temperature scaling (Guo et al. 2017, "On Calibration of
Modern Neural Networks") divides the logits ``z`` by one temperature ``T``
chosen to minimise the negative log-likelihood of the validation split (here
against Platt's slightly smoothed targets, so that a small split classified
without error does not push every score to 1). It never changes the argmax,
so accuracy is untouched.

``softmax(z / T) = softmax(x @ (W / T) + b / T)`` for the output layer
``z = x @ W + b``, so :func:`apply_temperature` folds ``1 / T`` into the
kernel and bias of the ``Dense(softmax)`` output layer named
``"class_probabilities"``: the exported model gains no layer, its output
contract is unchanged, and it still loads in safe mode.

Calibration is measured by the expected calibration error (ECE): the
confidences (top probabilities) are put into ``ECE_BINS`` equal-width bins,
and ECE is the image-weighted mean gap between each bin's accuracy and its
mean confidence (:func:`reliability_bins`, :func:`expected_calibration_error`).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp

from strategies.embeddings import predict_batches
from strategies.graph import OUTPUT_LAYER
from strategies.inputs import LabelledImages

#: Equal-width confidence bins of the expected calibration error (Guo et al. use 15).
ECE_BINS = 15
#: Range of the temperature search: from 100x sharper to 100x softer than the raw scores.
TEMPERATURE_BOUNDS = (1e-2, 1e2)
#: Below this many validation images the temperature stays 1 (too few to fit it), and a note says so.
CALIBRATION_MIN_IMAGES = 10


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Return ``softmax(logits / temperature)`` row by row, in float64.

    Example:
        >>> softmax(np.array([[0.0, np.log(3.0)]])).round(2).tolist()
        [[0.25, 0.75]]
        >>> softmax(np.array([[0.0, np.log(3.0)]]), temperature=1e-3).round(2).tolist()
        [[0.0, 1.0]]
    """
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Return the mean negative log-likelihood of `labels` under ``softmax(logits / temperature)``.

    Example:
        >>> round(negative_log_likelihood(np.array([[0.0, 0.0]]), np.array([1])), 4)  # log 2
        0.6931
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    labels = np.asarray(labels, dtype=np.int64)
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(z)), labels]))


def smoothed_targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Return Platt's targets: ``(N + 1) / (N + 2)`` on the true class, the rest shared by the others.

    Platt (1999) fits his sigmoid to these instead of 0 and 1 so that a
    perfectly separated calibration set does not drive the scores to
    certainty; with N images the true class keeps ``(N + 1) / (N + 2)``.

    Example:
        >>> smoothed_targets(np.array([0, 1]), 3).round(3).tolist()  # N = 2: 3/4 on the true class
        [[0.75, 0.125, 0.125], [0.125, 0.75, 0.125]]
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(labels)
    on, off = (n + 1) / (n + 2), 1 / ((n + 2) * max(1, n_classes - 1))
    targets = np.full((n, n_classes), off)
    targets[np.arange(n), labels] = on
    return targets


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Return the temperature in ``TEMPERATURE_BOUNDS`` that best fits the validation labels.

    It minimises the cross-entropy of ``softmax(logits / T)`` against Platt's
    targets (:func:`smoothed_targets`): on a large split that is the NLL of
    the labels, and on a small, perfectly classified one the temperature
    stays finite instead of sharpening the scores to 1. The loss is convex
    in ``1 / T`` (a log-sum-exp of functions linear in it), so a bounded
    scalar search over ``log T`` finds the global minimum.

    Args:
        logits: ``(N, n_classes)`` raw scores (logits, or an SVM's decision values).
        labels: ``(N,)`` integer labels.

    Returns:
        The temperature; 1.0 when there are no images.

    Example:
        >>> # Scores x ~ N(2 onehot(y), 1): their true log-odds are 2x.
        >>> rng = np.random.default_rng(0)
        >>> labels = rng.integers(0, 3, size=2_000)
        >>> x = rng.normal(size=(2_000, 3)) + 2.0 * np.eye(3)[labels]
        >>> round(fit_temperature(2 * x, labels), 1)  # log-odds already: T = 1
        1.0
        >>> # 4x the scores: 4x the temperature, the same probabilities.
        >>> round(fit_temperature(8 * x, labels) / fit_temperature(2 * x, labels), 2)
        4.0
    """
    logits = np.asarray(logits, dtype=np.float64)
    if len(logits) == 0:
        return 1.0
    targets = smoothed_targets(labels, logits.shape[1])

    def loss(log_t: float) -> float:
        z = logits / math.exp(log_t)
        return float(np.mean(logsumexp(z, axis=1) - np.sum(targets * z, axis=1)))

    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    result = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-5})
    return float(math.exp(result.x))


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, *,
                     n_bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Return the reliability diagram's bins: per confidence bin, its images, confidence and accuracy.

    Each image falls in the bin of its top probability; bins are the
    equal-width intervals ``(edges[i], edges[i + 1]]`` of ``[0, 1]`` (the
    first one also holds 0).

    Args:
        probabilities: ``(N, n_classes)`` class probabilities.
        labels: ``(N,)`` integer labels.
        n_bins: Number of bins. Defaults to `ECE_BINS` (15).

    Returns:
        A JSON-ready dict: ``edges`` (``n_bins + 1`` values), ``count``,
        ``confidence`` (mean top probability) and ``accuracy`` per bin
        (``None`` for an empty bin).

    Example:
        >>> bins = reliability_bins(np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]),
        ...                         np.array([0, 1, 1]), n_bins=2)
        >>> bins["count"], bins["accuracy"], round(bins["confidence"][1], 2)
        ([0, 3], [None, 0.6666666666666666], 0.8)
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    if len(labels):
        confidence = probabilities.max(axis=1)
        correct = probabilities.argmax(axis=1) == labels
        index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    else:
        confidence = correct = index = np.zeros(0)
    count, mean_confidence, accuracy = [], [], []
    for b in range(n_bins):
        inside = index == b
        n = int(inside.sum())
        count.append(n)
        mean_confidence.append(float(confidence[inside].mean()) if n else None)
        accuracy.append(float(correct[inside].mean()) if n else None)
    return {"edges": [float(e) for e in edges], "count": count, "confidence": mean_confidence,
            "accuracy": accuracy}


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, *,
                               n_bins: int = ECE_BINS) -> float:
    """Return the expected calibration error: the image-weighted mean |accuracy - confidence| of the bins.

    Args:
        probabilities: ``(N, n_classes)`` class probabilities.
        labels: ``(N,)`` integer labels.
        n_bins: Number of equal-width confidence bins. Defaults to `ECE_BINS` (15).

    Returns:
        The ECE, in ``[0, 1]``; NaN without images.

    Example:
        >>> # Said 0.9 and was right on 9 of 10: calibrated.
        >>> p = np.array([[0.9, 0.1]] * 10)
        >>> expected_calibration_error(p, np.array([0] * 9 + [1])) < 1e-9
        True
        >>> round(expected_calibration_error(p, np.array([0] * 6 + [1] * 4)), 2)  # right on 6: 0.3 off
        0.3
    """
    return ece_of_bins(reliability_bins(probabilities, labels, n_bins=n_bins))


def ece_of_bins(bins: dict[str, list[float]]) -> float:
    """Return the ECE of :func:`reliability_bins`' record (NaN when every bin is empty).

    Example:
        >>> ece_of_bins({"count": [2, 0], "confidence": [0.5, None], "accuracy": [1.0, None]})
        0.5
    """
    total = sum(bins["count"])
    if total == 0:
        return float("nan")
    return float(sum(n * abs(a - c) for n, c, a in zip(bins["count"], bins["confidence"],
                                                         bins["accuracy"]) if n) / total)


def uncalibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Return the probabilities before temperature scaling, from the calibrated ones.

    ``log p`` equals ``z / T`` up to a constant per row, so ``softmax(T log p)``
    is ``softmax(z)``; probabilities that underflowed to 0 stay negligible.

    Example:
        >>> z = np.array([[2.0, 0.0, -1.0]])
        >>> bool(np.allclose(uncalibrated(softmax(z, temperature=3.0), 3.0), softmax(z)))
        True
    """
    log_p = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), np.finfo(np.float64).tiny))
    return softmax(log_p * temperature)


def calibration_record(logits: np.ndarray, labels: np.ndarray, *,
                       n_bins: int = ECE_BINS) -> dict[str, Any]:
    """Fit the temperature on validation logits; return it with the NLL and ECE before and after.

    With fewer than ``CALIBRATION_MIN_IMAGES`` images the temperature stays 1.
    A temperature at the edge of ``TEMPERATURE_BOUNDS`` gets a note: it means
    the validation split is separated perfectly (or not at all), and the
    scaled scores are as extreme as the search allows.

    Args:
        logits: ``(N, n_classes)`` validation logits (or decision values).
        labels: ``(N,)`` validation labels.
        n_bins: Bins of the ECE. Defaults to `ECE_BINS` (15).

    Returns:
        A JSON-ready dict: ``method``, ``temperature``, ``n_images``,
        ``bins``, ``val_nll_before`` / ``val_nll_after``, ``val_ece_before``
        / ``val_ece_after``, ``val_reliability_before`` /
        ``val_reliability_after`` (:func:`reliability_bins`) and ``notes``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> labels = rng.integers(0, 3, size=500)
        >>> logits = 0.4 * (rng.normal(size=(500, 3)) + 2.0 * np.eye(3)[labels])  # 5x underconfident
        >>> record = calibration_record(logits, labels)
        >>> round(record["temperature"], 1), record["val_ece_after"] < record["val_ece_before"]
        (0.2, True)
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    notes = []
    if len(labels) < CALIBRATION_MIN_IMAGES:
        temperature = 1.0
        notes.append(f"calibration: only {len(labels)} validation image(s) (< "
                     f"{CALIBRATION_MIN_IMAGES}); the scores are left as they are (T = 1), "
                     "so they are not calibrated probabilities.")
    else:
        temperature = fit_temperature(logits, labels)
        if min(abs(math.log(temperature / b)) for b in TEMPERATURE_BOUNDS) < 1e-3:
            notes.append(f"calibration: the temperature {temperature:.3g} sits at the edge of the "
                         f"search ({TEMPERATURE_BOUNDS[0]:g} to {TEMPERATURE_BOUNDS[1]:g}): the "
                         "validation split is classified all right (or all wrong), so the "
                         "probabilities are more extreme than the data can back.")
    before = reliability_bins(softmax(logits), labels, n_bins=n_bins)
    after = reliability_bins(softmax(logits, temperature), labels, n_bins=n_bins)
    return {"method": "temperature scaling", "temperature": float(temperature),
            "n_images": len(labels), "bins": int(n_bins),
            "val_nll_before": negative_log_likelihood(logits, labels) if len(labels) else None,
            "val_nll_after": (negative_log_likelihood(logits, labels, temperature)
                              if len(labels) else None),
            "val_ece_before": ece_of_bins(before), "val_ece_after": ece_of_bins(after),
            "val_reliability_before": before, "val_reliability_after": after, "notes": notes}


def output_logits(model: keras.Model, data: LabelledImages, *, batch_size: int) -> np.ndarray:
    """Return the logits of `model`'s ``"class_probabilities"`` layer for `data`'s images.

    The output layer's input is computed by a model sharing `model`'s layers,
    and its kernel and bias are applied in float64: the exact scores the
    softmax reads.

    Args:
        model: A classifier of :func:`~strategies.graph.build_classifier`.
        data: The images (its labels are not used).
        batch_size: Images per batch.

    Returns:
        ``(len(data.rows), n_classes)`` float64 logits.
    """
    layer = model.get_layer(OUTPUT_LAYER)
    features = keras.Model(model.input, layer.input, name="output_layer_input")
    return _dense_logits(layer, predict_batches(features, data.batches(batch_size=batch_size)))


def _dense_logits(layer: keras.layers.Dense, x: np.ndarray) -> np.ndarray:
    """The output `layer`'s pre-softmax scores for its inputs `x`, in float64 (what the softmax reads)."""
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    return np.asarray(x, dtype=np.float64) @ kernel + bias


def head_logits(head: keras.Model, embeddings: np.ndarray, *, batch_size: int) -> np.ndarray:
    """Return the logits of `head`'s ``"class_probabilities"`` layer for `embeddings`.

    A classifier that was not fine-tuned is its probe `head` on the backbone's
    features, so its logits for images whose embeddings are at hand are these:
    the same scores :func:`output_logits` gives, without the backbone's forward
    pass. The hidden layers (if any) run in batches; the output layer's kernel
    and bias are applied in float64.

    Args:
        head: A head of :func:`~strategies.graph.build_head`.
        embeddings: ``(N, D)`` features, as the head was trained on.
        batch_size: Embeddings per batch of the hidden layers.

    Returns:
        ``(N, n_classes)`` float64 logits.

    Example:
        >>> from strategies.graph import build_head
        >>> head = build_head(4, 3, head_units=(5,))
        >>> x = np.random.default_rng(0).normal(size=(7, 4)).astype("float32")
        >>> p = keras.ops.convert_to_numpy(head(x))
        >>> bool(np.allclose(softmax(head_logits(head, x, batch_size=2)), p, atol=1e-6))
        True
    """
    layer = head.get_layer(OUTPUT_LAYER)
    x = np.asarray(embeddings, dtype=np.float32)
    if layer.input is not head.input:  # hidden layers before the output layer
        hidden = keras.Model(head.input, layer.input, name="output_layer_input")
        x = np.concatenate([keras.ops.convert_to_numpy(hidden(x[start:start + batch_size],
                                                              training=False))
                            for start in range(0, len(x), batch_size)])
    return _dense_logits(layer, x)


def apply_temperature(model: keras.Model, temperature: float) -> None:
    """Fold ``1 / temperature`` into the kernel and bias of `model`'s ``"class_probabilities"`` layer.

    ``softmax((x @ W + b) / T) = softmax(x @ (W / T) + b / T)``: the model then
    outputs the temperature-scaled probabilities with no extra layer.

    Example:
        >>> from strategies.graph import build_head
        >>> head = build_head(4, 3)
        >>> x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
        >>> logits = x @ head.get_layer(OUTPUT_LAYER).get_weights()[0]  # the bias starts at 0
        >>> apply_temperature(head, 2.0)
        >>> bool(np.allclose(keras.ops.convert_to_numpy(head(x)), softmax(logits, 2.0), atol=1e-6))
        True
    """
    layer = model.get_layer(OUTPUT_LAYER)
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    layer.set_weights([(kernel / temperature).astype(np.float32),
                       (bias / temperature).astype(np.float32)])


def calibrate(model: keras.Model, val: LabelledImages, *, batch_size: int,
              logits: np.ndarray | None = None) -> dict[str, Any]:
    """Fit a temperature on the validation split and fold it into `model`; return the record.

    Args:
        model: A fitted classifier (its output layer is ``"class_probabilities"``).
        val: The validation images and labels.
        batch_size: Images per batch of the logits pass.
        logits: The validation logits, when the caller has them (the SVM's
            decision values, an unfine-tuned probe's :func:`head_logits`).
            Defaults to `None` (computed with :func:`output_logits`).

    Returns:
        :func:`calibration_record`'s dict.

    Example:
        >>> from advisor.data import decode_dataset, scan_dataset
        >>> from strategies.graph import build_classifier
        >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
        >>> val = LabelledImages(decoded["val"].images, ds.labels("val"), decoded["val"].rows)
        >>> model = build_classifier(backbone, feature_layer=backbone.feature_layer, n_classes=10)
        >>> record = calibrate(model, val, batch_size=16)
        >>> record["method"], record["n_images"], record["val_nll_after"] <= record["val_nll_before"]
        ('temperature scaling', 20, True)
    """
    if logits is None:
        logits = output_logits(model, val, batch_size=batch_size)
    record = calibration_record(logits, val.labels)
    apply_temperature(model, record["temperature"])
    return record
