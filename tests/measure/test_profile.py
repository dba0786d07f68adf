"""The one forward pass and the profile measures, on real weights and real packaged images.

Small samples (20-60 images per set) keep the module around a minute on 2 cores;
each set is embedded once per module.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from advisor import config
from advisor.data import SPLITS, scan_dataset
from advisor.data.decode_cache import decode_images
from advisor.measure import (
    DatasetProfile,
    HeadStats,
    ProbeStats,
    ShiftMap,
    Similarity,
    gaussian_kl,
    head_stats,
    probe_accuracies,
    shift_map,
    similarity_score,
)
from advisor.measure.forward import (
    build_probe_model,
    embed,
    measure_dataset,
    probe_blocks,
    profile_activations,
    stratified_sample,
)

SEED = 0
NOISE_SIGMAS = (0, 25, 50, 100)  # Gaussian noise on 0-255 pixels, rising severity
BATCH = 16


@pytest.fixture(scope="module")
def sets_root(tmp_path_factory):
    return tmp_path_factory.mktemp("profile-sets")


def _profile(name, n, root, backbone, *, sample_cap=config.SAMPLE_CAP):
    from advisor.examples import write_dataset

    dataset = scan_dataset(write_dataset(name, root, n=n, seed=SEED), seed=SEED)
    return measure_dataset(dataset, backbone, sample_cap=sample_cap, seed=SEED)


@pytest.fixture(scope="module")
def profiles(mobilenet_v2, sets_root):
    """Profiles of photo-like and digit sets, through scan -> decode -> embed -> measure."""
    return {
        "photos": _profile("photos", None, sets_root, mobilenet_v2),  # foolbox ImageNet + skimage
        "cifar": _profile("cifar", None, sets_root, mobilenet_v2),  # foolbox CIFAR-10
        "digits": _profile("digits", 100, sets_root, mobilenet_v2, sample_cap=60),
        "mnist": _profile("mnist-5k", 40, sets_root, mobilenet_v2),
    }


@pytest.fixture(scope="module")
def photo_pixels(mobilenet_v2, sets_root):
    """The photos set decoded at 224 px, with its labels and dataset."""
    from advisor.examples import write_dataset

    dataset = scan_dataset(write_dataset("photos", sets_root), seed=SEED)
    files = [f for split in SPLITS for f in dataset.files(split)]
    labels = np.concatenate([dataset.labels(split) for split in SPLITS])
    decoded = decode_images(files, mobilenet_v2.image_size)
    return np.asarray(decoded.images[decoded.rows]), labels[decoded.rows], dataset


@pytest.fixture(scope="module")
def noisy_profiles(mobilenet_v2, photo_pixels):
    """The photos with Gaussian noise of rising severity, each embedded once."""
    images, labels, dataset = photo_pixels
    rng = np.random.default_rng(SEED)
    noise = rng.normal(size=images.shape)
    out = []
    for sigma in NOISE_SIGMAS:
        noisy = np.clip(images + sigma * noise, 0, 255).astype(np.uint8)
        acts = embed(mobilenet_v2, noisy, batch_size=BATCH)
        out.append(profile_activations(acts, labels, backbone=mobilenet_v2, summary=dataset.summary,
                                       class_names=dataset.class_names, seed=SEED))
    return out


# --- Similarity ordering -------------------------------------------------------------
LABEL_FREE = {
    "mean KL (lower is more ImageNet-like)": lambda p: -p.shift.mean_kl,
    "score KL": lambda p: -p.shift.score_kl,
    "max-softmax": lambda p: p.head.mean_max_probability,
    "entropy": lambda p: -p.head.mean_entropy,
    "shift component": lambda p: p.similarity.components["shift"],
    "head component": lambda p: p.similarity.components["head"],
    "label-free score": lambda p: similarity_score(p.shift, p.head).score,
}


@pytest.mark.parametrize("photo_set", ["photos", "cifar"])
@pytest.mark.parametrize("measure", list(LABEL_FREE), ids=list(LABEL_FREE))
def test_photos_look_more_like_imagenet_than_digits_label_free(profiles, photo_set, measure):
    value = LABEL_FREE[measure]
    for digit_set in ("digits", "mnist"):
        assert value(profiles[photo_set]) > value(profiles[digit_set]), (photo_set, digit_set)


def test_photos_have_a_higher_combined_score_than_digits(profiles):
    for digit_set in ("digits", "mnist"):
        assert profiles["photos"].similarity.score > profiles[digit_set].similarity.score
    assert profiles["photos"].similarity.score >= config.SIMILARITY_THRESHOLD
    for digit_set in ("digits", "mnist"):
        assert profiles[digit_set].similarity.score < config.SIMILARITY_THRESHOLD


def test_imagenet_photos_barely_shift_and_digits_depart_early(profiles):
    assert profiles["photos"].shift.first_departing_block is None
    assert max(profiles["photos"].shift.block_kl) < config.SHIFT_DEPARTURE_KL
    for digit_set in ("digits", "mnist"):
        assert profiles[digit_set].shift.first_departing_block in ("stem", "block_0", "block_1")


def test_rising_gaussian_noise_lowers_the_score_monotonically(noisy_profiles):
    scores = [p.similarity.score for p in noisy_profiles]
    kls = [p.shift.mean_kl for p in noisy_profiles]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert all(a < b for a, b in zip(kls, kls[1:])), kls


# --- The profile's contents ----------------------------------------------------------
def test_profile_holds_the_dataset_summary_numbers(profiles):
    digits = profiles["digits"]
    assert digits.n_images == 100 and digits.n_sampled == 60
    assert digits.class_names == tuple(str(i) for i in range(10))
    assert sum(digits.class_counts) == 100
    assert digits.native_width == digits.native_height == 8
    assert digits.n_train < digits.n_images
    assert len(digits.shift.layers) == 52 and len(digits.shift.layer_kl) == 52
    assert digits.shift.blocks[0] == "stem" and digits.shift.blocks[-1] == "head"


def test_probes_on_digits_are_far_above_chance(profiles):
    probes = profiles["digits"].probes
    assert probes is not None
    assert probes.linear_accuracy > 0.5 > probes.chance
    assert probes.knn_accuracy > 0.4
    assert [f for f, _ in probes.learning_curve] == list(config.PROBE_LEARNING_CURVE)
    assert probes.learning_curve[-1][1] == probes.linear_accuracy
    assert set(probes.block_accuracy) == {"block_8", "block_12", "block_14"}
    assert probes.n_splits == min(config.PROBE_MAX_FOLDS, 6)


def test_head_names_imagenet_classes_per_folder(profiles):
    top = profiles["photos"].head.top_classes
    assert set(top) == {"animal", "object"}
    for classes in top.values():
        assert 1 <= len(classes) <= config.HEAD_TOP_CLASSES
        assert all(isinstance(name, str) and 0 < share <= 1 for name, share in classes)
        shares = [share for _, share in classes]
        assert shares == sorted(shares, reverse=True)


@pytest.mark.parametrize("name", ["photos", "digits"])
def test_profile_json_round_trip(profiles, name):
    profile = profiles[name]
    text = profile.to_json()
    assert json.loads(text) == json.loads(json.dumps(profile.to_dict(), sort_keys=True))
    assert DatasetProfile.from_json(text) == profile


def test_decide_on_measured_profiles(profiles, mobilenet_v2):
    from advisor.decide import decide
    from advisor.plan import Regime

    digits = decide(profiles["digits"], backbone=mobilenet_v2)
    assert digits.regime is Regime.SVM and digits.image_size == config.MIN_INPUT_SIZE
    photos = decide(profiles["photos"], backbone=mobilenet_v2)
    assert photos.image_size == mobilenet_v2.image_size


# --- The forward pass -----------------------------------------------------------------
def test_in_graph_bn_moments_match_a_direct_computation(mobilenet_v2, photo_pixels):
    images = photo_pixels[0][:6]
    acts = embed(mobilenet_v2, images, batch_size=4)  # 4 + 2 padded: padding must not leak
    moments = acts.bn_moments()
    model = mobilenet_v2.model
    for name in ("bn_Conv1", "block_6_expand_BN", "Conv_1_bn"):
        probe = keras.Model(model.inputs, model.get_layer(name).input)
        x = np.asarray(probe.predict_on_batch(images), dtype=np.float64)
        mean, var = moments[name]
        np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(var, x.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-4)
    full = np.asarray(model.predict_on_batch(images))
    np.testing.assert_allclose(acts.logits, full, rtol=1e-4, atol=1e-3)
    assert acts.features.shape == (6, 1280)
    assert [b.name for b in probe_blocks(mobilenet_v2)] == list(acts.block_features)


def test_bn_moments_come_from_a_seeded_subset_and_rows_keep_their_order(mobilenet_v2, photo_pixels):
    images = photo_pixels[0][:6]
    acts = embed(mobilenet_v2, images, batch_size=2, moment_images=3, seed=5)
    # 3 images -> the first 2 batches of a seeded permutation carry the moments.
    subset = np.random.default_rng(5).permutation(6)[:4]
    assert acts.n_moment_images == 4
    model = mobilenet_v2.model
    probe = keras.Model(model.inputs, model.get_layer("block_3_expand_BN").input)
    x = np.asarray(probe.predict_on_batch(images[subset]), dtype=np.float64)
    mean, var = acts.bn_moments()["block_3_expand_BN"]
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(var, x.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-4)
    full = np.asarray(model.predict_on_batch(images))
    np.testing.assert_allclose(acts.logits, full, rtol=1e-4, atol=1e-3)  # original row order
    every = embed(mobilenet_v2, images, batch_size=2)
    assert every.n_moment_images == 6
    np.testing.assert_allclose(acts.features, every.features, rtol=1e-4, atol=1e-4)


def test_probe_model_outputs(mobilenet_v2):
    model = build_probe_model(mobilenet_v2)
    total = sum(int(model.get_layer(n).input.shape[-1]) for n in mobilenet_v2.bn_layers)
    assert model.output["bn_mean"].shape == (None, total)
    assert model.output["logits"].shape == (None, 1000)


# --- Pure functions -------------------------------------------------------------------
def test_gaussian_kl_is_zero_for_equal_moments_and_grows_with_shift():
    mean, var = np.zeros(3), np.ones(3)
    np.testing.assert_allclose(gaussian_kl(mean, var, mean, var), 0.0, atol=1e-12)
    kls = [gaussian_kl(mean + d, var, mean, var).mean() for d in (0.1, 0.5, 1.0)]
    assert kls == sorted(kls) and kls[0] > 0


def test_shift_map_names_the_first_departing_block():
    reference = {f"bn{i}": (np.zeros(2), np.ones(2)) for i in range(3)}
    moments = {"bn0": (np.zeros(2), np.ones(2)), "bn1": (np.full(2, 2.0), np.ones(2)),
               "bn2": (np.zeros(2), np.ones(2))}
    shift = shift_map(moments, reference, [("a", ["bn0"]), ("b", ["bn1"]), ("c", ["bn2"])])
    assert shift.first_departing_block == "b"
    assert shift.block_kl[1] == pytest.approx(2.0, rel=1e-4)  # (mean diff)^2 / 2, eps aside
    with pytest.raises(ValueError, match="Missing"):
        shift_map({"other": (np.zeros(2), np.ones(2))}, reference, [])


def test_a_loaded_profile_keeps_its_block_probes_in_network_order():
    # Issue 19: sorted JSON keys read back as block_12, block_14, block_8 (and plan reasons said so).
    blocks = ("stem",) + tuple(f"block_{i}" for i in range(17)) + ("head",)
    kl = tuple(0.01 * i for i in range(len(blocks)))
    profile = DatasetProfile(
        backbone="mobilenet_v2", image_size=96, class_names=("a", "b"), class_counts=(20, 20),
        n_images=40, n_train=28, imbalance_ratio=1.0, native_width=64, native_height=64,
        n_sampled=40, seed=0,
        shift=ShiftMap(layers=blocks, layer_kl=kl, blocks=blocks, block_kl=kl, mean_kl=0.1, score_kl=0.1,
                       departure_kl=0.1, first_departing_block="block_10"),
        head=HeadStats(mean_max_probability=0.5, mean_entropy=1.0, top_classes={}),
        probes=ProbeStats(knn_accuracy=0.8, linear_accuracy=0.85, chance=0.5, n_splits=2,
                          learning_curve=((1.0, 0.85),), best_block="block_12",
                          block_accuracy={"block_8": 0.7, "block_12": 0.86, "block_14": 0.84}),
        similarity=Similarity(score=0.5, components={"shift": 0.5}, weights={"shift": 1.0}))
    loaded = DatasetProfile.from_json(profile.to_json())
    assert list(json.loads(profile.to_json())["probes"]["block_accuracy"]) == ["block_12", "block_14", "block_8"]
    assert loaded == profile and list(loaded.probes.block_accuracy) == ["block_8", "block_12", "block_14"]


def test_label_free_components_do_not_depend_on_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 1000))
    a = head_stats(logits, rng.integers(0, 2, 20), ("x", "y"))
    b = head_stats(logits, None)
    assert (a.mean_max_probability, a.mean_entropy) == (b.mean_max_probability, b.mean_entropy)
    assert set(b.top_classes) == {"*"}


def test_probes_need_two_classes_with_two_images():
    x = np.random.default_rng(0).normal(size=(5, 8))
    assert probe_accuracies(x, np.array([0, 0, 0, 0, 1]), seed=0) is None
    stats = probe_accuracies(x, np.array([0, 0, 1, 1, 2]), seed=0)  # class 2 is dropped
    assert stats is not None and stats.n_splits == 2


def test_stratified_sample_keeps_every_class():
    labels = np.array([0] * 90 + [1] * 8 + [2] * 2)
    picked = stratified_sample(labels, 20, seed=0)
    assert picked.size == 20 and np.array_equal(picked, np.sort(picked))
    assert set(labels[picked]) == {0, 1, 2}
    assert np.array_equal(stratified_sample(labels, 500, seed=0), np.arange(100))
    assert np.array_equal(stratified_sample(labels, 20, seed=0), picked)


def test_a_network_that_upscales_its_input_is_measured_on_native_pixels(sets_root):
    # Issue 18: the measuring pass decodes as the network takes its input (8 px digits natively,
    # upscaled to 96 px in the graph), as a run with a decode size does; it used to decode at
    # image_size and fail the shape check for such a network.
    from advisor.backbones import get_backbone
    from advisor.examples import write_dataset

    upscaling = get_backbone("mobilenet_v2", image_size=96, input_size=8)
    dataset = scan_dataset(write_dataset("digits", sets_root, n=60, seed=SEED), seed=SEED)
    profile = measure_dataset(dataset, upscaling, sample_cap=40, seed=SEED)
    assert profile.image_size == 96 and profile.n_sampled == 40
    assert profile.probes is not None and profile.probes.linear_accuracy > 2 * profile.probes.chance


def test_the_probe_reads_the_blocks_and_the_bottleneck_together():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    bottleneck = rng.normal(size=(60, 32))  # says nothing about the labels
    block = rng.normal(size=(60, 4)) + 4 * np.eye(4)[labels]  # separates them
    stats = probe_accuracies(bottleneck, labels, block_features={"block_8": block}, seed=0)
    assert stats.block_accuracy["block_8"] > 0.9 and stats.linear_accuracy < 0.6
    assert stats.layers_accuracy > 0.9  # the narrow block is not drowned by the wide bottleneck
    assert probe_accuracies(bottleneck, labels, seed=0).layers_accuracy is None
