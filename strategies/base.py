"""What every strategy shares: inputs, the classifier graph and the ONE training path.

- :class:`LabelledImages`: uint8 images (usually the decode cache's memory map),
  the rows used and their labels.
- :class:`Strategy`: the scikit-learn estimator contract (``__init__`` stores
  ``plan`` and ``backbone``; ``fit`` returns self; learned state ends in ``_``).
- :class:`KerasStrategy`: linear probe on cached embeddings, then (when the
  plan leaves blocks unfrozen and asks for epochs) fine-tuning. ``last-layer``,
  ``partial`` and ``full`` are this class under three registry names: they
  differ only by the plan (``frozen_blocks``, ``epochs``, rates).
- :func:`build_classifier`: uint8 images -> backbone features (pooled) ->
  ``Dense(softmax)`` named ``"class_probabilities"`` (for a regression plan,
  a linear ``Dense(1)`` named ``"target"``); the exported model of every regime.
- :func:`train`: the only Keras training loop: warm-up + cosine decay, the
  head's rate for the head and a smaller one for backbone variables, early
  stopping on validation loss with the starting state as the epoch-0
  candidate (so fine-tuning never returns a model worse on validation than the
  probe it started from), and a divergence guard that restores and retries
  once at a 10x lower backbone rate.

Regression plans (``plan.task``) train the same graph and loop on standardised
targets with the plan's Huber or MSE loss; the training mean and standard
deviation are then folded into the output layer (:func:`fold_target_scale`),
so the model outputs raw target units.

BatchNormalization layers of the backbone are always frozen: in Keras 3 a
non-trainable BatchNormalization runs in inference mode, so ``fit`` never
updates its moving statistics (the classic fine-tuning trap).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from advisor.backbones import Backbone
from advisor.backbones.preprocessing import image_input
from advisor.environment import accelerators
from advisor.errors import DatasetError, PlanError
from advisor.plan import Loss, Optimizer, Plan, Task
from strategies.batches import ImageBatches, build_augmentation
from strategies.embeddings import POOL_LAYER, Embedder, feature_output, predict_batches

logger = logging.getLogger(__name__)

#: Name of the output layer of every exported model.
OUTPUT_LAYER = "class_probabilities"
#: Name of the output layer of a regression model (``Dense(1)``, linear).
REGRESSION_OUTPUT_LAYER = "target"
#: Name of the nested feature model inside a classifier.
FEATURES_MODEL = "features"
#: Strength of each augmentation name a plan may list (kwargs of build_augmentation).
AUGMENTATIONS: dict[str, dict[str, Any]] = {
    "flip": {"flip": True},
    "translate": {"translate": 0.1},
    "zoom": {"zoom": 0.1},
}
#: Augmented views of the training images embedded (once) for the linear probe.
AUGMENTED_VIEWS = 2
#: SGD momentum (``Optimizer.SGD`` means SGD with this momentum).
SGD_MOMENTUM = 0.9
#: Decoupled weight decay of AdamW.
ADAMW_WEIGHT_DECAY = 1e-4
#: A loss above ``DIVERGENCE_FACTOR * start + DIVERGENCE_MARGIN`` is a divergence.
DIVERGENCE_FACTOR = 2.0
DIVERGENCE_MARGIN = 0.5
#: Batches of an epoch seen before the running training loss is checked for a jump.
DIVERGENCE_MIN_BATCHES = 3
#: On divergence the backbone rate (or, with no backbone variables, the rate) is
#: multiplied by this for the single retry.
RETRY_RATE_FACTOR = 0.1
#: Training steps per compiled call when a phase trains on in-memory arrays (the
#: head on cached embeddings). Identical weights; on 7,000 Fashion-MNIST
#: embeddings (219 steps an epoch, TF CPU) the head phase took 3.4 s instead of
#: 5.5 s. The divergence guard then sees the running loss every this many steps.
ARRAY_STEPS_PER_EXECUTION = 32
#: A phase with at most this many training steps runs eagerly: tracing a large
#: network's training step costs about as much as ten eager steps (MobileNetV2, CPU).
EAGER_MAX_STEPS = 8
#: Mixed precision used on accelerators.
ACCELERATOR_POLICY = "mixed_bfloat16"


class NotFittedError(ValueError, AttributeError):
    """A strategy was used before ``fit`` (as scikit-learn's ``NotFittedError``)."""


# --------------------------------------------------------------------------- #
# Inputs
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, slots=True, eq=False)
class LabelledImages:
    """Labelled images: the rows of a uint8 image array that are used, and their labels.

    Args:
        images: ``(N, S, S, 3)`` uint8 array, typically ``DecodedImages.images``
            (a read-only memory map).
        labels: Integer labels, one per entry of `rows`.
        rows: Rows of `images` that are used, e.g. ``DecodedImages.rows``.
            Defaults to `None` (every row).
        key: Names the images in the embedding cache when they are not a
            memory map. Defaults to `None`.
        targets: Numeric regression targets, one per entry of `rows` (then
            `labels` are their quantile bins). Defaults to `None`.

    Raises:
        DatasetError: Shapes, dtypes or lengths do not fit together.

    Example:
        >>> decoded = decode_images(ds.files("train"), 224)  # doctest: +SKIP
        >>> train = LabelledImages(decoded.images, ds.labels("train"), decoded.rows)  # doctest: +SKIP
    """

    images: np.ndarray
    labels: np.ndarray
    rows: np.ndarray | None = None
    key: str | None = None
    targets: np.ndarray | None = None

    def __post_init__(self) -> None:
        images = self.images
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DatasetError(
                "Expected images of shape (N, S, S, 3) and dtype uint8. "
                f"Received: shape={images.shape}, dtype={images.dtype}")
        rows = (np.arange(len(images), dtype=np.int64) if self.rows is None
                else np.asarray(self.rows, dtype=np.int64))
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or rows.ndim != 1 or len(labels) != len(rows):
            raise DatasetError(
                f"Expected one label per used row. Received: {len(labels)} labels for "
                f"{len(rows)} rows")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DatasetError(f"Expected integer labels. Received: dtype={labels.dtype}")
        if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
            raise DatasetError(f"Expected rows in [0, {len(images)}). Received: rows outside it")
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "labels", labels.astype(np.int32))
        if self.targets is not None:
            targets = np.asarray(self.targets, dtype=np.float64)
            if targets.shape != labels.shape or not np.isfinite(targets).all():
                raise DatasetError(
                    f"Expected one finite target per used row. Received: {targets.size} targets "
                    f"for {len(rows)} rows, {int((~np.isfinite(targets)).sum())} not finite")
            object.__setattr__(self, "targets", targets)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def image_size(self) -> int:
        """Height (= width) of the images."""
        return int(self.images.shape[1])

    def batches(self, *, batch_size: int, shuffle: bool = False, seed: int = 0,
                augmentation: Any | None = None,
                class_weight: Mapping[int, float] | None = None,
                outputs: np.ndarray | None = None) -> ImageBatches:
        """Return a :class:`~strategies.batches.ImageBatches` over these images.

        Args:
            batch_size: Images per batch.
            shuffle: Reshuffle every epoch. Defaults to `False`.
            seed: Shuffle seed. Defaults to `0`.
            augmentation: Keras augmentation model. Defaults to `None`.
            class_weight: ``{label: weight}``. Defaults to `None`.
            outputs: What the batches yield instead of the labels, one value per
                row (e.g. standardised regression targets). Defaults to `None`.

        Example:
            >>> train.batches(batch_size=32, shuffle=True)  # doctest: +SKIP
        """
        y = self.labels if outputs is None else outputs
        return ImageBatches(self.images, y, rows=self.rows, batch_size=batch_size,
                            shuffle=shuffle, seed=seed, augmentation=augmentation,
                            class_weight=class_weight)


def check_inputs(train: LabelledImages, val: LabelledImages, class_names: Sequence[str],
                 image_size: int, *, task: Task = Task.CLASSIFICATION) -> None:
    """Raise a one-line :class:`DatasetError` if the inputs cannot be fitted.

    Args:
        train: Training images.
        val: Validation images (early stopping, the probe guard).
        class_names: One name per class; labels index it (for regression:
            the targets' quantile bins).
        image_size: The plan's image size.
        task: The plan's task; regression needs ``targets`` and not every
            bin in the training split. Defaults to `Task.CLASSIFICATION`.

    Raises:
        DatasetError: Wrong size, empty split, labels out of range, a class
            missing from the training split, or regression images without targets.

    Example:
        >>> check_inputs(train, val, ["cat", "dog"], 224)  # doctest: +SKIP
    """
    n_classes = len(class_names)
    regression = task is Task.REGRESSION
    if n_classes < (1 if regression else 2):
        raise DatasetError(f"Expected at least 2 classes. Received: class_names={list(class_names)}")
    for name, data in (("train", train), ("val", val)):
        if data.image_size != image_size:
            raise DatasetError(
                f"The plan's image_size is {image_size} but the {name} images are "
                f"{data.image_size}x{data.image_size}; decode them at {image_size}.")
        if len(data) == 0:
            raise DatasetError(f"The {name} split is empty; it needs at least one image.")
        if data.labels.min() < 0 or data.labels.max() >= n_classes:
            raise DatasetError(
                f"{name} labels must lie in [0, {n_classes}) for {n_classes} class names. "
                f"Received: labels in [{data.labels.min()}, {data.labels.max()}]")
        if regression and data.targets is None:
            raise DatasetError(
                f"The plan is a regression but the {name} images have no targets; "
                "pass the dataset's targets (--targets).")
    if regression:
        return
    missing = sorted(set(range(n_classes)) - set(np.unique(train.labels).tolist()))
    if missing:
        names = ", ".join(str(class_names[i]) for i in missing)
        raise DatasetError(f"Classes without a training image: {names}. Add images or drop them.")


# --------------------------------------------------------------------------- #
# Devices
# --------------------------------------------------------------------------- #
def dtype_policy() -> str:
    """Return ``"mixed_bfloat16"`` when an accelerator is visible, else ``"float32"``.

    Example:
        >>> dtype_policy()  # on a CPU-only machine  # doctest: +SKIP
        'float32'
    """
    return ACCELERATOR_POLICY if accelerators() else "float32"


def device_scope() -> contextlib.AbstractContextManager:
    """Return a data-parallel scope over all accelerators when there are several.

    Uses ``keras.distribution.DataParallel`` (JAX backend only); elsewhere, or
    with fewer than two accelerators, a no-op context.

    Example:
        >>> with device_scope():  # doctest: +SKIP
        ...     model.fit(batches)
    """
    devices = accelerators()
    if len(devices) > 1 and keras.config.backend() == "jax":
        return keras.distribution.DataParallel(devices=devices).scope()
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- #
# The classifier graph
# --------------------------------------------------------------------------- #
def build_classifier(backbone: Backbone, *, feature_layer: str, n_classes: int,
                     dtype: str = "float32", head_units: Sequence[int] = (),
                     head_dropout: float = 0.0, head_batchnorm: bool = False,
                     task: Task = Task.CLASSIFICATION) -> keras.Model:
    """Build images -> backbone features -> ``Dense(softmax)``, on a copy of the backbone.

    The backbone's layers up to `feature_layer` are cloned (with their weights)
    into a nested model named ``"features"``, so training never touches
    `backbone`. All its layers are frozen (:func:`freeze_blocks` unfreezes
    blocks; BatchNormalization layers stay frozen, i.e. in inference mode).
    4-D features are globally average pooled and go through the head of
    :func:`add_head` (hidden layers when `head_units` is not empty); the output
    layer is a float32 ``Dense(n_classes, softmax)`` named
    ``"class_probabilities"`` (for `task` regression a linear float32
    ``Dense(1)`` named ``"target"``). Only
    built-in Keras layers are used, so the saved model loads in safe mode
    without this package.

    Args:
        backbone: The pretrained backbone.
        feature_layer: Layer whose output feeds the head.
        n_classes: Number of classes.
        dtype: Dtype policy of the backbone copy (``"mixed_bfloat16"`` on
            accelerators). Defaults to `"float32"`.
        head_units: Hidden layer widths of the head. Defaults to `()` (one softmax layer).
        head_dropout: Dropout after each hidden layer. Defaults to `0.0`.
        head_batchnorm: BatchNormalization in each hidden layer. Defaults to `False`.
        task: Classification (softmax) or regression (one linear output).
            Defaults to `Task.CLASSIFICATION`.

    Returns:
        An uncompiled functional model: uint8 ``(None, S, S, 3)`` -> ``(None, n_classes)``
        (``(None, 1)`` for regression).

    Raises:
        BackboneError: The backbone has no `feature_layer`.

    Example:
        >>> model = build_classifier(backbone, feature_layer="global_average_pooling2d",
        ...                          n_classes=10)  # doctest: +SKIP
    """
    source = keras.Model(backbone.model.inputs[0], feature_output(backbone, feature_layer),
                         name=FEATURES_MODEL)

    def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        config["dtype"] = dtype
        return layer.__class__.from_config(config)

    features = keras.models.clone_model(source, clone_function=clone_layer)
    features.set_weights(source.get_weights())
    for layer in features.layers:
        layer.trainable = False  # see freeze_blocks for fine-tuning
    inputs = image_input(backbone.image_size)
    x = features(inputs)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name=POOL_LAYER, dtype=dtype)(x)
    outputs = add_head(x, n_classes, units=head_units, dropout=head_dropout,
                       batchnorm=head_batchnorm, task=task)
    return keras.Model(inputs, outputs, name="classifier")


def add_head(x, n_classes: int, *, units: Sequence[int] = (), dropout: float = 0.0,
             batchnorm: bool = False, task: Task = Task.CLASSIFICATION):
    """Apply the new head to pooled features `x`: hidden layers, then the output layer.

    Each hidden layer ``i`` (1-based) is ``Dense(units[i-1])`` named
    ``head_dense_i``, then ``BatchNormalization`` (``head_batchnorm_i``, when
    `batchnorm`), ReLU and ``Dropout`` (``head_dropout_i``, when `dropout` > 0).
    The output is a float32 ``Dense(n_classes, softmax)`` named
    ``"class_probabilities"``, or for regression a float32 linear ``Dense(1)``
    named ``"target"``. The names are fixed so a head trained on
    embeddings (:func:`build_head`) copies onto the classifier layer by layer
    (:func:`copy_head_weights`).

    Args:
        x: A ``(None, D)`` Keras tensor.
        n_classes: Number of classes.
        units: Hidden layer widths, input side first. Defaults to `()`.
        dropout: Dropout rate after each hidden layer. Defaults to `0.0`.
        batchnorm: Whether hidden layers are batch-normalised. Defaults to `False`.
        task: Classification or regression. Defaults to `Task.CLASSIFICATION`.

    Returns:
        The ``(None, n_classes)`` probabilities tensor (``(None, 1)`` for regression).
    """
    for index, width in enumerate(units, start=1):
        x = keras.layers.Dense(int(width), use_bias=not batchnorm, name=f"head_dense_{index}")(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(name=f"head_batchnorm_{index}")(x)
        x = keras.layers.ReLU(name=f"head_relu_{index}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"head_dropout_{index}")(x)
    if task is Task.REGRESSION:
        return keras.layers.Dense(1, name=REGRESSION_OUTPUT_LAYER, dtype="float32")(x)
    return keras.layers.Dense(n_classes, activation="softmax", name=OUTPUT_LAYER,
                              dtype="float32")(x)


def head_kwargs(plan: Plan) -> dict[str, Any]:
    """Return the plan's head settings as :func:`build_classifier` / :func:`build_head` keywords."""
    return {"head_units": tuple(plan.head_units), "head_dropout": plan.head_dropout,
            "head_batchnorm": plan.head_batchnorm, "task": plan.task}


def fold_target_scale(model: keras.Model, mean: float, std: float) -> None:
    """Make a regression model trained on standardised targets output raw target units.

    The linear output layer computes ``z = x @ W + b`` for ``(y - mean) / std``;
    it becomes ``x @ (W * std) + (b * std + mean)``, so ``model`` predicts ``y``
    with no extra layer (the saved model stays plain built-in Keras).

    Args:
        model: A regression model of :func:`build_classifier` or :func:`build_head`.
        mean: Mean of the training targets.
        std: Their standard deviation.

    Example:
        >>> head = build_head(4, 1, task=Task.REGRESSION)
        >>> fold_target_scale(head, mean=10.0, std=2.0)
    """
    layer = model.get_layer(REGRESSION_OUTPUT_LAYER)
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    layer.set_weights([(kernel * std).astype(np.float32), (bias * std + mean).astype(np.float32)])


def build_head(feature_dim: int, n_classes: int, *, head_units: Sequence[int] = (),
               head_dropout: float = 0.0, head_batchnorm: bool = False,
               task: Task = Task.CLASSIFICATION) -> keras.Model:
    """Build the head trained on cached embeddings: ``(None, D)`` -> class probabilities.

    A linear probe (one ``Dense(softmax)``) by default, or the hidden layers of
    :func:`add_head`. Its layers have the same names and shapes as the
    classifier's head, so their weights copy over unchanged
    (:func:`copy_head_weights`).

    Example:
        >>> build_head(1280, 10).output.shape
        (None, 10)
        >>> len(build_head(1280, 10, head_units=(256,), head_dropout=0.5).layers)
        5
    """
    inputs = keras.Input(shape=(feature_dim,), name="embedding")
    outputs = add_head(inputs, n_classes, units=head_units, dropout=head_dropout,
                       batchnorm=head_batchnorm, task=task)
    return keras.Model(inputs, outputs, name="head" if head_units else "linear_probe")


def copy_head_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy every weighted head layer of `source` (:func:`build_head`) onto `target`, by name."""
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())


def freeze_blocks(model: keras.Model, backbone: Backbone, frozen_blocks: Collection[str]) -> list:
    """Set ``trainable`` on the classifier's backbone copy, block by block.

    Layers of blocks named in `frozen_blocks` are frozen, the others trained;
    layers outside any block (preprocessing, pooling) and BatchNormalization
    layers stay frozen. Call before ``compile``.

    Args:
        model: A model from :func:`build_classifier`.
        backbone: The backbone it was built from.
        frozen_blocks: Names of the blocks to keep frozen.

    Returns:
        The trainable backbone variables (for the backbone learning rate).

    Raises:
        PlanError: A name in `frozen_blocks` is not a block of the backbone.

    Example:
        >>> freeze_blocks(model, backbone, ["stem", "block_0"])  # doctest: +SKIP
    """
    known = {block.name for block in backbone.blocks}
    unknown = sorted(set(frozen_blocks) - known)
    if unknown:
        raise PlanError(
            f"Plan freezes unknown block(s) {unknown} of {backbone.name}. "
            f"Known: {', '.join(b.name for b in backbone.blocks)}.")
    features = model.get_layer(FEATURES_MODEL)
    present = {layer.name: layer for layer in features.layers}
    # The container first: Keras' setter passes the flag down to every layer it
    # tracks (on the JAX backend that is all of them), so it must not come last.
    features.trainable = True
    for layer in features.layers:
        layer.trainable = False
    for block in backbone.blocks:
        if block.name in frozen_blocks:
            continue
        for name in block.layers:
            layer = present.get(name)
            if layer is not None and not isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = True
    return list(features.trainable_variables)


def trainable_blocks(backbone: Backbone, plan: Plan) -> list[str]:
    """Return the blocks the plan trains that lie below its feature layer.

    Example:
        >>> trainable_blocks(backbone, full_plan)[:2]  # doctest: +SKIP
        ['stem', 'block_0']
    """
    names = {layer.name for layer in keras.Model(
        backbone.model.inputs, feature_output(backbone, plan.feature_layer)).layers}
    return [b.name for b in backbone.blocks
            if b.name not in plan.frozen_blocks and any(name in names for name in b.layers)]


def augmentation_for(plan: Plan, *, seed: int):
    """Return the plan's augmentation as a Keras model (or `None`).

    Raises:
        PlanError: An unknown augmentation name; the message lists the known ones.

    Example:
        >>> augmentation_for(plan, seed=0)  # doctest: +SKIP
    """
    kwargs: dict[str, Any] = {}
    for name in plan.augmentation:
        if name not in AUGMENTATIONS:
            raise PlanError(
                f"Unknown augmentation {name!r} in the plan. Known: {', '.join(AUGMENTATIONS)}.")
        kwargs.update(AUGMENTATIONS[name])
    return build_augmentation(seed=seed, **kwargs)


def class_weight_dict(plan: Plan, n_classes: int) -> dict[int, float] | None:
    """Return the plan's class weights as ``{label: weight}`` (or `None`).

    Raises:
        PlanError: The plan has a different number of weights than classes.
    """
    if plan.class_weights is None:
        return None
    if len(plan.class_weights) != n_classes:
        raise PlanError(
            f"The plan has {len(plan.class_weights)} class weights for {n_classes} classes; "
            "re-plan on this dataset.")
    return {i: float(w) for i, w in enumerate(plan.class_weights)}


# --------------------------------------------------------------------------- #
# The one training path
# --------------------------------------------------------------------------- #
class _RateScaling:
    """Optimizer mixin: multiply the learning rate of some variables by a factor."""

    def __init__(self, *args: Any, scaled_variables: Collection = (), rate_factor: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scaled_ids = {id(v) for v in scaled_variables}
        self._rate_factor = float(rate_factor)
        self._factors: list[float] = []

    def build(self, variables):
        super().build(variables)
        self._factors = [self._rate_factor if id(v) in self._scaled_ids else 1.0
                         for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = learning_rate * factor
        return super().update_step(gradient, variable, learning_rate)


class _ScaledSGD(_RateScaling, keras.optimizers.SGD):
    pass


class _ScaledAdamW(_RateScaling, keras.optimizers.AdamW):
    pass


def make_optimizer(plan: Plan, learning_rate, *, scaled_variables: Collection = (),
                   rate_factor: float = 1.0) -> keras.optimizers.Optimizer:
    """Return the plan's optimizer; `scaled_variables` learn at ``rate_factor`` x the rate.

    Args:
        plan: Gives ``optimizer`` (``sgd`` with momentum 0.9, or ``adamw``).
        learning_rate: A float or a schedule.
        scaled_variables: Variables with a scaled rate (the backbone's).
            Defaults to `()`.
        rate_factor: Their rate factor. Defaults to `1.0`.

    Example:
        >>> make_optimizer(plan, 1e-3)  # doctest: +SKIP
    """
    common = {"learning_rate": learning_rate, "scaled_variables": scaled_variables,
              "rate_factor": rate_factor}
    if plan.optimizer == Optimizer.SGD:
        return _ScaledSGD(momentum=SGD_MOMENTUM, name="sgd", **common)
    return _ScaledAdamW(weight_decay=ADAMW_WEIGHT_DECAY, name="adamw", **common)


def learning_rate_schedule(learning_rate: float, *, steps_per_epoch: int, epochs: int,
                           warmup_epochs: int = 0) -> keras.optimizers.schedules.LearningRateSchedule:
    """Return linear warm-up from 0 to `learning_rate`, then cosine decay to 0.

    Args:
        learning_rate: Peak rate.
        steps_per_epoch: Batches per epoch.
        epochs: Epochs of the phase.
        warmup_epochs: Warm-up epochs (capped below `epochs`). Defaults to `0`.

    Example:
        >>> schedule = learning_rate_schedule(1e-3, steps_per_epoch=10, epochs=5, warmup_epochs=1)
        >>> round(float(schedule(10)), 8)  # the peak, after one warm-up epoch (float32)
        0.001
    """
    warmup_steps = steps_per_epoch * max(0, min(warmup_epochs, epochs - 1))
    decay_steps = max(1, steps_per_epoch * epochs - warmup_steps)
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps, warmup_target=learning_rate, warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)


class TrainingGuard(keras.callbacks.Callback):
    """Early stopping with the starting state as candidate, and a divergence check.

    The starting weights, with their validation loss `start_loss`, are the
    epoch-0 candidate: at the end of training the best of them and every
    epoch's weights (lowest validation loss) is restored. Training stops after
    `patience` epochs without improvement, or at once when the loss diverges:
    a NaN/inf loss, or a running training or validation loss above
    ``DIVERGENCE_FACTOR * start_loss + DIVERGENCE_MARGIN``.

    Args:
        start_loss: Validation loss of the starting weights.
        patience: Epochs without improvement before stopping.

    Attributes:
        best_epoch: 0 for the starting state, else the 1-based best epoch.
        best_loss: Its validation loss.
        diverged: Why training diverged, or `None`.
        stopped_epoch: 1-based epoch at which training was stopped, or `None`.
    """

    def __init__(self, *, start_loss: float, patience: int) -> None:
        super().__init__()
        self.start_loss = float(start_loss)
        self.patience = max(1, int(patience))
        self.limit = DIVERGENCE_FACTOR * self.start_loss + DIVERGENCE_MARGIN if math.isfinite(
            self.start_loss) else math.inf
        self.best_loss = self.start_loss if math.isfinite(self.start_loss) else math.inf
        self.best_epoch = 0
        self.diverged: str | None = None
        self.stopped_epoch: int | None = None
        self._best_weights: list[np.ndarray] | None = None
        self._wait = 0
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self._best_weights = self.model.get_weights()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            self._diverge(f"training loss became {loss} in epoch {self._epoch + 1}, batch {batch + 1}")
        elif batch + 1 >= DIVERGENCE_MIN_BATCHES and loss > self.limit:
            self._diverge(f"training loss jumped to {loss:.3g} (start {self.start_loss:.3g}) in "
                          f"epoch {self._epoch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged:
            return
        val_loss = float((logs or {}).get("val_loss", math.nan))
        if not math.isfinite(val_loss) or val_loss > self.limit:
            self._diverge(f"validation loss became {val_loss:.3g} (start {self.start_loss:.3g}) "
                          f"after epoch {epoch + 1}")
            return
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self._wait = val_loss, epoch + 1, 0
            self._best_weights = self.model.get_weights()
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)

    def _diverge(self, reason: str) -> None:
        if self.diverged is None:
            self.diverged = reason
            self.stopped_epoch = self._epoch + 1
        self.model.stop_training = True


def loss_and_metrics(plan: Plan) -> tuple[Any, list[str]]:
    """Return the ``compile`` loss and metrics of the plan's task and loss.

    Sparse categorical cross-entropy with accuracy for classification; for
    regression (on standardised targets) Huber (delta 1) or mean squared error,
    with mean absolute error.

    Example:
        >>> loss_and_metrics(plan)  # doctest: +SKIP
        ('sparse_categorical_crossentropy', ['accuracy'])
    """
    if plan.task is not Task.REGRESSION:
        return "sparse_categorical_crossentropy", ["accuracy"]
    loss = keras.losses.Huber(delta=1.0) if plan.loss is Loss.HUBER else keras.losses.MeanSquaredError()
    return loss, ["mae"]


def _fit_kwargs(data: Any, batch_size: int, *, shuffle: bool) -> tuple[dict[str, Any], int]:
    """Return ``model.fit``/``evaluate`` kwargs for a PyDataset or an ``(x, y[, w])`` tuple."""
    if isinstance(data, keras.utils.PyDataset):
        return {"x": data}, len(data)
    x, y, *weights = data
    kwargs = {"x": x, "y": y, "batch_size": batch_size}
    if shuffle:
        kwargs["shuffle"] = True
    if weights and weights[0] is not None:
        kwargs["sample_weight"] = weights[0]
    return kwargs, max(1, math.ceil(len(x) / batch_size))


def _steps_per_execution(train_kwargs: Mapping[str, Any], steps: int, eager: bool) -> int:
    """Steps per compiled call: several for in-memory arrays (a head on cached
    embeddings, where each step is tiny and the per-call overhead dominates),
    one for image batches and on the torch backend (which supports only one)."""
    if eager or "y" not in train_kwargs or keras.backend.backend() == "torch":
        return 1
    return max(1, min(steps, ARRAY_STEPS_PER_EXECUTION))


def _callbacks(guard: TrainingGuard, work_dir: Path | None, name: str) -> list:
    callbacks: list[keras.callbacks.Callback] = [guard]
    if work_dir is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(Path(work_dir) / "backup" / name)))
        if importlib.util.find_spec("tensorboard") is not None:
            callbacks.append(keras.callbacks.TensorBoard(str(Path(work_dir) / "logs" / name)))
    return callbacks


def train(
    model: keras.Model,
    plan: Plan,
    train_data: Any,
    val_data: Any,
    *,
    phase: str,
    learning_rate: float,
    epochs: int,
    warmup_epochs: int = 0,
    scaled_variables: Collection = (),
    rate_factor: float = 1.0,
    work_dir: Path | None = None,
    verbose: int = 0,
) -> dict[str, Any]:
    """Train `model` in place: the one training loop of every Keras regime.

    Compiles `model` (set ``trainable`` first) with the plan's optimizer, a
    warm-up + cosine-decay schedule peaking at `learning_rate` and
    ``rate_factor * learning_rate`` for `scaled_variables`, and the loss of
    :func:`loss_and_metrics` (sparse categorical cross-entropy, or the
    regression plan's Huber / MSE) (eagerly when the phase has at most
    ``EAGER_MAX_STEPS`` steps, where tracing would cost more than it saves). The starting weights are evaluated on
    `val_data` and kept as the epoch-0 candidate; early stopping (the plan's
    ``patience``, on validation loss) restores the best candidate, so the
    result is never worse on validation loss than the start. A diverging loss
    (NaN, or a jump) stops the phase, restores the best weights so far and
    retries once with the scaled variables' factor (or, when there are none,
    the rate) 10x lower; the returned history says so.

    Args:
        model: A functional model with softmax outputs (a linear output for regression).
        plan: Gives the optimizer, batch size, patience and seed.
        train_data: ``keras.utils.PyDataset`` or ``(x, y)`` / ``(x, y, sample_weight)``.
        val_data: ``keras.utils.PyDataset`` or ``(x, y)``.
        phase: Name of the phase in the history and the work folder.
        learning_rate: Peak learning rate.
        epochs: Maximum epochs.
        warmup_epochs: Linear warm-up epochs. Defaults to `0`.
        scaled_variables: Variables trained at ``rate_factor`` x the rate.
            Defaults to `()`.
        rate_factor: Their factor (backbone rate / head rate). Defaults to `1.0`.
        work_dir: Folder for ``BackupAndRestore`` checkpoints (resume) and,
            when ``tensorboard`` is installed, TensorBoard logs. Defaults to
            `None` (neither).
        verbose: Keras ``fit`` verbosity. Defaults to `0`.

    Returns:
        The phase history: ``epochs`` (per-epoch metrics of each attempt),
        ``start`` (validation metrics of the starting weights), ``best_epoch``
        (0 = the start), ``best_val_loss``, ``attempts`` (rates, stop reason),
        ``retried``, ``notes`` (one sentence per event) and ``wall_s``.

    Example:
        >>> history = train(head, plan, (x, y), (x_val, y_val), phase="head",
        ...                 learning_rate=1e-3, epochs=20)  # doctest: +SKIP
    """
    started = time.perf_counter()
    train_kwargs, steps = _fit_kwargs(train_data, plan.batch_size, shuffle=True)
    val_kwargs, _ = _fit_kwargs(val_data, plan.batch_size, shuffle=False)
    validation = val_kwargs["x"] if "y" not in val_kwargs else (val_kwargs["x"], val_kwargs["y"])
    history: dict[str, Any] = {"phase": phase, "epochs": [], "attempts": [], "notes": [],
                               "retried": False}
    for attempt in range(2):
        schedule = learning_rate_schedule(learning_rate, steps_per_epoch=steps, epochs=epochs,
                                          warmup_epochs=warmup_epochs)
        optimizer = make_optimizer(plan, schedule, scaled_variables=scaled_variables,
                                   rate_factor=rate_factor)
        loss, metrics = loss_and_metrics(plan)
        eager = steps * epochs <= EAGER_MAX_STEPS
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, run_eagerly=eager,
                      steps_per_execution=_steps_per_execution(train_kwargs, steps, eager))
        start = model.evaluate(**val_kwargs, verbose=0, return_dict=True)
        if attempt == 0:
            history["start"] = {f"val_{k}": float(v) for k, v in start.items()}
        guard = TrainingGuard(start_loss=start["loss"], patience=plan.patience)
        name = phase if attempt == 0 else f"{phase}-retry"
        fitted = model.fit(**train_kwargs, validation_data=validation, epochs=epochs,
                           callbacks=_callbacks(guard, work_dir, name), verbose=verbose)
        # History.epoch holds Keras' real epoch indices (a resumed fit starts past 0).
        for epoch, values in zip(fitted.epoch, zip(*fitted.history.values())):
            history["epochs"].append({"attempt": attempt, "epoch": int(epoch) + 1,
                                      **{k: float(v) for k, v in zip(fitted.history, values)}})
        history["attempts"].append({
            "learning_rate": learning_rate,
            "backbone_learning_rate": learning_rate * rate_factor if scaled_variables else None,
            "start_val_loss": float(start["loss"]), "best_epoch": guard.best_epoch,
            "best_val_loss": guard.best_loss, "stopped_epoch": guard.stopped_epoch,
            "diverged": guard.diverged,
        })
        history["best_epoch"], history["best_val_loss"] = guard.best_epoch, guard.best_loss
        if not guard.diverged:
            if guard.best_epoch == 0:
                history["notes"].append(
                    f"{phase}: no epoch beat the starting state on validation loss "
                    f"({guard.start_loss:.4g}); kept the starting weights.")
            break
        if attempt == 0:
            if scaled_variables:
                rate_factor *= RETRY_RATE_FACTOR
                what = f"backbone learning rate {learning_rate * rate_factor:.3g}"
            else:
                learning_rate *= RETRY_RATE_FACTOR
                what = f"learning rate {learning_rate:.3g}"
            history["retried"] = True
            history["notes"].append(
                f"{phase}: diverged ({guard.diverged}); restored the best weights and retried "
                f"once at a 10x lower {what}.")
            logger.warning(history["notes"][-1])
        else:
            history["notes"].append(
                f"{phase}: the retry diverged too ({guard.diverged}); kept the best weights.")
            logger.warning(history["notes"][-1])
    history["wall_s"] = time.perf_counter() - started
    return history


_train = train  # `train` is also the name of fit's training-data argument


# --------------------------------------------------------------------------- #
# Strategies
# --------------------------------------------------------------------------- #
class Strategy:
    """Base class of the strategies: the scikit-learn estimator contract.

    ``__init__`` only stores its arguments; :meth:`fit` does the work and sets
    ``model_`` (uint8 images -> class probabilities, or targets for a
    regression plan), ``classes_``, ``class_names_`` and ``history_``.

    Args:
        plan: The plan; every setting is read from it.
        backbone: The pretrained backbone at the plan's image size; it is never modified.

    Example:
        >>> strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)  # doctest: +SKIP
        >>> strategy.fit(train, val, class_names=names).predict(test_images)  # doctest: +SKIP
    """

    def __init__(self, *, plan: Plan, backbone: Backbone) -> None:
        self.plan = plan
        self.backbone = backbone

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """Return the constructor arguments (as scikit-learn's ``get_params``)."""
        return {"plan": self.plan, "backbone": self.backbone}

    def fit(self, train: LabelledImages, val: LabelledImages, *, class_names: Sequence[str],
            work_dir: Path | None = None, verbose: int = 0) -> Strategy:
        """Fit on `train`, using `val` for model selection; return self."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit first.")

    def _outputs(self, images: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        self._check_fitted()
        rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            width = 1 if self.plan.task is Task.REGRESSION else len(self.classes_)
            return np.zeros((0, width), dtype=np.float32)
        # Batches are gathered from `images` one at a time, so a memory map is
        # never copied whole into memory. ImageBatches reads each batch in row
        # order; asking for sorted rows keeps the outputs aligned, then unsort.
        order = np.argsort(rows, kind="stable")
        batches = ImageBatches(images, np.zeros(len(rows), np.int32), rows=rows[order],
                               batch_size=self.plan.batch_size)
        sorted_outputs = predict_batches(self.model_, batches)
        outputs = np.empty_like(sorted_outputs)
        outputs[order] = sorted_outputs
        return outputs

    def predict_proba(self, images: np.ndarray, *, rows: np.ndarray | None = None) -> np.ndarray:
        """Return class probabilities of uint8 images (classification plans only).

        Args:
            images: ``(N, S, S, 3)`` uint8 array (may be a memory map).
            rows: Rows of `images` to predict, in order. Defaults to `None` (all).

        Returns:
            ``(len(rows), n_classes)`` float32 array.

        Raises:
            NotFittedError: `fit` was not called.
            PlanError: The plan is a regression (use :meth:`predict`).

        Example:
            >>> strategy.predict_proba(test.images).shape  # doctest: +SKIP
            (270, 10)
        """
        if self.plan.task is Task.REGRESSION:
            raise PlanError("predict_proba needs a classification plan; this one is a "
                            "regression, so call predict for the predicted values.")
        return self._outputs(images, rows)

    def predict(self, images: np.ndarray, *, rows: np.ndarray | None = None) -> np.ndarray:
        """Return class labels of uint8 images, or predicted values for a regression plan.

        Labels are the argmax of :meth:`predict_proba`; values are in the
        targets' own units. `rows` selects rows of `images` as in
        :meth:`predict_proba`.

        Raises:
            NotFittedError: `fit` was not called.

        Example:
            >>> strategy.predict(test.images)[:3]  # doctest: +SKIP
            array([3, 1, 7])
        """
        if self.plan.task is Task.REGRESSION:
            return self._outputs(images, rows)[:, 0]
        return np.argmax(self.predict_proba(images, rows=rows), axis=-1)

    def export_model(self) -> keras.Model:
        """Return a float32 copy of the fitted model for saving.

        uint8 ``(None, S, S, 3)`` RGB -> class probabilities (or ``(None, 1)``
        targets for a regression plan), preprocessing included, built only from built-in Keras layers (loads with
        ``keras.saving.load_model`` in safe mode). Save it with
        :func:`strategies.export.save_model` to keep the class names.

        Raises:
            NotFittedError: `fit` was not called.

        Example:
            >>> save_model(strategy.export_model(), "model.keras", strategy.class_names_)  # doctest: +SKIP
        """
        self._check_fitted()
        model = build_classifier(self.backbone, feature_layer=self.plan.feature_layer,
                                 n_classes=len(self.classes_), **head_kwargs(self.plan))
        model.set_weights(self.model_.get_weights())
        return model

    def _set_fitted(self, model: keras.Model, class_names: Sequence[str],
                    history: dict[str, Any]) -> None:
        self.classes_ = np.arange(len(class_names))
        self.class_names_ = tuple(str(name) for name in class_names)
        self.history_ = history
        self.model_ = model


class KerasStrategy(Strategy):
    """Linear probe on cached embeddings, then fine-tuning of the plan's unfrozen blocks.

    1. Embed the training images once through the frozen backbone (plus
       ``AUGMENTED_VIEWS`` augmented views when the plan augments) and the
       validation images, via the embedding cache.
    2. Train a softmax head on the embeddings with :func:`train` (for a
       regression plan a linear output on standardised targets).
    3. Copy it onto a classifier built on a copy of the backbone.
    4. If the plan leaves blocks unfrozen and asks for ``epochs``, fine-tune
       them (LP-FT) with :func:`train`: head at ``head_learning_rate``,
       backbone at ``backbone_learning_rate``, images from the decode cache,
       mixed precision on accelerators. The probe is the epoch-0 candidate.
    5. For regression, fold the training targets' mean and standard deviation
       into the output layer (:func:`fold_target_scale`); the training history
       stays in standardised units.

    ``last-layer``, ``partial`` and ``full`` are registered subclasses that
    differ only by their plans.
    """

    def fit(self, train: LabelledImages, val: LabelledImages, *, class_names: Sequence[str],
            work_dir: Path | None = None, verbose: int = 0) -> KerasStrategy:
        """Fit the probe, then fine-tune as the plan says; return self.

        Args:
            train: Training images and labels.
            val: Validation images and labels (early stopping, the guard).
            class_names: One name per class; labels index it.
            work_dir: Folder for resume checkpoints and TensorBoard logs.
                Defaults to `None`.
            verbose: Keras ``fit`` verbosity. Defaults to `0`.

        Returns:
            self, with ``model_``, ``classes_``, ``class_names_``, ``history_``.

        Raises:
            DatasetError: The inputs do not fit the plan (see :func:`check_inputs`).
            PlanError: The plan names unknown blocks or augmentations.

        Example:
            >>> strategy = get_strategy("partial")(plan=plan, backbone=backbone)  # doctest: +SKIP
            >>> strategy.fit(train, val, class_names=names)  # doctest: +SKIP
        """
        plan, backbone = self.plan, self.backbone
        check_inputs(train, val, class_names, plan.image_size, task=plan.task)
        n_classes = len(class_names)
        class_weight = class_weight_dict(plan, n_classes)
        keras.utils.set_random_seed(plan.seed)
        started = time.perf_counter()
        history: dict[str, Any] = {}

        train_outputs = val_outputs = None  # the labels, unless regression
        y_val = val.labels
        if plan.task is Task.REGRESSION:
            mean, std = target_scale(train.targets)
            history["target_scale"] = {"mean": mean, "std": std}
            train_outputs = ((train.targets - mean) / std).astype(np.float32)
            y_val = val_outputs = ((val.targets - mean) / std).astype(np.float32)
        embedder = Embedder(backbone, plan.feature_layer, batch_size=plan.batch_size)
        x_train, y_train = probe_training_set(embedder, train, plan, outputs=train_outputs)
        x_val = embedder.embed(val.images, rows=val.rows, key=val.key)
        history["embed"] = {"wall_s": time.perf_counter() - started,
                            "train_rows": int(len(x_train)), "dim": embedder.dim}
        weights = None if class_weight is None else np.array(
            [class_weight[int(label)] for label in y_train], dtype=np.float32)
        head = build_head(embedder.dim, n_classes, **head_kwargs(plan))
        history["head"] = _train(head, plan, (x_train, y_train, weights), (x_val, y_val),
                                phase="head", learning_rate=plan.head_learning_rate,
                                epochs=plan.head_epochs, work_dir=work_dir, verbose=verbose)

        fine_tune = plan.epochs > 0 and bool(trainable_blocks(backbone, plan))
        with device_scope():
            model = build_classifier(backbone, feature_layer=plan.feature_layer,
                                     n_classes=n_classes,
                                     dtype=dtype_policy() if fine_tune else "float32",
                                     **head_kwargs(plan))
            copy_head_weights(head, model)
            if fine_tune:
                backbone_variables = freeze_blocks(model, backbone, plan.frozen_blocks)
                augmentation = augmentation_for(plan, seed=plan.seed)
                history["fine_tune"] = _train(
                    model, plan,
                    train.batches(batch_size=plan.batch_size, shuffle=True, seed=plan.seed,
                                  augmentation=augmentation, class_weight=class_weight,
                                  outputs=train_outputs),
                    val.batches(batch_size=plan.batch_size, outputs=val_outputs),
                    phase="fine-tune", learning_rate=plan.head_learning_rate,
                    epochs=plan.epochs, warmup_epochs=plan.warmup_epochs,
                    scaled_variables=backbone_variables,
                    rate_factor=plan.backbone_learning_rate / plan.head_learning_rate,
                    work_dir=work_dir, verbose=verbose)
                history["fine_tune"]["trained_blocks"] = trainable_blocks(backbone, plan)
                history["fine_tune"]["dtype_policy"] = dtype_policy()
        if plan.task is Task.REGRESSION:
            fold_target_scale(model, mean, std)
        history["wall_s"] = time.perf_counter() - started
        self._set_fitted(model, class_names, history)
        return self


def target_scale(targets: np.ndarray) -> tuple[float, float]:
    """Return the ``(mean, standard deviation)`` regression targets are standardised with.

    A zero deviation (constant targets) becomes 1, so standardising only centres.

    Example:
        >>> target_scale(np.array([1.0, 3.0]))
        (2.0, 1.0)
    """
    targets = np.asarray(targets, dtype=np.float64)
    std = float(targets.std())
    return float(targets.mean()), std if std > 0 else 1.0


def probe_training_set(embedder: Embedder, data: LabelledImages, plan: Plan, *,
                       outputs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the probe's training embeddings and labels: plain, plus augmented views.

    `outputs` (one value per row, e.g. standardised regression targets) is
    repeated per view instead of the labels when given.

    Each of the ``AUGMENTED_VIEWS`` views (only when the plan augments) is
    computed once and cached like the plain embeddings.

    Example:
        >>> x, y = probe_training_set(embedder, train, plan)  # doctest: +SKIP
    """
    views = [embedder.embed(data.images, rows=data.rows, key=data.key)]
    if plan.augmentation:
        for view in range(1, AUGMENTED_VIEWS + 1):
            augmentation = augmentation_for(plan, seed=plan.seed + view)
            spec = json.dumps({"augmentation": {name: AUGMENTATIONS.get(name) for name in
                                                 sorted(plan.augmentation)},
                               "seed": plan.seed, "view": view}, sort_keys=True)
            views.append(embedder.embed(data.images, rows=data.rows, key=data.key,
                                        augmentation=augmentation, augmentation_key=spec))
    y = data.labels if outputs is None else outputs
    return np.concatenate(views), np.tile(y, len(views))
