"""Console and HTML show duplicates, conflicting labels, the baseline and the accuracy's interval (issue 19).

The reports read dicts only: the dataset summary of a real scan (digit scans
written by ``advisor.examples.write_dataset``, one copied under another class),
a real :func:`~advisor.app.evaluation.evaluate` record, and a hand-written
profile that claims nothing (reports only print it).
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from rich.console import Console

from advisor.app.evaluation import evaluate
from advisor.data import scan_dataset
from advisor.examples import write_dataset
from advisor.reports.console import render_advice, render_result
from advisor.reports.pages import advice_html, run_html

PROFILE = {  # the fields the reports read; values are placeholders
    "backbone": "mobilenet_v2", "image_size": 224, "n_images": 21, "n_sampled": 21,
    "native_width": 8, "native_height": 8, "class_names": ["0", "1", "2"], "class_counts": [7, 7, 7],
    "similarity": {"score": 0.5, "components": {}, "weights": {}}, "shift": None,
    "head": {"mean_max_probability": 0.5, "mean_entropy": 1.0, "top_classes": {}},
    "probes": None, "notes": ["not measured (report test)"],
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Real digit scans of 3 classes, one image copied under another class."""
    src = write_dataset("digits", tmp_path_factory.mktemp("examples"), n=70)
    root = tmp_path_factory.mktemp("data") / "digits"
    for c in ("0", "1", "2"):
        shutil.copytree(src / c, root / c)
    shutil.copyfile(min((root / "1").glob("*.png")), root / "2" / "stray.png")
    return scan_dataset(root, seed=0)


def report(dataset, *, old: bool = False) -> dict:
    """A report.json dict; `old`: as written before issue 19 (no findings, baseline or interval)."""
    y_true = dataset.labels("test")
    y_pred = np.where(y_true == 2, 1, y_true)  # class 2 never predicted
    evaluation = evaluate(y_true, np.eye(3)[y_pred], dataset.class_names,
                          train_labels=dataset.labels("train")).to_dict()
    summary = dataset.summary.to_dict()
    if old:
        for key in ("accuracy_interval", "baseline_accuracy", "baseline_class", "never_predicted", "warnings"):
            del evaluation[key]
        del summary["findings"], summary["n_duplicate_files"]
    return {"data_dir": str(dataset.root), "dataset": summary, "profile": PROFILE,
            "plan": {"regime": "svm", "reasons": {}}, "evaluation": evaluation,
            "timings_s": {"fit": 1.0}, "environment": {"backend": "tensorflow", "device": "CPU"},
            "split": {"seed": 0, "presplit": False, "sizes": summary["split_sizes"]},
            "history": {"head": {"budget": {"sentence": "the curve flattened at epoch 3"}}}}


def printed(render, *args) -> str:
    console = Console(file=io.StringIO(), width=250)
    render(*args, console)
    return console.file.getvalue()


def test_console_shows_duplicates_conflicts_baseline_and_interval(dataset, tmp_path):
    data = report(dataset)
    advice = printed(render_advice, data)
    assert "1 copy in 1 group (1 under two classes)" in advice
    assert "error: The same image is filed under 2 classes (1, 2) in train" in advice
    result = printed(lambda r, c: render_result(r, tmp_path, c), data)
    low, high = data["evaluation"]["accuracy_interval"]
    assert f"({low:.3f} to {high:.3f})" in result
    assert f"baseline (always {data['evaluation']['baseline_class']}, the largest training class)" in result
    assert "were never predicted (2)" in result and "+-5 pp" in result
    assert "data findings" in result and "1 error" in result
    assert "the curve flattened at epoch 3" in result  # the budget row stays


def test_html_shows_findings_identical_files_baseline_and_warnings(dataset):
    data = report(dataset)
    page = run_html(data)
    assert "<h2>Findings about the data</h2><ul class='findings'><li class='error'>" in page
    assert "<h3>Identical files</h3>" in page and "1/" in page and "2/stray.png" in page
    assert "95% interval of the test accuracy (Wilson)" in page
    assert f"baseline: always the largest training class ({data['evaluation']['baseline_class']})" in page
    assert "<td>classes never predicted</td><td>2</td>" in page
    assert "<li class='warning'><b>warning</b>: 1 class(es) of the test split were never predicted" in page
    assert "<td>duplicate files (copies of another file)</td><td>1</td>" in page
    assert "Findings about the data" in advice_html(data)


def test_reports_written_before_issue_19_still_render(dataset, tmp_path):
    data = report(dataset, old=True)
    page = run_html(data)
    assert "Findings about the data" not in page and "baseline" not in page.split("All numbers")[0]
    assert "<td>duplicate files (copies of another file)</td><td>1</td>" in page
    result = printed(lambda r, c: render_result(r, tmp_path, c), data)
    assert "test accuracy" in result and "baseline" not in result
