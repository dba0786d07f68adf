"""The plan: what the advisor decided, as a small typed, versioned, frozen record.

The advisor produces a :class:`Plan`; strategies execute it and read every
setting from it. Its JSON form uses the enum values, sorted keys and a
``schema_version``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from advisor import config
from advisor.errors import PlanError
from advisor.records import check_schema, record_from_dict, record_to_dict

SCHEMA_VERSION = 1

class Regime(str, Enum):
    """The four CS231n transfer-learning regimes.

    - ``svm``: frozen backbone as feature extractor + linear SVM.
    - ``last-layer``: frozen backbone, new softmax layer.
    - ``partial``: early blocks frozen, later ones fine-tuned with a small rate.
    - ``full``: every layer fine-tuned from the pretrained weights.
    """

    SVM = "svm"
    LAST_LAYER = "last-layer"
    PARTIAL = "partial"
    FULL = "full"

    @property
    def fine_tunes_backbone(self) -> bool:
        """Whether this regime trains backbone weights."""
        return self in (Regime.PARTIAL, Regime.FULL)

    @classmethod
    def parse(cls, value: str | Regime) -> Regime:
        """Return the regime named `value`, or raise a one-line error listing the known ones.

        Example:
            >>> Regime.parse("last-layer")
            <Regime.LAST_LAYER: 'last-layer'>
        """
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(r.value for r in cls)
            raise PlanError(f"Unknown regime {value!r}. Known: {known}.") from None


class Task(str, Enum):
    """What the new head predicts.

    - ``classification``: one class per image (folders name the classes), softmax output.
    - ``regression``: one number per image (``--targets``), linear output.
    """

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class Loss(str, Enum):
    """Training losses a plan may ask for (``crossentropy`` for classification)."""

    CROSSENTROPY = "crossentropy"
    HUBER = "huber"  # on standardised targets, delta 1
    MSE = "mse"


class Optimizer(str, Enum):
    """Optimizers a plan may ask for."""

    SGD = "sgd"  # with momentum 0.9
    ADAMW = "adamw"


@dataclass(frozen=True, slots=True)
class Plan:
    """How to adapt a pretrained backbone to one dataset.

    Attributes:
        regime: Which of the four regimes to run.
        backbone: Registry name of the backbone.
        image_size: Square input size in pixels.
        frozen_blocks: Names of backbone blocks kept frozen (all of them for
            ``svm`` and ``last-layer``; none for ``full``).
        feature_layer: Layer whose (globally pooled) output the new head or the
            SVM reads.
        optimizer: ``sgd`` (momentum 0.9) or ``adamw``.
        head_learning_rate: Learning rate of the new head.
        backbone_learning_rate: Learning rate of trained backbone layers
            (10x smaller than the head's); 0 when nothing is fine-tuned.
        batch_size: Images per step.
        head_epochs: Epochs of the linear probe (the head alone, on cached embeddings).
        epochs: Fine-tuning epochs (0 for frozen regimes).
        warmup_epochs: Linear warm-up before cosine decay while fine-tuning.
        patience: Early-stopping patience in epochs, on validation loss.
        augmentation: Names of augmentations (``flip``, ``translate``, ``zoom``); empty for none.
        class_weights: Per-class loss weights, or `None` when classes are balanced.
        svm_c_grid: Values of C searched by cross-validation for ``svm``.
        head_units: Widths of the hidden ``Dense`` + ReLU layers of the new head,
            input side first; empty for a single softmax layer (the default).
        head_dropout: Dropout rate after each hidden layer of the head (0: none).
        head_batchnorm: Whether each hidden layer of the head is followed by
            ``BatchNormalization`` (before its ReLU).
        seed: Seed of every random choice in the run.
        task: ``classification`` (the default) or ``regression``.
        loss: ``crossentropy`` for classification; ``huber`` (the default
            for regression) or ``mse`` on standardised targets.
        momentum: Momentum of ``sgd``.
        weight_decay: Decoupled weight decay of ``adamw``.
        augmentation_translate: Largest shift of the ``translate`` augmentation,
            as a fraction of height and width.
        augmentation_zoom: Largest zoom in or out of the ``zoom`` augmentation.
        augmented_views: Augmented views of the training images the linear
            probe also trains on, when the plan augments.
        probe_optimizer: Optimizer of the linear probe that fine-tuning starts
            from (LP-FT); a regime that does not fine-tune trains its head with
            ``optimizer`` at ``head_learning_rate`` instead.
        probe_learning_rate: Learning rate of that probe.
        svm_cv_folds: Most stratified cross-validation folds choosing the SVM's C.
        precision: ``auto`` (mixed bfloat16 on accelerators, float32 on CPU),
            ``float32`` or ``mixed_bfloat16``: the dtype policy of fine-tuning.
        devices: Where fine-tuning runs: ``auto`` (data-parallel over the
            accelerators when the JAX backend sees at least two, else the
            default device), ``all`` (data-parallel over every device the JAX
            backend lists, host CPU devices and other processes' included) or
            ``one`` (the default device). Data-parallel runs split each batch
            evenly over the devices and leave out of each epoch the last rows
            that do not split (fewer than one per device).
        prefix_cache: Whether ``partial`` trains only the blocks after its cut, on
            activations of the frozen prefix computed once per image and view
            and cached (`False`: end to end, every epoch through every layer).
        prefix_views: Precomputed augmented views per training image in the
            prefix cache (each epoch draws one per image); 0 without
            augmentation (the plain images).
        prefix_cache_mb: Size of the prefix cache in MB (cut activation shape x
            images x views x 2 bytes); 0 when it is not used.
        decode_size: Square size the images are decoded and cached at when the
            model does the resize and crop to `image_size` inside its graph
            (low-resolution folders): each image's central square of its short
            side, kept as it is when it is this size (``resize_ratio=1``), and
            ``model.keras`` takes ``decode_size`` px input. `None` (the
            default, and every plan written before the field): decoded at
            `image_size` with torchvision's resize to 256/224 and centre crop.
        rate_scales: Scales of (`head_learning_rate`, `backbone_learning_rate`)
            the fine-tuning tries, in order, each from the linear probe to early
            stopping; the run with the lowest validation loss is kept (a
            grid search on the validation split). ``(1.0,)`` (the default):
            the plan's rates only.
        feature_layers: Layers whose pooled outputs ``svm`` reads together,
            each standardised and weighted by one over the square root of its
            width (every layer counts the same), input side first; empty (the
            default, and every plan written before the field): `feature_layer`
            alone.
        select_on: What fine-tuning's early stopping and rate search compare
            epochs and rates on: ``"loss"`` (the validation loss; the default,
            and every plan written before the field) or ``"calibrated-loss"``
            (the validation loss after temperature scaling, the loss of the
            model a run ships; classification only).
        train_batchnorm: Whether the BatchNormalization layers of the trained
            blocks train too (batch statistics while fitting, their moving
            averages and scale/offset updated). A network trained from random
            weights needs it; fine-tuning a pretrained one keeps them frozen in
            inference mode (`False`, the default, and every plan written
            before the field).
        batchnorm_momentum: Momentum of the moving averages of the
            BatchNormalization layers the plan trains (`train_batchnorm`):
            each step keeps this share of the average. `None` (the default,
            and every plan written before the field): the network's own
            (MobileNetV2's 0.999, made for ImageNet's hundreds of thousands of
            steps).
        reasons: One sentence per decided field, citing the number and threshold behind it.
        schema_version: Version of this record's JSON form.
    """

    regime: Regime
    backbone: str
    image_size: int
    frozen_blocks: tuple[str, ...]
    feature_layer: str
    optimizer: Optimizer
    head_learning_rate: float
    backbone_learning_rate: float
    batch_size: int
    head_epochs: int
    epochs: int
    warmup_epochs: int
    patience: int
    augmentation: tuple[str, ...]
    class_weights: tuple[float, ...] | None
    svm_c_grid: tuple[float, ...]
    seed: int
    head_units: tuple[int, ...] = ()
    head_dropout: float = 0.0
    head_batchnorm: bool = False
    task: Task = Task.CLASSIFICATION
    loss: Loss = Loss.CROSSENTROPY
    momentum: float = config.SGD_MOMENTUM
    weight_decay: float = config.ADAMW_WEIGHT_DECAY
    augmentation_translate: float = config.AUGMENTATION_TRANSLATE
    augmentation_zoom: float = config.AUGMENTATION_ZOOM
    augmented_views: int = config.AUGMENTED_VIEWS
    svm_cv_folds: int = config.SVM_CV_FOLDS
    precision: str = config.PRECISION
    devices: str = "auto"
    prefix_cache: bool = False
    prefix_views: int = 0
    prefix_cache_mb: float = 0.0
    decode_size: int | None = None
    probe_optimizer: Optimizer = Optimizer.ADAMW
    probe_learning_rate: float = config.HEAD_ONLY_LEARNING_RATE
    rate_scales: tuple[float, ...] = (1.0,)
    feature_layers: tuple[str, ...] = ()
    select_on: str = "loss"
    train_batchnorm: bool = False
    batchnorm_momentum: float | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def input_size(self) -> int:
        """Square size of the images the run decodes and its model takes: `decode_size` or `image_size`."""
        return self.image_size if self.decode_size is None else self.decode_size

    @property
    def head_input_layers(self) -> tuple[str, ...]:
        """The layers whose pooled outputs the head (or the SVM) reads: `feature_layers`, or `feature_layer`."""
        return self.feature_layers or (self.feature_layer,)

    @property
    def decode_resize_ratio(self) -> float:
        """The ``resize_ratio`` of the run's decode: ``1.0`` at `decode_size`, else 256 / 224.

        Example:
            >>> from advisor.plan import Optimizer
            >>> plan = Plan(regime=Regime.SVM, backbone="mobilenet_v2", image_size=128,
            ...             frozen_blocks=(), feature_layer="global_average_pooling2d",
            ...             optimizer=Optimizer.ADAMW, head_learning_rate=1e-3,
            ...             backbone_learning_rate=0.0, batch_size=32, head_epochs=1, epochs=0,
            ...             warmup_epochs=0, patience=1, augmentation=(), class_weights=None,
            ...             svm_c_grid=(1.0,), seed=0, decode_size=28)
            >>> plan.input_size, plan.decode_resize_ratio
            (28, 1.0)
        """
        return config.RESIZE_RATIO if self.decode_size is None else 1.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (enum values, lists for tuples), one key per field.

        Example:
            >>> from advisor.data import scan_dataset
            >>> from advisor.decide import decide
            >>> from advisor.measure import measure_dataset
            >>> profile = measure_dataset(scan_dataset(digits_dir), backbone, sample_cap=20)
            >>> plan = decide(profile, backbone=backbone)
            >>> plan.to_dict()["regime"], Plan.from_dict(plan.to_dict()) == plan
            ('svm', True)
        """
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Build a plan from :meth:`to_dict`'s output.

        Fields with a default may be absent (a plan written before they
        existed loads with their defaults); each value is converted back to its
        field's type (:func:`advisor.records.record_from_dict`).

        Raises:
            PlanError: Missing or unknown fields, or a newer schema version.
        """
        check_schema(data, record="Plan", version=SCHEMA_VERSION, error=PlanError)
        return record_from_dict(cls, data, record="plan", error=PlanError,
                                converters={"regime": Regime.parse})

    def to_json(self) -> str:
        """Return the plan as sorted-key JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Parse :meth:`to_json`'s output.

        Raises:
            PlanError: The text is not a valid plan.
        """
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise PlanError(f"Plan JSON is malformed: {exc}") from None
