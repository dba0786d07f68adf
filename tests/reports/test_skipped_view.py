"""Console and HTML name the skipped files, not only count them (issue 19).

Hand-written advice and report dicts: the reports only read them. The
evaluation is a real :func:`~advisor.app.evaluation.evaluate` record.
"""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from advisor.app.evaluation import evaluate
from advisor.reports.console import render_advice
from advisor.reports.pages import advice_html, run_html

NAMES = ["cat", "dog"]
PROFILE = {  # the fields the reports read; values are placeholders
    "backbone": "mobilenet_v2", "image_size": 96, "n_images": 40, "n_sampled": 40,
    "native_width": 64, "native_height": 64, "class_names": NAMES, "class_counts": [20, 20],
    "similarity": {"score": 0.5, "components": {}, "weights": {}}, "shift": None,
    "head": {"mean_max_probability": 0.5, "mean_entropy": 1.0, "top_classes": {}},
    "probes": None, "notes": ["not measured (report test)"],
}


def skipped(n: int) -> list[dict]:
    return [{"path": f"cat/broken_{i:03d}.jpg", "reason": "not an image Pillow can read"} for i in range(n)]


def advice(n_skipped: int) -> dict:
    dataset = {"n_images": 40, "n_classes": 2, "class_counts": dict(zip(NAMES, [20, 20])),
               "imbalance_ratio": 1.0, "skipped": skipped(n_skipped), "duplicates": [], "findings": [],
               "split_sizes": {"train": 28, "val": 6, "test": 6}}
    return {"data_dir": "/data/pets", "dataset": dataset, "profile": PROFILE,
            "plan": {"regime": "svm", "backbone": "mobilenet_v2", "image_size": 96,
                     "reasons": {"regime": "40 images: a linear SVM on frozen features."}},
            "split": {"seed": 0, "presplit": False, "sizes": dataset["split_sizes"]}}


def printed(data: dict) -> str:
    console = Console(file=io.StringIO(), width=200)
    render_advice(data, console)
    return console.file.getvalue()


def test_console_names_the_first_skipped_files_and_counts_the_rest():
    text = printed(advice(8))
    assert "8 (named below)" in text
    for i in range(5):
        assert f"skipped: cat/broken_{i:03d}.jpg: not an image Pillow can read" in text
    assert "broken_005" not in text
    assert "... and 3 more skipped files; advice.json lists them all." in text


def test_console_says_nothing_more_without_skipped_files():
    text = printed(advice(0))
    assert "skipped:" not in text and "named below" not in text and "more skipped" not in text


def test_html_lists_skipped_files_and_says_how_many_more_and_where():
    page = advice_html(advice(230)).split("All numbers (JSON)")[0]  # the JSON at the end has all 230
    assert "cat/broken_199.jpg" in page and "cat/broken_200.jpg" not in page
    assert "... and 30 more (all in advice.json)." in page
    assert "more (all in" not in advice_html(advice(3))

    y = np.array([0, 0, 1, 1])
    report = advice(201) | {
        "evaluation": evaluate(y, np.eye(2)[y], NAMES, train_labels=y).to_dict(),
        "history": {}, "timings_s": {"fit": 1.0}, "environment": {"backend": "tensorflow", "device": "cpu"}}
    assert "... and 1 more (all in report.json)." in run_html(report)
