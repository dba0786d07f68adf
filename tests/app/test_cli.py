"""The ``advise`` command line end to end, on a small set of real digits scans."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import click
import numpy as np
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from advisor.app import cli, predict, preflight
from advisor.app.cli import app, normalize_args
from advisor.app.predict import Prediction, Predictions, predict_files
from advisor.data import Dataset
from advisor.examples import write_dataset
from tests.app.cli_process import advise_in_subprocess

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, normalize_args([str(a) for a in args]))


def tree_fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        digest.update(f"{path.relative_to(root)}|{stat.st_mtime_ns}|{stat.st_mode}".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def digits(session_cache) -> Path:
    return write_dataset("digits", n=120, seed=3)


class _ImageCounter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.png_images = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img" and dict(attrs).get("src", "").startswith("data:image/png;base64,"):
            self.png_images += 1


@pytest.mark.jax_slice
def test_dry_run_writes_advice(digits, tmp_path):
    before = tree_fingerprint(digits)
    out = tmp_path / "advice"
    result = invoke(digits, "--dry-run", "--out", out, "--sample-cap", "120")
    assert result.exit_code == 0, result.output
    assert "Plan:" in result.output and "Similarity to ImageNet" in result.output
    advice = json.loads((out / "advice.json").read_text())
    assert advice["plan"]["regime"] in ("svm", "last-layer", "partial", "full")
    assert set(advice["plan"]["reasons"]) >= {"regime", "image_size", "frozen_blocks"}
    parser = _ImageCounter()
    parser.feed((out / "advice.html").read_text())
    assert parser.png_images >= 3
    assert tree_fingerprint(digits) == before


def test_json_output_is_only_json(digits, tmp_path):
    result = invoke(digits, "--dry-run", "--json", "--out", tmp_path / "a", "--sample-cap", "60")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["plan"]["regime"]


def test_estimate_cost_prices_every_regime_from_the_measured_rates(digits, tmp_path, monkeypatch):
    from advisor.app import costs
    from strategies.throughput import Throughput

    measured = []

    def fake_rates(plan, backbone):  # the real measurement is doctested at 32 px
        measured.append((plan.regime.value, backbone.image_size == plan.image_size))
        return Throughput(forward_img_s=100.0, train_img_s=50.0,
                          prefix_img_s=200.0 if plan.prefix_cache else None,
                          trains_on_prefix_cache=plan.prefix_cache, batch_size=plan.batch_size,
                          device="cpu")

    monkeypatch.setattr(costs, "measure_throughput", fake_rates)
    result = invoke(digits, "--dry-run", "--json", "--estimate-cost", "--out", tmp_path / "a",
                    "--sample-cap", "60")
    assert result.exit_code == 0, result.output
    expected = json.loads(result.stdout)["expected_cost"]
    # One measurement per distinct graph (test_costs checks a shared one); on digits, far from
    # ImageNet, svm reads a mid-network layer, so no two regimes run the same graph here.
    assert sorted(measured) == [(r, True) for r in sorted(("svm", "last-layer", "partial", "full"))]
    assert [r for r, cost in expected.items() if cost["chosen"]] == ["svm"]
    assert expected["svm"]["epochs"] == 0 and expected["full"]["epochs"] > 0
    assert expected["full"]["total_s"] > expected["svm"]["total_s"]
    assert expected["partial"]["fill_s"] > 0  # the prefix cache is priced
    svm, full = expected["svm"]["expected_accuracy"], expected["full"]["expected_accuracy"]
    head = expected["last-layer"]["expected_accuracy"]
    assert 0 < svm["low"] < svm["estimate"] < svm["high"] <= 1
    # 80 training images, within the sizes the benchmark measured fine-tuning's gain on:
    # the svm estimate moved by that gain, in a wider interval.
    from advisor import config

    assert full["estimate"] == pytest.approx(svm["estimate"] + config.FINE_TUNE_GAIN["full"][0] / 100)
    assert full["low"] < svm["low"] and full["high"] > svm["high"] and "gain" in full["basis"]
    assert "the SVM reads" in svm["basis"] and "the SVM reads" not in head["basis"]
    assert expected["full"]["rates"] == expected["partial"]["rates"] == 2  # the rate search
    # ... and the measured images/s beside it (once overwritten by that count).
    assert expected["full"]["throughput"]["train_img_s"] == 50.0

    # --no-rate-search plans and prices one fine-tuning run per regime.
    result = invoke(digits, "--dry-run", "--json", "--estimate-cost", "--no-rate-search",
                    "--regime", "full", "--out", tmp_path / "c", "--sample-cap", "60")
    assert result.exit_code == 0, result.output
    advice = json.loads(result.stdout)
    assert advice["plan"]["rate_scales"] == [1.0]
    assert "--no-rate-search" in advice["plan"]["reasons"]["rate_scales"]
    assert advice["expected_cost"]["full"]["rates"] == advice["expected_cost"]["partial"]["rates"] == 1
    result = invoke(digits, "--dry-run", "--json", "--budget", "1h", "--no-rate-search",
                    "--out", tmp_path / "d", "--sample-cap", "60")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["expected_cost"]["full"]["rates"] == 1

    # --budget prices the same regimes (cached rates) and keeps the pick that fits.
    result = invoke(digits, "--dry-run", "--json", "--budget", "1h", "--out", tmp_path / "b",
                    "--sample-cap", "60")
    assert result.exit_code == 0, result.output
    advice = json.loads(result.stdout)
    assert advice["budget"]["regime"] == advice["plan"]["regime"] == "svm" and advice["budget"]["fits"]
    assert advice["budget"]["budget_s"] == 3600


@pytest.mark.parametrize("args, message", [
    (("--budget", "soon"), "write it like 90s, 10m or 1.5h"),
    (("--budget", "10m", "--regime", "full"), "Drop one of them"),
])
def test_a_bad_budget_is_one_line_before_anything_is_measured(digits, tmp_path, args, message):
    result = invoke(digits, "--dry-run", *args, "--out", tmp_path / "a")
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


@pytest.mark.jax_slice
def test_run_predict_and_refuse_overwrite(digits, tmp_path):
    before = tree_fingerprint(digits)
    out = tmp_path / "run"
    args = (digits, "--regime", "svm", "--out", out, "--sample-cap", "60")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["evaluation"]["accuracy"] > 0.5
    assert {"model.keras", "report.json", "report.html", "advice.json", "split.json"} <= set(os.listdir(out))
    again = invoke(*args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    predicted = invoke("predict", out / "model.keras", digits / "3", "--format", "json")
    assert predicted.exit_code == 0, predicted.output
    rows = json.loads(predicted.stdout)["predictions"]
    assert rows and all(len(r["classes"]) == 3 for r in rows)
    assert tree_fingerprint(digits) == before
    # Issue 16: the 8 px scans were cached as they are and model.keras takes them so;
    # predict decodes new files the same way, and reproduces the run's test accuracy.
    plan = report["plan"]
    assert (plan["image_size"], plan["decode_size"]) == (96, 8)
    test = Dataset.load_split(out / "split.json")
    rows = predict_files(out / "model.keras", test.files("test"), k=1).rows
    names = test.class_names
    accuracy = np.mean([names.index(r.classes[0][0]) == label
                        for r, label in zip(rows, test.labels("test"))])
    assert accuracy == pytest.approx(report["evaluation"]["accuracy"])


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "does not exist"),
    (lambda root: (root / "one" / "only").mkdir(parents=True) or root / "one", "class"),
])
def test_bad_folders_exit_2_with_one_line(tmp_path, make, message):
    result = invoke(make(tmp_path), "--dry-run", "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("option", [None, "--targets", "--base"])
def test_a_missing_path_fails_before_keras_is_imported(digits, tmp_path, option):
    # Issue 18: a mistyped folder took ~14 s (TensorFlow's import) to be reported.
    missing = tmp_path / "no-such-thing"
    args = [missing] if option is None else [digits, option, missing]
    outcome, stderr = advise_in_subprocess(*args, "--dry-run", "--out", tmp_path / "out")
    assert outcome == {"code": 2, "heavy": []}
    assert len(stderr) == 1 and str(missing) in stderr[0] and "does not exist" in stderr[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize("args, message", [
    (("predict", "{tmp}/no-model.keras", "{digits}"), "no-model.keras does not exist"),
    (("predict", "{tmp}/model.keras", "{tmp}/no-image.png"), "no-image.png does not exist"),
    (("{digits}", "--head", "banana", "--dry-run"), "Unknown head 'banana'. Known: linear, mlp."),
], ids=["predict-model", "predict-image", "head"])
def test_a_bad_predict_path_or_option_fails_before_keras_is_imported(digits, tmp_path, args, message):
    (tmp_path / "model.keras").write_bytes(b"")  # a model that exists: the images are checked next
    outcome, stderr = advise_in_subprocess(*[a.format(tmp=tmp_path, digits=digits) for a in args])
    assert outcome == {"code": 2, "heavy": []}
    assert len(stderr) == 1 and message in stderr[0], stderr


def test_predict_walks_the_image_folders_once(digits, tmp_path, monkeypatch):
    # Review finding: the preflight walked the image folders, then predict walked them again.
    import keras

    from advisor.backbones.model_file import save_model
    from advisor.data import images

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model_path = save_model(model, tmp_path / "model.keras", ["even", "odd"])
    walks = []

    def counted(paths):
        walks.append(list(paths))
        return images.find_image_files(paths)

    for module in (preflight, predict):
        monkeypatch.setattr(module, "find_image_files", counted)
    result = invoke("predict", model_path, digits / "3", digits / "7", "--format", "json")
    assert result.exit_code == 0, result.output
    assert walks == [[digits / "3", digits / "7"]]
    rows = json.loads(result.stdout)["predictions"]
    assert [row["path"] for row in rows] == list(map(str, images.find_image_files(walks[0])))


@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_finished_output_folder_fails_before_keras_is_imported(digits, tmp_path, command):
    done = tmp_path / "done"
    done.mkdir()
    (done / "advice.json").write_text("{}")
    outcome, stderr = advise_in_subprocess(command, digits, "--out", done)
    assert outcome == {"code": 2, "heavy": []}
    assert stderr == [(f"error: {done} already holds a finished run; pass --overwrite to replace it "
                       "or --out to write elsewhere")]
    assert os.listdir(done) == ["advice.json"]


def test_a_second_dry_run_into_a_finished_folder_fails_before_measuring(digits, tmp_path, monkeypatch):
    # Issue 18: a second `advise DIR` measured for minutes, then refused the finished folder.
    from advisor.app import advice

    out = tmp_path / "advice"
    assert invoke(digits, "--dry-run", "--out", out, "--sample-cap", "40").exit_code == 0
    before = tree_fingerprint(out)

    def no_work(*args, **kwargs):
        raise AssertionError("scanned or measured although the output folder is finished")

    monkeypatch.setattr(advice, "scan_dataset", no_work)
    monkeypatch.setattr(advice, "measure_dataset", no_work)
    again = invoke(digits, "--dry-run", "--out", out, "--sample-cap", "40")
    assert again.exit_code == 2, again.output
    assert "already holds a finished run" in again.output and "--overwrite" in again.output
    assert "Traceback" not in again.output and tree_fingerprint(out) == before


def test_unknown_regime_is_a_one_line_error(digits, tmp_path):
    result = invoke(digits, "--regime", "everything", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "Known: svm" in result.output


def test_compare_tabulates_regimes_and_marks_the_pick(digits, tmp_path):
    out = tmp_path / "compare"
    result = invoke("compare", digits, "--regimes", "svm,last-layer", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [row["regime"] for row in summary["rows"]] == ["svm", "last-layer"]
    assert sum(row["picked"] for row in summary["rows"]) == (summary["advised"] in ("svm", "last-layer"))
    assert all(0 <= row["test_accuracy"] <= 1 and row["model_bytes"] > 0 for row in summary["rows"])
    assert {"compare.json", "compare.html", "svm", "last-layer"} <= set(os.listdir(out))
    assert (out / "svm" / "model.keras").exists()


def test_compare_backbones_side_by_side_on_one_split(digits, tmp_path):
    out = tmp_path / "backbones"
    result = invoke("compare", digits, "--backbones", "mobilenet_v2,efficientnet_lite0",
                    "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    rows = summary["rows"]
    # Without --regimes, each backbone runs the regime the advisor picked for it.
    assert [row["backbone"] for row in rows] == ["mobilenet_v2", "efficientnet_lite0"]
    assert all(row["picked"] for row in rows)
    assert [row["regime"] for row in rows] == [summary["advised_by_backbone"][b]
                                               for b in ("mobilenet_v2", "efficientnet_lite0")]
    assert all(0 <= row["similarity"] <= 1 and row["predict_ms_per_image"] > 0 for row in rows)
    for row in rows:
        assert (out / row["backbone"] / row["regime"] / "model.keras").exists()
    splits = {(out / row["backbone"] / row["regime"] / "split.json").read_text() for row in rows}
    assert len(splits) == 1  # the same split for every backbone
    assert "Backbones compared" in (out / "compare.html").read_text()
    bad = invoke("compare", digits, "--backbones", "mobilenet_v2,mobilenet_v2", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "distinct" in bad.output


def test_run_after_dry_run_reuses_the_measurements(digits, tmp_path, monkeypatch):
    from advisor.app import advice

    assert invoke(digits, "--dry-run", "--out", tmp_path / "a", "--sample-cap", "40").exit_code == 0

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again although nothing changed")

    monkeypatch.setattr(advice, "measure_dataset", no_measuring)
    result = invoke(digits, "--dry-run", "--out", tmp_path / "b", "--sample-cap", "40")
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "a" / "advice.json").read_text())
    second = json.loads((tmp_path / "b" / "advice.json").read_text())
    assert first["profile"] == second["profile"] and first["plan"] == second["plan"]


def test_advisor_switches_to_the_stronger_backbone_only_when_the_plan_fine_tunes(
        digits, tmp_path, monkeypatch):
    from advisor import config

    monkeypatch.setattr(config, "STRONGER_BACKBONE_MIN_IMAGES", 100)  # 120 digits qualify
    frozen = invoke(digits, "--dry-run", "--json", "--sample-cap", "60", "--out", tmp_path / "a")
    assert frozen.exit_code == 0, frozen.output
    plan = json.loads(frozen.stdout)["plan"]
    assert plan["regime"] == "svm" and plan["backbone"] == config.DEFAULT_BACKBONE
    assert "frozen" in plan["reasons"]["backbone"]
    tuned = invoke(digits, "--dry-run", "--json", "--sample-cap", "60", "--regime", "partial",
                   "--out", tmp_path / "b")
    assert tuned.exit_code == 0, tuned.output
    advice = json.loads(tuned.stdout)
    assert advice["plan"]["backbone"] == config.STRONGER_BACKBONE
    assert advice["profile"]["backbone"] == config.STRONGER_BACKBONE  # measured again with it
    assert "Kornblith" in advice["plan"]["reasons"]["backbone"]
    # Asking for a backbone turns the choice off.
    forced = invoke(digits, "--dry-run", "--json", "--sample-cap", "60", "--regime", "partial",
                    "--backbone", "mobilenet_v2", "--out", tmp_path / "c")
    assert json.loads(forced.stdout)["plan"]["backbone"] == "mobilenet_v2"


@pytest.mark.parametrize("command", [None, "run", "compare", "predict", "export", "imagenet"])
def test_help_fits_80_columns_and_describes_every_option(command):
    # Issue 19: the defaults of --out and --backbone ended in "…" at 80 columns; --verbose had no help.
    args = ["--help"] if command is None else [command, "--help"]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    group = typer.main.get_command(app)
    commands = [group] if command is None else [group.commands[command]]
    undescribed = [f"{c.name} {p.opts[0]}" for c in commands for p in c.params
                   if isinstance(p, click.Option) and not p.help]
    assert not undescribed
    if command == "run":  # the defaults read whole, however the column wraps them
        flat = " ".join(text.replace("│", " ").split())
        assert "Defaults to ./advise-runs/NAME, NAME being" in flat
        assert "Defaults to mobilenet_v2, or efficientnet_lite0 when the plan fine-tunes" in flat


def test_predict_table_shows_whole_paths_at_80_columns(tmp_path, monkeypatch):
    # Issue 19: long paths were cut to the prefix they share ("/data/holiday-2024-summer-...").
    folder = tmp_path / "holiday-2024-summer-camera-roll" / "beach"
    paths = [folder / f"IMG_2024_07_{i:02d}_sunset_panorama.jpg" for i in range(3)]
    result = Predictions(rows=tuple(Prediction(p, (("beach", 0.81), ("sea", 0.12))) for p in paths),
                         skipped=())
    monkeypatch.setattr(preflight, "check_predict_paths", lambda *args: paths)
    monkeypatch.setattr(predict, "predict_image_files", lambda *args, **kwargs: result)
    monkeypatch.setattr(cli, "out_console", Console(file=io.StringIO(), width=80))
    assert invoke("predict", tmp_path / "model.keras", folder).exit_code == 0
    table = cli.out_console.file.getvalue()
    assert "…" not in table
    images = "".join(line.split("│")[1].strip() for line in table.splitlines() if line.startswith("│"))
    assert all(str(path) in images for path in paths), table


def test_a_run_builds_each_network_once(digits, tmp_path, monkeypatch):
    # Issue 18: a run reuses the networks it already built (advisor/app/built_backbones.py):
    # pricing four regimes and running one builds the plan's network once. (Digits are
    # measured at 224 px and planned at 96, so not the measuring one; a 64 px folder is.)
    from advisor import backbones
    from advisor.app import built_backbones, costs
    from strategies.throughput import Throughput

    built = []
    original = backbones.get_backbone

    def counting(name, **kwargs):
        built.append(built_backbones.build_key(name, **kwargs))
        return original(name, **kwargs)

    def fake_rates(plan, backbone):
        return Throughput(forward_img_s=100.0, train_img_s=50.0, prefix_img_s=None,
                          trains_on_prefix_cache=False, batch_size=plan.batch_size, device="cpu")

    built_backbones.clear()
    monkeypatch.setattr(built_backbones.backbones, "get_backbone", counting)
    monkeypatch.setattr(costs, "measure_throughput", fake_rates)
    result = invoke(digits, "--regime", "svm", "--estimate-cost", "--sample-cap", "60",
                    "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert len(built) == len(set(built)), built  # the plan's network: priced, then run
    assert built.count(("mobilenet_v2", 96, "imagenet", None, 8)) == 1
    # The cost table rendered for a terminal (it once failed on a key two figures shared).
    assert "Expected wall time on this machine (cpu)" in result.output
