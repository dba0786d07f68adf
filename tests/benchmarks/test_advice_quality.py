"""Tests of `benchmarks.advice_quality`: the scoring, the calibration and a tiny --quick run.

The tiny run claims nothing about accuracy: two small real sets, two cheap
regimes, two head epochs; it checks that the machinery runs end to end and
writes a well-formed table and JSON.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from advisor.decide import RegimeRules
from benchmarks import advice_quality
from benchmarks.advice_quality import (
    HIT_PP,
    REGIMES,
    calibration,
    corrupt,
    merge,
    parse_task,
    score_row,
    summarise,
)


def _row(task: str, accs: dict[str, float], pick: str, plan_acc: float | None = None,
         fit_s: dict[str, float] | None = None) -> dict:
    fit_s = fit_s or {"svm": 1.0, "last-layer": 2.0, "partial": 10.0, "full": 20.0}
    row = {"task": task, "pick": pick, "wall_s": 1.0,
           "regimes": {r: {"test_accuracy": a, "fit_s": fit_s[r], "default_rate_test_accuracy": a}
                       for r, a in accs.items()},
           "plan": {"test_accuracy": accs[pick] if plan_acc is None else plan_acc,
                    "fit_s": fit_s[pick]}}
    row.update(score_row(row))
    return row


def test_parse_task_splits_the_size_off_known_sets():
    assert parse_task("fashion-mnist-300") == ("fashion-mnist", 300)
    assert parse_task("mnist-5k") == ("mnist-5k", None)
    assert parse_task("mnist-5k-1000") == ("mnist-5k", 1000)
    with pytest.raises(ValueError, match="Unknown task"):
        parse_task("imagenet-1000")


def test_a_task_takes_a_corruption_suffix():
    from benchmarks.advice_quality.cli import parse_args
    from benchmarks.advice_quality.runner import split_corruption

    assert parse_task("tuxpaint@gaussian_noise-3") == ("tuxpaint", None)
    assert split_corruption("tuxpaint@gaussian_noise-3") == ("tuxpaint", ("gaussian_noise", 3))
    assert split_corruption("fashion-mnist-300") == ("fashion-mnist-300", None)
    assert split_corruption("fashion-mnist-300@contrast-3") == ("fashion-mnist-300", ("contrast", 3))
    with pytest.raises(ValueError, match="Unknown task"):
        split_corruption("imagenet-300@contrast-3")
    for bad in ("tuxpaint@fog-3", "tuxpaint@contrast-6", "tuxpaint@contrast"):
        with pytest.raises(ValueError, match="Unknown corruption"):
            split_corruption(bad)
    with pytest.raises(SystemExit):
        parse_args(["--tasks", "tuxpaint@fog-3"])


def test_a_corrupted_task_is_written_once_into_the_cache(digits_dir, tmp_path, monkeypatch):
    import shutil

    import advisor.examples
    from advisor.cache import cache_dir
    from benchmarks.advice_quality import corruptions, runner

    write = corruptions.write_corrupted
    source = tmp_path / "source"
    for label in ("0", "1"):
        (source / label).mkdir(parents=True)
        for path in sorted((digits_dir / label).iterdir())[:2]:
            shutil.copy(path, source / label / path.name)
    monkeypatch.setattr(advisor.examples, "write_dataset", lambda name, n=None: source)
    folder = runner.task_folder("tuxpaint@contrast-5")
    assert folder == cache_dir("datasets-corrupted") / "tuxpaint@contrast-5"
    written = sorted(p.relative_to(folder) for p in folder.rglob("*.png"))
    assert [p.parent.name for p in written] == ["0", "0", "1", "1"]
    from PIL import Image

    with Image.open(folder / written[0]) as image, Image.open(source / written[0].with_suffix(".png")) as clean:
        assert image.size == (224, 224)
        clean = clean.convert("RGB").resize((224, 224), Image.BICUBIC)
        # contrast at severity 5 keeps 5% of each image's deviations from its mean
        assert np.asarray(image, float).std() < 0.1 * np.asarray(clean, float).std()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no partial folder left

    def fail(*args, **kwargs):
        raise AssertionError("written again")

    monkeypatch.setattr(corruptions, "write_corrupted", fail)
    assert runner.task_folder("tuxpaint@contrast-5") == folder
    assert runner.task_folder("digits") == source

    def beaten(source, partial, kind, severity, seed=0):  # another process renames its copy meanwhile
        write(source, partial, kind, severity, seed=seed)
        write(source, cache_dir("datasets-corrupted") / "tuxpaint@contrast-4", kind, severity)

    monkeypatch.setattr(corruptions, "write_corrupted", beaten)
    assert runner.task_folder("tuxpaint@contrast-4") == cache_dir("datasets-corrupted") / "tuxpaint@contrast-4"
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_a_corrupted_subset_is_judged_on_held_out_images_corrupted_alike(digits_dir, tmp_path, monkeypatch):
    import shutil

    import advisor.examples
    from advisor.cache import cache_dir
    from benchmarks.advice_quality import corruptions, runner

    def class_folders(name, count):
        folder = tmp_path / name
        for label in ("0", "1"):
            (folder / label).mkdir(parents=True)
            for path in sorted((digits_dir / label).iterdir())[:count]:
                shutil.copy(path, folder / label / path.name)
        return folder

    subset, rest = class_folders("subset", 2), class_folders("rest", 3)
    monkeypatch.setattr(advisor.examples, "write_dataset", lambda name, n=None: subset)
    monkeypatch.setattr(advisor.examples, "write_heldout", lambda name, n, size: rest)
    seeds = []
    write = corruptions.write_corrupted
    monkeypatch.setattr(corruptions, "write_corrupted",
                        lambda *args, seed=0: seeds.append(seed) or write(*args, seed=seed))
    folder = runner.task_folder("digits-4@gaussian_noise-5")
    heldout = runner.heldout_for("digits-4@gaussian_noise-5", 6, ["0", "1"])
    assert folder == cache_dir("datasets-corrupted") / "digits-4@gaussian_noise-5"
    assert heldout.folder == cache_dir("datasets-corrupted") / "digits-4@gaussian_noise-5-heldout6"
    assert heldout.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert seeds == [0, runner.HELDOUT_NOISE_SEED]  # the held-out images draw other noise
    from PIL import Image

    with Image.open(heldout.paths[0]) as image:
        assert image.size == (224, 224)
        # severity 5 adds noise of std 0.38 (clipped): a clean digit's flat background is gone
        assert np.asarray(image, float)[:20, :20].std() > 20
    assert runner.heldout_for("digits-4", 6, ["0", "1"]).folder == rest  # the clean task: clean images


def test_score_row_counts_hyperparameters_in_regret_and_the_regime_in_hit():
    # Right regime (partial is the best), but the plan's own rate reached 2 points less.
    row = _row("t", {"svm": 0.80, "last-layer": 0.85, "partial": 0.90, "full": 0.897},
               pick="partial", plan_acc=0.88)
    assert row["hit"] and row["oracle_regime"] == "partial"
    assert row["regret_pp"] == pytest.approx(2.0)
    assert set(row["good_regimes"]) == {"partial", "full"}
    assert row["fastest_good"] == "partial" and row["time_vs_fastest_good"] == pytest.approx(1.0)


def test_a_miss_by_the_margin_is_a_paired_hit_when_mcnemar_cannot_tell_them_apart():
    # 100 test images: the pick is 2 points below the best (a margin miss), but on
    # 2 discordant images only (p = 0.5): the paired test says "not worse".
    best, pick = "1" * 90 + "0" * 10, "1" * 88 + "0" * 12
    row = {"task": "t", "pick": "svm", "wall_s": 1.0,
           "regimes": {"svm": {"test_accuracy": 0.88, "fit_s": 1.0, "test_correct": pick},
                       "full": {"test_accuracy": 0.90, "fit_s": 9.0, "test_correct": best,
                                "budget": {"converged": False}}},
           "plan": {"test_accuracy": 0.88, "fit_s": 1.0, "test_correct": pick}}
    scores = score_row(row)
    assert not scores["hit"] and scores["paired_hit"] and scores["paired_p"] == pytest.approx(0.5)
    assert not scores["converged"]  # full's budget curve was still rising
    clear = dict(row, plan=dict(row["plan"], test_correct="0" * 10 + "1" * 80 + "0" * 10))
    assert not score_row(clear)["paired_hit"]  # 10 images to 0: p = 0.002
    summary = summarise([dict(row, **scores)])
    assert summary["paired_hit_rate"] == 1.0 and summary["not_converged"] == ["t"]


def test_full_is_flagged_when_last_layer_is_within_the_hit_margin():
    almost = 0.9 - HIT_PP / 100 / 2
    row = _row("t", {"svm": 0.5, "last-layer": almost, "partial": 0.88, "full": 0.9}, pick="full")
    assert row["hit"] and row["too_expensive"]
    assert row["time_vs_fastest_good"] == pytest.approx(10.0)  # full 20 s vs last-layer 2 s
    summary = summarise([row, _row("u", {"svm": 0.9, "last-layer": 0.7, "partial": 0.7, "full": 0.7},
                                   pick="full")])
    assert summary["hit_rate"] == 0.5
    assert summary["max_regret_pp"] == pytest.approx(20.0)
    assert summary["full_when_last_layer_enough"] == ["t"]
    assert not summary["targets_met"]["never_full_when_last_layer_enough"]


def test_leave_one_task_out_judges_a_hit_by_the_paired_test_too(monkeypatch):
    # The hit: a pick more than HIT_PP below the best is still a hit when
    # McNemar's test on the same test images cannot tell them apart.
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: "svm")
    rows = []
    for task, discordant in (("close", 2), ("apart", 20)):
        row = _row(task, {"svm": 0.80, "last-layer": 0.7, "partial": 0.7, "full": 0.80 + discordant / 200},
                   pick="svm")
        row["profile"] = {}
        row["regimes"]["svm"]["test_correct"] = "1" * 160 + "0" * 40
        row["regimes"]["full"]["test_correct"] = "1" * (160 + discordant) + "0" * (40 - discordant)
        rows.append(row)
    loto = advice_quality.calibrate(rows)["leave_one_task_out"]
    assert [f["hit"] for f in loto["folds"]] == [False, False]  # 1 and 10 points below the best
    assert [f["paired_hit"] for f in loto["folds"]] == [True, False]  # 2 discordant images vs 20
    assert loto["paired_hit_rate"] == 0.5 and loto["hit_rate"] == 0.0

@pytest.mark.parametrize("kind", advice_quality.CORRUPTIONS)
def test_corruptions_degrade_monotonically_with_severity(kind):
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3))
    errors = [np.abs(corrupt(image, kind, s, np.random.default_rng(1)) - image).mean() for s in range(6)]
    assert errors[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(errors)), errors
    with pytest.raises(ValueError, match="Unknown corruption"):
        corrupt(image, "fog", 1, rng)


def test_calibration_reports_leave_one_task_out(monkeypatch):
    # Regime picks depend only on the thresholds: stub the profile -> regime step.
    def fake_pick(profile, thresholds):
        return "svm" if profile["n"] < thresholds["SVM_MAX_IMAGES"] else "partial"

    monkeypatch.setattr(calibration, "picked_regime", fake_pick)
    rows = []
    for i, n in enumerate((200, 400, 3000, 8000)):
        svm_wins = n < 1000
        row = _row(f"t{i}", {"svm": 0.9 if svm_wins else 0.7, "last-layer": 0.8,
                             "partial": 0.7 if svm_wins else 0.9, "full": 0.6}, pick="svm")
        row["profile"] = {"n": n}
        rows.append(row)
    result = advice_quality.calibrate(rows)
    loto = result["leave_one_task_out"]
    assert len(loto["folds"]) == 4
    assert loto["hit_rate"] == 1.0 and loto["mean_regret_pp"] == 0.0
    assert result["fitted_in_sample"]["hit_rate"] == 1.0

    # SVM_MAX_IMAGES 500, 1,000 and 2,000 tie on these rows: the fit must not lean
    # on the advisor's current rules (e.g. constants it fitted itself and wrote to config).
    for written in (250, 5_000):
        again = advice_quality.calibrate(rows, current=RegimeRules(svm_max_images=written))
        assert again["current"]["SVM_MAX_IMAGES"] == written
        assert again["fitted_all_tasks"] == result["fitted_all_tasks"]
        assert again["leave_one_task_out"]["folds"] == loto["folds"]
    assert result["fitted_all_tasks"]["SVM_MAX_IMAGES"] == advice_quality.SEED_THRESHOLDS["SVM_MAX_IMAGES"]


def test_leave_one_task_out_leaves_out_a_corrupted_task_with_its_family(monkeypatch):
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: "svm")
    seen = []
    fit = calibration.fit_thresholds

    def spy(rows, grid, anchor):
        seen.append(sorted(r["task"] for r in rows))
        return fit(rows, grid, anchor)

    monkeypatch.setattr(calibration, "fit_thresholds", spy)
    rows = []
    for task in ("tuxpaint", "tuxpaint@contrast-5", "tuxpaint@gaussian_noise-3", "digits", "emoji"):
        row = _row(task, {"svm": 0.9, "last-layer": 0.8, "partial": 0.7, "full": 0.6}, pick="svm")
        row["profile"] = {"n": 300}
        rows.append(row)
    folds = advice_quality.calibrate(rows)["leave_one_task_out"]["folds"]
    assert [f["held_out"] for f in folds] == [r["task"] for r in rows]
    trained_on = dict(zip([f["held_out"] for f in folds], seen[1:]))  # seen[0]: the fit on all tasks
    for held in ("tuxpaint", "tuxpaint@contrast-5", "tuxpaint@gaussian_noise-3"):
        assert trained_on[held] == ["digits", "emoji"]
    assert trained_on["digits"] == ["emoji", "tuxpaint", "tuxpaint@contrast-5", "tuxpaint@gaussian_noise-3"]


def test_gap_correlation_within_a_family_of_corruptions():
    rows = []
    for task, similarity, gap in (("tuxpaint", 0.7, -2.0), ("tuxpaint@contrast-3", 0.4, 1.0),
                                  ("tuxpaint@gaussian_noise-5", 0.2, 4.0), ("digits", 0.3, -1.0)):
        row = _row(task, {"svm": 0.8, "last-layer": 0.7, "partial": 0.8 + gap / 100, "full": 0.6}, pick="svm")
        row.update(similarity=similarity, n=300, profile={})
        rows.append(row)
    families = calibration.gap_correlation(rows)["families"]
    assert list(families) == ["tuxpaint"]  # digits alone is no family
    assert families["tuxpaint"]["rho"] == pytest.approx(-1.0)
    assert [t["task"] for t in families["tuxpaint"]["tasks"]] == [
        "tuxpaint", "tuxpaint@contrast-3", "tuxpaint@gaussian_noise-5"]


@pytest.mark.slow
def test_quick_run_on_two_tiny_tasks_writes_a_well_formed_table(tmp_path, capsys):
    results = advice_quality.main([
        "--quick", "--tasks", "digits-60,photos", "--regimes", "svm,last-layer",
        "--head-epochs", "2", "--image-size", "96", "--heldout", "200", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("task"))
    for column in ("sim", "peak block", "probe", *REGIMES, "oracle", "pick", "regret pp", "time x"):
        assert column in header
    assert [r["task"] for r in results["rows"]] == ["digits-60", "photos"]
    assert any(line.startswith("digits-60") for line in printed.splitlines())
    assert "hit rate" in printed and "regret: mean" in printed and "total time" in printed

    saved = json.loads((tmp_path / results["path"].rsplit("/", 1)[-1]).read_text())
    assert saved["mode"] == "quick"
    assert {"backend", "device", "cpu_count", "versions"} <= set(saved["machine"])
    for row in saved["rows"]:
        assert row["pick"] in REGIMES
        assert set(row["regimes"]) == {"svm", "last-layer"}
        assert 0.0 <= row["oracle_best"] <= 1.0 and 0.0 <= row["similarity"] <= 1.0
        assert row["regret_pp"] >= -100.0 and isinstance(row["hit"], bool)
    assert set(saved["summary"]) >= {"hit_rate", "mean_regret_pp", "max_regret_pp", "total_s"}
    assert saved["settings"]["heldout"] == 200

    # digits-60 is also tested on 200 digits its subsample left out; photos is a whole set.
    digits, photos = saved["rows"]
    assert (digits["n_heldout"], photos["n_heldout"]) == (200, 0)
    split_n = digits["n_test"] - 200
    for entry in digits["regimes"].values():
        best = next(r for r in entry["search"] if r["rate"] == entry["chosen_rate"])
        pooled = (entry["split_test_accuracy"] * split_n + best["heldout_accuracy"] * 200) / (split_n + 200)
        assert entry["test_accuracy"] == pytest.approx(pooled)
    for entry in photos["regimes"].values():
        assert entry["test_accuracy"] == entry["split_test_accuracy"]


def test_standard_error_of_a_test_accuracy():
    assert advice_quality.test_standard_error_pp(0.9, 100) == pytest.approx(3.0)
    assert advice_quality.test_standard_error_pp(1.0, 50) == 0.0
    assert advice_quality.test_standard_error_pp(0.9, None) is None


def test_a_miss_counts_as_resolved_only_beyond_two_standard_errors():
    accs = {"svm": 0.90, "last-layer": 0.80, "partial": 0.85, "full": 0.80}
    small = _row("small", accs, pick="partial") | {"n_test": 50}
    large = _row("large", accs, pick="partial") | {"n_test": 5000}
    rows = [r | score_row(r) for r in (small, large)]
    assert [r["hit"] for r in rows] == [False, False]
    assert summarise(rows)["resolved_misses"] == ["large"]  # 5 pp > 2 x 0.42 pp; not > 2 x 4.2 pp


def test_merging_runs_keeps_the_later_row_per_task_and_fills_the_test_size(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(merge, "_count_test_images", lambda spec: 40)
    # Today's thresholds pick what each run picked: nothing to re-pick here.
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: profile["pick"])
    accs = {"svm": 0.9, "last-layer": 0.8, "partial": 0.7, "full": 0.6}
    shown = {"n": 300, "classes": 3, "similarity": 0.4, "shift_peak_block": "stem", "probe_accuracy": 0.8}
    svm, partial = {"profile": {"pick": "svm"}}, {"profile": {"pick": "partial"}}
    first = {"rows": [_row("a", accs, pick="svm") | shown | svm, _row("b", accs, pick="svm") | shown | svm],
             "settings": {"tasks": ["a", "b"], "seeds": [0]}}
    later = {"rows": [_row("b", accs, pick="partial") | shown | partial | {"n_test": 90}],
             "settings": {"tasks": ["b"], "seeds": [0, 1]}}
    paths = []
    for i, source in enumerate((first, later)):
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps(source))
    monkeypatch.setattr(calibration, "calibrate", lambda rows, *grid, **kw: {"note": "stub"})
    results = advice_quality.main(["--calibrate-from", *map(str, paths), "--out", str(tmp_path / "out")])
    by_task = {r["task"]: r for r in results["rows"]}
    assert set(by_task) == {"a", "b"}
    assert by_task["b"]["pick"] == "partial" and by_task["b"]["n_test"] == 90
    assert not by_task["b"]["hit"] and by_task["a"]["n_test"] == 40
    assert results["settings_differ"] == ["seeds"]
    saved = json.loads((tmp_path / "out" / results["path"].rsplit("/", 1)[-1]).read_text())
    assert saved["mode"] == "merged" and len(saved["sources"]) == 2
    assert "test n" in capsys.readouterr().out


def test_merging_re_picks_each_row_under_todays_thresholds(monkeypatch):
    # Run under old thresholds: the advisor picked partial, which missed the SVM's 0.9.
    row = _row("t", {"svm": 0.9, "last-layer": 0.8, "partial": 0.85, "full": 0.8}, pick="partial")
    for entry in row["regimes"].values():
        # The plan's default rate reached 1 pp less than the rate the search chose.
        entry["search"] = [{"rate": None, "default": True, "test_accuracy": entry["test_accuracy"] - 0.01,
                            "fit_s": entry["fit_s"]}]
    row |= {"n_test": 100, "profile": {"n": 300}}
    assert not row["hit"]
    seen = {}

    def pick(profile, thresholds):
        seen.update(thresholds)
        return "svm"

    monkeypatch.setattr(calibration, "picked_regime", pick)
    (merged,) = advice_quality.merge_rows([{"rows": [row]}])
    from advisor import config

    assert seen == {k: getattr(config, k) for k in advice_quality.CALIBRATION_GRID}
    assert (merged["pick"], merged["pick_at_run"]) == ("svm", "partial")
    assert merged["plan"]["test_accuracy"] == pytest.approx(0.89)  # the SVM's default run
    assert merged["hit"] and merged["regret_pp"] == pytest.approx(1.0)


def test_a_recipes_only_run_adds_its_recipes_to_the_earlier_row_of_its_task(monkeypatch):
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: "svm")
    accs = {"svm": 0.9, "last-layer": 0.8, "partial": 0.7, "full": 0.6}
    regimes_run = _row("t", accs, pick="svm") | {"n_test": 10, "profile": {}}
    recipes_only = {"task": "t", "regimes": {}, "recipes": {"fastai": {"test_accuracy": 0.85}}}
    (merged,) = advice_quality.merge_rows([{"rows": [regimes_run]}, {"rows": [recipes_only]}])
    assert merged["recipes"]["fastai"]["test_accuracy"] == 0.85
    assert merged["regimes"]["svm"]["test_accuracy"] == 0.9
    # A later regime run keeps the recipes it did not re-run.
    (again,) = advice_quality.merge_rows([{"rows": [regimes_run]}, {"rows": [recipes_only]},
                                          {"rows": [dict(regimes_run)]}])
    assert again["recipes"] == merged["recipes"]


def test_the_fastai_recipe_is_a_full_plan_with_one_frozen_epoch_and_fastais_rates():
    from advisor.plan import Optimizer
    from benchmarks.advice_quality import runner

    full = _plan("full")
    plan = runner.recipe_plan("fastai", full)
    assert (plan.regime, plan.epochs, plan.frozen_blocks) == (full.regime, full.epochs, full.frozen_blocks)
    assert plan.head_epochs == 1 and plan.optimizer is Optimizer.ADAMW
    assert (plan.probe_learning_rate, plan.head_learning_rate, plan.backbone_learning_rate) == (2e-3, 1e-3, 1e-4)
    assert not plan.train_batchnorm and runner.RECIPE_WEIGHTS["fastai"] == "imagenet"
    with pytest.raises(ValueError, match="Unknown recipe"):
        runner.recipe_plan("keras-tutorial", full)
    with pytest.raises(SystemExit):
        advice_quality.cli.parse_args(["--recipes", "keras-tutorial"])


def _plan(regime: str):
    from advisor.plan import Optimizer, Plan, Regime

    return Plan(regime=Regime(regime), backbone="mobilenet_v2", image_size=96, frozen_blocks=(),
                feature_layer="global_average_pooling2d", optimizer=Optimizer.SGD,
                head_learning_rate=1e-3, backbone_learning_rate=1e-4, batch_size=32, head_epochs=20,
                epochs=30, warmup_epochs=3, patience=6, augmentation=("translate",),
                class_weights=None, svm_c_grid=(1.0,), seed=0)


def test_test_size_is_none_when_the_set_cannot_be_written_here(monkeypatch, capsys):
    from advisor import examples
    from advisor.errors import DatasetError

    def missing(name, n=None):
        raise DatasetError(f"{name} is not installed")

    monkeypatch.setattr(examples, "write_dataset", missing)
    assert merge._count_test_images("emoji-1000") is None
    assert "no test size for emoji-1000" in capsys.readouterr().err


def test_fine_tuning_that_kept_its_starting_probe_is_listed():
    from benchmarks.advice_quality.scoring import returned_start

    assert returned_start({"best_epoch": 0, "epochs_run": 6})
    assert not returned_start({"best_epoch": 7, "epochs_run": 13}) and not returned_start(None)
    row = _row("t", {"svm": 0.9, "last-layer": 0.8, "partial": 0.85, "full": 0.8}, pick="svm")
    row["regimes"]["partial"]["budget"] = {"best_epoch": 0, "epochs_run": 6, "converged": True}
    row["regimes"]["full"]["budget"] = {"best_epoch": 5, "epochs_run": 11, "converged": True}
    row.update(score_row(row))
    assert row["returned_start"] == ["partial"]
    assert summarise([row])["returned_start"] == {"t": ["partial"]}


def test_a_later_run_of_some_regimes_replaces_those_and_keeps_the_others(monkeypatch):
    # Issue 16 moved the frozen regimes of 28 px sets to 224 px: re-running svm and last-layer
    # alone must not drop the task's converged partial and full runs.
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: "svm")
    every = _row("t", {"svm": 0.86, "last-layer": 0.85, "partial": 0.87, "full": 0.93}, pick="svm")
    every |= {"n_test": 2050, "n_heldout": 2000, "profile": {}}
    frozen = _row("t", {"svm": 0.90, "last-layer": 0.88}, pick="svm")
    frozen |= {"n_test": 2050, "n_heldout": 2000, "profile": {}}
    (merged,) = advice_quality.merge_rows([{"rows": [every]}, {"rows": [frozen]}])
    assert {r: e["test_accuracy"] for r, e in merged["regimes"].items()} == {
        "svm": 0.90, "last-layer": 0.88, "partial": 0.87, "full": 0.93}
    assert merged["regimes_from_earlier"] == ["full", "partial"]
    assert merged["oracle_regime"] == "full" and merged["regret_pp"] == pytest.approx(3.0)
    # Other test images: the later row stands alone.
    (alone,) = advice_quality.merge_rows([{"rows": [every]}, {"rows": [frozen | {"n_test": 50}]}])
    assert set(alone["regimes"]) == {"svm", "last-layer"} and "regimes_from_earlier" not in alone


def test_the_gap_correlation_ranks_each_measured_input_against_the_fine_tuning_gap():
    from benchmarks.advice_quality import calibration

    def row(task, gap, curve, similarity):
        return {"task": task, "n": 300, "similarity": similarity, "probe_accuracy": 0.8,
                "profile": {"probes": {"learning_curve": [[0.5, 0.8 - curve / 100], [1.0, 0.8]]}},
                "regimes": {"svm": {"test_accuracy": 0.8}, "full": {"test_accuracy": 0.8 + gap / 100}}}

    rows = [row("a", -1.0, 2.0, 0.5), row("b", 0.5, 4.0, 0.3), row("c", 6.0, 7.0, 0.4)]
    result = calibration.gap_correlation(rows)
    assert [round(p["gap_pp"], 6) for p in result["points"]] == [-1.0, 0.5, 6.0]
    assert [p["curve_gain_pp"] for p in result["points"]] == [2.0, 4.0, 7.0]
    assert result["inputs"]["curve_gain_pp"]["rho"] == pytest.approx(1.0)
    assert result["rho"] == result["inputs"]["similarity"]["rho"] == pytest.approx(-0.5)
    assert "images" not in result["inputs"]  # the same on every task: nothing to rank


def test_the_scratch_recipe_trains_the_same_network_from_random_weights_for_longer():
    from advisor.plan import Optimizer
    from benchmarks.advice_quality import runner

    full = _plan("full")
    plan = runner.recipe_plan("scratch", full)
    assert runner.RECIPE_WEIGHTS["scratch"] is None  # the runner builds the backbone at random
    assert plan.train_batchnorm and plan.frozen_blocks == () and plan.optimizer is Optimizer.ADAMW
    assert plan.batchnorm_momentum == runner.SCRATCH_BATCHNORM_MOMENTUM < 0.999  # few steps: see its note
    assert runner.recipe_plan("fastai", full).batchnorm_momentum is None
    assert plan.head_learning_rate == plan.backbone_learning_rate == runner.SCRATCH_LEARNING_RATE
    assert plan.epochs == full.epochs * runner.SCRATCH_EPOCH_FACTOR
    assert plan.patience == full.patience * runner.SCRATCH_PATIENCE_FACTOR
    assert plan.rate_scales == (1.0,) and not plan.prefix_cache
    assert advice_quality.cli.parse_args(["--recipes", "scratch,fastai"]).recipes == ("scratch", "fastai")


def test_an_empty_rate_grid_runs_only_the_plans_own_search():
    args = advice_quality.cli.parse_args(["--lr-grid", ""])
    assert args.lr_grid == ()
    assert advice_quality.cli.parse_args([]).lr_grid  # not given: the mode's grid


def test_a_no_plan_run_keeps_the_earlier_rows_plan_and_is_not_scored_alone(monkeypatch, tmp_path):
    # A regime run alone (--no-plan) must not fit the advisor's plan again (a 5,000-image
    # task's partial plan costs half an hour); merged, it keeps the earlier row's plan.
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: "partial")
    every = _row("t", {"svm": 0.86, "last-layer": 0.85, "partial": 0.90}, pick="partial", plan_acc=0.89)
    every |= {"n_test": 2050, "n_heldout": 2000, "profile": {}}
    later = {"task": "t", "n_test": 2050, "n_heldout": 2000, "profile": {}, "pick": "partial",
             "wall_s": 1.0, "plan": None, "regimes": {"full": {"test_accuracy": 0.91, "fit_s": 30.0}}}
    (merged,) = advice_quality.merge_rows([{"rows": [every]}, {"rows": [later]}])
    assert merged["plan"]["test_accuracy"] == 0.89 and merged["oracle_regime"] == "full"
    assert merged["regret_pp"] == pytest.approx(2.0)
    # Without an earlier row or a run of the pick there is nothing to score it by.
    assert advice_quality.merge_rows([{"rows": [dict(later)]}]) == []
    # ... and a run's own table skips it.
    from benchmarks.advice_quality.report import suite_results

    assert suite_results([dict(later)])["summary"]["tasks"] == 0
    assert advice_quality.cli.parse_args(["--no-plan"]).no_plan


def test_a_doubled_budget_run_counts_a_capped_run_as_converged_only_under_0_3_points(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: "svm")
    monkeypatch.setattr(calibration, "calibrate", lambda rows, *grid, **kw: {"note": "stub"})
    row = _row("t", {"svm": 0.90, "last-layer": 0.85, "full": 0.88}, pick="svm")
    row |= {"n_test": 100, "n_heldout": 0, "profile": {}, "n": 300, "classes": 3, "similarity": 0.4,
            "shift_peak_block": "stem", "probe_accuracy": 0.8}
    for regime, rate in (("last-layer", 0.001), ("full", 0.0001)):
        entry = row["regimes"][regime]
        entry |= {"chosen_rate": rate, "budget": {"converged": False, "best_epoch": 30},
                  "search": [{"rate": rate, "test_accuracy": entry["test_accuracy"]}]}
    row.update(score_row(row))
    assert not row["converged"]

    def doubled(accs):
        return {"settings": {"budget_scale": 2.0, "seeds": [0]}, "rows": [{"task": "t", "regimes": {
            r: {"search": [{"rate": rate, "test_accuracy": a, "budget": {"best_epoch": 40, "epochs_run": 52,
                                                                         "max_epochs": 60}}]}
            for r, (rate, a) in accs.items()}}]}

    base = tmp_path / "base.json"
    base.write_text(json.dumps({"rows": [row], "settings": {"budget_scale": 1.0}}))
    scaled = tmp_path / "scaled.json"
    # last-layer moves 0.1 points when its budget doubles: converged; full moves 0.5: not.
    scaled.write_text(json.dumps(doubled({"last-layer": (0.001, 0.851), "full": (0.0001, 0.885)})))
    results = advice_quality.main(["--calibrate-from", str(base), str(scaled), "--out", str(tmp_path)])
    (merged,) = results["rows"]
    assert len(results["sources"]) == 1  # the doubled run is a check, not a row
    assert [c["path"] for c in results["budget_checks"]] == [str(scaled)]
    assert merged["regimes"]["last-layer"]["doubled"]["verdict"] == "under 0.3 pp"
    assert merged["regimes"]["full"]["doubled"]["delta_pp"] == pytest.approx(0.5)
    assert not merged["converged"] and merged["converged_by_doubling"] == ["last-layer"]
    scaled.write_text(json.dumps(doubled({"last-layer": (0.001, 0.851), "full": (0.0001, 0.881)})))
    results = advice_quality.main(["--calibrate-from", str(base), str(scaled), "--out", str(tmp_path)])
    assert results["rows"][0]["converged"]
    assert results["summary"]["converged_by_doubling"] == {"t": ["full", "last-layer"]}
    assert "(conv 2x): t full, last-layer" in capsys.readouterr().out


def test_a_doubled_budget_run_is_written_as_a_budget_check(tmp_path, capsys):
    from benchmarks.advice_quality.report import write_results

    checked = write_results({"mode": "full", "settings": {"budget_scale": 2.0}, "rows": []}, tmp_path)
    oracle = write_results({"mode": "full", "settings": {"budget_scale": 1.0}, "rows": []}, tmp_path / "o")
    assert "advice_quality-budget2x-" in checked["path"] and "advice_quality-full-" in oracle["path"]


def test_an_empty_rate_grid_fits_only_the_plans_own_search():
    import dataclasses

    from benchmarks.advice_quality.runner import searched_plans

    searching = dataclasses.replace(_plan("partial"), rate_scales=(1.0, 3.0))
    assert [rate for rate, _ in searched_plans(searching, "partial", (), ())] == ["search"]
    assert searched_plans(searching, "partial", (), ())[0][1] is searching
    # A grid point runs at its own rate alone (the head keeps the plan's ratio), then the search.
    (low, plan), (last, _) = searched_plans(searching, "partial", (1e-4,), ())
    assert (low, last, plan.rate_scales) == (1e-4, "search", (1.0,))
    assert plan.head_learning_rate == pytest.approx(1e-4 * searching.head_learning_rate
                                                    / searching.backbone_learning_rate)
    # A plan without a rate search and a non-empty grid: the grid alone.
    fixed = dataclasses.replace(_plan("full"), rate_scales=(1.0,))
    assert [rate for rate, _ in searched_plans(fixed, "full", (1e-4, 1e-3), ())] == [1e-4, 1e-3]
    assert [rate for rate, _ in searched_plans(fixed, "full", (), ())] == ["search"]


def test_a_capped_run_gives_way_to_its_doubled_run_when_that_one_reached_a_plateau(monkeypatch):
    # Fashion-MNIST 1,000's head at 3e-4 was stopped by its budget (best epoch 91 of 91); at twice
    # the budget it stopped by early stopping (best 76 of 88) 0.33 points lower: a converged run,
    # which stands in the oracle's table in its place.
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: "svm")
    row = _row("t", {"svm": 0.837, "last-layer": 0.835}, pick="svm")
    row |= {"n_test": 4, "n_heldout": 0, "profile": {}}
    head = row["regimes"]["last-layer"]
    head |= {"chosen_rate": 0.0003, "test_correct": "1110", "budget": {"converged": False, "best_epoch": 91},
             "search": [{"rate": 0.0003, "test_accuracy": 0.835, "test_correct": "1110", "default": False,
                         "budget": {"converged": False}}]}
    plateau = {"converged": True, "best_epoch": 76, "epochs_run": 88, "max_epochs": 182}
    longer = {"settings": {"budget_scale": 2.0, "seeds": [0]}, "rows": [{"task": "t", "regimes": {"last-layer": {
        "search": [{"rate": 0.0003, "test_accuracy": 0.832, "test_correct": "1100", "budget": plateau}]}}}]}
    (merged,) = advice_quality.merge_rows([{"rows": [row]}], [longer])
    entry = merged["regimes"]["last-layer"]
    assert entry["test_accuracy"] == 0.832 and entry["test_correct"] == "1100" and entry["budget"] == plateau
    assert entry["capped"]["test_accuracy"] == 0.835 and entry["search"][0]["test_accuracy"] == 0.832
    assert merged["converged"] and merged["converged_by_doubling"] == ["last-layer"]
    assert entry["doubled"]["verdict"] != "under 0.3 pp"  # converged by the plateau, not by the bar
