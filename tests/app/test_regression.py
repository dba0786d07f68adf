"""Regression targets (issue 8): ``advise DATA_DIR --targets targets.csv``.

Real data: scikit-learn's digit scans written as a FLAT folder of PNGs, with the
digit's value as the numeric target. Every fit must beat predicting the
training mean on the held-out split.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from advisor.app.cli import app, normalize_args
from advisor.data import Dataset
from advisor.data.targets import quantile_bins, read_targets, scan_targets
from advisor.errors import DatasetError
from advisor.plan import Plan

N_DIGITS = 300
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, normalize_args([str(a) for a in args]))


def fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(f"{path.relative_to(root)}|{path.stat().st_mtime_ns}".encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def flat_digits(tmp_path_factory) -> Path:
    """N_DIGITS real 8x8 digit scans as ``<n>.png`` in one folder, ``targets.csv`` = digit value."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("digits-flat")
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    picked = np.sort(np.random.default_rng(0).permutation(len(digits.target))[:N_DIGITS])
    rows = ["file,digit"]
    for i in picked:
        Image.fromarray(pixels[i]).save(root / f"{i:04d}.png")
        rows.append(f"{i:04d}.png,{digits.target[i]}")
    (root / "targets.csv").write_text("\n".join(rows) + "\n")
    return root


def test_targets_csv_header_is_detected_and_bad_rows_are_listed(tmp_path):
    (tmp_path / "plain.csv").write_text("a.png,1.5\nsub/b.png,-2\n")
    plain = read_targets(tmp_path / "plain.csv", tmp_path)
    assert not plain.has_header and plain.target_name == "target"
    assert plain.rows == (("a.png", 1.5), ("sub/b.png", -2.0))

    (tmp_path / "t.csv").write_text(
        "image;brightness\n./a.png;0.5\n/etc/passwd;1\n../up.png;2\nb.png;bright\n"
        "c.png;nan\na.png;3\nlonely\n\nd.png;7\n")
    table = read_targets(tmp_path / "t.csv", tmp_path)
    assert table.has_header and table.target_name == "brightness"
    assert table.rows == (("a.png", 0.5), ("d.png", 7.0))
    reasons = {s.path: s.reason for s in table.skipped}
    assert "absolute path" in reasons["/etc/passwd"]
    assert "leaves DATA_DIR" in reasons["../up.png"]
    assert "not a finite number" in reasons["b.png"] and "not a finite number" in reasons["c.png"]
    assert "listed twice" in reasons["a.png"] and "line 2" in reasons["a.png"]
    assert "expected 2 columns" in reasons["lonely"]


def test_quantile_bins_survive_ties():
    labels, names = quantile_bins(np.array([0.0] * 20 + [1.0] * 3 + [5.0]))
    assert len(names) == 2 and np.bincount(labels).min() >= 3
    labels, names = quantile_bins(np.arange(100.0))
    assert len(names) == 5 and np.all(np.diff(labels) >= 0)


def test_scan_skips_missing_and_broken_images_and_the_split_round_trips(flat_digits, tmp_path):
    folder = tmp_path / "few"
    folder.mkdir()
    rows = (flat_digits / "targets.csv").read_text().splitlines()[:15]  # header + 14 images
    for row in rows[1:]:
        shutil.copy(flat_digits / row.split(",")[0], folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # input validation only
    rows += ["broken.png,3", "missing.png,4"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    dataset = scan_targets(folder, tmp_path / "t.csv", seed=0)
    assert dataset.is_regression and dataset.target_name == "digit"
    assert {s.path for s in dataset.summary.skipped} == {"broken.png", "missing.png"}
    assert sum(dataset.summary.split_sizes.values()) == 14 and len(dataset.test) >= 2
    loaded = Dataset.load_split(dataset.save_split(tmp_path / "split.json"))
    assert loaded == dataset
    np.testing.assert_array_equal(loaded.targets("test"), dataset.targets("test"))
    (tmp_path / "short.csv").write_text("\n".join(rows[:6]) + "\n")
    with pytest.raises(DatasetError, match="need at least 10"):
        scan_targets(folder, tmp_path / "short.csv")


def test_missing_targets_file_is_a_one_line_error(flat_digits, tmp_path):
    result = invoke(flat_digits, "--targets", tmp_path / "nope.csv", "--dry-run", "--out", tmp_path / "a")
    assert result.exit_code == 2
    assert "nope.csv does not exist" in result.output and "Traceback" not in result.output


def test_dry_run_plans_a_regression(flat_digits, tmp_path):
    result = invoke(flat_digits, "--targets", flat_digits / "targets.csv", "--dry-run",
                    "--out", tmp_path / "advice", "--sample-cap", "100")
    assert result.exit_code == 0, result.output
    assert "regression" in result.output and "Regression target: digit" in result.output
    advice = json.loads((tmp_path / "advice" / "advice.json").read_text())
    plan = advice["plan"]
    assert (plan["task"], plan["loss"], plan["class_weights"]) == ("regression", "huber", None)
    assert {"task", "loss"} <= set(plan["reasons"])
    assert advice["targets"]["name"] == "digit" and advice["split"]["sizes"]["test"] >= 30


@pytest.fixture(scope="module")
def runs(flat_digits, tmp_path_factory):
    """A closed-form run (svm = ridge, via the CLI) and a fine-tuning one (partial, 1 epoch)."""
    from dataclasses import replace

    from advisor.app import pipeline
    from advisor.plan import Regime

    before = fingerprint(flat_digits)
    out = tmp_path_factory.mktemp("regression-runs")
    folders = {"svm": out / "svm", "partial": out / "partial"}
    result = invoke(flat_digits, "--targets", flat_digits / "targets.csv", "--regime", "svm",
                    "--out", folders["svm"], "--sample-cap", "100")
    assert result.exit_code == 0, result.output
    assert "R2 (baseline: training mean)" in result.output
    advice = pipeline.advise(flat_digits, targets=flat_digits / "targets.csv", regime=Regime.PARTIAL,
                             epochs=1, sample_cap=100)
    # Fewer probe epochs than planned (100) keep the test short; the phases are the same.
    pipeline.execute(advice, folders["partial"], plan=replace(advice.plan, head_epochs=30))
    assert fingerprint(flat_digits) == before  # the user's folder is only read
    return folders


@pytest.mark.parametrize("regime", ["svm", "partial"])
def test_regimes_beat_predicting_the_training_mean(runs, regime):
    report = json.loads((runs[regime] / "report.json").read_text())
    evaluation = report["evaluation"]
    assert report["plan"]["task"] == "regression" and evaluation["task"] == "regression"
    assert evaluation["r2"] > 0.3, evaluation
    assert evaluation["mae"] < 0.8 * evaluation["baseline_mae"], evaluation
    assert evaluation["baseline_r2"] <= 0.0
    assert len(report["largest_errors"]) == 8
    html = (runs[regime] / "report.html").read_text()
    assert 'alt="predicted vs true"' in html and 'alt="largest errors"' in html
    if regime == "partial":
        assert report["history"]["fine_tune"]["attempts"], "the fine-tuning phase ran"


def test_model_reloads_in_plain_keras_and_predict_prints_values(runs, tmp_path):
    from advisor.data.images import load_image

    run = runs["partial"]
    report = json.loads((run / "report.json").read_text())
    worst = report["largest_errors"]
    plan = Plan.from_dict(report["plan"])  # model.keras takes input_size px, decoded as the plan says
    np.save(tmp_path / "x.npy", np.stack([load_image(w["file"], plan.input_size,
                                                     resize_ratio=plan.decode_resize_ratio)
                                          for w in worst]))
    code = ("import keras, numpy as np, sys; m = keras.saving.load_model(sys.argv[1], safe_mode=True); "
            "np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))")
    subprocess.run([sys.executable, "-c", code, str(run / "model.keras"), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, capture_output=True)
    values = np.load(tmp_path / "y.npy")
    assert values.shape == (len(worst), 1)
    np.testing.assert_allclose(values[:, 0], [w["predicted"] for w in worst], atol=1e-3)

    predicted = invoke("predict", run / "model.keras", worst[0]["file"], "--format", "json")
    assert predicted.exit_code == 0, predicted.output
    data = json.loads(predicted.stdout)
    assert data["task"] == "regression" and data["target"] == "digit"
    assert data["predictions"][0]["value"] == pytest.approx(worst[0]["predicted"], abs=1e-3)
    as_csv = invoke("predict", run / "model.keras", worst[0]["file"], "--format", "csv")
    assert as_csv.stdout.splitlines()[0] == "path,digit"


def test_an_interrupted_regression_run_resumes_with_its_targets(runs, tmp_path):
    from advisor.app.pipeline import ADVICE_FILE, SPLIT_FILE, interrupted_advice

    partial = tmp_path / "again.partial"
    partial.mkdir()
    for name in (ADVICE_FILE, SPLIT_FILE):
        shutil.copy(runs["svm"] / name, partial / name)
    advice = interrupted_advice(tmp_path / "again")
    assert advice.plan.task.value == "regression" and advice.dataset.is_regression
    saved = Dataset.load_split(runs["svm"] / SPLIT_FILE)
    np.testing.assert_array_equal(advice.dataset.targets("train"), saved.targets("train"))


def test_regression_head_with_hidden_layer_folds_the_target_scale():
    import keras

    from advisor.plan import Task
    from strategies.graph import build_head, fold_target_scale

    keras.utils.set_random_seed(0)
    head = build_head(6, 5, head_units=(4,), head_dropout=0.5, head_batchnorm=True,
                      task=Task.REGRESSION)
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    before = head.predict(x, verbose=0)
    fold_target_scale(head, mean=10.0, std=2.0)
    assert head.output.shape == (None, 1)
    np.testing.assert_allclose(head.predict(x, verbose=0), 2.0 * before + 10.0, rtol=1e-5)
