"""The estimator contract every strategy follows, and the Keras regimes' LP-FT recipe.

- :class:`Strategy`: the scikit-learn estimator contract (``__init__`` stores
  ``plan`` and ``backbone``; ``fit`` returns self; learned state ends in ``_``);
  prediction and export are shared by every regime.
- :class:`KerasStrategy`: linear probe on cached embeddings, then (when the
  plan leaves blocks unfrozen and asks for epochs) fine-tuning. ``last-layer``,
  ``partial`` and ``full`` are this class under three registry names: they
  differ only by the plan (``frozen_blocks``, ``epochs``, rates).

Every classifier's output is calibrated on the validation split after fitting
(temperature scaling, :mod:`strategies.calibration`), so its softmax outputs
are probabilities; the temperature lives in the output layer's weights.

The pieces live in their own modules: inputs (:mod:`strategies.inputs`), the
classifier graph (:mod:`strategies.graph`), devices and precision
(:mod:`strategies.devices`), optimizers (:mod:`strategies.optimizers`), the
guard (:mod:`strategies.callbacks`) and the one training loop
(:mod:`strategies.training`).

Regression plans (``plan.task``) train the same graph and loop on standardised
targets with the plan's Huber or MSE loss; the training mean and standard
deviation are then folded into the output layer
(:func:`~strategies.graph.fold_target_scale`), so the model outputs raw target units.
"""

from __future__ import annotations

import dataclasses

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from advisor.backbones import Backbone
from advisor.errors import PlanError
from advisor.plan import Plan, Task
from strategies.batches import ImageBatches
from strategies.calibration import calibrate, head_logits
from strategies.devices import dtype_policy, placement
from strategies.embeddings import Embedder, predict_batches
from strategies.graph import (
    build_classifier,
    build_head,
    copy_head_weights,
    fold_target_scale,
    freeze_blocks,
    head_kwargs,
    split_at_cut,
    trainable_blocks,
)
from strategies.inputs import LabelledImages, NotFittedError, check_inputs
from strategies.prefix_cache import ActivationBatches, PrefixCache
from strategies.rate_search import search_rates
from strategies.training import augmentation_for, augmentation_strengths, class_weight_dict, train

logger = logging.getLogger(__name__)

#: Largest difference, per output, between the model's outputs and those of its
#: head on cached embeddings that still lets the latter stand
#: (:meth:`Strategy._outputs`); float32 passes of the same weights in other
#: batch compositions differ by ~1e-6.
EMBEDDED_OUTPUT_ATOL = 1e-4
#: Rows that also go through the model to check outputs computed from cached embeddings.
EMBEDDED_CHECK_ROWS = 8

_train = train  # `train` is also the name of fit's training-data argument


class Strategy:
    """Base class of the strategies: the scikit-learn estimator contract.

    ``__init__`` only stores its arguments; :meth:`fit` does the work and sets
    ``model_`` (uint8 images -> class probabilities, or targets for a
    regression plan), ``classes_``, ``class_names_``, ``history_`` and
    ``embedder_`` (the embedding cache's reader when ``model_`` is the frozen
    backbone's features and a head, so a decode cache's rows are predicted from
    their cached embeddings; `None` once the backbone was fine-tuned).

    Args:
        plan: The plan; every setting is read from it.
        backbone: The pretrained backbone at the plan's image size; it is never modified.

    Example:
        >>> from advisor.data import decode_dataset, scan_dataset
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> from strategies import get_strategy
        >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
        >>> train, val, test = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
        ...                     for s in ("train", "val", "test"))
        >>> # A hand-written plan; advisor.decide.decide writes one from a measured profile.
        >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)
        >>> strategy.fit(train, val, class_names=ds.class_names).predict(test.images, rows=test.rows).shape
        (20,)
        >>> strategy.class_names_[:3], strategy.model_.output_shape
        (('0', '1', '2'), (None, 10))
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
        embedded = (self.embedder_.lookup(images, rows=rows)
                    if getattr(self, "embedder_", None) is not None and isinstance(images, np.memmap)
                    else None)
        if embedded is not None:
            return self._outputs_from_embeddings(images, rows, embedded)
        return self._model_outputs(images, rows)

    def _model_outputs(self, images: np.ndarray, rows: np.ndarray) -> np.ndarray:
        # Batches are gathered from `images` one at a time, so a memory map is
        # never copied whole into memory; they come in the order of `rows`.
        batches = ImageBatches(images, np.zeros(len(rows), np.int32), rows=rows,
                               batch_size=self.plan.batch_size)
        return predict_batches(self.model_, batches)

    def _head_kwargs(self) -> dict[str, Any]:
        """The keywords of :func:`~strategies.graph.build_head` that rebuild ``model_``'s head."""
        return head_kwargs(self.plan)

    def _outputs_from_embeddings(self, images: np.ndarray, rows: np.ndarray,
                                 x: np.ndarray) -> np.ndarray:
        """``model_``'s outputs as its head on `x`, the cached embeddings of a decode-cache memory map.

        Used only where ``model_`` is the frozen backbone's features and a head
        (``svm``, and ``last-layer`` when nothing was fine-tuned) and the rows'
        embeddings are cached already (:meth:`Embedder.lookup`: an earlier
        prediction of the same rows, or the measuring pass's store): no forward
        pass. Rows not cached go through ``model_`` as always (computing their
        embeddings would cost the same pass). The first few rows also go
        through ``model_`` itself (eagerly: no traced function for a handful of
        images); a difference above ``EMBEDDED_OUTPUT_ATOL`` sends every row
        through it (with a warning): what is reported is what ``model.keras`` outputs.
        """
        head = getattr(self, "_embedded_head", None)
        if head is None:  # the head of model_, temperature (or target scale) folded in
            width = 1 if self.plan.task is Task.REGRESSION else len(self.classes_)
            head = build_head(self.embedder_.dim, width, **self._head_kwargs())
            for layer in head.layers:
                if layer.weights:
                    layer.set_weights(self.model_.get_layer(layer.name).get_weights())
            self._embedded_head = head
        outputs = np.asarray(keras.ops.convert_to_numpy(head(x.astype(np.float32), training=False)),
                             dtype=np.float32)
        checked = rows[:EMBEDDED_CHECK_ROWS]
        direct = np.asarray(keras.ops.convert_to_numpy(self.model_(np.asarray(images[checked]), training=False)),
                            dtype=np.float32)
        if not np.allclose(direct, outputs[: len(checked)], atol=EMBEDDED_OUTPUT_ATOL):
            logger.warning("%s: outputs from the cached embeddings differ from the model's (max %.2g) "
                           "on %d images; predicting with the model.", type(self).__name__,
                           float(np.abs(direct - outputs[: len(checked)]).max()), len(checked))
            return self._model_outputs(images, rows)
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
            >>> from advisor.data import decode_dataset, scan_dataset
            >>> from advisor.plan import Optimizer, Plan, Regime
            >>> from strategies import get_strategy
            >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
            >>> train, val, test = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
            ...                     for s in ("train", "val", "test"))
            >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
            ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
            ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
            ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
            ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
            ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
            >>> strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)
            >>> strategy = strategy.fit(train, val, class_names=ds.class_names)
            >>> proba = strategy.predict_proba(test.images, rows=test.rows)
            >>> proba.shape, proba.dtype, bool(np.allclose(proba.sum(axis=1), 1.0, atol=1e-5))
            ((20, 10), dtype('float32'), True)
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
            >>> from advisor.data import decode_dataset, scan_dataset
            >>> from advisor.plan import Optimizer, Plan, Regime
            >>> from strategies import get_strategy
            >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
            >>> train, val, test = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
            ...                     for s in ("train", "val", "test"))
            >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
            ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
            ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
            ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
            ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
            ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
            >>> strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)
            >>> strategy = strategy.fit(train, val, class_names=ds.class_names)
            >>> labels = strategy.predict(test.images, rows=test.rows)
            >>> labels.shape, bool((labels == test.labels).mean() > 0.5)  # 10 classes: chance is 0.1
            ((20,), True)
        """
        if self.plan.task is Task.REGRESSION:
            return self._outputs(images, rows)[:, 0]
        return np.argmax(self.predict_proba(images, rows=rows), axis=-1)

    def export_model(self) -> keras.Model:
        """Return the fitted model in float32 for saving: itself, or a copy.

        The frozen regimes' model (uncompiled, float32) is returned as it is;
        a fine-tuned one is copied into a fresh float32 graph (no optimizer
        state, no mixed-precision policy). uint8 ``(None, S, S, 3)`` RGB ->
        class probabilities (or ``(None, 1)`` targets for a regression plan), preprocessing included, built only from
        built-in Keras layers (loads with ``keras.saving.load_model`` in safe
        mode). Save it with :func:`advisor.backbones.model_file.save_model` to
        keep the class names.

        Raises:
            NotFittedError: `fit` was not called.

        Example:
            >>> from advisor.data import decode_dataset, scan_dataset
            >>> from advisor.plan import Optimizer, Plan, Regime
            >>> from strategies import get_strategy
            >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
            >>> train, val, test = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
            ...                     for s in ("train", "val", "test"))
            >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
            ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
            ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
            ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
            ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
            ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
            >>> strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)
            >>> strategy = strategy.fit(train, val, class_names=ds.class_names)
            >>> import tempfile
            >>> from advisor.backbones.model_file import load_model, save_model
            >>> path = Path(tempfile.mkdtemp()) / "model.keras"
            >>> path = save_model(strategy.export_model(), path, strategy.class_names_)
            >>> model, names = load_model(path)
            >>> model.input.dtype, model.output_shape, names == strategy.class_names_
            ('uint8', (None, 10), True)
        """
        self._check_fitted()
        if not self.model_.compiled and all(layer.dtype_policy.name == "float32"
                                            for layer in (self.model_, *self.model_.layers)):
            return self.model_  # a copy would be the same graph and weights, built again (~1 s)
        model = build_classifier(self.backbone, feature_layer=self.plan.head_input_layers,
                                 n_classes=len(self.classes_), **head_kwargs(self.plan))
        model.set_weights(self.model_.get_weights())
        return model

    def _set_fitted(self, model: keras.Model, class_names: Sequence[str],
                    history: dict[str, Any], *, embedder: Embedder | None = None) -> None:
        """Set the fitted state; `embedder` when `model` is its features and a head (``embedder_``)."""
        self.classes_ = np.arange(len(class_names))
        self.class_names_ = tuple(str(name) for name in class_names)
        self.history_ = history
        self.model_ = model
        self.embedder_ = embedder
        self._embedded_head = None


class KerasStrategy(Strategy):
    """Linear probe on cached embeddings, then fine-tuning of the plan's unfrozen blocks.

    1. Embed the training images once through the frozen backbone (plus
       ``plan.augmented_views`` augmented views when the plan augments) and the
       validation images, via the embedding cache.
    2. Train a softmax head on the embeddings with :func:`~strategies.training.train`
       (for a regression plan a linear output on standardised targets).
    3. Copy it onto a classifier built on a copy of the backbone.
    4. If the plan leaves blocks unfrozen and asks for ``epochs``, fine-tune
       them (LP-FT) with :func:`~strategies.rate_search.search_rates`: head at
       ``head_learning_rate``, backbone at ``backbone_learning_rate``, each
       times every scale of ``rate_scales`` from the probe, the lowest
       validation loss kept (the history's ``fine_tune.rate_search``), images
       from the decode cache, in the plan's ``precision`` (mixed on
       accelerators by default), on the plan's ``devices`` (data-parallel
       over several on JAX; the history's ``fine_tune.devices`` says how each
       batch was split). The probe is the epoch-0 candidate. With
       ``plan.prefix_cache`` only the layers after the cut train, on the
       frozen prefix's activations computed once per image and view
       (:mod:`strategies.prefix_cache`); the suffix shares the classifier's
       layers, so the classifier holds the trained weights. When more than
       one tensor crosses the cut it runs end to end; the history's
       ``fine_tune.path`` says which ran.
    5. For regression, fold the training targets' mean and standard deviation
       into the output layer; the training history stays in standardised units.
       For classification, calibrate: fit one temperature on the validation
       split and fold it into the output layer
       (:func:`~strategies.calibration.calibrate`; the history's ``calibration``),
       on the logits of the probe's validation embeddings when nothing was
       fine-tuned (:func:`~strategies.calibration.head_logits`: no second
       pass through the backbone).

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
            DatasetError: The inputs do not fit the plan (see
                :func:`~strategies.inputs.check_inputs`).
            PlanError: The plan names unknown blocks, augmentations or precision.

        Example:
            >>> from advisor.data import decode_dataset, scan_dataset
            >>> from advisor.plan import Optimizer, Plan, Regime
            >>> from strategies import get_strategy
            >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
            >>> train, val, test = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
            ...                     for s in ("train", "val", "test"))
            >>> plan = Plan(regime=Regime.LAST_LAYER, backbone=backbone.name, image_size=backbone.image_size,
            ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
            ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
            ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
            ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
            ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
            >>> strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)
            >>> strategy.fit(train, val, class_names=ds.class_names) is strategy
            True
            >>> strategy.history_["head"]["phase"], "fine_tune" in strategy.history_  # epochs=0
            ('head', False)
            >>> strategy.history_["calibration"]["method"]  # the temperature is in model_
            'temperature scaling'
        """
        plan = self.plan
        check_inputs(train, val, class_names, plan.input_size, task=plan.task)
        common = {"n_classes": len(class_names),
                 "class_weight": class_weight_dict(plan, len(class_names)),
                 "work_dir": work_dir, "verbose": verbose}
        keras.utils.set_random_seed(plan.seed)
        started = time.perf_counter()
        history: dict[str, Any] = {}
        outputs = self._standardised_outputs(train, val, history)
        head, x_val, embedder = self._fit_probe(train, val, outputs, history, started=started, **common)
        model = self._build_and_fine_tune(head, train, val, outputs, history, **common)
        if plan.task is Task.REGRESSION:
            fold_target_scale(model, **history["target_scale"])
        else:  # the temperature of the validation split, folded into the output layer
            # Not fine-tuned, the model is the probe on the backbone's features: its
            # validation logits are the probe's on the embeddings it was validated on.
            logits = (None if "fine_tune" in history
                      else head_logits(head, x_val, batch_size=plan.batch_size))
            history["calibration"] = calibrate(model, val, batch_size=plan.batch_size,
                                               logits=logits)
        history["wall_s"] = time.perf_counter() - started
        # Not fine-tuned, the model is the backbone's features and the probe: scored from the embeddings.
        self._set_fitted(model, class_names, history,
                         embedder=None if "fine_tune" in history else embedder)
        return self

    def _standardised_outputs(self, train: LabelledImages, val: LabelledImages,
                              history: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Return what train and val batches yield instead of labels: `None` for
        classification, standardised targets for regression (scale in `history`)."""
        if self.plan.task is not Task.REGRESSION:
            return None, None
        mean, std = target_scale(train.targets)
        history["target_scale"] = {"mean": mean, "std": std}
        return (((train.targets - mean) / std).astype(np.float32),
                ((val.targets - mean) / std).astype(np.float32))

    def _fit_probe(self, train: LabelledImages, val: LabelledImages,
                   outputs: tuple[np.ndarray | None, np.ndarray | None], history: dict[str, Any], *,
                   started: float, n_classes: int, class_weight: dict[int, float] | None,
                   work_dir: Path | None, verbose: int) -> tuple[keras.Model, np.ndarray, Embedder]:
        """Embed (cached) and train the head on the embeddings; return the head, the
        validation embeddings and the embedder."""
        plan = self.plan
        train_outputs, val_outputs = outputs
        embedder = Embedder(self.backbone, plan.feature_layer, batch_size=plan.batch_size)
        x_train, y_train = probe_training_set(embedder, train, plan, outputs=train_outputs)
        x_val = embedder.embed(val.images, rows=val.rows, key=val.key)
        history["embed"] = {"wall_s": time.perf_counter() - started,
                            "train_rows": int(len(x_train)), "dim": embedder.dim}
        weights = None if class_weight is None else np.array(
            [class_weight[int(label)] for label in y_train], dtype=np.float32)
        y_val = val.labels if val_outputs is None else val_outputs
        head = build_head(embedder.dim, n_classes, **head_kwargs(plan))
        # The probe of a fine-tuning plan learns at its own rate (LP-FT); a frozen
        # regime's head is its final model, trained at the head's.
        probe_plan, rate = plan, plan.head_learning_rate
        if plan.regime.fine_tunes_backbone:
            probe_plan = dataclasses.replace(plan, optimizer=plan.probe_optimizer)
            rate = plan.probe_learning_rate
        history["head"] = _train(head, probe_plan, (x_train, y_train, weights), (x_val, y_val),
                                 phase="head", learning_rate=rate,
                                 epochs=plan.head_epochs, work_dir=work_dir, verbose=verbose)
        return head, x_val, embedder

    def _build_and_fine_tune(self, head: keras.Model, train: LabelledImages, val: LabelledImages,
                             outputs: tuple[np.ndarray | None, np.ndarray | None],
                             history: dict[str, Any], *, n_classes: int,
                             class_weight: dict[int, float] | None, work_dir: Path | None,
                             verbose: int) -> keras.Model:
        """Put the head on a copy of the backbone and fine-tune it when the plan says so."""
        plan, backbone = self.plan, self.backbone
        train_outputs, val_outputs = outputs
        fine_tune = plan.epochs > 0 and bool(trainable_blocks(backbone, plan))
        policy = dtype_policy(plan.precision) if fine_tune else "float32"
        devices = placement(plan.devices if fine_tune else "one", batch_size=plan.batch_size)
        with devices.scope():
            model = build_classifier(backbone, feature_layer=plan.feature_layer,
                                     n_classes=n_classes, dtype=policy, **head_kwargs(plan))
            copy_head_weights(head, model)
            if not fine_tune:
                return model
            backbone_variables = freeze_blocks(model, backbone, plan.frozen_blocks,
                                               train_batchnorm=plan.train_batchnorm,
                                               batchnorm_momentum=plan.batchnorm_momentum)
            trained, path = model, {"path": "end-to-end"}
            if plan.prefix_cache:
                trained, path, data = self._prefix_path(model, train, val, outputs,
                                                        class_weight=class_weight, policy=policy)
            if trained is model:
                data = (train.batches(batch_size=plan.batch_size, shuffle=True, seed=plan.seed,
                                      augmentation=augmentation_for(plan, seed=plan.seed),
                                      class_weight=class_weight, outputs=train_outputs),
                        val.batches(batch_size=plan.batch_size, outputs=val_outputs))
            data = (devices.batches(data[0], rows=len(train.rows)),
                    devices.batches(data[1], rows=len(val.rows)))
            history["fine_tune"] = search_rates(
                trained, plan, *data,
                phase="fine-tune", learning_rate=plan.head_learning_rate,
                epochs=plan.epochs, warmup_epochs=plan.warmup_epochs,
                scaled_variables=backbone_variables,
                rate_factor=plan.backbone_learning_rate / plan.head_learning_rate,
                scales=plan.rate_scales, work_dir=work_dir, verbose=verbose)
            history["fine_tune"]["trained_blocks"] = trainable_blocks(backbone, plan)
            history["fine_tune"]["dtype_policy"] = policy
            history["fine_tune"]["devices"] = devices.describe(train=len(train.rows),
                                                               val=len(val.rows))
            if devices.data_parallel:
                history["fine_tune"]["notes"].append(f"fine-tune: {devices.sentence()}")
                logger.info(history["fine_tune"]["notes"][-1])
            history["fine_tune"].update(path)
        return model

    def _prefix_path(self, model: keras.Model, train: LabelledImages, val: LabelledImages,
                     outputs: tuple[np.ndarray | None, np.ndarray | None], *,
                     class_weight: dict[int, float] | None,
                     policy: str) -> tuple[keras.Model, dict[str, Any], tuple | None]:
        """Return ``(suffix model, history entries, (train, val) batches)`` of the
        prefix-cache path, or ``(model, entries saying why not, None)`` when no
        single tensor crosses the cut (then the fine-tuning runs end to end)."""
        plan, backbone = self.plan, self.backbone
        try:
            prefix, suffix = split_at_cut(model, backbone, plan.frozen_blocks)
        except PlanError as exc:
            logger.warning("Prefix cache not used: %s", exc)
            return model, {"path": "end-to-end", "prefix_cache_fallback": str(exc)}, None
        started = time.perf_counter()
        cut = backbone.blocks[len(plan.frozen_blocks) - 1].output
        cache = PrefixCache(prefix, backbone, cut=cut, batch_size=plan.batch_size, policy=policy)
        if plan.augmentation and plan.prefix_views > 0:  # K augmented views stand in for
            views = [cache.compute(train.images, rows=train.rows, key=train.key,  # per-epoch draws
                                   augmentation=augmentation_for(plan, seed=plan.seed + view),
                                   augmentation_key=augmentation_key(plan, view))
                     for view in range(1, plan.prefix_views + 1)]
        else:
            views = [cache.compute(train.images, rows=train.rows, key=train.key)]
        x_val = cache.compute(val.images, rows=val.rows, key=val.key)
        train_outputs, val_outputs = outputs
        data = (ActivationBatches(views, train.labels if train_outputs is None else train_outputs,
                                  rows=train.rows, batch_size=plan.batch_size, shuffle=True,
                                  seed=plan.seed, class_weight=class_weight),
                ActivationBatches([x_val], val.labels if val_outputs is None else val_outputs,
                                  rows=val.rows, batch_size=plan.batch_size))
        size = sum(view.nbytes for view in views) + x_val.nbytes
        return suffix, {"path": "prefix-cache", "prefix_cache": {
            "cut": cut, "shape": list(cache.shape), "views": len(views),
            "mb": round(size / 1e6, 1), "wall_s": time.perf_counter() - started}}, data


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

    Each of the ``plan.augmented_views`` views (only when the plan augments)
    is computed once and cached like the plain embeddings.

    Args:
        embedder: Embeds (and caches) the images.
        data: The training images.
        plan: Gives ``augmentation``, its strengths, ``augmented_views`` and ``seed``.
        outputs: One value per row (e.g. standardised regression targets),
            repeated per view instead of the labels. Defaults to `None` (the labels).

    Returns:
        ``(embeddings (n * views, D), labels or outputs (n * views,))``.

    Example:
        >>> from advisor.data import decode_dataset, scan_dataset
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
        >>> train, val, test = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
        ...                     for s in ("train", "val", "test"))
        >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=("flip",), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> x, y = probe_training_set(Embedder(backbone), train, plan)
        >>> plan.augmented_views, x.shape, y.shape  # 60 images, plain and 2 flipped views
        (2, (180, 1280), (180,))
    """
    views = [embedder.embed(data.images, rows=data.rows, key=data.key)]
    if plan.augmentation:
        for view in range(1, plan.augmented_views + 1):
            augmentation = augmentation_for(plan, seed=plan.seed + view)
            views.append(embedder.embed(data.images, rows=data.rows, key=data.key,
                                        augmentation=augmentation,
                                        augmentation_key=augmentation_key(plan, view)))
    y = data.labels if outputs is None else outputs
    return np.concatenate(views), np.tile(y, len(views))


def augmentation_key(plan: Plan, view: int) -> str:
    """Return the cache key of the plan's augmented view `view` (names, strengths, seed, view).

    Example:
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=(), feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=("flip",), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> augmentation_key(plan, 1)
        '{"augmentation": {"flip": {"flip": true}}, "seed": 0, "view": 1}'
    """
    strengths = augmentation_strengths(plan)
    return json.dumps({"augmentation": {name: strengths.get(name) for name in
                                        sorted(plan.augmentation)},
                       "seed": plan.seed, "view": view}, sort_keys=True)
