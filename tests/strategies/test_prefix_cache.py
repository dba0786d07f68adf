"""``partial`` on cached frozen-prefix activations: same mathematics as end to end (issue 16, part 2).

Real digits scans (scikit-learn) and the real pretrained MobileNetV2 at 96 px.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from advisor.backbones import get_backbone
from advisor.backbones.model_file import load_model, save_model
from advisor.data import scan_dataset
from advisor.data.decode_cache import decode_images
from advisor.decide import decide
from advisor.measure import measure_dataset
from advisor.plan import Optimizer, Plan, Regime
from strategies import LabelledImages, get_strategy
from strategies.graph import build_classifier, freeze_blocks, split_at_cut
from strategies.prefix_cache import ActivationBatches, PrefixCache
from tests.strategies.test_strategies import make_plan

pytestmark = pytest.mark.slow

IMAGE_SIZE = 96
#: A 2/3 cut: stem..block_11 frozen (13 of 19 blocks), block_12 onwards trained.
CUT_BLOCKS = 13


@pytest.fixture(scope="module")
def digits(tmp_path_factory, session_cache):
    """300 real digit scans at 96 px: train/val/test LabelledImages, class names, backbone."""
    from advisor.examples import write_dataset

    folder = write_dataset("digits", tmp_path_factory.mktemp("digits"), n=300, seed=0)
    dataset = scan_dataset(folder, seed=0)
    parts = {}
    for split in ("train", "val", "test"):
        decoded = decode_images(dataset.files(split), IMAGE_SIZE)
        parts[split] = LabelledImages(decoded.images, dataset.labels(split), decoded.rows)
    backbone = get_backbone("mobilenet_v2", image_size=IMAGE_SIZE)
    return folder, parts, list(dataset.class_names), backbone


def cut_plan(backbone, **overrides) -> Plan:
    names = tuple(block.name for block in backbone.blocks)
    # AdamW at small rates: the two paths see the same batches, and the test asks
    # whether they compute the same thing, not which rates are best.
    settings = dict(frozen_blocks=names[:CUT_BLOCKS], epochs=2, warmup_epochs=0,
                    head_epochs=10, patience=5, optimizer=Optimizer.ADAMW,
                    head_learning_rate=1e-3, backbone_learning_rate=1e-4)
    settings.update(overrides)
    return make_plan(Regime.PARTIAL, backbone, **settings)


def test_suffix_on_cached_activations_gives_the_end_to_end_outputs_and_loss(digits):
    _, parts, class_names, backbone = digits
    keras.utils.set_random_seed(0)
    model = build_classifier(backbone, feature_layer=backbone.feature_layer,
                             n_classes=len(class_names))
    names = [block.name for block in backbone.blocks]
    freeze_blocks(model, backbone, names[:CUT_BLOCKS])
    prefix, suffix = split_at_cut(model, backbone, names[:CUT_BLOCKS])
    train = parts["train"]
    images = np.asarray(train.images[train.rows[:32]])
    labels = train.labels[:32]
    cache = PrefixCache(prefix, backbone, cut=backbone.blocks[CUT_BLOCKS - 1].output)
    activations = cache.compute(train.images, rows=train.rows[:32])
    assert activations.dtype == np.float16 and activations.shape == (32, 6, 6, 96)
    end_to_end = keras.ops.convert_to_numpy(model(images, training=False))
    on_cache = keras.ops.convert_to_numpy(suffix(activations.astype("float32"), training=False))
    np.testing.assert_allclose(on_cache, end_to_end, atol=2e-3)
    loss = keras.losses.SparseCategoricalCrossentropy()
    assert float(loss(labels, on_cache)) == pytest.approx(float(loss(labels, end_to_end)), rel=1e-3)
    # The suffix shares the classifier's layers: its trainable variables are the model's.
    assert {id(v) for v in suffix.trainable_variables} <= {id(v) for v in model.trainable_variables}
    assert len(suffix.trainable_variables) == len(model.trainable_variables)


def test_single_tensor_crosses_every_block_boundary_of_both_layouts():
    for name in ("mobilenet_v2", "efficientnet_lite0"):
        backbone = get_backbone(name, image_size=64, weights=None)
        model = build_classifier(backbone, feature_layer=backbone.feature_layer, n_classes=3)
        names = [block.name for block in backbone.blocks]
        for cut in range(1, len(names)):
            prefix, suffix = split_at_cut(model, backbone, names[:cut])
            assert prefix.output.shape[1:] == suffix.input.shape[1:], (name, names[cut])


def test_activation_batches_are_the_image_batches_of_the_same_epoch(digits):
    _, parts, _, _ = digits
    train = parts["train"]
    images = train.batches(batch_size=32, shuffle=True, seed=3)
    fake = np.arange(len(train.rows), dtype=np.float16)[:, None]  # position i -> value i
    activations = ActivationBatches([fake], train.labels, rows=train.rows, batch_size=32,
                                    shuffle=True, seed=3)
    for _ in range(2):
        for index in range(len(images)):
            assert np.array_equal(activations[index][1], images[index][1])
        images.on_epoch_end()
        activations.on_epoch_end()


def test_partial_on_the_prefix_cache_matches_end_to_end_on_digits(digits):
    """2 epochs at 96 px, no augmentation: same batches, so the same result up to float16."""
    _, parts, class_names, backbone = digits
    fitted = {}
    for cached in (False, True):
        keras.utils.set_random_seed(0)
        plan = cut_plan(backbone, prefix_cache=cached)
        fitted[cached] = get_strategy(Regime.PARTIAL)(plan=plan, backbone=backbone).fit(
            parts["train"], parts["val"], class_names=class_names)
    assert fitted[True].history_["fine_tune"]["path"] == "prefix-cache"
    assert fitted[False].history_["fine_tune"]["path"] == "end-to-end"
    assert fitted[True].history_["fine_tune"]["prefix_cache"]["views"] == 1
    test = parts["test"]
    end, cache = (fitted[c].history_["fine_tune"] for c in (False, True))
    assert end["best_epoch"] == cache["best_epoch"] > 0  # fine-tuning moved past the probe
    assert cache["best_val_loss"] == pytest.approx(end["best_val_loss"], rel=2e-2, abs=2e-3)
    accuracy = {c: float((fitted[c].predict(test.images, rows=test.rows) == test.labels).mean())
                for c in fitted}
    assert abs(accuracy[True] - accuracy[False]) <= 0.005, accuracy
    np.testing.assert_allclose(fitted[True].predict_proba(test.images, rows=test.rows),
                               fitted[False].predict_proba(test.images, rows=test.rows), atol=2e-2)


def test_augmenting_plan_trains_on_its_precomputed_views_and_exports_one_model(digits, tmp_path):
    _, parts, class_names, backbone = digits
    keras.utils.set_random_seed(0)
    plan = cut_plan(backbone, prefix_cache=True, prefix_views=2, augmentation=("zoom",), epochs=1)
    strategy = get_strategy(Regime.PARTIAL)(plan=plan, backbone=backbone).fit(
        parts["train"], parts["val"], class_names=class_names)
    assert strategy.history_["fine_tune"]["prefix_cache"]["views"] == 2
    path = save_model(strategy.export_model(), tmp_path / "model.keras", strategy.class_names_)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    model, names = load_model(path)
    test = parts["test"]
    images = np.asarray(test.images[test.rows])
    assert model.input.dtype == "uint8" and names == strategy.class_names_
    proba = model.predict(images, verbose=0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(proba, strategy.predict_proba(test.images, rows=test.rows), atol=1e-5)


def test_a_cut_crossed_by_two_tensors_falls_back_to_end_to_end(digits):
    _, parts, class_names, backbone = digits
    keras.utils.set_random_seed(0)
    names = tuple(block.name for block in backbone.blocks)
    plan = cut_plan(backbone, prefix_cache=True, frozen_blocks=names[1:CUT_BLOCKS], epochs=1,
                    head_epochs=1)
    train = parts["train"]
    few = LabelledImages(train.images, train.labels[::6], train.rows[::6])  # every class, 2 steps
    strategy = get_strategy(Regime.PARTIAL)(plan=plan, backbone=backbone).fit(
        few, parts["val"], class_names=class_names)
    fine_tune = strategy.history_["fine_tune"]
    assert fine_tune["path"] == "end-to-end"
    assert "not the first blocks" in fine_tune["prefix_cache_fallback"]


def test_decide_sizes_the_prefix_cache_and_falls_back_above_the_cap(digits):
    folder, _, _, backbone = digits
    profile = measure_dataset(scan_dataset(folder, seed=0), backbone, sample_cap=40)
    plan = decide(profile, backbone=backbone, regime="partial", epochs=3)
    assert plan.prefix_cache is True
    assert plan.prefix_views == (min(3, 4) if plan.augmentation else 0)
    cut = len(plan.frozen_blocks)
    shape = backbone.activation_shape(backbone.blocks[cut - 1].output, plan.image_size)
    views = max(1, plan.prefix_views)
    expected = np.prod(shape) * (profile.n_train * views + profile.n_images - profile.n_train) * 2 / 1e6
    assert plan.prefix_cache_mb == pytest.approx(expected, abs=0.05)
    assert f"{plan.prefix_cache_mb:,.1f} MB <= 4,096 MB" in plan.reasons["prefix_cache_mb"]
    assert "computed once per image" in plan.reasons["prefix_cache"]
    assert {"prefix_cache", "prefix_views", "prefix_cache_mb"} <= set(plan.reasons)
    assert Plan.from_json(plan.to_json()) == plan

    huge = dataclasses.replace(profile, n_train=50_000_000, n_images=60_000_000)
    fallback = decide(huge, backbone=backbone, regime="partial", epochs=3)
    assert (fallback.prefix_cache, fallback.prefix_views, fallback.prefix_cache_mb) == (False, 0, 0.0)
    assert "MB > 4,096 MB: fine-tune end to end" in fallback.reasons["prefix_cache"]

    for regime in ("last-layer", "full"):
        other = decide(profile, backbone=backbone, regime=regime, epochs=3)
        assert other.prefix_cache is False and "no frozen prefix" in other.reasons["prefix_cache"]
