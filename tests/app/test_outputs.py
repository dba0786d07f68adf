"""Run outputs: the atomic/resumable run folder, the model file format, predict, metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from advisor.app.evaluation import evaluate, most_confident_mistakes
from advisor.app.predict import predict_files
from advisor.app.run_folder import OutputExistsError, default_out_dir, open_run_folder
from advisor.backbones.model_file import ModelFileError, load_class_names, load_model, save_model
from advisor.errors import DatasetError


def tiny_classifier(size: int = 16, n_classes: int = 3) -> keras.Model:
    """A plumbing-only model (random weights): uint8 images -> probabilities."""
    inputs = keras.Input((size, size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="class_probabilities")(x)
    return keras.Model(inputs, outputs)


def test_run_folder_is_invisible_until_committed(tmp_path):
    out = tmp_path / "run"
    folder = open_run_folder(out)
    folder.write_json("report.json", {"b": 1, "a": 2})
    assert not out.exists() and not folder.resumed
    folder.commit()
    assert json.loads((out / "report.json").read_text()) == {"a": 2, "b": 1}
    assert not folder.partial.exists()


def test_finished_run_is_not_overwritten_without_permission(tmp_path):
    out = tmp_path / "run"
    open_run_folder(out).commit()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        open_run_folder(out)
    folder = open_run_folder(out, overwrite=True)
    folder.write_text("new.txt", "x")
    folder.commit()
    assert (out / "new.txt").exists()


def test_interrupted_run_resumes(tmp_path):
    out = tmp_path / "run"
    first = open_run_folder(out)
    first.work.mkdir(parents=True)
    (first.work / "backup").write_text("epoch 1")
    first.release()  # the interrupted run's process is gone, and its lock with it
    second = open_run_folder(out)  # the same command again, after an interruption
    assert second.resumed and (second.work / "backup").read_text() == "epoch 1"


def test_default_out_dir_is_deterministic(tmp_path):
    assert default_out_dir(tmp_path / "flowers", dry_run=False).name == "flowers"
    assert default_out_dir(tmp_path / "flowers", dry_run=True).name == "flowers-advice"


def test_model_file_round_trip_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_classifier()
    path = save_model(model, tmp_path / "model.keras", ["cat", "dog", "cow"])
    assert load_class_names(path) == ("cat", "dog", "cow")
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    expected = model.predict(images, verbose=0)
    code = ("import keras, numpy as np, sys; m = keras.saving.load_model(sys.argv[1]); "
            "np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))")
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-6)
    loaded, names = load_model(path)
    assert names == ("cat", "dog", "cow")


def test_model_file_errors_are_one_line(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.keras")
    (tmp_path / "bad.keras").write_text("not a zip")
    with pytest.raises(ModelFileError, match="not a .keras"):
        load_model(tmp_path / "bad.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(ModelFileError, match="class_names"):
        load_model(tmp_path / "plain.keras")


def test_predict_skips_bad_files_and_lists_them(tmp_path):
    path = save_model(tiny_classifier(), tmp_path / "model.keras", ["a", "b", "c"])
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(images / "red.png")
    (images / "broken.jpg").write_bytes(b"not an image")
    result = predict_files(path, [images], k=2)
    assert [r.path.name for r in result.rows] == ["red.png"]
    assert len(result.rows[0].classes) == 2
    assert [p.name for p, _ in result.skipped] == ["broken.jpg"]
    assert "path,rank,class,probability" in result.to_csv()
    assert json.loads(json.dumps(result.to_dict()))["skipped"][0]["reason"]
    with pytest.raises(DatasetError, match="does not exist"):
        predict_files(path, [tmp_path / "nope.png"])


def test_evaluation_figures():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    result = evaluate(y, p, ["a", "b"])
    assert result.accuracy == 0.75
    assert result.confusion == ((1, 1), (0, 2))
    assert result.per_class["b"]["recall"] == 1.0
    assert type(result).from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert most_confident_mistakes(y, p) == [1]


def test_profile_key_changes_when_a_file_changes(tmp_path):
    import shutil

    from advisor.data import scan_dataset
    from advisor.examples import write_dataset
    from advisor.measure.cache import profile_key

    data = tmp_path / "digits"
    shutil.copytree(write_dataset("digits", n=40, root=tmp_path / "src"), data)
    options = dict(backbone="mobilenet_v2", image_size=224, weights="imagenet", sample_cap=40, seed=0)
    key = profile_key(scan_dataset(data, seed=0), **options)
    assert profile_key(scan_dataset(data, seed=0), **options) == key
    assert profile_key(scan_dataset(data, seed=0), **options | {"sample_cap": 41}) != key
    victim = next((data / "3").glob("*.png"))
    Image.new("L", (8, 8), 255).save(victim)
    assert profile_key(scan_dataset(data, seed=0), **options) != key


def test_profiles_measured_before_a_new_measurement_are_measured_again(tmp_path, monkeypatch):
    from advisor.data import scan_dataset
    from advisor.examples import write_dataset
    from advisor.measure import cache

    dataset = scan_dataset(write_dataset("digits", n=40, root=tmp_path / "src"), seed=0)
    options = dict(backbone="mobilenet_v2", image_size=224, weights="imagenet", sample_cap=40, seed=0)
    key = cache.profile_key(dataset, **options)
    monkeypatch.setattr(cache, "MEASUREMENT_VERSION", cache.MEASUREMENT_VERSION + 1)
    assert cache.profile_key(dataset, **options) != key
