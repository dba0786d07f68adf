"""``svm``: a linear SVM on the frozen backbone's cached embeddings.

scikit-learn's ``LinearSVC`` with the primal solver (``dual=False``: seconds on
thousands of 1,280-wide embeddings, where the default dual solver takes
minutes), C chosen from the plan's ``svm_c_grid`` by stratified
cross-validation on the training split. The SVM's ``coef_``/``intercept_``
become the ``Dense`` output layer of the exported model, on the same features,
so the model's argmax is scikit-learn's prediction (its softmax over decision
values is a score, not a calibrated probability). Embeddings are not
standardised, so no per-channel scale is folded into that layer.

For a regression plan (``plan.task``) the linear model is ridge regression
(``RidgeCV``, squared loss) with alpha = 1 / (2C) for C in ``svm_c_grid``,
chosen by efficient leave-one-out cross-validation; its ``coef_`` and
``intercept_`` become the linear ``Dense(1)`` output, in target units.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import LinearSVC

from advisor.plan import Plan, Regime, Task
from strategies.base import Strategy
from strategies.embeddings import Embedder
from strategies.graph import OUTPUT_LAYER, REGRESSION_OUTPUT_LAYER, build_classifier
from strategies.inputs import LabelledImages, check_inputs
from strategies.registry import register_strategy
from strategies.training import class_weight_dict

#: Iteration cap of liblinear's primal solver.
SVM_MAX_ITER = 2_000


def fit_linear_svm(x: np.ndarray, y: np.ndarray, plan: Plan,
                   class_weight: dict[int, float] | None = None) -> tuple[LinearSVC, dict[str, Any]]:
    """Fit ``LinearSVC(dual=False)``, choosing C from ``plan.svm_c_grid`` by cross-validation.

    Uses ``min(plan.svm_cv_folds, smallest class count)`` stratified folds; with
    fewer than 2 images in some class there is no cross-validation and the
    middle C of the grid is used.

    Args:
        x: ``(N, D)`` embeddings.
        y: ``(N,)`` integer labels.
        plan: Gives ``svm_c_grid``, ``svm_cv_folds`` and ``seed``.
        class_weight: ``{label: weight}``. Defaults to `None`.

    Returns:
        ``(fitted LinearSVC, search record)``: the record has ``c_grid``,
        ``cv_folds``, ``cv_accuracy`` (mean per C, or `None`), ``best_c``, ``notes``.

    Example:
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(0.1, 1.0, 10.0), seed=0)
        >>> y = np.repeat([0, 1, 2], 20)
        >>> x = np.random.default_rng(0).normal(size=(60, 16)) + 3 * np.eye(16)[y]
        >>> svm, record = fit_linear_svm(x, y, plan)
        >>> record["cv_folds"], record["c_grid"], record["best_c"] in record["c_grid"]
        (5, [0.1, 1.0, 10.0], True)
        >>> len(record["cv_accuracy"]), float(svm.score(x, y))
        (3, 1.0)
    """
    grid = sorted(float(c) for c in plan.svm_c_grid)
    estimator = LinearSVC(dual=False, class_weight=class_weight, max_iter=SVM_MAX_ITER,
                          random_state=plan.seed)
    folds = int(min(plan.svm_cv_folds, np.bincount(y).min()))
    record: dict[str, Any] = {"c_grid": grid, "cv_folds": folds, "cv_accuracy": None, "notes": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if folds >= 2 and len(grid) > 1:
            search = GridSearchCV(estimator, {"C": grid}, cv=StratifiedKFold(
                folds, shuffle=True, random_state=plan.seed), scoring="accuracy")
            search.fit(x, y)
            svm = search.best_estimator_
            record["cv_accuracy"] = [float(s) for s in search.cv_results_["mean_test_score"]]
        else:
            svm = estimator.set_params(C=grid[len(grid) // 2]).fit(x, y)
            if len(grid) > 1:
                record["notes"].append(
                    f"svm: a class has fewer than 2 training images; no cross-validation, "
                    f"C={grid[len(grid) // 2]} (middle of the grid).")
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        record["notes"].append(f"svm: liblinear did not fully converge in {SVM_MAX_ITER} iterations.")
    record["best_c"] = float(svm.C)
    return svm, record


def fit_ridge(x: np.ndarray, y: np.ndarray, plan: Plan) -> tuple[RidgeCV, dict[str, Any]]:
    """Fit ridge regression, alpha = 1 / (2C) for C in ``plan.svm_c_grid``, by leave-one-out CV.

    Ridge's ``|y - Xw|^2 + alpha |w|^2`` is the squared-loss counterpart of the
    SVM's ``C * loss + |w|^2 / 2``, hence alpha = 1 / (2C). The leave-one-out
    errors come in closed form (``RidgeCV``'s generalised cross-validation),
    so the search costs about one fit.

    Args:
        x: ``(N, D)`` embeddings.
        y: ``(N,)`` targets.
        plan: Gives ``svm_c_grid``.

    Returns:
        ``(fitted RidgeCV, search record)``: the record has ``c_grid``,
        ``alphas``, ``cv`` (``"leave-one-out"``), ``best_alpha``, ``best_c``, ``notes``.

    Example:
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(0.1, 1.0, 10.0), seed=0)
        >>> x = np.random.default_rng(0).normal(size=(50, 3))
        >>> y = x @ [1.0, -2.0, 0.5] + 3.0
        >>> ridge, record = fit_ridge(x, y, plan)
        >>> record["cv"], record["alphas"], record["best_c"]
        ('leave-one-out', [5.0, 0.5, 0.05], 10.0)
        >>> np.round(ridge.coef_, 1).tolist(), round(float(ridge.intercept_), 1)
        ([1.0, -2.0, 0.5], 3.0)
    """
    grid = sorted(float(c) for c in plan.svm_c_grid) or [1.0]
    alphas = [1.0 / (2.0 * c) for c in grid]
    ridge = RidgeCV(alphas=alphas).fit(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    record = {"c_grid": grid, "alphas": alphas, "cv": "leave-one-out", "notes": [],
              "best_alpha": float(ridge.alpha_), "best_c": float(1.0 / (2.0 * ridge.alpha_))}
    if len(grid) > 1 and ridge.alpha_ in (min(alphas), max(alphas)):
        record["notes"].append(f"svm: ridge chose alpha {ridge.alpha_:g}, at the edge of the grid.")
    return ridge, record


def svm_dense_weights(svm: LinearSVC, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(kernel (D, n), bias (n,))`` whose argmax equals ``svm.predict``.

    A binary SVM's single decision value ``f`` becomes the two logits ``(0, f)``.

    Example:
        >>> y = np.repeat([0, 1, 2], 10)
        >>> x = np.random.default_rng(0).normal(size=(30, 4)) + 3 * np.eye(4)[y]
        >>> svm = LinearSVC(dual=False).fit(x, y)
        >>> kernel, bias = svm_dense_weights(svm, 3)
        >>> kernel.shape, bias.shape, bool((np.argmax(x @ kernel + bias, axis=1) == svm.predict(x)).all())
        ((4, 3), (3,), True)
        >>> svm_dense_weights(LinearSVC(dual=False).fit(x, y == 2), 2)[0].shape  # binary: logits (0, f)
        (4, 2)
    """
    coef = np.asarray(svm.coef_, dtype=np.float64)
    intercept = np.asarray(svm.intercept_, dtype=np.float64)
    if n_classes == 2:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return coef.T.astype(np.float32), intercept.astype(np.float32)


@register_strategy(Regime.SVM)
class SVMStrategy(Strategy):
    """Frozen backbone features + linear SVM (CS231n's "CNN codes + linear classifier").

    Fitted state: ``svm_`` (the scikit-learn ``LinearSVC``, or ``RidgeCV``
    for a regression plan), ``model_`` (the classifier: features -> ``Dense``
    holding the SVM or the ridge weights), ``classes_``,
    ``class_names_``, ``history_``.

    Args:
        plan: The plan (``feature_layer``, ``svm_c_grid``, ``class_weights``, ``seed``).
        backbone: The pretrained backbone; never modified.

    Example:
        >>> from advisor.data import decode_dataset, scan_dataset
        >>> from advisor.plan import Optimizer, Plan, Regime
        >>> from strategies import LabelledImages
        >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
        >>> train, val = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
        ...               for s in ("train", "val"))
        >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
        ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
        ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(0.1, 1.0, 10.0), seed=0)
        >>> svm = SVMStrategy(plan=plan, backbone=backbone).fit(train, val, class_names=ds.class_names)
        >>> svm.svm_.coef_.shape, svm.model_.output_shape
        ((10, 1280), (None, 10))
    """

    def fit(self, train: LabelledImages, val: LabelledImages, *, class_names: Sequence[str],
            work_dir: Path | None = None, verbose: int = 0) -> SVMStrategy:
        """Embed (cached), fit the SVM with C by cross-validation, and build ``model_``.

        Args:
            train: Training images and labels.
            val: Validation images and labels (reported accuracy).
            class_names: One name per class; labels index it.
            work_dir: Unused (nothing to resume). Defaults to `None`.
            verbose: Unused. Defaults to `0`.

        Returns:
            self.

        Raises:
            DatasetError: The inputs do not fit the plan.

        Example:
            >>> from advisor.data import decode_dataset, scan_dataset
            >>> from advisor.plan import Optimizer, Plan, Regime
            >>> from strategies import LabelledImages
            >>> ds, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
            >>> train, val = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
            ...               for s in ("train", "val"))
            >>> plan = Plan(regime=Regime.SVM, backbone=backbone.name, image_size=backbone.image_size,
            ...             frozen_blocks=tuple(b.name for b in backbone.blocks),
            ...             feature_layer=backbone.feature_layer, optimizer=Optimizer.ADAMW,
            ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
            ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
            ...             augmentation=(), class_weights=None, svm_c_grid=(0.1, 1.0, 10.0), seed=0)
            >>> strategy = SVMStrategy(plan=plan, backbone=backbone)
            >>> strategy.fit(train, val, class_names=ds.class_names) is strategy
            True
            >>> record = strategy.history_["svm"]
            >>> record["cv_folds"], record["best_c"] in plan.svm_c_grid, 0 <= record["val_accuracy"] <= 1
            (5, True, True)
        """
        plan, backbone = self.plan, self.backbone
        check_inputs(train, val, class_names, plan.image_size, task=plan.task)
        n_classes = len(class_names)
        keras.utils.set_random_seed(plan.seed)
        started = time.perf_counter()
        embedder = Embedder(backbone, plan.feature_layer, batch_size=plan.batch_size)
        x_train = embedder.embed(train.images, rows=train.rows, key=train.key)
        x_val = embedder.embed(val.images, rows=val.rows, key=val.key)
        embedded = time.perf_counter()
        if plan.task is Task.REGRESSION:
            svm, record = fit_ridge(x_train, train.targets, plan)
            record["val_r2"] = float(svm.score(x_val, val.targets))
            record["train_r2"] = float(svm.score(x_train, train.targets))
            layer, weights = REGRESSION_OUTPUT_LAYER, [
                np.asarray(svm.coef_, dtype=np.float32).reshape(-1, 1),
                np.asarray([svm.intercept_], dtype=np.float32)]
        else:
            svm, record = fit_linear_svm(x_train, train.labels, plan, class_weight_dict(plan, n_classes))
            record["val_accuracy"] = float(svm.score(x_val, val.labels))
            record["train_accuracy"] = float(svm.score(x_train, train.labels))
            layer, weights = OUTPUT_LAYER, list(svm_dense_weights(svm, n_classes))
        record["wall_s"] = time.perf_counter() - embedded
        model = build_classifier(backbone, feature_layer=plan.feature_layer, n_classes=n_classes,
                                 task=plan.task)
        model.get_layer(layer).set_weights(weights)
        history = {"embed": {"wall_s": embedded - started, "train_rows": int(len(x_train)),
                             "dim": embedder.dim},
                   "svm": record, "notes": list(record["notes"]),
                   "wall_s": time.perf_counter() - started}
        self.svm_ = svm
        self._set_fitted(model, class_names, history)
        return self
