"""The decision: a :class:`~advisor.measure.profile.DatasetProfile` in, a :class:`~advisor.plan.Plan` out.

The regime follows CS231n's transfer-learning rules, with thresholds from
:mod:`advisor.config`:

====================  ===========================  ==================================
images                near (score >= REGIME_        far
                      SIMILARITY_THRESHOLD)
====================  ===========================  ==================================
< SVM_MAX_IMAGES      ``svm`` (bottleneck + linear SVM)
small                 ``last-layer``                ``partial`` (freeze early blocks)
>= LARGE_DATASET      ``partial`` (later blocks)    ``full``
====================  ===========================  ==================================

The regime's similarity threshold is calibrated on the advice-quality
benchmark and is separate from ``SIMILARITY_THRESHOLD``, which says whether the
data is photo-like (and so whether mirroring is a safe augmentation).

Every other field follows from the regime and the profile, and every decided
field gets one sentence in ``Plan.reasons`` citing the measured number and the
threshold behind it. This is the only module that branches on the regime.

API:
    decide(profile, *, backbone, regime=None, seed=DEFAULT_SEED) -> Plan
    choose_regime(profile) -> tuple[Regime, str]
    choose_image_size(native_side, max_size) -> int
"""

from __future__ import annotations

import math

from advisor import config
from advisor.backbones import Backbone
from advisor.errors import PlanError
from advisor.measure.profile import DatasetProfile, reference_data
from advisor.plan import Loss, Optimizer, Plan, Regime, Task


def _is_similar(profile: DatasetProfile) -> bool:
    """Whether the data is photo-like (mirroring is safe)."""
    return profile.similarity.score >= config.SIMILARITY_THRESHOLD


def _is_near(profile: DatasetProfile) -> bool:
    """Whether the data is near enough to the reference data for the regime table's left column."""
    return profile.similarity.score >= config.REGIME_SIMILARITY_THRESHOLD


def choose_regime(profile: DatasetProfile) -> tuple[Regime, str]:
    """Pick the CS231n regime for a profile, with the sentence that says why.

    Args:
        profile: The measured profile.

    Returns:
        ``(regime, reason)``.

    Example:
        >>> choose_regime(profile)  # doctest: +SKIP
        (<Regime.SVM: 'svm'>, '500 images < 5,000: ...')
    """
    n = profile.n_images
    score = profile.similarity.score
    threshold = config.REGIME_SIMILARITY_THRESHOLD
    near = _is_near(profile)
    look = (f"similarity {score:.2f} {'>=' if near else '<'} {threshold:.2f} "
            f"({'near' if near else 'far from'} {reference_data(profile.backbone)})")
    if n < config.SVM_MAX_IMAGES:
        return Regime.SVM, (
            f"{n:,} images < {config.SVM_MAX_IMAGES:,}: a linear SVM on frozen bottleneck "
            f"features (CS231n), which matched fine-tuning below this size on the advice-quality "
            f"benchmark; {look}."
        )
    large = n >= config.LARGE_DATASET_IMAGES
    size = (f"{n:,} images {'>=' if large else '<'} {config.LARGE_DATASET_IMAGES:,} "
            f"({'large' if large else 'small'})")
    if not large and near:
        return Regime.LAST_LAYER, f"{size} and {look}: retrain only the last layer (CS231n)."
    if not large:
        return Regime.PARTIAL, (
            f"{size} and {look}: freeze the early blocks, fine-tune the later ones (CS231n)."
        )
    if near:
        return Regime.PARTIAL, f"{size} and {look}: fine-tune the later blocks (CS231n)."
    return Regime.FULL, f"{size} and {look}: fine-tune every layer (CS231n)."


def choose_image_size(native_side: float, max_size: int) -> int:
    """Return the input size for images whose shorter side is `native_side` pixels.

    Images at least ``config.LOW_RESOLUTION_SIDE`` px keep the backbone's size.
    Smaller ones are upscaled ``config.LOW_RESOLUTION_UPSCALE`` times, rounded up
    to a multiple of ``config.INPUT_SIZE_STEP`` and clipped to
    ``[config.MIN_INPUT_SIZE, max_size]``: they hold no detail beyond their own
    pixels, and the compute grows with the square of the input.

    Args:
        native_side: Median shorter side of the images, in pixels.
        max_size: The backbone's input size.

    Returns:
        The input size in pixels.

    Example:
        >>> choose_image_size(28, 224), choose_image_size(8, 224), choose_image_size(500, 224)
        (128, 96, 224)
    """
    if native_side >= config.LOW_RESOLUTION_SIDE:
        return max_size
    step = config.INPUT_SIZE_STEP
    upscaled = math.ceil(native_side * config.LOW_RESOLUTION_UPSCALE / step) * step
    return int(min(max_size, max(config.MIN_INPUT_SIZE, upscaled)))


HEADS = ("linear", "mlp")


def choose_head(regime: Regime, n_train: int, *,
                head: str | None = None) -> tuple[tuple[int, ...], float, bool]:
    """Return ``(head_units, head_dropout, head_batchnorm)`` for a plan.

    ``svm`` always has a linear head. Otherwise a hidden layer
    (``config.HIDDEN_HEAD_*``) when `head` is ``"mlp"``, or when it is `None`
    and the training split has at least ``config.HIDDEN_HEAD_MIN_TRAIN`` images.

    Raises:
        PlanError: `head` is not one of ``HEADS``.

    Example:
        >>> choose_head(Regime.LAST_LAYER, 20_000)
        ((256,), 0.5, True)
        >>> choose_head(Regime.LAST_LAYER, 20_000, head="linear")
        ((), 0.0, False)
    """
    if head is not None and head not in HEADS:
        raise PlanError(f"Unknown head {head!r}. Known: {', '.join(HEADS)}.")
    hidden = head == "mlp" if head is not None else n_train >= config.HIDDEN_HEAD_MIN_TRAIN
    if regime is Regime.SVM or not hidden:
        return (), 0.0, False
    return (tuple(config.HIDDEN_HEAD_UNITS), float(config.HIDDEN_HEAD_DROPOUT),
            bool(config.HIDDEN_HEAD_BATCHNORM))


def _cut_index(profile: DatasetProfile, block_names: list[str]) -> tuple[int, str]:
    """Index of the first trainable block for `partial`, and why."""
    n_blocks = len(block_names)
    if profile.n_images >= config.LARGE_DATASET_IMAGES:
        cut = round(config.LARGE_SIMILAR_FROZEN_FRACTION * n_blocks)
        return cut, (f"large and similar data: the first {config.LARGE_SIMILAR_FROZEN_FRACTION:.0%} "
                     f"of the blocks stay frozen, the later ones are fine-tuned")
    low = math.ceil(config.PARTIAL_MIN_FROZEN_FRACTION * n_blocks)
    high = math.floor(config.PARTIAL_MAX_FROZEN_FRACTION * n_blocks)
    departing = None if profile.shift is None else profile.shift.first_departing_block
    if profile.shift is None:
        cut = high
        why = "the model has no BatchNormalization layers, so no shift map to place the cut"
    elif departing in block_names:
        at = block_names.index(departing)
        cut = min(high, max(low, at))
        why = (f"the shift map first departs from {reference_data(profile.backbone)} at {departing} (KL "
               f"{profile.shift.block_kl[profile.shift.blocks.index(departing)]:.3f} > "
               f"{profile.shift.departure_kl:.3f})")
    else:
        cut = high
        why = f"no block's KL exceeds {profile.shift.departure_kl:.3f}"
    return cut, (f"{why}; blocks before the cut stay frozen, clipped to "
                 f"{config.PARTIAL_MIN_FROZEN_FRACTION:.0%}-{config.PARTIAL_MAX_FROZEN_FRACTION:.0%} "
                 f"of the {n_blocks} blocks")


def choose_task(task: Task | str | None = None,
                loss: Loss | str | None = None) -> tuple[Task, Loss, str, str]:
    """Return ``(task, loss, task reason, loss reason)``.

    Classification trains with cross-entropy. Regression (``--targets``)
    trains on standardised targets with ``config.REGRESSION_LOSS`` (Huber,
    robust to a few outlying targets) unless `loss` asks for ``mse``.

    Raises:
        PlanError: An unknown task or loss, or a regression loss for classification.

    Example:
        >>> choose_task("regression")[:2]
        (<Task.REGRESSION: 'regression'>, <Loss.HUBER: 'huber'>)
    """
    try:
        task = Task(task or Task.CLASSIFICATION)
        loss = None if loss is None else Loss(loss)
    except ValueError:
        raise PlanError(f"Unknown task {task!r} or loss {loss!r}. Tasks: "
                        f"{', '.join(t.value for t in Task)}; losses: "
                        f"{', '.join(x.value for x in Loss)}.") from None
    if task is Task.CLASSIFICATION:
        if loss not in (None, Loss.CROSSENTROPY):
            raise PlanError(f"Loss {loss.value!r} is for regression; classification uses "
                            "crossentropy. Pass --targets for a regression.")
        return (task, Loss.CROSSENTROPY,
                "Class folders: predict one class per image (softmax output).",
                "Classification: sparse categorical cross-entropy.")
    why_task = ("Numeric targets (--targets): predict one number per image with a linear output; "
                "the svm regime becomes ridge regression on the embeddings.")
    if loss is None:
        loss = Loss(config.REGRESSION_LOSS)
        return task, loss, why_task, (
            f"Regression: {loss.value} loss on standardised targets (the default; Huber grows "
            "linearly past 1 standard deviation, so a few outlying targets do not dominate).")
    if loss is Loss.CROSSENTROPY:
        raise PlanError("Loss 'crossentropy' is for classification; a regression uses huber or mse.")
    return task, loss, why_task, f"Regression: {loss.value} loss on standardised targets, forced by the caller."


def _clip(value: float, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return int(min(high, max(low, value)))


def decide(
    profile: DatasetProfile,
    *,
    backbone: Backbone,
    regime: Regime | str | None = None,
    seed: int = config.DEFAULT_SEED,
    epochs: int | None = None,
    head: str | None = None,
    task: Task | str | None = None,
    loss: Loss | str | None = None,
) -> Plan:
    """Turn a measured profile into a plan, with a reason for every field.

    Args:
        profile: The dataset's profile (from :func:`advisor.measure.forward.measure_dataset`).
        backbone: The backbone the profile was measured with.
        regime: Force this regime instead of the measured choice. Defaults to
            `None` (decide from the profile).
        seed: Seed of every random choice of the run. Defaults to
            `config.DEFAULT_SEED`.
        epochs: Force the fine-tuning epochs (warm-up and patience follow
            from them by the usual rules). Defaults to `None` (scaled with
            the dataset size).
        head: Force the head: ``"linear"`` (one softmax layer) or ``"mlp"``
            (hidden layer, see :func:`choose_head`). Defaults to `None`
            (decided from the training-set size).
        task: ``"classification"`` or ``"regression"`` (a dataset read with
            ``--targets``, whose profile's classes are target quantile bins).
            The regime rules are the same. Defaults to `None` (classification).
        loss: Regression loss, ``"huber"`` or ``"mse"``. Defaults to `None`
            (see :func:`choose_task`).

    Returns:
        The :class:`~advisor.plan.Plan`.

    Raises:
        PlanError: The profile was measured with another backbone, or `regime`,
            `task` or `loss` is unknown.

    Example:
        >>> plan = decide(measure_dataset(ds, bb), backbone=bb)  # doctest: +SKIP
        >>> plan.regime, plan.reasons["regime"]  # doctest: +SKIP
    """
    if profile.backbone != backbone.name:
        raise PlanError(
            f"The profile was measured with backbone {profile.backbone!r}, not {backbone.name!r}. "
            "Measure the dataset again with the backbone you plan to use."
        )
    reasons: dict[str, str] = {}
    measured, why = choose_regime(profile)
    if regime is None:
        chosen = measured
        reasons["regime"] = why
    else:
        chosen = Regime.parse(regime)
        reasons["regime"] = f"Forced to {chosen.value!r} by the caller; the measures alone pick {measured.value!r}: {why}"
    similar = _is_similar(profile)
    names = [block.name for block in backbone.blocks]
    n_blocks = len(names)

    reasons["backbone"] = f"{backbone.name} is the backbone the profile was measured with."
    if not backbone.resizable:
        reasons["backbone"] = (f"The user's own model ({backbone.name}, --base) is the backbone "
                               "the profile was measured with.")

    image_size = choose_image_size(profile.native_side, backbone.image_size)
    if not backbone.resizable:
        image_size = backbone.image_size
        reasons["image_size"] = (f"The base model takes {image_size} px input; its size is fixed, "
                                 "so the images are decoded at it.")
    elif image_size < backbone.image_size:
        reasons["image_size"] = (
            f"Median short side {profile.native_side:.0f} px < {config.LOW_RESOLUTION_SIDE} px: "
            f"upscale x{config.LOW_RESOLUTION_UPSCALE} to {image_size} px (multiple of "
            f"{config.INPUT_SIZE_STEP}, at least {config.MIN_INPUT_SIZE}) instead of "
            f"{backbone.image_size}; the images hold no more detail and compute grows with size^2."
        )
    else:
        reasons["image_size"] = (
            f"Median short side {profile.native_side:.0f} px >= {config.LOW_RESOLUTION_SIDE} px: "
            f"keep the backbone's {backbone.image_size} px input."
        )

    if chosen is Regime.FULL:
        frozen: tuple[str, ...] = ()
        reasons["frozen_blocks"] = "Regime 'full' fine-tunes every block; none stays frozen."
    elif chosen is Regime.PARTIAL:
        cut, why = _cut_index(profile, names)
        frozen = tuple(names[:cut])
        reasons["frozen_blocks"] = (
            f"Freeze {cut} of {n_blocks} blocks ({names[0]}..{names[cut - 1]}), fine-tune "
            f"{names[cut]} onwards: {why}." if cut > 0 else f"Freeze nothing: {why}."
        )
    else:
        frozen = tuple(names)
        reasons["frozen_blocks"] = f"Regime {chosen.value!r} trains only a new head; all {n_blocks} blocks stay frozen."

    feature_layer = backbone.feature_layer
    reasons["feature_layer"] = f"The head reads the pooled bottleneck ({backbone.feature_layer})."
    probes = profile.probes
    if chosen is Regime.SVM and probes is not None and probes.best_block is not None:
        block = backbone.blocks[backbone.block_index(probes.best_block)]
        feature_layer = block.output
        reasons["feature_layer"] = (
            f"The linear probe on {block.name} scores {probes.block_accuracy[block.name]:.3f}, within "
            f"{config.PROBE_BLOCK_TOLERANCE} of (or above) the bottleneck's {probes.linear_accuracy:.3f}: "
            f"the late layers are ImageNet-specific here, so the SVM reads pooled {block.output} (CS231n)."
        )
    elif chosen is Regime.SVM and probes is not None:
        reasons["feature_layer"] = (
            f"The bottleneck's linear probe ({probes.linear_accuracy:.3f}) beats every earlier block "
            f"({_format_blocks(probes.block_accuracy)}) by more than {config.PROBE_BLOCK_TOLERANCE}: "
            f"the SVM reads the pooled bottleneck ({backbone.feature_layer})."
        )

    tunes = chosen.fine_tunes_backbone
    if tunes:
        optimizer = Optimizer.SGD
        head_lr = config.FINE_TUNE_HEAD_LEARNING_RATE
        backbone_lr = head_lr * config.BACKBONE_LEARNING_RATE_FACTOR
        reasons["optimizer"] = "Fine-tuning pretrained layers: SGD with momentum 0.9 (the classic fine-tuning recipe)."
        reasons["head_learning_rate"] = f"SGD fine-tuning: the new head learns at {head_lr:g}."
        reasons["backbone_learning_rate"] = (
            f"Backbone layers learn {1 / config.BACKBONE_LEARNING_RATE_FACTOR:.0f}x slower than the "
            f"head ({backbone_lr:g}) so the pretrained weights move little."
        )
    else:
        optimizer = Optimizer.ADAMW
        head_lr = config.HEAD_ONLY_LEARNING_RATE
        backbone_lr = 0.0
        reasons["optimizer"] = f"Regime {chosen.value!r} trains only a new head: AdamW, robust without tuning."
        reasons["head_learning_rate"] = (
            f"A head trained alone with AdamW uses its default rate {head_lr:g}"
            + (" (the SVM itself is fitted in closed form over svm_c_grid)." if chosen is Regime.SVM else ".")
        )
        reasons["backbone_learning_rate"] = f"Regime {chosen.value!r} keeps the backbone frozen: rate 0."

    n_train = max(1, profile.n_train)
    if n_train < config.SMALL_BATCH_MAX_TRAIN:
        batch_size = config.SMALL_BATCH_SIZE
        reasons["batch_size"] = (f"{n_train:,} training images < {config.SMALL_BATCH_MAX_TRAIN:,}: "
                                 f"batches of {batch_size} give more steps per epoch.")
    else:
        batch_size = config.BATCH_SIZE
        reasons["batch_size"] = (f"{n_train:,} training images >= {config.SMALL_BATCH_MAX_TRAIN:,}: "
                                 f"the default batch of {batch_size}.")
    steps = math.ceil(n_train / batch_size)

    head_epochs = _clip(math.ceil(config.HEAD_TARGET_STEPS / steps), config.HEAD_EPOCH_RANGE)
    reasons["head_epochs"] = (
        f"{steps} steps per epoch: {head_epochs} epochs give about {config.HEAD_TARGET_STEPS:,} head "
        f"steps (clipped to {config.HEAD_EPOCH_RANGE[0]}-{config.HEAD_EPOCH_RANGE[1]})."
    )
    if tunes and epochs is not None:
        warmup = max(1, round(config.WARMUP_FRACTION * epochs)) if epochs else 0
        reasons["epochs"] = f"{epochs} fine-tuning epochs, forced by the caller (--epochs)."
    elif tunes:
        epochs = _clip(math.ceil(config.FINE_TUNE_TARGET_STEPS / steps), config.FINE_TUNE_EPOCH_RANGE)
        warmup = max(1, round(config.WARMUP_FRACTION * epochs))
        reasons["epochs"] = (
            f"{steps} steps per epoch: {epochs} fine-tuning epochs give about "
            f"{config.FINE_TUNE_TARGET_STEPS:,} steps (clipped to "
            f"{config.FINE_TUNE_EPOCH_RANGE[0]}-{config.FINE_TUNE_EPOCH_RANGE[1]})."
        )
    if tunes and epochs:
        reasons["warmup_epochs"] = (f"{config.WARMUP_FRACTION:.0%} of {epochs} epochs (at least 1) of "
                                    f"linear warm-up protect the pretrained weights from the new head's first gradients.")
    elif tunes:
        warmup = 0
        reasons["warmup_epochs"] = "No fine-tuning epochs were asked for, so there is no warm-up."
    else:
        epochs = warmup = 0
        reasons["epochs"] = f"Regime {chosen.value!r} does not fine-tune the backbone: 0 epochs."
        reasons["warmup_epochs"] = "Nothing is fine-tuned, so there is no warm-up."
    patience = _clip(round(config.PATIENCE_FRACTION * (epochs or head_epochs)), config.PATIENCE_RANGE)
    reasons["patience"] = (
        f"Stop after {patience} epochs without a better validation loss: {config.PATIENCE_FRACTION:.0%} of "
        f"{epochs or head_epochs} epochs, clipped to {config.PATIENCE_RANGE[0]}-{config.PATIENCE_RANGE[1]}."
    )

    if tunes:
        augmentation = tuple(config.FINE_TUNE_AUGMENTATION) + (tuple(config.PHOTO_AUGMENTATION) if similar else ())
        reasons["augmentation"] = (
            f"Fine-tuning sees the images: {', '.join(augmentation)}; "
            + (f"similarity {profile.similarity.score:.2f} >= {config.SIMILARITY_THRESHOLD:.2f} "
               "(photo-like), so mirroring is safe." if similar else
               f"no flips, since similarity {profile.similarity.score:.2f} < "
               f"{config.SIMILARITY_THRESHOLD:.2f} (digits or text change meaning when mirrored).")
        )
    else:
        augmentation = ()
        reasons["augmentation"] = f"Regime {chosen.value!r} trains on cached frozen embeddings: no augmentation."

    ratio = profile.imbalance_ratio
    if ratio > config.IMBALANCE_RATIO_THRESHOLD:
        total, k = sum(profile.class_counts), len(profile.class_counts)
        class_weights = tuple(float(total / (k * count)) for count in profile.class_counts)
        reasons["class_weights"] = (f"Imbalance {ratio:.1f} > {config.IMBALANCE_RATIO_THRESHOLD:.1f}: weight "
                                    "each class by n / (classes x its count).")
    else:
        class_weights = None
        reasons["class_weights"] = (f"Imbalance {ratio:.1f} <= {config.IMBALANCE_RATIO_THRESHOLD:.1f}: "
                                    "classes are balanced enough, no weights.")

    if chosen is Regime.SVM:
        svm_c_grid = tuple(config.SVM_C_GRID)
        reasons["svm_c_grid"] = f"The SVM's C is cross-validated over {list(svm_c_grid)}."
    else:
        svm_c_grid = ()
        reasons["svm_c_grid"] = f"Regime {chosen.value!r} fits no SVM: empty grid."
    head_units, head_dropout, head_batchnorm = choose_head(chosen, n_train, head=head)
    if chosen is Regime.SVM:
        reasons["head_units"] = "Regime 'svm' fits a linear SVM: no hidden layers."
    elif head is not None:
        reasons["head_units"] = (f"Head forced to {head!r} by the caller (--head)"
                                 + (f": Dense{list(head_units)} + BatchNorm + ReLU + "
                                    f"Dropout({head_dropout:g}) under the softmax." if head_units
                                    else ": one softmax layer."))
    elif head_units:
        reasons["head_units"] = (
            f"{n_train:,} training images >= {config.HIDDEN_HEAD_MIN_TRAIN:,}: enough to fit a "
            f"hidden layer, so the head is Dense{list(head_units)} + "
            f"{'BatchNorm + ' if head_batchnorm else ''}ReLU + Dropout({head_dropout:g}) under the softmax.")
    else:
        reasons["head_units"] = (
            f"{n_train:,} training images < {config.HIDDEN_HEAD_MIN_TRAIN:,}: a single softmax "
            "layer; a hidden layer's extra weights would overfit.")
    reasons["head_dropout"] = (f"Dropout {head_dropout:g} after the hidden layer regularises it."
                               if head_units else "No hidden layer, so no dropout.")
    reasons["head_batchnorm"] = ("BatchNormalization in the hidden layer keeps its inputs scaled "
                                 "while the backbone moves." if head_batchnorm else
                                 "No BatchNormalization in the head.")
    reasons["seed"] = f"Seed {seed} fixes every random choice of the run (shuffles, augmentation, new weights)."
    task, loss, reasons["task"], reasons["loss"] = choose_task(task, loss)
    if task is Task.REGRESSION and tunes:
        optimizer = Optimizer.ADAMW
        head_lr = config.REGRESSION_FINE_TUNE_LEARNING_RATE
        backbone_lr = head_lr * config.BACKBONE_LEARNING_RATE_FACTOR
        reasons["optimizer"] = (
            "Regression fine-tuning: AdamW. A linear output has no saturating softmax, so SGD at the "
            "classification rate diverges on the unnormalised features; AdamW scales each step.")
        reasons["head_learning_rate"] = (
            f"Fine-tuning a regression head with AdamW: {head_lr:g}, 10x below its rate alone, so "
            "AdamW's first (sign-like) steps do not throw the probe's fit away.")
        reasons["backbone_learning_rate"] = (
            f"Backbone layers learn {1 / config.BACKBONE_LEARNING_RATE_FACTOR:.0f}x slower than the "
            f"head ({backbone_lr:g}) so the pretrained weights move little.")
    if task is Task.REGRESSION:
        reasons["head_units"] = reasons["head_units"].replace("softmax", "linear output")
        class_weights = None
        reasons["class_weights"] = "Regression has no classes to weight: none."
        if chosen is Regime.SVM:
            svm_c_grid = tuple(config.REGRESSION_C_GRID)
            reasons["svm_c_grid"] = (f"Ridge regression's alpha = 1/(2C) is chosen by leave-one-out "
                                     f"cross-validation over C in {list(svm_c_grid)}.")

    return Plan(
        regime=chosen,
        backbone=backbone.name,
        image_size=image_size,
        frozen_blocks=frozen,
        feature_layer=feature_layer,
        optimizer=optimizer,
        head_learning_rate=float(head_lr),
        backbone_learning_rate=float(backbone_lr),
        batch_size=batch_size,
        head_epochs=head_epochs,
        epochs=epochs,
        warmup_epochs=warmup,
        patience=patience,
        augmentation=augmentation,
        class_weights=class_weights,
        svm_c_grid=svm_c_grid,
        seed=seed,
        head_units=head_units,
        head_dropout=head_dropout,
        head_batchnorm=head_batchnorm,
        task=task,
        loss=loss,
        reasons=reasons,
    )


def _format_blocks(accuracy: dict[str, float]) -> str:
    return ", ".join(f"{name} {acc:.3f}" for name, acc in accuracy.items()) or "none probed"


def choose_backbone(profile: DatasetProfile, plan: Plan) -> tuple[str, str]:
    """Return the backbone to run `plan` with, and the sentence that says why.

    Keeps the backbone the profile was measured with unless it is
    ``config.DEFAULT_BACKBONE``, the plan fine-tunes the backbone and the
    dataset has at least ``config.STRONGER_BACKBONE_MIN_IMAGES`` images: then
    ``config.STRONGER_BACKBONE`` (see the rationale in :mod:`advisor.config`).
    The caller measures again with the returned backbone before deciding anew.

    Args:
        profile: The profile the plan was decided from.
        plan: The plan decided with the measured backbone.

    Returns:
        ``(backbone name, reason)``.

    Example:
        >>> choose_backbone(profile, plan)  # doctest: +SKIP
        ('efficientnet_lite0', '50,000 images >= 10,000 and regime full fine-tunes ...')
    """
    n, minimum = profile.n_images, config.STRONGER_BACKBONE_MIN_IMAGES
    if profile.backbone != config.DEFAULT_BACKBONE:
        return profile.backbone, f"{profile.backbone} was asked for."
    if not plan.regime.fine_tunes_backbone:
        return profile.backbone, (
            f"Regime {plan.regime.value!r} keeps the backbone frozen: the cheaper "
            f"{profile.backbone} is enough (a stronger one pays off mainly when fine-tuned).")
    if n < minimum:
        return profile.backbone, (
            f"{n:,} images < {minimum:,}: fine-tuning is short, so a second measuring pass for "
            f"{config.STRONGER_BACKBONE} would cost more than it saves; keep {profile.backbone}.")
    return config.STRONGER_BACKBONE, (
        f"{n:,} images >= {minimum:,} and regime {plan.regime.value!r} fine-tunes the backbone: "
        f"{config.STRONGER_BACKBONE} (ImageNet top-1 75.1% vs 71.9%, about 1.35x the compute) "
        "transfers better when fine-tuned (Kornblith et al. 2019), and on this many images the "
        "training dwarfs the extra measuring pass.")
