"""Tests of the strategies on small real data with the real pretrained MobileNetV2.

Each regime is fitted once per dataset (scikit-learn digits, 300 images at
64 px; the 25 packaged colour photos at 96 px) and shared by the tests below;
the training loop's guards are tested on small fakes, as Keras'
``early_stopping_test.py`` does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import strategies
from advisor.backbones import get_backbone
from advisor.backbones.model_file import ModelFileError, load_class_names, save_model
from advisor.data import scan_dataset
from advisor.data.decode_cache import decode_images
from advisor.errors import DatasetError, PlanError
from advisor.examples import available, write_dataset
from tests.strategies.fakes import blobs, fake_plan, two_layer_model
from advisor.decide.training import (
    plan_backbone_learning_rate,
    plan_head_learning_rate,
    plan_optimizer,
    plan_select_on,
)
from advisor.plan import Plan, Regime, Task
from strategies import (
    LabelledImages,
    NotFittedError,
    get_strategy,
    list_strategies,
    register_strategy,
)
from strategies.callbacks import TrainingGuard
from strategies.embeddings import CACHE_SUBDIR, Embedder
from strategies.graph import FEATURES_MODEL, OUTPUT_LAYER, build_head
from strategies.optimizers import learning_rate_schedule
from strategies.training import train

pytestmark = pytest.mark.slow

#: Dataset -> (writer name, subsample size, image size, augmentation of the plans).
DATASETS = {
    "digits": ("digits", 300, 64, ()),
    "photos": ("photos", None, 96, ("flip",)),
}
#: ``partial`` trains the blocks from this one on (the last three and the head).
PARTIAL_CUT = "block_14"


def tree_snapshot(root: Path) -> dict[str, str]:
    """Return {relative path: sha256 + mode + mtime} of every file under `root`."""
    snapshot = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        snapshot[str(path.relative_to(root))] = f"{digest}|{stat.st_mode}|{stat.st_mtime_ns}"
    return snapshot


def make_plan(regime: Regime, backbone, **overrides) -> Plan:
    """A small, fast plan of `regime` for `backbone` (what decide.py would write)."""
    names = tuple(block.name for block in backbone.blocks)
    frozen = {
        Regime.SVM: names,
        Regime.LAST_LAYER: names,
        Regime.PARTIAL: names[: names.index(PARTIAL_CUT)],
        Regime.FULL: (),
    }[regime]
    # The advisor's own optimizer and rates: the fine-tuning tests judge its defaults.
    head_rate = plan_head_learning_rate(regime, Task.CLASSIFICATION)[0]
    settings = dict(
        regime=regime, backbone=backbone.name, image_size=backbone.image_size,
        frozen_blocks=frozen, feature_layer=backbone.feature_layer,
        optimizer=plan_optimizer(regime, Task.CLASSIFICATION)[0], head_learning_rate=head_rate,
        backbone_learning_rate=plan_backbone_learning_rate(regime, head_rate)[0],
        batch_size=32, head_epochs=30, epochs=2 if regime.fine_tunes_backbone else 0,
        warmup_epochs=1, patience=3, augmentation=(), class_weights=None,
        svm_c_grid=(0.01, 0.1, 1.0), seed=0, select_on=plan_select_on(regime, Task.CLASSIFICATION)[0],
    )
    settings.update(overrides)
    return Plan(**settings)


class Split:
    """One dataset decoded at one size: train/val/test LabelledImages and the folder."""

    def __init__(self, name: str, folder: Path, image_size: int,
                 augmentation: tuple[str, ...]) -> None:
        self.name = name
        self.folder = folder
        self.augmentation = augmentation
        self.snapshot = tree_snapshot(folder)
        dataset = scan_dataset(folder, seed=0)
        self.class_names = list(dataset.class_names)
        self.parts = {}
        for split in ("train", "val", "test"):
            decoded = decode_images(dataset.files(split), image_size)
            self.parts[split] = LabelledImages(decoded.images, dataset.labels(split), decoded.rows)
        self.backbone = get_backbone("mobilenet_v2", image_size=image_size)
        self.backbone_weights = [w.copy() for w in self.backbone.model.get_weights()]
        self.fitted: dict[Regime, strategies.Strategy] = {}

    @property
    def test_images(self) -> np.ndarray:
        test = self.parts["test"]
        return np.asarray(test.images[test.rows])

    def strategy(self, regime: Regime) -> strategies.Strategy:
        """Fit `regime` once and return it."""
        if regime not in self.fitted:
            keras.utils.set_random_seed(0)
            plan = make_plan(regime, self.backbone, augmentation=self.augmentation)
            strategy = get_strategy(regime)(plan=plan, backbone=self.backbone)
            self.fitted[regime] = strategy.fit(self.parts["train"], self.parts["val"],
                                               class_names=self.class_names)
        return self.fitted[regime]


#: The regimes of the JAX slice (``make test`` runs ``-m jax_slice`` under ``KERAS_BACKEND=jax``).
JAX_SLICE_REGIMES = (Regime.SVM, Regime.PARTIAL)


def regime_params(regimes=tuple(Regime)):
    """``regimes`` as parameters, ``svm`` and ``partial`` marked for the JAX slice."""
    return [pytest.param(r, id=r.value, marks=[pytest.mark.jax_slice] if r in JAX_SLICE_REGIMES else [])
            for r in regimes]


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=[pytest.mark.photos_set] if name == "photos" else [])
    for name in DATASETS])
def split(request, tmp_path_factory, session_cache):
    name, n, image_size, augmentation = DATASETS[request.param]
    if not available(name):
        pytest.skip(f"the {name} source is not installed")
    folder = write_dataset(name, tmp_path_factory.mktemp(request.param), n=n, seed=0)
    return Split(request.param, folder, image_size, augmentation)


@pytest.fixture(scope="module")
def reloaded(split, tmp_path_factory):
    """Save every regime's exported model; reload all in ONE plain-Keras subprocess."""
    folder = tmp_path_factory.mktemp("export")
    images = split.test_images
    np.save(folder / "images.npy", images)
    expected = {}
    for regime in _reloaded_regimes():
        strategy = split.strategy(regime)
        model = strategy.export_model()
        save_model(model, folder / f"{regime.value}.keras", strategy.class_names_)
        expected[regime] = strategy.predict_proba(images)
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        images = np.load("images.npy")
        for name in {[r.value for r in _reloaded_regimes()]!r}:
            model = keras.saving.load_model(name + ".keras")  # safe mode
            np.save(name + ".npy", model.predict(images, verbose=0))
        assert not any(m.split(".")[0] in ("advisor", "strategies") for m in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, expected, {r: np.load(folder / f"{r.value}.npy") for r in _reloaded_regimes()}


def _reloaded_regimes() -> tuple[Regime, ...]:
    """Every regime under TensorFlow; the JAX slice's regimes under another backend."""
    return tuple(Regime) if keras.backend.backend() == "tensorflow" else JAX_SLICE_REGIMES


# --------------------------------------------------------------------------- #
# Registry and contract
# --------------------------------------------------------------------------- #
def test_registry_has_the_four_regimes():
    assert list_strategies() == tuple(r.value for r in Regime)
    for regime in Regime:
        assert get_strategy(regime) is get_strategy(regime.value)


def test_unknown_regime_lists_the_known_ones():
    with pytest.raises(PlanError, match="Known: svm, last-layer, partial, full"):
        get_strategy("linear-probe")


def test_a_regime_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy(Regime.SVM)(type("Again", (), {}))


def test_init_only_stores_and_predict_before_fit_fails():
    backbone = get_backbone("mobilenet_v2", image_size=32, weights=None)
    plan = make_plan(Regime.LAST_LAYER, backbone)
    strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)
    assert strategy.get_params() == {"plan": plan, "backbone": backbone}
    assert not [name for name in vars(strategy) if name.endswith("_")]
    with pytest.raises(NotFittedError, match="call fit first"):
        strategy.predict(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(NotFittedError, match="call fit first"):
        strategy.export_model()


def test_labelled_images_reject_mismatches():
    images = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(DatasetError, match="one label per used row"):
        LabelledImages(images, np.array([0, 1]), np.array([0, 1, 2]))
    with pytest.raises(DatasetError, match="uint8"):
        LabelledImages(images.astype(np.float32), np.zeros(4, int))
    with pytest.raises(DatasetError, match="rows in"):
        LabelledImages(images, np.array([0]), np.array([9]))


# --------------------------------------------------------------------------- #
# Every regime on real data
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("regime", regime_params())
def test_export_reloads_with_identical_predictions(split, reloaded, regime):
    folder, expected, loaded = reloaded
    np.testing.assert_array_equal(loaded[regime].argmax(-1), expected[regime].argmax(-1))
    np.testing.assert_allclose(loaded[regime], expected[regime], atol=1e-5)  # graph vs eager
    np.testing.assert_allclose(expected[regime].sum(-1), 1.0, atol=1e-5)
    assert load_class_names(folder / f"{regime.value}.keras") == tuple(split.class_names)
    model = keras.saving.load_model(folder / f"{regime.value}.keras")
    assert model.inputs[0].dtype == "uint8"
    assert model.layers[-1].name == OUTPUT_LAYER


#: The other backend an exported model must load under (TensorFlow <-> JAX).
OTHER_BACKEND = {"tensorflow": "jax", "jax": "tensorflow"}.get(keras.backend.backend())


@pytest.mark.jax_slice
@pytest.mark.skipif(OTHER_BACKEND is None or importlib.util.find_spec(OTHER_BACKEND) is None,
                    reason=f"the other backend ({OTHER_BACKEND}) is not installed")
def test_export_reloads_under_the_other_backend(split, reloaded):
    # A model.keras written under TensorFlow loads and predicts the same under JAX, and the
    # other way round: the file holds built-in layers only, no backend-specific code.
    folder, expected, _ = reloaded
    regimes = [r.value for r in JAX_SLICE_REGIMES]
    script = textwrap.dedent(f"""
        import numpy as np, keras
        assert keras.backend.backend() == {OTHER_BACKEND!r}
        images = np.load("images.npy")
        for name in {regimes!r}:
            model = keras.saving.load_model(name + ".keras")  # safe mode
            np.save(name + "-other.npy", model.predict(images, verbose=0))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True,
                          timeout=300, env=os.environ | {"KERAS_BACKEND": OTHER_BACKEND})
    assert done.returncode == 0, done.stderr[-3000:]
    for regime in JAX_SLICE_REGIMES:
        other = np.load(folder / f"{regime.value}-other.npy")
        np.testing.assert_array_equal(other.argmax(-1), expected[regime].argmax(-1))
        np.testing.assert_allclose(other, expected[regime], atol=1e-4)


@pytest.mark.parametrize("regime", regime_params())
def test_accuracy_on_digits_well_above_chance(split, regime):
    strategy = split.strategy(regime)
    test = split.parts["test"]
    accuracy = float(np.mean(strategy.predict(split.test_images) == test.labels))
    print(f"{split.folder.name} {regime.value}: test accuracy {accuracy:.3f}",
          {k: (v.get("best_epoch"), v.get("notes")) for k, v in strategy.history_.items()
           if isinstance(v, dict) and "best_epoch" in v})
    if split.name == "digits":  # the photos' test split has 4 images: no claim
        assert accuracy > 0.8


@pytest.mark.parametrize("regime", [Regime.SVM, Regime.PARTIAL], ids=["svm", "partial"])
def test_predicting_rows_of_a_memory_map_matches_predicting_a_copy(split, regime):
    strategy = split.strategy(regime)
    test = split.parts["test"]
    rows = test.rows[::-1][:5]  # any order, straight from the decode cache's memory map
    expected = strategy.predict_proba(np.asarray(test.images[rows]))
    np.testing.assert_allclose(strategy.predict_proba(test.images, rows=rows), expected, atol=1e-6)
    np.testing.assert_array_equal(strategy.predict(test.images, rows=rows), expected.argmax(-1))
    assert strategy.predict_proba(test.images, rows=rows[:0]).shape == (0, len(split.class_names))


@pytest.mark.parametrize("regime", list(Regime), ids=[r.value for r in Regime])
def test_backbone_weights_change_only_where_the_plan_trains(split, regime):
    strategy = split.strategy(regime)
    features = strategy.model_.get_layer("features")
    original = split.backbone.model
    changed_blocks = set()
    for block in split.backbone.blocks:
        for name in block.layers:
            for new, old in zip(features.get_layer(name).weights, original.get_layer(name).weights):
                if not np.array_equal(np.asarray(new), np.asarray(old)):
                    changed_blocks.add(block.name)
    trained = {b.name for b in split.backbone.blocks} - set(strategy.plan.frozen_blocks)
    for block in split.backbone.blocks:  # trainable set as planned; BatchNorm always frozen
        for layer in (features.get_layer(name) for name in block.layers):
            if layer.weights:
                assert layer.trainable == (block.name in trained and regime.fine_tunes_backbone
                                           and not isinstance(layer, keras.layers.BatchNormalization))
    if regime.fine_tunes_backbone and strategy.history_["fine_tune"]["best_epoch"] > 0:
        assert changed_blocks == trained  # an epoch was kept: every trained block moved
    else:
        assert changed_blocks == set()  # frozen, or the guard kept the probe
    for name in split.backbone.bn_layers:  # moving statistics: frozen in every regime
        layer, old = features.get_layer(name), original.get_layer(name)
        assert np.array_equal(np.asarray(layer.moving_mean), np.asarray(old.moving_mean))
        assert np.array_equal(np.asarray(layer.moving_variance), np.asarray(old.moving_variance))
    # The backbone passed in is never modified.
    for new, old in zip(original.get_weights(), split.backbone_weights):
        assert np.array_equal(new, old)


def test_hidden_head_from_the_plan_trains_exports_and_reloads(split, tmp_path):
    if split.name != "digits":
        pytest.skip("one dataset is enough for the head's plumbing")
    keras.utils.set_random_seed(0)
    plan = make_plan(Regime.PARTIAL, split.backbone, epochs=1, head_units=(32,),
                     head_dropout=0.5, head_batchnorm=True)
    strategy = get_strategy(plan.regime)(plan=plan, backbone=split.backbone).fit(
        split.parts["train"], split.parts["val"], class_names=split.class_names)
    names = [layer.name for layer in strategy.model_.layers]
    assert names[-5:] == ["head_dense_1", "head_batchnorm_1", "head_relu_1", "head_dropout_1",
                          OUTPUT_LAYER]
    # The fine-tune phase started from the head trained on embeddings (LP-FT), not a random one.
    head, fine = strategy.history_["head"], strategy.history_["fine_tune"]
    assert fine["start"]["val_loss"] <= head["start"]["val_loss"]
    # ... the very head: on the images it scores what it scored on their embeddings.
    assert fine["start"]["val_loss"] == pytest.approx(head["best_val_loss"], rel=1e-3)
    expected = strategy.predict_proba(split.test_images)
    accuracy = float(np.mean(expected.argmax(-1) == split.parts["test"].labels))
    assert accuracy > 0.5, accuracy  # 5x chance; an MLP head on 200 images is no better than a linear one
    save_model(strategy.export_model(), tmp_path / "mlp.keras", strategy.class_names_)
    from advisor.backbones.model_file import load_model

    loaded, _ = load_model(tmp_path / "mlp.keras")  # safe mode: built-in layers only
    np.testing.assert_allclose(loaded.predict(split.test_images, verbose=0), expected, atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_freeze_blocks_freezes_the_cut_under_jax_too():
    # Keras passes a container's trainable flag down to its layers on JAX, not on
    # TensorFlow: freezing must set the container first (a bug found under JAX).
    script = textwrap.dedent("""
        from advisor.backbones import get_backbone
        from strategies.graph import FEATURES_MODEL, build_classifier, freeze_blocks
        bb = get_backbone("mobilenet_v2", image_size=32, weights=None)
        model = build_classifier(bb, feature_layer=bb.feature_layer, n_classes=3)
        freeze_blocks(model, bb, [b.name for b in bb.blocks[:-2]])
        features = model.get_layer(FEATURES_MODEL)
        assert not features.get_layer("Conv1").trainable
        assert not any(l.trainable for l in features.layers if "BatchNormalization" in type(l).__name__)
        assert any(l.trainable for l in features.layers)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=os.environ | {"KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr[-3000:]


def test_build_head_layers_match_the_classifier_head():
    backbone = get_backbone("mobilenet_v2", image_size=32, weights=None)
    kwargs = {"head_units": (8, 4), "head_dropout": 0.25, "head_batchnorm": False}
    from strategies.graph import build_classifier, copy_head_weights

    head = build_head(backbone.feature_dim, 3, **kwargs)
    model = build_classifier(backbone, feature_layer=backbone.feature_layer, n_classes=3, **kwargs)
    assert [l.name for l in head.layers[1:]] == [l.name for l in model.layers[-len(head.layers) + 1:]]
    copy_head_weights(head, model)
    for layer in head.layers[1:]:
        for a, b in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_fine_tuning_is_never_worse_than_the_probe_on_validation(split):
    for regime in (Regime.PARTIAL, Regime.FULL):
        history = split.strategy(regime).history_["fine_tune"]
        assert history["selected_on"] == "val_calibrated_loss"  # the advisor's default
        assert history["best_val_loss"] <= history["start"]["val_calibrated_loss"]
        assert history["start"]["val_loss"] == pytest.approx(
            split.strategy(regime).history_["head"]["best_val_loss"], rel=1e-3, abs=1e-4)


def test_fine_tuning_at_the_default_rates_beats_its_probe_start_without_a_retry(split):
    # A run that silently returned its linear-probe start (best epoch 0), or that
    # only the divergence guard's retry saved, would pass the test above.
    if split.name != "digits":
        pytest.skip("the photos' validation split has 4 images: no claim")
    for regime in (Regime.PARTIAL, Regime.FULL):
        history = split.strategy(regime).history_["fine_tune"]
        assert not history["retried"], history["notes"]
        assert history["best_epoch"] > 0, history["notes"]
        assert history["best_val_loss"] < history["start"][history["selected_on"]]
    partial = split.strategy(Regime.PARTIAL).history_["fine_tune"]
    assert max(e["val_accuracy"] for e in partial["epochs"]) >= partial["start"]["val_accuracy"]


def test_exported_svm_predicts_what_scikit_learn_predicted(split):
    strategy = split.strategy(Regime.SVM)
    test = split.parts["test"]
    embeddings = Embedder(split.backbone, strategy.plan.feature_layer).embed(
        test.images, rows=test.rows)
    exported = keras.ops.convert_to_numpy(strategy.export_model()(split.test_images)).argmax(-1)
    np.testing.assert_array_equal(exported, strategy.svm_.predict(embeddings))
    assert strategy.history_["svm"]["best_c"] in strategy.plan.svm_c_grid


@pytest.mark.parametrize("regime", [Regime.SVM, Regime.LAST_LAYER], ids=["svm", "last-layer"])
def test_a_frozen_model_scores_cached_embeddings_without_a_forward_pass(split, regime, monkeypatch, caplog):
    # A frozen model (features + head) predicts rows whose embeddings are cached as its head on them,
    # checked against the model on a few rows; rows not cached go through the model (issue 18).
    import strategies.base as base

    assert split.strategy(Regime.PARTIAL).embedder_ is None  # fine-tuned features: the model alone
    strategy, test = split.strategy(regime), split.parts["test"]
    assert isinstance(test.images, np.memmap)
    through_model = keras.ops.convert_to_numpy(strategy.model_(np.asarray(test.images[test.rows])))
    forwarded = []
    real = base.predict_batches

    def counted(model, batches):
        out = real(model, batches)
        forwarded.append(len(out))
        return out

    monkeypatch.setattr(base, "predict_batches", counted)
    fewer = test.rows[:-1]  # rows never embedded: the model predicts them
    np.testing.assert_allclose(strategy.predict_proba(test.images, rows=fewer), through_model[:-1], atol=1e-4)
    assert forwarded == [len(fewer)]
    strategy.embedder_.embed(test.images, rows=test.rows)  # cached (an earlier prediction, the measuring pass)
    forwarded.clear()
    np.testing.assert_allclose(strategy.predict_proba(test.images, rows=test.rows), through_model, atol=1e-4)
    assert forwarded == []
    # Embeddings that disagree with the model (a stale cache): the model predicts every row.
    monkeypatch.setattr(strategy.embedder_, "lookup", lambda images, rows: np.zeros((len(rows), 1280), "float32"))
    with caplog.at_level("WARNING", logger="strategies.base"):
        again = strategy.predict_proba(test.images, rows=test.rows)
    np.testing.assert_allclose(again, through_model, atol=1e-4)
    assert forwarded == [len(test.rows)] and "predicting with the model" in caplog.text
    # An in-memory array (no decode-cache file to key a cache by) goes through the model alone.
    forwarded.clear()
    strategy.predict_proba(np.asarray(test.images[test.rows]))
    assert forwarded == [len(test.rows)]


def test_an_svm_on_several_layers_exports_the_standardisation_in_its_output_layer(split, tmp_path):
    from advisor.measure.forward import probe_blocks
    from advisor.measure.layer_features import LayerStandardizer

    backbone = split.backbone
    layers = (*(b.output for b in probe_blocks(backbone)), backbone.feature_layer)
    plan = make_plan(Regime.SVM, backbone, feature_layers=layers)
    strategy = get_strategy(Regime.SVM)(plan=plan, backbone=backbone).fit(
        split.parts["train"], split.parts["val"], class_names=split.class_names)
    embedder = Embedder(backbone, layers)
    assert strategy.history_["embed"]["layers"] == list(layers)
    assert strategy.history_["embed"]["dim"] == sum(embedder.widths) > 1280
    train, test = split.parts["train"], split.parts["test"]
    standardizer = LayerStandardizer(embedder.widths).fit(embedder.embed(train.images, rows=train.rows))
    expected = strategy.svm_.predict(standardizer.transform(embedder.embed(test.images, rows=test.rows)))
    model = strategy.export_model()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(split.test_images)).argmax(-1), expected)
    save_model(model, tmp_path / "svm.keras", strategy.class_names_)
    reloaded = keras.saving.load_model(tmp_path / "svm.keras")  # safe mode: built-in layers only
    np.testing.assert_allclose(reloaded.predict(split.test_images, verbose=0),
                               strategy.predict_proba(split.test_images), atol=1e-5)
    assert (strategy.predict(test.images, rows=test.rows) == test.labels).mean() > 0.5


def test_the_dataset_tree_is_unchanged(split):
    for regime in Regime:
        split.strategy(regime)
    assert tree_snapshot(split.folder) == split.snapshot


def test_embeddings_are_cached_per_rows(split, session_cache):
    train = split.parts["train"]
    embedder = Embedder(split.backbone)
    first = embedder.embed(train.images, rows=train.rows[:8])
    entries = set((session_cache / CACHE_SUBDIR).glob("*.npy"))
    again = embedder.embed(train.images, rows=train.rows[:8])
    np.testing.assert_array_equal(first, again)
    assert set((session_cache / CACHE_SUBDIR).glob("*.npy")) == entries
    embedder.embed(train.images, rows=train.rows[1:9])
    assert len(set((session_cache / CACHE_SUBDIR).glob("*.npy"))) == len(entries) + 1
    reversed_rows = embedder.embed(train.images, rows=train.rows[:8][::-1])
    np.testing.assert_allclose(reversed_rows, first[::-1], atol=1e-5)


# --------------------------------------------------------------------------- #
# The training loop's guards, on small fakes
# --------------------------------------------------------------------------- #
def test_divergence_stops_restores_and_retries_once_at_a_lower_backbone_rate():
    keras.utils.set_random_seed(0)
    x, y = blobs()
    model = two_layer_model()
    start = [w.copy() for w in model.get_weights()]
    body = model.get_layer("body").trainable_variables
    history = train(model, fake_plan(), (x, y), blobs(1), phase="fine-tune",
                    learning_rate=1e6, epochs=3, scaled_variables=body, rate_factor=1.0)
    assert history["retried"] is True
    assert [a["backbone_learning_rate"] for a in history["attempts"]] == [1e6, pytest.approx(1e5)]
    assert all(a["diverged"] for a in history["attempts"])
    assert "retried once at a 10x lower backbone learning rate" in history["notes"][0]
    assert "the retry diverged too" in history["notes"][1]
    assert not any("no epoch beat" in note for note in history["notes"]), "only for a kept attempt"
    # Both attempts diverged: the starting state (the probe) comes back bit for bit.
    for new, old in zip(model.get_weights(), start):
        np.testing.assert_array_equal(new, old)


def test_the_starting_state_is_the_epoch_zero_candidate():
    keras.utils.set_random_seed(0)
    x, y = blobs()
    model = two_layer_model()
    train(model, fake_plan(), (x, y), blobs(1), phase="head", learning_rate=0.1, epochs=20)
    trained = [w.copy() for w in model.get_weights()]
    # Fine-tuning on shuffled labels cannot beat the trained state on validation.
    noisy = np.random.default_rng(2).permutation(y)
    history = train(model, fake_plan(), (x, noisy), blobs(1), phase="fine-tune",
                    learning_rate=0.05, epochs=3)
    assert history["best_epoch"] == 0
    for new, old in zip(model.get_weights(), trained):
        np.testing.assert_array_equal(new, old)


def test_scaled_variables_learn_at_the_backbone_rate():
    keras.utils.set_random_seed(0)
    x, y = blobs()
    model = two_layer_model()
    body_before = [w.copy() for w in model.get_layer("body").get_weights()]
    head_before = [w.copy() for w in model.get_layer(OUTPUT_LAYER).get_weights()]
    train(model, fake_plan(patience=5), (x, y), blobs(1), phase="fine-tune", learning_rate=0.1,
          epochs=2, scaled_variables=model.get_layer("body").trainable_variables, rate_factor=0.0)
    for new, old in zip(model.get_layer("body").get_weights(), body_before):
        np.testing.assert_array_equal(new, old)
    assert not np.array_equal(model.get_layer(OUTPUT_LAYER).get_weights()[0], head_before[0])


def test_several_steps_per_call_on_arrays_train_the_same_weights(monkeypatch):
    import strategies.training as training

    trained = []
    for steps in (1, 4):
        monkeypatch.setattr(training, "ARRAY_STEPS_PER_EXECUTION", steps)
        keras.utils.set_random_seed(0)
        x, y = blobs()
        model = two_layer_model()
        train(model, fake_plan(batch_size=10), (x, y), blobs(1), phase="head",
              learning_rate=0.1, epochs=3)
        assert model.steps_per_execution == steps
        trained.append(model.get_weights())
    for a, b in zip(*trained):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_warmup_then_cosine_decay():
    schedule = learning_rate_schedule(1e-3, steps_per_epoch=10, epochs=5, warmup_epochs=1)
    rates = [float(schedule(step)) for step in (0, 5, 10, 30, 50)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(5e-4)
    assert rates[2] == pytest.approx(1e-3) and rates[2] > rates[3] > rates[4]
    assert rates[4] == pytest.approx(0.0, abs=1e-9)


def test_guard_stops_on_nan_at_once():
    guard = TrainingGuard(start_loss=0.5, patience=3)
    guard.set_model(build_head(4, 2))
    guard.on_train_begin()
    guard.on_epoch_begin(0)
    guard.on_train_batch_end(0, {"loss": float("nan")})
    assert guard.diverged and guard.model.stop_training


def test_save_model_rejects_wrong_names_and_load_needs_them(tmp_path):
    model = build_head(4, 3)
    with pytest.raises(ModelFileError, match="one name per class"):
        save_model(model, tmp_path / "m.keras", ["a", "b"])
    model.save(tmp_path / "plain.keras")
    with pytest.raises(ModelFileError, match="class_names.json"):
        load_class_names(tmp_path / "plain.keras")
    save_model(model, tmp_path / "named.keras", ["a", "b", "c"])
    assert load_class_names(tmp_path / "named.keras") == ("a", "b", "c")
    assert keras.saving.load_model(tmp_path / "named.keras").output.shape == (None, 3)


def test_a_frozen_model_is_exported_as_it_is_and_a_fine_tuned_one_copied(split):
    svm = split.strategy(Regime.SVM)
    assert svm.export_model() is svm.model_  # float32, uncompiled: nothing to copy
    full = split.strategy(Regime.FULL)
    exported = full.export_model()
    assert exported is not full.model_ and not exported.compiled
    assert all(layer.dtype_policy.name == "float32" for layer in exported.layers)


def test_a_plan_that_trains_batchnorm_trains_it_and_a_fine_tuning_one_keeps_it_frozen(digits_dir, monkeypatch):
    # The `scratch` recipe of the advice-quality benchmark: random weights, BatchNormalization
    # trained. Plumbing only (random weights, one step): it claims nothing about accuracy.
    from advisor.data import decode_dataset, scan_dataset
    from strategies import base

    backbone = get_backbone("mobilenet_v2", image_size=32, weights=None)
    dataset, decoded = decode_dataset(scan_dataset(digits_dir), backbone.image_size)
    train, val = (LabelledImages(decoded[s].images, dataset.labels(s), decoded[s].rows)
                  for s in ("train", "val"))
    first = np.unique(train.labels, return_index=True)[1]
    train = LabelledImages(train.images, train.labels[first], train.rows[first])  # 10 images
    trained = {}

    def recording(model, backbone, frozen_blocks, **kwargs):
        variables = base_freeze(model, backbone, frozen_blocks, **kwargs)
        features = model.get_layer(FEATURES_MODEL)
        trained[kwargs["train_batchnorm"]] = (len(variables), features.get_layer("bn_Conv1").trainable)
        return variables

    base_freeze = base.freeze_blocks
    monkeypatch.setattr(base, "freeze_blocks", recording)
    for train_batchnorm in (True, False):
        plan = make_plan(Regime.FULL, backbone, batch_size=10, head_epochs=1, epochs=1,
                         warmup_epochs=0, rate_scales=(1.0,), train_batchnorm=train_batchnorm)
        strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)
        strategy.fit(train, val, class_names=dataset.class_names)
        assert strategy.export_model().inputs[0].dtype == "uint8"
    assert trained == {True: (156, True), False: (52, False)}  # 52 kernels, + gamma and beta of 52 BN
