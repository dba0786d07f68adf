"""The classifier graph every Keras regime trains and every regime exports.

uint8 images -> a copy of the backbone up to the plan's feature layer (a
nested model named ``"features"``) -> global average pooling -> the new head
(:func:`add_head`) -> a float32 ``Dense(softmax)`` named
``"class_probabilities"`` (a linear ``Dense(1)`` named ``"target"`` for a
regression plan). The head trained on cached embeddings (:func:`build_head`)
has the same layer names, so its weights copy over (:func:`copy_head_weights`).

BatchNormalization layers of the backbone are always frozen: in Keras 3 a
non-trainable BatchNormalization runs in inference mode, so ``fit`` never
updates its moving statistics (the classic fine-tuning trap).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import keras
import numpy as np

from advisor.backbones import Backbone
from advisor.backbones.preprocessing import image_input
from advisor.errors import PlanError
from advisor.plan import Plan, Task
from strategies.embeddings import POOL_LAYER, feature_output

#: Name of the output layer of every exported model.
OUTPUT_LAYER = "class_probabilities"
#: Name of the output layer of a regression model (``Dense(1)``, linear).
REGRESSION_OUTPUT_LAYER = "target"
#: Name of the nested feature model inside a classifier.
FEATURES_MODEL = "features"


def build_classifier(backbone: Backbone, *, feature_layer: str | Sequence[str], n_classes: int,
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
        feature_layer: Layer whose output feeds the head, or several: the
            ``features`` model then has one output per layer, each pooled
            (``feature_pool_<i>``) and concatenated in order (``feature_concat``,
            the columns of :class:`strategies.embeddings.Embedder` on the same layers).
        n_classes: Number of classes.
        dtype: Dtype policy of the backbone copy (``"mixed_bfloat16"`` on
            accelerators). Defaults to `"float32"`.
        head_units: Hidden layer widths of the head. Defaults to `()` (one softmax layer).
        head_dropout: Dropout after each hidden layer. Defaults to `0.0`.
        head_batchnorm: BatchNormalization in each hidden layer. Defaults to `False`.
        task: Classification (softmax) or regression (one linear output).
            Defaults to `Task.CLASSIFICATION`.

    Returns:
        An uncompiled functional model: uint8 ``(None, s, s, 3)`` -> ``(None, n_classes)``
        (``(None, 1)`` for regression), ``s`` the backbone's ``input_size``.

    Raises:
        BackboneError: The backbone has no `feature_layer`.

    Example:
        >>> model = build_classifier(backbone, feature_layer=backbone.feature_layer, n_classes=10)
        >>> model.input.dtype, model.output_shape, model.get_layer("features").trainable_weights
        ('uint8', (None, 10), [])
        >>> probabilities = keras.ops.convert_to_numpy(model(np.zeros((2, 96, 96, 3), "uint8")))
        >>> probabilities.shape, probabilities.sum(axis=1).round(3).tolist()
        ((2, 10), [1.0, 1.0])
    """
    layers = (feature_layer,) if isinstance(feature_layer, str) else tuple(feature_layer)
    outputs = [feature_output(backbone, layer) for layer in layers]
    source = keras.Model(backbone.model.inputs[0], outputs[0] if len(outputs) == 1 else outputs,
                         name=FEATURES_MODEL)

    def clone_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        config["dtype"] = dtype
        return layer.__class__.from_config(config)

    features = keras.models.clone_model(source, clone_function=clone_layer)
    features.set_weights(source.get_weights())
    for layer in features.layers:
        layer.trainable = False  # see freeze_blocks for fine-tuning
    inputs = image_input(backbone.input_size)  # the upscale, if any, is inside `features`
    x = features(inputs)
    if len(layers) > 1:
        x = keras.layers.Concatenate(name=f"{POOL_LAYER}_concat", dtype=dtype)([
            keras.layers.GlobalAveragePooling2D(name=f"{POOL_LAYER}_{i}", dtype=dtype)(part)
            if len(part.shape) == 4 else part for i, part in enumerate(x)])
    elif len(x.shape) == 4:
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


def freeze_blocks(model: keras.Model, backbone: Backbone, frozen_blocks: Collection[str], *,
                  train_batchnorm: bool = False, batchnorm_momentum: float | None = None) -> list:
    """Set ``trainable`` on the classifier's backbone copy, block by block.

    Layers of blocks named in `frozen_blocks` are frozen, the others trained;
    layers outside any block (preprocessing, pooling) stay frozen, and so do
    BatchNormalization layers unless `train_batchnorm` (a network trained from
    random weights: in Keras 3 a trainable BatchNormalization normalises with
    the batch's statistics in ``fit`` and updates its moving averages). Call
    before ``compile``.

    Args:
        model: A model from :func:`build_classifier`.
        backbone: The backbone it was built from.
        frozen_blocks: Names of the blocks to keep frozen.
        train_batchnorm: Train the BatchNormalization layers of the trained
            blocks too (``plan.train_batchnorm``). Defaults to `False`.
        batchnorm_momentum: Momentum of the moving averages of the
            BatchNormalization layers trained (``plan.batchnorm_momentum``).
            Defaults to `None` (the network's own).

    Returns:
        The trainable backbone variables (for the backbone learning rate).

    Raises:
        PlanError: A name in `frozen_blocks` is not a block of the backbone.

    Example:
        >>> model = build_classifier(backbone, feature_layer=backbone.feature_layer, n_classes=10)
        >>> names = [block.name for block in backbone.blocks]
        >>> len(freeze_blocks(model, backbone, names[:-1]))  # only the "head" block's Conv_1 kernel
        1
        >>> # All 52 convolution kernels; stem and block_0 hold 3. BatchNorm stays frozen.
        >>> len(freeze_blocks(model, backbone, [])), len(freeze_blocks(model, backbone, names[:2]))
        (52, 49)
        >>> len(freeze_blocks(model, backbone, [], train_batchnorm=True))  # + gamma and beta of 52 BN
        156
        >>> _ = freeze_blocks(model, backbone, names[:-1], train_batchnorm=True, batchnorm_momentum=0.9)
        >>> sorted({layer.momentum for layer in model.get_layer("features").layers
        ...         if isinstance(layer, keras.layers.BatchNormalization)})  # the trained one's, the others'
        [0.9, 0.999]
        >>> freeze_blocks(model, backbone, ["block_99"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        advisor.errors.PlanError: Plan freezes unknown block(s) ['block_99'] of mobilenet_v2. Known: stem, ...
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
            batchnorm = isinstance(layer, keras.layers.BatchNormalization)
            if layer is not None and (train_batchnorm or not batchnorm):
                layer.trainable = True
                if batchnorm and batchnorm_momentum is not None:
                    layer.momentum = batchnorm_momentum
    return list(features.trainable_variables)


def trainable_blocks(backbone: Backbone, plan: Plan) -> list[str]:
    """Return the blocks the plan trains that lie below its feature layer.

    Example:
        >>> import dataclasses
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> plan = Plan(regime=Regime.FULL, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=(), feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=1e-4, batch_size=16,
        ...             head_epochs=3, epochs=1, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> trainable_blocks(backbone, plan)[:2]
        ['stem', 'block_0']
        >>> trainable_blocks(backbone, dataclasses.replace(plan, feature_layer="block_8_add"))[-1]
        'block_8'
    """
    names = {layer.name for layer in keras.Model(
        backbone.model.inputs, feature_output(backbone, plan.feature_layer)).layers}
    return [b.name for b in backbone.blocks
            if b.name not in plan.frozen_blocks and any(name in names for name in b.layers)]


def split_at_cut(model: keras.Model, backbone: Backbone,
                 frozen_blocks: Sequence[str]) -> tuple[keras.Model, keras.Model]:
    """Split a classifier at the end of its frozen prefix: ``prefix`` and ``suffix`` models.

    The cut is the output of the last block of `frozen_blocks`, which must be
    the first blocks of the backbone. It is a valid cut only when that one
    tensor is all the later layers read: a suffix model from it to the
    features' output must build (Keras refuses one whose outputs depend on
    another tensor of the prefix, e.g. a residual branch from before the cut)
    and hold no frozen layer. Both models share the classifier's layer
    objects, so training ``suffix`` trains ``model``.

    Args:
        model: A model from :func:`build_classifier` (frozen with :func:`freeze_blocks`).
        backbone: The backbone it was built from.
        frozen_blocks: The plan's frozen blocks.

    Returns:
        ``(prefix, suffix)``: ``prefix`` maps the features' uint8 input to the
        cut activations; ``suffix`` maps float32 cut activations to the
        classifier's output.

    Raises:
        PlanError: The frozen blocks are not a prefix of the backbone's blocks,
            or more than one tensor crosses the cut.

    Example:
        >>> model = build_classifier(backbone, feature_layer=backbone.feature_layer, n_classes=10)
        >>> names = [block.name for block in backbone.blocks]
        >>> prefix, suffix = split_at_cut(model, backbone, names[:12])
        >>> prefix.output.shape, suffix.input.shape, suffix.output.shape
        ((None, 6, 6, 96), (None, 6, 6, 96), (None, 10))
        >>> split_at_cut(model, backbone, names[1:3])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        advisor.errors.PlanError: The frozen blocks ['block_0', 'block_1'] are not the first blocks of ...
    """
    names = [block.name for block in backbone.blocks]
    frozen = list(frozen_blocks)
    if not frozen or frozen != names[:len(frozen)] or len(frozen) == len(names):
        raise PlanError(
            f"The frozen blocks {frozen} are not the first blocks of {backbone.name} followed by "
            f"trained ones, so there is no cut to cache; expected a prefix of {names}.")
    last = backbone.blocks[len(frozen) - 1]
    features = model.get_layer(FEATURES_MODEL)
    cut = features.get_layer(last.output).output
    try:
        tail = keras.Model(cut, features.output, name="features_after_cut")
    except ValueError:
        raise PlanError(
            f"More than one tensor crosses the cut after {last.name} of {backbone.name} (its "
            f"output {last.output!r} is not all the later layers read), so the prefix cannot "
            "be cached; fine-tune end to end.") from None
    frozen_layers = {name for block in backbone.blocks[:len(frozen)] for name in block.layers}
    inside = sorted(frozen_layers & {layer.name for layer in tail.layers} - {last.output})
    if inside:
        raise PlanError(
            f"Layers {inside[:3]} of the frozen blocks run after the cut at {last.output!r} of "
            f"{backbone.name}, so the prefix cannot be cached; fine-tune end to end.")
    prefix = keras.Model(features.input, cut, name="frozen_prefix")
    inputs = keras.Input(shape=tuple(cut.shape[1:]), dtype="float32", name="cut_activations")
    x = tail(inputs)
    after = model.layers[model.layers.index(features) + 1:]  # pooling and the head: a chain
    for layer in after:
        x = layer(x)
    return prefix, keras.Model(inputs, x, name="classifier_after_cut")
