"""decide(): hand-built profiles -> plans (regime, frozen blocks, reasons), and the plan's JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest

from advisor import config
from advisor.decide import (
    RegimeRules,
    choose_backbone,
    choose_image_size,
    choose_regime,
    decide,
)
from advisor.errors import PlanError
from advisor.measure.profile import (
    DatasetProfile,
    HeadStats,
    ProbeStats,
    ShiftMap,
    Similarity,
)
from advisor.plan import Loss, Optimizer, Plan, Regime, Task

#: Plan fields that decide() must explain (everything but the bookkeeping).
PLAN_FIELDS = tuple(
    f.name for f in dataclasses.fields(Plan) if f.name not in ("reasons", "schema_version")
)
#: The fields decide() decides; the execution settings a Plan copies from config
#: (momentum, weight decay, ...) may carry a reason but need not.
DECIDED_FIELDS = tuple(
    f.name for f in dataclasses.fields(Plan)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
) + ("head_units", "head_dropout", "head_batchnorm", "task", "loss",
     "prefix_cache", "prefix_views", "prefix_cache_mb", "decode_size")


@pytest.fixture(scope="module")
def backbone():
    """MobileNetV2's graph and block list; decide() reads no weights (plumbing only)."""
    from advisor.backbones import get_backbone

    return get_backbone("mobilenet_v2", image_size=224, weights=None)


def make_profile(
    n_images: int,
    score: float,
    *,
    departing: str | None = "block_3",
    native_side: float = 224.0,
    imbalance: float = 1.0,
    best_block: str | None = None,
    with_probes: bool = True,
    n_classes: int = 4,
    max_side: int | None = None,
) -> DatasetProfile:
    """A hand-built profile with the numbers decide() reads."""
    blocks = ("stem",) + tuple(f"block_{i}" for i in range(17)) + ("head",)
    block_kl = tuple(0.2 if departing and i >= blocks.index(departing) else 0.01 for i in range(len(blocks)))
    shift = ShiftMap(
        layers=tuple(f"{b}_bn" for b in blocks), layer_kl=block_kl, blocks=blocks, block_kl=block_kl,
        mean_kl=sum(block_kl) / len(block_kl), score_kl=0.1, departure_kl=config.SHIFT_DEPARTURE_KL,
        first_departing_block=departing,
    )
    head = HeadStats(mean_max_probability=score, mean_entropy=2.0,
                     top_classes={"c0": (("tabby", 0.5), ("Egyptian cat", 0.25))})
    probes = ProbeStats(
        knn_accuracy=0.8, linear_accuracy=0.85, chance=1 / n_classes, n_splits=5,
        learning_curve=((0.25, 0.7), (0.5, 0.8), (1.0, 0.85)),
        block_accuracy={"block_8": 0.7, "block_12": 0.86 if best_block else 0.8, "block_14": 0.84},
        best_block=best_block,
    ) if with_probes else None
    smallest = max(2, round(n_images / n_classes / imbalance))
    counts = (smallest,) + (round(n_images / n_classes),) * (n_classes - 1)
    return DatasetProfile(
        backbone="mobilenet_v2", image_size=224,
        class_names=tuple(f"c{i}" for i in range(n_classes)), class_counts=counts,
        n_images=n_images, n_train=int(n_images * 0.7), imbalance_ratio=imbalance,
        native_width=native_side, native_height=native_side, n_sampled=min(n_images, 2000), seed=0,
        shift=shift, head=head, probes=probes,
        similarity=Similarity(score=score, components={"shift": score, "head": score},
                              weights={"shift": 0.5, "head": 0.3}),
        native_max_width=max_side, native_max_height=max_side,
    )


BLOCKS = ["stem"] + [f"block_{i}" for i in range(17)] + ["head"]
ALL = tuple(BLOCKS)

# Sizes are placed relative to the calibrated thresholds, so the table checks the rule.
SVM_MAX, LARGE = config.SVM_MAX_IMAGES, config.LARGE_DATASET_IMAGES
SMALL = (SVM_MAX + LARGE) // 2

# (id, n_images, similarity, first departing block, regime, frozen blocks)
TABLE = [
    ("tiny-similar", SVM_MAX // 2, 0.8, None, Regime.SVM, ALL),
    ("tiny-different", SVM_MAX // 2, 0.2, "stem", Regime.SVM, ALL),
    ("just-under-svm-max", SVM_MAX - 1, 0.8, None, Regime.SVM, ALL),
    ("small-similar", SVM_MAX, 0.8, None, Regime.LAST_LAYER, ALL),
    ("small-similar-at-threshold", SMALL, config.REGIME_SIMILARITY_THRESHOLD, None, Regime.LAST_LAYER, ALL),
    # Departure at block_3 (index 4) is below the 1/3 floor: 7 of 19 blocks stay frozen.
    ("small-different-early-shift", SMALL, 0.3, "block_3", Regime.PARTIAL, tuple(BLOCKS[:7])),
    # Departure at block_10 (index 11): blocks before it stay frozen.
    ("small-different-late-shift", SMALL, 0.3, "block_10", Regime.PARTIAL, tuple(BLOCKS[:11])),
    # No departure: freeze up to the 80% ceiling (15 of 19 blocks).
    ("small-different-no-shift", LARGE - 1, 0.3, None, Regime.PARTIAL, tuple(BLOCKS[:15])),
    # Large & similar: the first 2/3 (13 of 19 blocks) stay frozen.
    ("large-similar", LARGE, 0.8, None, Regime.PARTIAL, tuple(BLOCKS[:13])),
    ("large-different", 5 * LARGE, 0.2, "stem", Regime.FULL, ()),
]


@pytest.mark.parametrize(
    "n_images, score, departing, regime, frozen",
    [row[1:] for row in TABLE], ids=[row[0] for row in TABLE],
)
def test_decide_table(backbone, n_images, score, departing, regime, frozen):
    plan = decide(make_profile(n_images, score, departing=departing), backbone=backbone, seed=7)
    assert plan.regime is regime
    assert plan.frozen_blocks == frozen
    assert plan.seed == 7
    assert set(DECIDED_FIELDS) <= set(plan.reasons) <= set(PLAN_FIELDS)
    assert all(isinstance(r, str) and r for r in plan.reasons.values())
    if regime.fine_tunes_backbone:
        assert plan.optimizer is Optimizer.SGD
        assert plan.backbone_learning_rate == pytest.approx(
            plan.head_learning_rate * config.BACKBONE_LEARNING_RATE_FACTOR)
        assert plan.epochs >= config.FINE_TUNE_EPOCH_RANGE[0] and plan.warmup_epochs >= 1
        scale = config.PARTIAL_RATE_SCALE if regime is Regime.PARTIAL else 1.0
        assert plan.head_learning_rate == pytest.approx(config.FINE_TUNE_HEAD_LEARNING_RATE * scale)
    else:
        assert plan.backbone_learning_rate == 0.0 and plan.epochs == 0 and plan.augmentation == ()
    assert (plan.svm_c_grid != ()) == (regime is Regime.SVM)


@pytest.mark.parametrize("regime", list(Regime), ids=[r.value for r in Regime])
@pytest.mark.parametrize("n_images", [300, 5_000, 50_000])
def test_every_plan_has_a_reason_for_every_field(backbone, regime, n_images):
    for score in (0.2, 0.8):
        plan = decide(make_profile(n_images, score, imbalance=4.0), backbone=backbone, regime=regime)
        assert plan.regime is regime
        assert set(DECIDED_FIELDS) <= set(plan.reasons) <= set(PLAN_FIELDS)
        assert all(plan.reasons[name].strip() for name in DECIDED_FIELDS)


def test_forced_regime_says_so(backbone):
    plan = decide(make_profile(500, 0.8), backbone=backbone, regime="full")
    assert plan.regime is Regime.FULL and plan.frozen_blocks == ()
    assert "Forced" in plan.reasons["regime"] and "'svm'" in plan.reasons["regime"]


def test_unknown_forced_regime_lists_the_known_ones(backbone):
    with pytest.raises(PlanError, match="Known: svm, last-layer, partial, full"):
        decide(make_profile(500, 0.8), backbone=backbone, regime="everything")


def test_reasons_cite_measured_numbers_and_thresholds(backbone):
    plan = decide(make_profile(500, 0.8), backbone=backbone)
    assert f"500 images < {config.SVM_MAX_IMAGES:,}" in plan.reasons["regime"]
    assert f"{config.REGIME_SIMILARITY_THRESHOLD:.2f}" in plan.reasons["regime"]
    # The svm pick cites the converged benchmark, where it lost on one task, and says what to run.
    assert "1.4 points below full fine-tuning on MNIST" in plan.reasons["regime"]
    assert "advise compare DATA_DIR --regimes svm,last-layer,full" in plan.reasons["regime"]
    # Far data between the thresholds: partial, citing the 5,000-image task where it won.
    plan = decide(make_profile(6000, 0.3), backbone=backbone)
    assert plan.regime is Regime.PARTIAL and "Fashion-MNIST 5,000" in plan.reasons["regime"]
    # Far picks say why training from random weights is not proposed; near ones do not.
    assert "73.3%, 80.3% and 84.0% at 300, 1,000 and 2,000 images" in plan.reasons["regime"]
    for n in (500, 50_000):
        assert "random weights" in decide(make_profile(n, 0.3), backbone=backbone).reasons["regime"]
        assert "random weights" not in decide(make_profile(n, 0.8), backbone=backbone).reasons["regime"]
    plan = decide(make_profile(SMALL, 0.3, departing="block_10"), backbone=backbone)
    assert "block_10" in plan.reasons["frozen_blocks"] and "0.200 > 0.100" in plan.reasons["frozen_blocks"]


def test_svm_reads_an_earlier_block_when_the_probe_says_it_is_as_good(backbone):
    plan = decide(make_profile(500, 0.3, best_block="block_12"), backbone=backbone)
    assert plan.feature_layer == backbone.blocks[backbone.block_index("block_12")].output
    assert "block_12" in plan.reasons["feature_layer"]
    plan = decide(make_profile(500, 0.3), backbone=backbone)
    assert plan.feature_layer == backbone.feature_layer
    plan = decide(make_profile(500, 0.3, with_probes=False), backbone=backbone)
    assert plan.feature_layer == backbone.feature_layer


def test_svm_reads_the_probed_blocks_and_the_bottleneck_together(backbone, monkeypatch):
    profile = make_profile(500, 0.3)
    plan = decide(profile, backbone=backbone)
    outputs = {b.name: b.output for b in backbone.blocks}
    assert plan.regime is Regime.SVM
    assert plan.feature_layers == (outputs["block_8"], outputs["block_12"], outputs["block_14"],
                                   backbone.feature_layer)
    assert plan.head_input_layers == plan.feature_layers
    assert "MNIST" in plan.reasons["feature_layers"] and "block_8, block_12, block_14" in plan.reasons[
        "feature_layers"]
    for other in (Regime.LAST_LAYER, Regime.PARTIAL, Regime.FULL):
        fine = decide(profile, backbone=backbone, regime=other)
        assert fine.feature_layers == () and fine.head_input_layers == (fine.feature_layer,)
    assert decide(profile, backbone=backbone, task="regression").feature_layers == ()
    assert decide(make_profile(500, 0.3, with_probes=False), backbone=backbone).feature_layers == ()
    monkeypatch.setattr(config, "SVM_READS_PROBED_LAYERS", False)
    assert decide(profile, backbone=backbone).feature_layers == ()


def test_svm_folds_fall_to_three_from_a_thousand_training_images(backbone):
    small = decide(make_profile(500, 0.3), backbone=backbone)
    large = decide(make_profile(1_500, 0.3), backbone=backbone, regime=Regime.SVM)
    assert small.regime is Regime.SVM and small.svm_cv_folds == config.SVM_CV_FOLDS == 5
    assert large.svm_cv_folds == config.SVM_CV_FOLDS_LARGE == 3
    assert "score every image once" in large.reasons["svm_cv_folds"]
    assert "5-fold" in small.reasons["svm_cv_folds"]


@pytest.mark.parametrize("native, expected", [(8, 96), (28, 128), (32, 128), (48, 192), (64, 224), (500, 224)])
def test_image_size_follows_native_resolution(backbone, native, expected):
    assert choose_image_size(native, 224) == expected
    plan = decide(make_profile(5_000, 0.3, native_side=native), backbone=backbone)
    assert plan.image_size == expected
    assert f"{native} px" in plan.reasons["image_size"]


@pytest.mark.parametrize("native, frozen_size", [(8, 96), (16, 128), (28, 224), (32, 224), (64, 224)])
def test_frozen_regimes_upscale_low_resolution_images_further(backbone, native, frozen_size):
    # bench_input_size 2026-12-06: the SVM on 28 px sets scored 0.7-2.0 pp higher at 224 px than at
    # 128, at twice the embedding time; fine-tuning pays for the size every epoch and keeps x4.
    profile = make_profile(500, 0.3, native_side=native)
    for regime in ("svm", "last-layer"):
        plan = decide(profile, backbone=backbone, regime=regime)
        assert plan.image_size == frozen_size
        if native < 64:
            assert "upscale x8" in plan.reasons["image_size"]
    tuned = decide(profile, backbone=backbone, regime="full")
    assert tuned.image_size == choose_image_size(native, 224)


@pytest.mark.parametrize("native, largest, image_size, decode_size", [
    (8, 8, 96, 8),  # digits: 8 px scans cached as they are, 144x fewer bytes than at 96 px
    (28, 28, 128, 28),  # MNIST
    (28, 300, 128, None),  # a few large images: decoded (downscaled once) at the input size
    (28, 128, 128, None),  # no smaller than the input: nothing to gain
    (500, 500, 224, None),
    (28, None, 128, None),  # a profile measured before the largest sizes were recorded
])
def test_low_resolution_folders_are_decoded_at_native_size(backbone, native, largest, image_size,
                                                           decode_size):
    # Issue 16: cache small images at their own size; the model upscales them inside.
    plan = decide(make_profile(5_000, 0.3, native_side=native, max_side=largest), backbone=backbone)
    assert (plan.image_size, plan.decode_size) == (image_size, decode_size)
    assert plan.input_size == (decode_size or image_size)
    assert f"{image_size} px" in plan.reasons["decode_size"]
    if largest is not None:
        assert f"{largest} px" in plan.reasons["decode_size"]


def test_class_weights_only_when_imbalanced(backbone):
    balanced = decide(make_profile(5_000, 0.8, imbalance=1.5), backbone=backbone)
    assert balanced.class_weights is None
    skewed = decide(make_profile(5_000, 0.8, imbalance=5.0), backbone=backbone)
    assert skewed.class_weights is not None and len(skewed.class_weights) == 4
    assert skewed.class_weights[0] > skewed.class_weights[1]  # the small class weighs more


def test_flip_only_for_photo_like_data(backbone):
    photos = decide(make_profile(50_000, 0.8), backbone=backbone)
    digits = decide(make_profile(50_000, 0.2), backbone=backbone)
    assert "flip" in photos.augmentation and "flip" not in digits.augmentation
    assert digits.augmentation


def test_epochs_scale_with_dataset_size(backbone):
    small = decide(make_profile(2_000, 0.3), backbone=backbone, regime="partial")
    large = decide(make_profile(200_000, 0.3), backbone=backbone, regime="partial")
    assert small.epochs > large.epochs
    assert small.head_epochs >= large.head_epochs


def test_forced_epochs_carry_warmup_and_patience_with_them(backbone):
    plan = decide(make_profile(2_000, 0.3), backbone=backbone, regime="partial", epochs=5)
    assert (plan.epochs, plan.warmup_epochs) == (5, 1)
    assert plan.patience <= 5 and "forced" in plan.reasons["epochs"]
    assert "5 epochs" in plan.reasons["warmup_epochs"]
    frozen = decide(make_profile(2_000, 0.3), backbone=backbone, regime="last-layer", epochs=5)
    assert frozen.epochs == 0 and frozen.warmup_epochs == 0


def test_a_small_sets_fine_tuning_outlasts_the_dip_after_its_warmup(backbone):
    # On digits 300 the augmented fine-tuning's validation accuracy fell for 5 epochs and
    # recovered by epoch 11 (benchmarks/README.md, "Why fine-tuning dips"); a patience of 6
    # after a 3-epoch warm-up stopped every run at epoch 9 and returned the probe.
    plan = decide(make_profile(300, 0.3), backbone=backbone, regime="full")
    assert plan.epochs == 30
    assert plan.warmup_epochs + plan.patience >= 15
    assert "digits 300" in plan.reasons["patience"]


def test_fine_tuning_searches_its_rates_and_counts_patience_after_the_warmup(backbone):
    plan = decide(make_profile(2_000, 0.3), backbone=backbone, regime="full")
    assert plan.rate_scales == (1.0, 3.0) and "lowest validation loss" in plan.reasons["rate_scales"]
    assert f"after the {plan.warmup_epochs} warm-up epochs" in plan.reasons["patience"]
    for regime in ("svm", "last-layer"):
        frozen = decide(make_profile(2_000, 0.3), backbone=backbone, regime=regime)
        assert frozen.rate_scales == (1.0,) and "no search" in frozen.reasons["rate_scales"]
        assert "warm-up" not in frozen.reasons["patience"]
    regression = decide(make_profile(2_000, 0.3), backbone=backbone, regime="partial",
                        task="regression")
    assert regression.rate_scales == (1.0,)
    # --no-rate-search: one run at the plan's rates, and the reason says who turned it off.
    single = decide(make_profile(2_000, 0.3), backbone=backbone, regime="full", rate_search=False)
    assert single.rate_scales == (1.0,) and "--no-rate-search" in single.reasons["rate_scales"]
    assert dataclasses.replace(single, rate_scales=plan.rate_scales, reasons=plan.reasons) == plan


def test_the_expected_cost_prices_every_searched_rate(backbone):
    from advisor.decide.cost import expected_cost

    plan = decide(make_profile(2_000, 0.3), backbone=backbone, regime="full")
    sizes = {"n_train": 1000, "n_val": 200, "n_test": 200, "forward_img_s": 200.0,
             "train_img_s": 80.0}
    searched = expected_cost(plan, **sizes)
    single = expected_cost(dataclasses.replace(plan, rate_scales=(1.0,)), **sizes)
    assert searched["rates"] == 2 and single["rates"] == 1
    assert searched["total_s"] - searched["embed_s"] == pytest.approx(
        2 * (single["total_s"] - single["embed_s"]), abs=0.2)
    assert f"2 rates x {plan.epochs} epochs" in searched["sentence"]


def test_profile_from_another_backbone_is_refused(backbone):
    profile = dataclasses.replace(make_profile(500, 0.8), backbone="keras:EfficientNetB0")
    with pytest.raises(PlanError, match="measured with backbone"):
        decide(profile, backbone=backbone)


@pytest.mark.parametrize("row", TABLE, ids=[row[0] for row in TABLE])
def test_plan_json_round_trip(backbone, row):
    _, n_images, score, departing, *_ = row
    plan = decide(make_profile(n_images, score, departing=departing, imbalance=3.0), backbone=backbone)
    assert Plan.from_json(plan.to_json()) == plan
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict(), sort_keys=True))) == plan


def test_hand_built_profile_json_round_trip():
    for profile in (make_profile(500, 0.8), make_profile(5_000, 0.3, with_probes=False, departing=None)):
        assert DatasetProfile.from_json(profile.to_json()) == profile


def test_profile_from_newer_schema_is_refused():
    data = make_profile(500, 0.8).to_dict() | {"schema_version": 99}
    with pytest.raises(PlanError, match="newer"):
        DatasetProfile.from_dict(data)


@pytest.mark.parametrize("n_images, regime, min_train, hidden", [
    (SVM_MAX // 2, Regime.SVM, 1, False),  # svm: always linear, whatever the split
    (SMALL, Regime.PARTIAL, int(SMALL * 0.7) + 1, False),  # one training image short
    (SMALL, Regime.PARTIAL, int(SMALL * 0.7), True),
    (5 * LARGE, Regime.FULL, config.HIDDEN_HEAD_MIN_TRAIN, True),
])
def test_head_is_hidden_only_when_the_training_split_supports_it(backbone, monkeypatch, n_images,
                                                                  regime, min_train, hidden):
    monkeypatch.setattr(config, "HIDDEN_HEAD_MIN_TRAIN", min_train)
    plan = decide(make_profile(n_images, 0.2), backbone=backbone)
    assert plan.regime is regime
    assert bool(plan.head_units) is hidden
    assert (plan.head_dropout > 0) is hidden and plan.head_batchnorm is hidden
    if regime is not Regime.SVM:
        assert f"{config.HIDDEN_HEAD_MIN_TRAIN:,}" in plan.reasons["head_units"]
    assert Plan.from_json(plan.to_json()) == plan


def test_head_can_be_forced_and_unknown_heads_fail(backbone):
    profile = make_profile(SMALL, 0.8)  # last-layer
    assert decide(profile, backbone=backbone, head="mlp").head_units == config.HIDDEN_HEAD_UNITS
    assert decide(make_profile(50_000, 0.2), backbone=backbone, head="linear").head_units == ()
    assert "forced" in decide(profile, backbone=backbone, head="mlp").reasons["head_units"]
    with pytest.raises(PlanError, match="Known: linear, mlp"):
        decide(profile, backbone=backbone, head="resnet")


def test_plans_written_before_the_head_fields_still_load(backbone):
    data = decide(make_profile(SMALL, 0.8), backbone=backbone).to_dict()
    for name in ("head_units", "head_dropout", "head_batchnorm"):
        del data[name]
    plan = Plan.from_dict(data)
    assert plan.head_units == () and plan.head_dropout == 0.0 and plan.head_batchnorm is False


@pytest.mark.parametrize("n_images, score, expected", [
    (500, 0.9, config.DEFAULT_BACKBONE),  # svm: frozen features, keep the cheap backbone
    (SMALL, 0.8, config.DEFAULT_BACKBONE),  # last-layer: frozen
    (SMALL, 0.2, config.DEFAULT_BACKBONE),  # partial, but too few images to pay a second pass
    (50_000, 0.2, config.STRONGER_BACKBONE),  # full on 50k images
    (20_000, 0.8, config.STRONGER_BACKBONE),  # partial on 20k images
])
def test_stronger_backbone_only_when_fine_tuning_many_images(backbone, n_images, score, expected):
    profile = make_profile(n_images, score)
    name, why = choose_backbone(profile, decide(profile, backbone=backbone))
    assert name == expected
    assert f"{n_images:,}" in why or "frozen" in why


def test_a_backbone_asked_for_is_kept(backbone):
    profile = dataclasses.replace(make_profile(50_000, 0.2), backbone="keras:ResNet50")
    plan = decide(make_profile(50_000, 0.2), backbone=backbone)
    assert choose_backbone(profile, plan)[0] == "keras:ResNet50"


def test_regime_rules_are_passed_in_not_patched(backbone):
    profile = make_profile(SMALL, 0.3)  # partial under the calibrated rules
    assert RegimeRules() == RegimeRules(config.SVM_MAX_IMAGES, config.LARGE_DATASET_IMAGES,
                                        config.REGIME_SIMILARITY_THRESHOLD)
    assert decide(profile, backbone=backbone) == decide(profile, backbone=backbone, rules=RegimeRules())
    assert choose_regime(profile)[0] is Regime.PARTIAL
    assert choose_regime(profile, RegimeRules(svm_max_images=SMALL + 1))[0] is Regime.SVM
    assert choose_regime(profile, RegimeRules(regime_similarity_threshold=0.25))[0] is Regime.LAST_LAYER
    large = decide(profile, backbone=backbone, rules=RegimeRules(large_dataset_images=SMALL))
    assert large.regime is Regime.FULL and f">= {SMALL:,} (large)" in large.reasons["regime"]
    # The same "large" threshold places partial's cut: 2/3 of the blocks frozen.
    near = decide(make_profile(SMALL, 0.8), backbone=backbone, rules=RegimeRules(large_dataset_images=SMALL))
    assert near.regime is Regime.PARTIAL and near.frozen_blocks == tuple(BLOCKS[:13])
    assert (config.SVM_MAX_IMAGES, config.LARGE_DATASET_IMAGES) == (SVM_MAX, LARGE)  # config untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        RegimeRules().svm_max_images = 0


@pytest.mark.parametrize("regime", list(Regime), ids=[r.value for r in Regime])
def test_regression_plans_are_decided_for_a_linear_output(backbone, regime):
    profile = make_profile(20_000, 0.3, imbalance=4.0)
    plan = decide(profile, backbone=backbone, regime=regime, task="regression")
    classifier = decide(profile, backbone=backbone, regime=regime)
    assert (plan.task, plan.loss) == (Task.REGRESSION, Loss.HUBER)
    assert plan.class_weights is None and classifier.class_weights is not None
    assert "softmax" not in plan.reasons["head_units"]
    if regime is Regime.SVM:
        assert plan.svm_c_grid == config.REGRESSION_C_GRID and "Ridge" in plan.reasons["svm_c_grid"]
    if regime.fine_tunes_backbone:
        assert (plan.optimizer, classifier.optimizer) == (Optimizer.ADAMW, Optimizer.SGD)
        assert plan.head_learning_rate == config.REGRESSION_FINE_TUNE_LEARNING_RATE
        assert plan.backbone_learning_rate == pytest.approx(plan.head_learning_rate / 10)
    else:
        assert plan.optimizer is classifier.optimizer is Optimizer.ADAMW
        assert plan.head_learning_rate == classifier.head_learning_rate
    same = ("regime", "frozen_blocks", "image_size", "batch_size", "epochs", "augmentation", "head_units")
    assert all(getattr(plan, name) == getattr(classifier, name) for name in same)
