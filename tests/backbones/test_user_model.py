"""``advise DATA_DIR --base MODEL``: the user's own model as the backbone (issue 8).

The "user's model" is a small CNN trained here on scikit-learn's digits 0-4
(real 8x8 scans, as class folders). Against it, digits 5-9 must look nearer
than other packaged images (the BN shift map uses the model's own stored
statistics), and starting from it must beat training the same architecture
from scratch on a few labelled 5-9 digits. Everything is seeded; the module
runs in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from advisor.app import pipeline
from advisor.backbones import get_backbone
from advisor.backbones.model_file import load_model, save_model
from advisor.backbones.user_model import base_model_name
from advisor.data import scan_dataset
from advisor.data.decode_cache import decode_dataset, decode_images
from advisor.decide import decide
from advisor.errors import BackboneError
from advisor.measure.forward import measure_dataset
from advisor.measure.profile import NO_BATCHNORM_NOTE, DatasetProfile
from advisor.plan import Regime
from advisor.reports.profile_view import profile_rows

SEED = 0
SIDE = 32
#: The base model: trained on every 0-4 scan for this many epochs.
BASE_EPOCHS = 5
BASE_LEARNING_RATE = 3e-3
#: The 5-9 task: few labels (where a pretrained start matters), the rest to test on,
#: and a short fine-tuning budget that the network from scratch gets too.
TRAIN_PER_CLASS = 10
VAL_PER_CLASS = 10
FINE_TUNE_EPOCHS = 5
SAMPLE_CAP = 200
OTHER_SET_IMAGES = 200


def small_cnn(n_classes: int, *, batchnorm: bool = True) -> keras.Model:
    """uint8 32x32 RGB -> Rescaling -> 3 x (Conv [+ BN] + ReLU + pool) -> GAP -> Dense(softmax)."""
    inputs = keras.Input((SIDE, SIDE, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    for i, filters in enumerate((16, 32, 64)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batchnorm, name=f"conv_{i}")(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn_{i}")(x)
        x = keras.layers.ReLU(name=f"relu_{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"maxpool_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


@pytest.fixture(scope="session")
def digit_sets(tmp_path_factory) -> tuple[Path, Path]:
    """Digits 0-4 as class folders; digits 5-9 pre-split at random (few train/val labels, the rest test)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("base-digits")
    low, high = root / "digits-0-4", root / "digits-5-9"
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    rng = np.random.default_rng(SEED)
    rank = np.empty(len(digits.target), dtype=int)  # each scan's rank in a shuffle of its class
    for label in range(10):
        members = np.flatnonzero(digits.target == label)
        rank[members] = rng.permutation(members.size)
    for i, (image, target) in enumerate(zip(pixels, digits.target)):
        if target < 5:
            folder = low / str(target)
        else:
            k = rank[i]
            split = ("train" if k < TRAIN_PER_CLASS else
                     "val" if k < TRAIN_PER_CLASS + VAL_PER_CLASS else "test")
            folder = high / split / str(target)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return low, high


@pytest.fixture(scope="session")
def base_model(digit_sets, tmp_path_factory) -> Path:
    """The user's model: the small CNN trained on every 0-4 scan, saved as model.keras."""
    low, _ = digit_sets
    dataset = scan_dataset(low, seed=SEED, val_fraction=0.0, test_fraction=0.0)
    decoded = decode_images(dataset.files("train"), SIDE)
    keras.utils.set_random_seed(SEED)
    model = small_cnn(len(dataset.class_names))
    model.compile(keras.optimizers.Adam(BASE_LEARNING_RATE), "sparse_categorical_crossentropy")
    model.fit(np.asarray(decoded.images)[decoded.rows], dataset.labels("train"),
              epochs=BASE_EPOCHS, batch_size=32, verbose=0)
    return save_model(model, tmp_path_factory.mktemp("user-model") / "model.keras",
                      dataset.class_names)


@pytest.fixture(scope="session")
def base_backbone(base_model):
    return get_backbone(base_model_name(base_model))


def test_backbone_is_read_off_the_models_graph(base_model, base_backbone):
    bb = base_backbone
    assert bb.name == f"base:{base_model.resolve()}"
    assert bb.weights == "user:" + hashlib.sha256(base_model.read_bytes()).hexdigest()[:12]
    assert (bb.image_size, bb.resizable) == (SIDE, False)
    assert (bb.feature_layer, bb.classifier_layer) == ("pool", "classes")
    assert bb.bn_layers == ("bn_0", "bn_1", "bn_2")
    assert bb.class_names == ("0", "1", "2", "3", "4")
    # One block per Conv + BN + ReLU + pool; the Rescaling before them is in none.
    assert [b.layers[:4] for b in bb.blocks] == [
        (f"conv_{i}", f"bn_{i}", f"relu_{i}", f"maxpool_{i}") for i in range(3)]
    assert bb.blocks[-1].output == "pool"
    again = get_backbone(base_model_name(base_model), image_size=SIDE)
    assert (again.name, again.weights) == (bb.name, bb.weights)
    # The rebuilt graph computes what the saved model does.
    loaded, _ = load_model(base_model)
    images = np.random.default_rng(SEED).integers(0, 256, (4, SIDE, SIDE, 3), dtype=np.uint8)
    expected = keras.Model(loaded.inputs, loaded.get_layer("pool").output).predict(images, verbose=0)
    np.testing.assert_allclose(bb.feature_extractor().predict(images, verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.exp(bb.model.predict(images, verbose=0)),
                               loaded.predict(images, verbose=0), rtol=1e-4, atol=1e-6)


def test_feature_layer_can_be_named(base_model):
    bb = get_backbone(base_model_name(base_model), feature_layer="relu_1")
    assert bb.name.endswith("#relu_1") and bb.feature_layer == "relu_1"
    assert [b.layers[0] for b in bb.blocks] == ["conv_0", "conv_1"]  # nothing past the features
    assert get_backbone(bb.name).feature_layer == "relu_1"  # the plan's name rebuilds it
    with pytest.raises(BackboneError, match=r"no layer 'nope'\. Candidates: .*pool"):
        get_backbone(base_model_name(base_model), feature_layer="nope")


def _lambda_h5(path: Path) -> Path:
    model = keras.Sequential([keras.Input((SIDE, SIDE, 3)), keras.layers.Lambda(lambda x: x * 2),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    model.save(path / "lambda.h5")
    return path / "lambda.h5"


def _gray_model(path: Path) -> Path:
    model = keras.Sequential([keras.Input((SIDE, SIDE, 1)), keras.layers.Conv2D(2, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    model.save(path / "gray.keras")
    return path / "gray.keras"


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.keras", "does not exist"),
    (lambda p: (p / "notes.txt").write_text("hi") and p / "notes.txt", "expected a Keras model file"),
    (lambda p: (p / "broken.keras").write_text("not a zip") and p / "broken.keras", "not a .keras archive"),
    (_lambda_h5, "Lambda layer"),
    (_gray_model, r"expected square RGB images"),
], ids=["missing", "suffix", "not-zip", "lambda-h5", "grayscale"])
def test_unusable_files_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(BackboneError, match=message) as info:
        get_backbone(base_model_name(make(tmp_path)))
    assert "\n" not in str(info.value)


def test_a_base_models_size_is_its_own(base_model):
    with pytest.raises(BackboneError, match="takes 32x32 images"):
        get_backbone(base_model_name(base_model), image_size=64)


@pytest.mark.parametrize("other", ["lfw-faces", "fashion-mnist"])
def test_other_digits_shift_less_than_other_images(digit_sets, base_backbone, tmp_path_factory,
                                                   other):
    from advisor.examples import available, write_dataset

    if not available(other):
        pytest.skip(f"{other} is not installed here")
    _, high = digit_sets
    digits = measure_dataset(scan_dataset(high, seed=SEED), base_backbone,
                             sample_cap=SAMPLE_CAP, seed=SEED)
    images = write_dataset(other, tmp_path_factory.mktemp(other), n=OTHER_SET_IMAGES, seed=SEED)
    far = measure_dataset(scan_dataset(images, seed=SEED), base_backbone,
                          sample_cap=SAMPLE_CAP, seed=SEED)
    print(f"mean KL vs the 0-4 model: digits 5-9 {digits.shift.mean_kl:.4f}, "
          f"{other} {far.shift.mean_kl:.4f}")
    assert digits.shift.mean_kl < far.shift.mean_kl
    # The base model's own classes name what the folders are seen as.
    assert {name for top in digits.head.top_classes.values() for name, _ in top} <= set("01234")
    rows = dict(profile_rows(digits.to_dict()))
    assert "similarity to the base model's training data (0-1)" in rows


@pytest.fixture(scope="session")
def base_run(digit_sets, base_model, tmp_path_factory):
    """advise digits 5-9 --base model.keras --regime partial, executed."""
    _, high = digit_sets
    advice = pipeline.advise(high, backbone=base_model_name(base_model), regime=Regime.PARTIAL,
                             epochs=FINE_TUNE_EPOCHS, sample_cap=SAMPLE_CAP, seed=SEED,
                             rate_search=False)  # one rate: the search has its own tests
    return advice, pipeline.execute(advice, tmp_path_factory.mktemp("base-run") / "digits-5-9")


def test_fine_tuning_the_base_beats_the_same_network_from_scratch(base_run):
    advice, result = base_run
    plan = advice.plan
    assert plan.image_size == SIDE  # a fixed-size base model is never resized
    assert "--base" in plan.reasons["backbone"]
    assert plan.frozen_blocks and plan.epochs == FINE_TUNE_EPOCHS
    # The same architecture from random weights, with the plan's optimizer, rate,
    # batch size and epochs, on the same training images; judged on the same test split.
    dataset, decoded = decode_dataset(advice.dataset, plan.image_size)
    keras.utils.set_random_seed(plan.seed)
    scratch = small_cnn(len(dataset.class_names))
    scratch.compile(keras.optimizers.SGD(plan.head_learning_rate, momentum=0.9),
                    "sparse_categorical_crossentropy", metrics=["accuracy"])
    train, test = decoded["train"], decoded["test"]
    scratch.fit(np.asarray(train.images)[train.rows], dataset.labels("train"),
                epochs=plan.epochs, batch_size=plan.batch_size, verbose=0)
    _, scratch_accuracy = scratch.evaluate(np.asarray(test.images)[test.rows],
                                           dataset.labels("test"), verbose=0)
    print(f"test accuracy on digits 5-9 ({result.evaluation.n_images} images): from the 0-4 "
          f"model {result.evaluation.accuracy:.3f}, from scratch {scratch_accuracy:.3f}")
    assert result.evaluation.accuracy > scratch_accuracy


def test_an_exported_model_is_a_base_in_turn(base_run):
    """A cars model adapted to trucks: advise's own model.keras (nested features model) as --base."""
    _, result = base_run
    exported = result.out / pipeline.MODEL_FILE
    bb = get_backbone(base_model_name(exported))
    assert bb.class_names == ("5", "6", "7", "8", "9")
    assert [b.layers[0] for b in bb.blocks] == ["conv_0", "conv_1", "conv_2"]
    assert bb.bn_layers == ("bn_0", "bn_1", "bn_2") and bb.feature_layer == "pool"
    model, _ = load_model(exported)
    images = np.random.default_rng(SEED).integers(0, 256, (4, SIDE, SIDE, 3), dtype=np.uint8)
    np.testing.assert_allclose(np.exp(bb.model.predict(images, verbose=0)),
                               model.predict(images, verbose=0), rtol=1e-4, atol=1e-6)


def _nested_model() -> keras.Model:
    """float input -> Rescaling -> Conv -> [functional: Conv + BN + residual Add] -> [Sequential:
    Conv + ReLU] -> GAP -> [functional head ending in the model's output]."""
    keras.utils.set_random_seed(SEED)
    inner_in = keras.Input((SIDE, SIDE, 8))
    x = keras.layers.Conv2D(8, 3, padding="same", name="inner_conv")(inner_in)
    x = keras.layers.BatchNormalization(name="inner_bn")(x)
    inner = keras.Model(inner_in, keras.layers.Add(name="inner_add")([x, inner_in]), name="inner")
    seq = keras.Sequential([keras.layers.Conv2D(8, 1, name="seq_conv"),
                            keras.layers.ReLU(name="seq_relu")], name="seq")
    head_in = keras.Input((8,))
    head = keras.Model(head_in, keras.layers.Dense(3, activation="softmax", name="head_dense")(head_in),
                       name="head")
    inputs = keras.Input((SIDE, SIDE, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(seq(inner(x)))
    return keras.Model(inputs, head(x), name="nested")


def test_nested_models_are_flattened_with_public_keras_api(tmp_path):
    # Functional and Sequential parts, and an output that is a nested model's, are inlined
    # (keras.models.clone_model with call_function; no private Functional API).
    model = _nested_model()
    model.save(tmp_path / "nested.keras")
    bb = get_backbone(base_model_name(tmp_path / "nested.keras"))
    names = [layer.name for layer in bb.model.layers]
    assert names[:4] == ["image", "image_to_float", "rescale", "stem_conv"]
    assert {"inner_conv", "inner_bn", "inner_add", "seq_conv", "seq_relu", "pool",
            "head_dense"} <= set(names)
    assert not any(isinstance(layer, keras.Model) for layer in bb.model.layers)
    assert (bb.feature_layer, bb.classifier_layer, bb.bn_layers) == ("pool", "head_dense", ("inner_bn",))
    images = np.random.default_rng(SEED).integers(0, 256, (4, SIDE, SIDE, 3), dtype=np.uint8)
    np.testing.assert_allclose(np.exp(bb.model.predict(images, verbose=0)),
                               model.predict(images.astype("float32"), verbose=0),
                               rtol=1e-4, atol=1e-6)


def test_a_model_without_batchnorm_gets_the_probes_only(digit_sets, tmp_path):
    _, high = digit_sets
    keras.utils.set_random_seed(SEED)
    path = save_model(small_cnn(5, batchnorm=False), tmp_path / "model.keras", list("abcde"))
    bb = get_backbone(base_model_name(path))
    assert bb.bn_layers == () and len(bb.blocks) == 3
    profile = measure_dataset(scan_dataset(high, seed=SEED), bb, sample_cap=SAMPLE_CAP, seed=SEED)
    assert profile.shift is None
    assert profile.notes == (NO_BATCHNORM_NOTE,)
    assert set(profile.similarity.components) == {"probe"}
    assert DatasetProfile.from_json(profile.to_json()) == profile
    assert ("shift map", NO_BATCHNORM_NOTE) in profile_rows(profile.to_dict())
    plan = decide(profile, backbone=bb, regime=Regime.PARTIAL)
    assert "no BatchNormalization" in plan.reasons["frozen_blocks"]


def test_cli_base_dry_run_and_a_missing_file(digit_sets, base_model, tmp_path):
    from advisor.app.cli import app, normalize_args

    _, high = digit_sets
    runner = CliRunner()
    result = runner.invoke(app, normalize_args([
        str(high), "--base", str(base_model), "--dry-run", "--out", str(tmp_path / "dry"),
        "--sample-cap", str(SAMPLE_CAP)]))
    assert result.exit_code == 0, result.output
    assert "Similarity to the base model's training data" in result.output
    for args, message in [(["--base", str(tmp_path / "missing.keras")], "does not exist"),
                          (["--feature-layer", "pool"], "needs --base")]:
        result = runner.invoke(app, normalize_args([
            str(high), *args, "--dry-run", "--out", str(tmp_path / "bad")]))
        assert result.exit_code == 2
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
