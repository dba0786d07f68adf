"""Tests of `benchmarks.advice_quality.seeds`: a second training seed run on its own, pooled when merged."""

from __future__ import annotations

import pytest

from benchmarks import advice_quality
from benchmarks.advice_quality import calibration, seeds
from benchmarks.advice_quality.scoring import run_converged, score_row


def _run(rate, val, test, correct, *, default=False, best_epoch=5, converged=True):
    return {"rate": rate, "val_accuracy": val, "test_accuracy": test, "split_test_accuracy": test,
            "heldout_accuracy": None, "fit_s": 10.0, "test_correct": correct, "default": default,
            "budget": {"best_epoch": best_epoch, "epochs_run": best_epoch + 3, "converged": converged}}


def _entry(*runs):
    best = max(runs, key=lambda r: r["val_accuracy"])
    return {"chosen_rate": best["rate"], "search": list(runs),
            **{k: best[k] for k in ("test_accuracy", "val_accuracy", "fit_s", "test_correct", "budget")}}


def _row(regimes, seeds_run):
    row = {"task": "t", "n_test": 4, "n_heldout": 0, "profile": {}, "pick": "svm", "wall_s": 1.0,
           "regimes": regimes}
    return {"rows": [row], "settings": {"seeds": seeds_run}}


def _first_and_second(partial_second):
    svm0 = _entry(_run(None, 0.80, 0.75, "1110", default=True))
    svm1 = _entry(_run(None, 0.80, 0.75, "1110", default=True))
    partial0 = _entry(_run(1e-4, 0.82, 0.75, "1101"), _run("search", 0.84, 1.00, "1111", default=True))
    first = _row({"svm": svm0, "partial": partial0}, [0])
    first["rows"][0]["plan"] = {"regime": "svm", "test_accuracy": 0.75, "fit_s": 1.0, "test_correct": "1110"}
    second = _row({"svm": svm1, "partial": partial_second}, [1])
    second["rows"][0]["plan"] = None  # --no-plan
    return first, second


def test_a_second_seed_is_pooled_and_the_rate_chosen_again_on_the_mean_validation(monkeypatch):
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: "svm")
    # Seed 1: the searched rate falls to 0.70 validation, 1e-4 holds: the pooled choice is 1e-4.
    second = _entry(_run(1e-4, 0.86, 0.75, "0111"), _run("search", 0.70, 0.50, "1100", default=True))
    first, later = _first_and_second(second)
    (merged,) = advice_quality.merge_rows([first, later])
    partial = merged["regimes"]["partial"]
    assert merged["pooled_seeds"] == ["partial", "svm"]
    assert partial["seeds"] == [0, 1] and partial["chosen_rate"] == 1e-4
    assert partial["val_accuracy"] == pytest.approx(0.84) and partial["test_accuracy"] == pytest.approx(0.75)
    assert partial["seed_test_accuracy"] == [0.75, 0.75]
    assert partial["seed_test_correct"] == ["1101", "0111"]
    assert partial["default_rate_test_accuracy"] == pytest.approx(0.75)  # the search's mean, 1.00 and 0.50
    # The plan is scored again from the pooled SVM, with each seed's correctness for the paired test.
    assert merged["plan"]["seeds"] == [0, 1] and merged["plan"]["test_correct"] == "1110"
    assert len(merged["seed_paired_p"]) == 2 and merged["seeds"] == [2]
    from benchmarks.advice_quality.report import format_table
    from benchmarks.advice_quality.scoring import summarise

    merged |= {"n": 4, "classes": 2, "similarity": 0.4, "shift_peak_block": "stem", "probe_accuracy": 0.8}
    assert "paired p per seed" in format_table([merged], summarise([merged]))
    assert merged["oracle_regime"] in ("svm", "partial") and merged["regret_pp"] == pytest.approx(0.0)


def test_a_run_with_the_same_seed_replaces_the_earlier_one(monkeypatch):
    monkeypatch.setattr(calibration, "picked_regime", lambda profile, thresholds: "svm")
    second = _entry(_run(1e-4, 0.86, 0.5, "0011"), _run("search", 0.70, 0.50, "1100", default=True))
    first, later = _first_and_second(second)
    later["settings"]["seeds"] = [0]
    (merged,) = advice_quality.merge_rows([first, later])
    assert "pooled_seeds" not in merged and merged["regimes"]["partial"]["test_accuracy"] == 0.5
    assert merged["regimes"]["partial"]["seeds"] == [0]


def test_one_seed_stopped_by_its_budget_leaves_the_pooled_regime_unconverged():
    one = _run(1e-4, 0.8, 0.7, "10") | {"seeds": [0]}
    two = _run(1e-4, 0.8, 0.7, "10", converged=False) | {"seeds": [1]}
    entry = seeds.pool_entries({"seeds": [0], "search": [one]}, {"seeds": [1], "search": [two]})
    assert not run_converged(entry)
    assert run_converged(seeds.pool_entries({"seeds": [0], "search": [one]},
                                            {"seeds": [1], "search": [one | {"seeds": [1]}]}))


def test_rates_searched_by_one_seed_alone_are_kept_but_not_chosen():
    a = {"seeds": [0], "search": [_run(1e-4, 0.8, 0.7, "10") | {"seeds": [0]},
                                  _run(3e-4, 0.99, 0.9, "11") | {"seeds": [0]}]}
    b = {"seeds": [1], "search": [_run(1e-4, 0.8, 0.7, "10") | {"seeds": [1]}]}
    entry = seeds.pool_entries(a, b)
    assert entry["chosen_rate"] == 1e-4 and len(entry["search"]) == 2
    assert seeds.pool_entries(a, {"seeds": [1], "search": [_run(1e-3, 0.8, 0.7, "1") | {"seeds": [1]}]}) is None


def test_rows_of_a_merged_file_take_their_seeds_from_their_per_seed_accuracies():
    row = {"regimes": {"svm": {"search": [{"rate": None, "seed_test_accuracy": [0.8, 0.9]}]},
                       "full": {"search": [{"rate": 1e-4}]}}}
    labelled = seeds.label_seeds(row, None)
    assert labelled["regimes"]["svm"]["seeds"] == [0, 1] and labelled["regimes"]["svm"]["search"][0]["seeds"] == [0, 1]
    # Older entries stored no per-seed accuracies: seeds 0 and 1, or 0 alone: unknown, never pooled.
    assert labelled["regimes"]["full"]["seeds"] is None
    later = {"seeds": [1], "search": [_run(1e-4, 0.8, 0.7, "10") | {"seeds": [1]}]}
    assert seeds.pool_entries(labelled["regimes"]["full"], later) is None
    assert seeds.label_seeds(row, [1])["regimes"]["full"]["seeds"] == [1]
    # A merged file written now keeps the labels: read again, they stand.
    assert seeds.label_seeds(labelled, None) == labelled


def test_a_pooled_row_prints_its_seed_count():
    from benchmarks.advice_quality.report import format_table
    from benchmarks.advice_quality.scoring import summarise

    row = {"task": "t", "n": 10, "classes": 2, "similarity": 0.4, "shift_peak_block": "stem",
           "probe_accuracy": 0.8, "pick": "svm", "wall_s": 1.0, "n_test": 4,
           "regimes": {"svm": {"test_accuracy": 0.75, "fit_s": 1.0, "seeds": [0, 1]},
                       "full": {"test_accuracy": 0.70, "fit_s": 9.0, "seeds": [0]}},
           "plan": {"test_accuracy": 0.75, "fit_s": 1.0}}
    row.update(score_row(row))
    table = format_table([row], summarise([row]))
    assert "seeds" in table.splitlines()[0] and table.splitlines()[2].rstrip().endswith("1-2")


def test_a_merged_files_rows_take_the_seeds_of_the_runs_merged_into_it(tmp_path):
    import json

    run = tmp_path / "advice_quality-full-1.json"
    run.write_text(json.dumps({"settings": {"seeds": [0, 1]}, "rows": []}))
    inner = {"mode": "merged", "sources": [{"path": str(run), "settings": {"seeds": [0, 1]}, "tasks": ["t"]}]}
    (tmp_path / "advice_quality-merged-1.json").write_text(json.dumps(inner))
    # The nested merged file is found by its name under `root` when its recorded path is gone.
    outer = {"mode": "merged", "sources": [
        {"path": "/elsewhere/advice_quality-merged-1.json", "settings": None, "tasks": ["t"]},
        {"path": "b.json", "settings": {"seeds": [0]}, "tasks": ["u"]}]}
    assert seeds.seeds_from_sources(outer, "t", root=tmp_path) == [0, 1]
    assert seeds.seeds_from_sources(outer, "u", root=tmp_path) == [0]
    assert seeds.seeds_from_sources(outer, "t", root=tmp_path / "missing") is None
