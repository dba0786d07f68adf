"""``svm``: a linear SVM on the frozen backbone's cached embeddings.

scikit-learn's ``LinearSVC`` with the primal solver (``dual=False``: seconds on
thousands of 1,280-wide embeddings, where the default dual solver takes
minutes) at liblinear's own tolerance (``SVM_TOL``), C chosen from the plan's ``svm_c_grid`` by stratified
cross-validation on the training split. The (C, fold) fits of that search run
in threads (liblinear releases the GIL while it trains), as many as
:func:`advisor.environment.usable_cores` allows; the folds, the scores and so
the chosen C are those of the serial search. The SVM's ``coef_``/``intercept_``
become the ``Dense`` output layer of the exported model, on the same features,
so the model's argmax is scikit-learn's prediction. A softmax over decision
values (margins, not log-odds) is a score, not a probability, so the layer
is then calibrated on the validation split: one temperature, fitted to the
validation decision values and folded into its kernel and bias
(:mod:`strategies.calibration`; the history's ``calibration``). One layer's
embeddings are not standardised; when the plan reads several layers
(``plan.feature_layers``) their pooled outputs are concatenated, each column
standardised on the training split and each layer weighted by one over the
square root of its width (:class:`advisor.measure.layer_features.LayerStandardizer`,
fitted on the whole training split before the C search, whose folds so share
one mean and scale), and that affine map is folded into the output layer's
kernel and bias: the exported model takes raw images as before.

For a regression plan (``plan.task``) the linear model is ridge regression
(``RidgeCV``, squared loss) with alpha = 1 / (2C) for C in ``svm_c_grid``,
chosen by efficient leave-one-out cross-validation; its ``coef_`` and
``intercept_`` become the linear ``Dense(1)`` output, in target units.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from joblib import parallel_config
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import LinearSVC

from advisor.environment import usable_cores
from advisor.measure.layer_features import LayerStandardizer
from advisor.plan import Plan, Regime, Task
from strategies.base import Strategy
from strategies.calibration import calibrate
from strategies.embeddings import Embedder
from strategies.graph import OUTPUT_LAYER, REGRESSION_OUTPUT_LAYER, build_classifier
from strategies.inputs import LabelledImages, check_inputs
from strategies.registry import register_strategy
from strategies.training import class_weight_dict

logger = logging.getLogger(__name__)

#: Iteration cap of liblinear's primal solver.
SVM_MAX_ITER = 2_000
#: Stopping tolerance of liblinear's primal solver: liblinear's own default for
#: it (``-e 0.01``: the gradient's norm falls to 1% of its start, scaled by the
#: class balance), where scikit-learn's ``LinearSVC`` asks for 1e-4. Measured on
#: the probed layers of five tasks (1,600 wide): the C search took 0.53-0.66x the
#: time, and the test accuracy of each C moved by at most 0.4 points
#: (benchmarks/README.md, "The SVM's C search").
SVM_TOL = 1e-2
#: Below this many embedding values (rows x width) the C search runs serially:
#: each (C, fold) fit then takes milliseconds, about what a thread pool costs
#: (measured on 2 cores: 120 x 16 took 0.06 s serially, 0.10 s in 2 threads;
#: 360 x 96 took 0.50 s and 0.31 s).
SVM_PARALLEL_MIN_VALUES = 20_000


def search_jobs(n_rows: int, n_features: int, n_fits: int) -> int:
    """Return how many (C, fold) fits of the SVM's C search run at once.

    One per usable core (:func:`advisor.environment.usable_cores`), at most
    `n_fits`; 1 for inputs under ``SVM_PARALLEL_MIN_VALUES`` values, where
    the fits are too short to gain from threads.

    Args:
        n_rows: Training embeddings.
        n_features: Their width.
        n_fits: Fits in the search (grid values x folds).

    Returns:
        The number of threads, at least 1.

    Example:
        >>> search_jobs(60, 16, n_fits=15)  # tiny: serial
        1
        >>> search_jobs(2_100, 1_280, n_fits=20) == min(usable_cores(), 20)
        True
    """
    if n_rows * n_features < SVM_PARALLEL_MIN_VALUES:
        return 1
    return max(1, min(usable_cores(), n_fits))


def fit_linear_svm(x: np.ndarray, y: np.ndarray, plan: Plan,
                   class_weight: dict[int, float] | None = None, *,
                   n_jobs: int | None = None) -> tuple[LinearSVC, dict[str, Any]]:
    """Fit ``LinearSVC(dual=False)``, choosing C from ``plan.svm_c_grid`` by cross-validation.

    Uses ``min(plan.svm_cv_folds, smallest class count)`` stratified folds; with
    fewer than 2 images in some class there is no cross-validation and the
    middle C of the grid is used. The (C, fold) fits run in `n_jobs` threads
    (liblinear's primal solver is deterministic and releases the GIL), so the
    scores and the chosen C do not depend on `n_jobs`; the final fit on all of
    `x` runs once, after the search.

    Args:
        x: ``(N, D)`` embeddings.
        y: ``(N,)`` integer labels.
        plan: Gives ``svm_c_grid``, ``svm_cv_folds`` and ``seed``.
        class_weight: ``{label: weight}``. Defaults to `None`.
        n_jobs: Fits run at once. Defaults to `None` (:func:`search_jobs`).

    Returns:
        ``(fitted LinearSVC, search record)``: the record has ``c_grid``,
        ``cv_folds``, ``cv_accuracy`` (mean per C, or `None`), ``best_c``,
        ``c_at_edge`` (:func:`c_at_edge`), ``notes``.

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
    x = np.ascontiguousarray(x, dtype=np.float64)  # liblinear's dtype: converted once, not per fit
    estimator = LinearSVC(dual=False, class_weight=class_weight, tol=SVM_TOL, max_iter=SVM_MAX_ITER,
                          random_state=plan.seed)
    folds = int(min(plan.svm_cv_folds, np.bincount(y).min()))
    record: dict[str, Any] = {"c_grid": grid, "cv_folds": folds, "cv_accuracy": None, "notes": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if folds >= 2 and len(grid) > 1:
            jobs = n_jobs or search_jobs(*x.shape, n_fits=folds * len(grid))
            search = GridSearchCV(estimator, {"C": grid}, cv=StratifiedKFold(
                folds, shuffle=True, random_state=plan.seed), scoring="accuracy", n_jobs=jobs)
            started = time.perf_counter()
            with parallel_config(backend="threading", n_jobs=jobs):
                search.fit(x, y)
            logger.info("svm: C search, %d fits in %d thread(s), %.1f s", folds * len(grid), jobs,
                        time.perf_counter() - started)
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
    record["c_at_edge"] = c_at_edge(grid, record["cv_accuracy"], record["best_c"])
    if record["c_at_edge"]:
        record["notes"].append(
            f"svm: cross-validation chose C={record['best_c']:g}, the {record['c_at_edge']} value of "
            f"the grid {grid}, and scored it above its neighbour: a "
            f"{'smaller' if record['c_at_edge'] == 'lowest' else 'larger'} C might score higher.")
    return svm, record


def c_at_edge(grid: Sequence[float], cv_accuracy: Sequence[float] | None, best_c: float) -> str | None:
    """Say whether the chosen C sits at an edge of the grid and beat its neighbour there.

    A C at the edge that ties its neighbour is not flagged: the scores have
    levelled off, so going further would not help.

    Args:
        grid: The C values, ascending.
        cv_accuracy: Mean cross-validated accuracy per C, or `None` (no search).
        best_c: The chosen C.

    Returns:
        ``"lowest"``, ``"highest"`` or `None`.

    Example:
        >>> c_at_edge([0.1, 1.0, 10.0], [0.80, 0.90, 0.95], 10.0)
        'highest'
        >>> c_at_edge([0.1, 1.0, 10.0], [0.95, 0.95, 0.95], 0.1) is None  # a plateau
        True
        >>> c_at_edge([0.1, 1.0, 10.0], None, 1.0) is None
        True
    """
    if not cv_accuracy or len(grid) < 2:
        return None
    if best_c == grid[0] and cv_accuracy[0] > cv_accuracy[1]:
        return "lowest"
    if best_c == grid[-1] and cv_accuracy[-1] > cv_accuracy[-2]:
        return "highest"
    return None


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


def fold_affine(kernel: np.ndarray, bias: np.ndarray, scale: np.ndarray,
                offset: np.ndarray) -> list[np.ndarray]:
    """Return ``[kernel, bias]`` of the linear layer on raw `x` equal to this one on ``x * scale - offset``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> kernel, bias, x = rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(4, 3))
        >>> scale, offset = rng.uniform(0.5, 2, size=3), rng.normal(size=3)
        >>> k, b = fold_affine(kernel, bias, scale, offset)
        >>> bool(np.allclose(x @ k + b, (x * scale - offset) @ kernel + bias, atol=1e-5))
        True
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    folded_kernel = scale[:, None] * kernel
    folded_bias = np.asarray(bias, dtype=np.float64) - offset @ kernel
    return [folded_kernel.astype(np.float32), folded_bias.astype(np.float32)]


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
    holding the SVM or the ridge weights), ``embedder_`` (the embedding
    cache's reader, so the test split is scored from the embeddings the
    measuring pass wrote), ``classes_``, ``class_names_``, ``history_``.

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
        """Embed (cached), fit the SVM with C by cross-validation, build ``model_`` and calibrate it.

        Args:
            train: Training images and labels.
            val: Validation images and labels (reported accuracy, and the
                temperature of :func:`~strategies.calibration.calibrate`).
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
        check_inputs(train, val, class_names, plan.input_size, task=plan.task)
        n_classes = len(class_names)
        keras.utils.set_random_seed(plan.seed)
        started = time.perf_counter()
        layers = plan.head_input_layers
        embedder = Embedder(backbone, layers, batch_size=plan.batch_size)
        x_train = embedder.embed(train.images, rows=train.rows, key=train.key)
        x_val = embedder.embed(val.images, rows=val.rows, key=val.key)
        embedded = time.perf_counter()
        raw_val = x_val
        standardizer = None
        if len(layers) > 1:  # each layer standardised and weighted the same (on the training split)
            standardizer = LayerStandardizer(embedder.widths).fit(x_train)
            x_train, x_val = standardizer.transform(x_train), standardizer.transform(x_val)
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
        if standardizer is not None:  # the standardisation, folded into the output layer
            weights = fold_affine(*weights, *standardizer.affine())
        model = build_classifier(backbone, feature_layer=layers, n_classes=n_classes, task=plan.task)
        model.get_layer(layer).set_weights(weights)
        history = {"embed": {"wall_s": embedded - started, "train_rows": int(len(x_train)),
                             "dim": embedder.dim, "layers": list(layers),
                             "widths": list(embedder.widths)},
                   "svm": record, "notes": list(record["notes"])}
        if plan.task is not Task.REGRESSION:  # the decision values of the validation split
            decision = np.asarray(raw_val, dtype=np.float64) @ weights[0] + weights[1]
            history["calibration"] = calibrate(model, val, batch_size=plan.batch_size,
                                               logits=decision)
        history["wall_s"] = time.perf_counter() - started
        self.svm_ = svm
        self._set_fitted(model, class_names, history, embedder=embedder)
        return self

    def _head_kwargs(self) -> dict[str, Any]:
        """The SVM's head: one output layer on the (concatenated) embeddings."""
        return {"task": self.plan.task}
