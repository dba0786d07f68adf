"""What a plan costs on this machine: forward and training images/s, measured on a few batches.

:func:`measure_throughput` times the plan's own graphs (its backbone, input
size, batch size and cut) on this device: the feature extractor's forward
pass (what embedding and evaluation cost), the frozen prefix's forward pass
(the prefix cache's fill, ``partial`` only) and one optimiser step of what the
plan trains (the blocks after the cut on cached activations with a prefix
cache, the whole network otherwise). Each figure is the median of a few
batches after a warm-up batch that traces the graph. Results are cached per
machine under ``cache_dir("throughput")``, keyed by the backend, Keras version,
device, CPU and the plan's fields that change the graph, so a second advice on
the same machine measures nothing.

The inputs are zeros: the compute of a convolutional network does not depend
on the pixel values, and no data is needed to price a plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from advisor.backbones import Backbone
from advisor.cache import atomic_write_text, cache_dir
from advisor.environment import accelerators
from advisor.errors import PlanError
from advisor.plan import Plan
from strategies.devices import dtype_policy
from strategies.graph import build_classifier, freeze_blocks, split_at_cut

CACHE_SUBDIR = "throughput"
#: Bump when what is measured changes.
THROUGHPUT_VERSION = 1
#: Timed batches per figure (after one warm-up batch).
TIMED_BATCHES = 3
#: Classes of the throwaway head (the head's cost is negligible next to the backbone).
_CLASSES = 10


@dataclass(frozen=True)
class Throughput:
    """Measured images/s of one plan's graphs on this machine.

    Attributes:
        forward_img_s: Feature extractor, inference (embedding, evaluation).
        train_img_s: One optimiser step of the trained part, per image.
        prefix_img_s: The frozen prefix's forward pass (the prefix cache's
            fill), or `None` when the plan trains end to end.
        trains_on_prefix_cache: Whether `train_img_s` is the suffix on cached activations.
        batch_size: Images per measured batch.
        device: Where it was measured (``describe_environment()["device"]``).
        from_cache: Whether the figures were read from this machine's cache.
    """

    forward_img_s: float
    train_img_s: float
    prefix_img_s: float | None
    trains_on_prefix_cache: bool
    batch_size: int
    device: str
    from_cache: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)


def _median_rate(step, batch_size: int, batches: int) -> float:
    step()  # warm-up: traces and compiles
    times = []
    for _ in range(max(1, batches)):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return float(batch_size / max(np.median(times), 1e-9))


def measured_graph(plan: Plan) -> tuple:
    """Return what :func:`measure_throughput`'s figures of `plan` depend on.

    Two plans with equal values run the same graphs at the same size, so one
    measurement prices both: the backbone, its network and input sizes, the
    feature layer, batch size and dtype policy, whether the backbone trains,
    and, only when it does, the cut and the prefix cache (``svm`` and
    ``last-layer`` train the same head on the same frozen features).

    Args:
        plan: The plan to measure.

    Returns:
        A hashable tuple.

    Example:
        >>> import dataclasses
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> svm = Plan(regime=Regime.SVM, backbone="mobilenet_v2", image_size=96,
        ...            frozen_blocks=("block_1",), feature_layer="global_average_pooling2d",
        ...            optimizer=Optimizer.ADAMW, head_learning_rate=1e-3, backbone_learning_rate=0.0,
        ...            batch_size=16, head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...            augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> head = dataclasses.replace(svm, regime=Regime.LAST_LAYER, frozen_blocks=())
        >>> measured_graph(svm) == measured_graph(head)
        True
        >>> measured_graph(svm) == measured_graph(dataclasses.replace(head, regime=Regime.FULL))
        False
    """
    fine_tunes = plan.regime.fine_tunes_backbone
    return (plan.backbone, plan.image_size, plan.input_size, plan.feature_layer, plan.batch_size,
            dtype_policy(plan.precision), fine_tunes,
            tuple(plan.frozen_blocks) if fine_tunes else None,
            plan.prefix_cache if fine_tunes else None)


def _cache_key(plan: Plan, backbone: Backbone) -> str:
    spec = {
        "version": THROUGHPUT_VERSION, "backend": keras.backend.backend(),
        "keras": keras.__version__, "device": [str(d) for d in accelerators()],
        "cpu": [platform.machine(), platform.processor(), os.cpu_count()],
        "backbone": backbone.name, "image_size": backbone.image_size,
        "input_size": backbone.input_size,
        "feature_layer": plan.feature_layer, "batch_size": plan.batch_size,
        "frozen_blocks": len(plan.frozen_blocks), "prefix_cache": plan.prefix_cache,
        "precision": dtype_policy(plan.precision), "regime": plan.regime.value,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def measure_throughput(plan: Plan, backbone: Backbone, *, batches: int = TIMED_BATCHES,
                       use_cache: bool = True) -> Throughput:
    """Measure (or read from this machine's cache) the images/s of `plan`'s graphs.

    Args:
        plan: Gives the regime, feature layer, cut, batch size, prefix cache and precision.
        backbone: The backbone at the plan's input size.
        batches: Timed batches per figure. Defaults to `TIMED_BATCHES`.
        use_cache: Read and write the per-machine cache. Defaults to `True`.

    Returns:
        A :class:`Throughput`.

    Example:
        >>> import dataclasses
        >>> from advisor.backbones import get_backbone
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> tiny = get_backbone("mobilenet_v2", image_size=32, weights=None)  # timing only
        >>> names = tuple(b.name for b in tiny.blocks)
        >>> plan = Plan(regime=Regime.PARTIAL, backbone=tiny.name, image_size=32,
        ...             frozen_blocks=names[:7], feature_layer=tiny.feature_layer,
        ...             optimizer=Optimizer.SGD, head_learning_rate=1e-3,
        ...             backbone_learning_rate=1e-3, batch_size=4, head_epochs=1, epochs=1,
        ...             warmup_epochs=0, patience=1, augmentation=(), class_weights=None,
        ...             svm_c_grid=(), seed=0, prefix_cache=True)
        >>> rates = measure_throughput(plan, tiny, batches=1)
        >>> rates.trains_on_prefix_cache, rates.prefix_img_s > 0, rates.train_img_s > 0
        (True, True, True)
        >>> measure_throughput(plan, tiny, batches=1).from_cache
        True
    """
    path = cache_dir(CACHE_SUBDIR) / f"{_cache_key(plan, backbone)}.json"
    if use_cache and path.is_file():
        try:
            return Throughput(**(json.loads(path.read_text()) | {"from_cache": True}))
        except (OSError, ValueError, TypeError):
            pass  # a damaged entry is measured again
    size, batch = backbone.input_size, plan.batch_size  # the decoded size the model takes
    images = np.zeros((batch, size, size, 3), dtype="uint8")
    labels = np.zeros((batch,), dtype="int32")
    policy = dtype_policy(plan.precision)
    model = build_classifier(backbone, feature_layer=plan.feature_layer, n_classes=_CLASSES,
                             dtype=policy)
    features = model.get_layer("features")
    forward = _median_rate(lambda: features.predict_on_batch(images), batch, batches)
    trained, inputs, prefix_rate = model, images, None
    if plan.regime.fine_tunes_backbone:
        freeze_blocks(model, backbone, plan.frozen_blocks, train_batchnorm=plan.train_batchnorm)
        if plan.prefix_cache and plan.frozen_blocks:
            try:
                prefix, suffix = split_at_cut(model, backbone, plan.frozen_blocks)
            except PlanError:  # more than one tensor crosses the cut: end to end
                prefix = suffix = None
            if suffix is not None:
                prefix_rate = _median_rate(lambda: prefix.predict_on_batch(images), batch, batches)
                trained = suffix
                inputs = np.zeros((batch, *prefix.output.shape[1:]), dtype="float32")
    else:
        model.get_layer("features").trainable = False
    trained.compile(optimizer=keras.optimizers.SGD(1e-6), loss="sparse_categorical_crossentropy")
    train = _median_rate(lambda: trained.train_on_batch(inputs, labels), batch, batches)
    result = Throughput(forward_img_s=forward, train_img_s=train, prefix_img_s=prefix_rate,
                        trains_on_prefix_cache=trained is not model, batch_size=batch,
                        device=", ".join(map(str, accelerators())) or "cpu")
    if use_cache:
        atomic_write_text(path, json.dumps(result.to_dict() | {"from_cache": False}))
    return result
