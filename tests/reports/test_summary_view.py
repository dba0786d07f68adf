"""The answer first, a plan view of what the regime uses, calibration shown, figures once (issue 19).

Pure tests on records: a real :func:`~advisor.app.evaluation.evaluate` record
of digit labels, a real :class:`~advisor.plan.Plan`, and hand-written history
and profile entries (the reports only read them). One test renders the pages
in headless Chromium when it is installed.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from rich.console import Console
from sklearn.datasets import load_digits

from advisor.app.evaluation import evaluate
from advisor.plan import Optimizer, Plan, Regime
from advisor.reports.console import render_advice, render_result
from advisor.reports.html import wrap_caption
from advisor.reports.pages import advice_html, run_html
from advisor.reports.summary import next_steps, plan_field_names
from strategies.calibration import calibration_record

NAMES = ["zero", "one", "two"]
PROFILE = {  # the fields the reports read; values are placeholders
    "backbone": "mobilenet_v2", "image_size": 96, "n_images": 90, "n_sampled": 60,
    "native_width": 8, "native_height": 8, "class_names": NAMES, "class_counts": [40, 30, 20],
    "similarity": {"score": 0.4, "components": {}, "weights": {}}, "shift": None,
    "head": {"mean_max_probability": 0.2, "mean_entropy": 3.0, "top_classes": {}},
    "probes": {"knn_accuracy": 0.8, "linear_accuracy": 0.85, "chance": 0.33, "block_accuracy": {},
               "learning_curve": [[0.25, 0.7], [0.5, 0.78], [1.0, 0.85]]},
    "notes": ["not measured (report test)"],
}


def make_plan(regime: Regime, **overrides) -> dict:
    settings = dict(regime=regime, backbone="mobilenet_v2", image_size=96, frozen_blocks=("stem",),
                    feature_layer="global_average_pooling2d", optimizer=Optimizer.ADAMW,
                    head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=32, head_epochs=50,
                    epochs=0, warmup_epochs=0, patience=10, augmentation=(),
                    class_weights=(0.75, 1.0, 1.5), svm_c_grid=(0.01, 0.1, 1.0, 10.0), seed=0,
                    reasons={"regime": "90 images < 5,000: a linear SVM on frozen features."})
    settings.update(overrides)
    return Plan(**settings).to_dict()


def make_report(regime: Regime = Regime.SVM, **plan_overrides) -> dict:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [20, 15, 10])
    logits = 4.0 * np.eye(3)[np.where(np.arange(45) % 9 == 0, (y + 1) % 3, y)] + rng.normal(size=(45, 3))
    record = calibration_record(0.3 * logits, y)  # margins too soft, as an SVM's are
    proba = np.exp(0.3 * logits / record["temperature"])
    proba /= proba.sum(axis=1, keepdims=True)
    evaluation = evaluate(y, proba, NAMES, train_labels=y, temperature=record["temperature"])
    history = {"embed": {"wall_s": 1.0, "dim": 1280, "train_rows": 60}, "calibration": record}
    if regime is Regime.SVM:
        history["svm"] = {"c_grid": [0.01, 0.1, 1.0, 10.0], "cv_accuracy": [0.9, 0.8, 0.8, 0.8],
                          "cv_folds": 5, "best_c": 0.01, "c_at_edge": "lowest", "train_accuracy": 1.0,
                          "val_accuracy": 0.87, "notes": ["svm: cross-validation chose C=0.01, the "
                                                          "lowest value of the grid ..."]}
    else:
        epochs = [{"attempt": 0, "epoch": e, "loss": 1 / e, "val_loss": 1.2 / e,
                   "accuracy": 0.5 + e / 20, "val_accuracy": 0.4 + e / 20} for e in (1, 2, 3)]
        history["head"] = {"epochs": epochs, "best_epoch": 3, "attempts": [{"best_epoch": 3}],
                           "budget": {"converged": True, "stopped_by": "early stopping",
                                      "best_epoch": 3, "sentence": "Stopped by early stopping."}}
        history["fine_tune"] = {"epochs": epochs, "best_epoch": 3, "attempts": [{"best_epoch": 3}],
                                "budget": {"converged": False, "stopped_by": "budget", "max_epochs": 3,
                                           "best_epoch": 3, "sentence": "Stopped by the budget after "
                                                                        "3 of 3 epochs, still improving."}}
    dataset = {"n_images": 90, "n_classes": 3, "class_counts": dict(zip(NAMES, [40, 30, 20])),
               "imbalance_ratio": 2.0, "skipped": [], "duplicates": [], "findings": [],
               "split_sizes": {"train": 60, "val": 15, "test": 45}}
    return {"data_dir": "/home/me/.cache/finetune-advisor/datasets/tiny-digits",
            "plan": make_plan(regime, **plan_overrides), "advised_regime": regime.value,
            "dataset": dataset, "profile": PROFILE, "evaluation": evaluation.to_dict(),
            "history": history, "timings_s": {"fit": 1.0},
            "environment": {"backend": "tensorflow", "device": "cpu"},
            "split": {"seed": 0, "presplit": False, "sizes": dataset["split_sizes"]},
            "most_confident_mistakes": [{"file": "x.png", "true": "a_rather_long_class_name_indeed",
                                         "predicted": "another_long_class_name", "probability": 0.91}]}


def printed(render, *args, **kwargs) -> str:
    console = Console(file=io.StringIO(), width=160)
    render(*args, console, **kwargs)
    return console.file.getvalue()


def test_console_plan_shows_what_the_svm_uses_and_folds_the_rest():
    report = make_report()
    short = printed(render_advice, report)
    plan_part = short.split("Plan:")[1]
    for shown in ("backbone", "feature_layer", "image_size", "svm_c_grid", "zero 0.75, one 1.00, two 1.50"):
        assert shown in plan_part
    for hidden in ("head_epochs", "optimizer", "patience", "warmup_epochs"):
        assert hidden not in plan_part
    assert "more fields" in plan_part and "--verbose" in plan_part
    assert "head_epochs" in printed(render_advice, report, verbose=True).split("Plan:")[1]
    assert plan_field_names(report["plan"], report["history"])[:3] == ["backbone", "feature_layer", "image_size"]


def test_console_result_opens_with_the_answer(tmp_path):
    report = make_report()
    text = printed(lambda r, c: render_result(r, tmp_path / "run", c), report)
    assert text.index("Result: tiny-digits") < text.index("Detail")
    answer = text[:text.index("Detail")]
    low, high = report["evaluation"]["accuracy_interval"]
    assert f"(95% interval {low:.3f} to {high:.3f})" in answer
    assert "Always predicting the largest training class (zero)" in answer
    assert "linear probe expected 0.850" in answer and "Probabilities calibrated" in answer
    assert "Weakest classes" in answer and "Most confused:" in answer
    assert f"advise predict {tmp_path / 'run'}/model.keras" in answer
    assert "the lowest of the grid: a smaller C might score higher" in text  # the svm rows


def test_html_opens_with_the_summary_and_shows_each_figure_once():
    page = run_html(make_report(), mistake_images=[np.zeros((8, 8, 3), np.uint8)])
    assert "<title>Run on tiny-digits: svm</title>" in page
    assert re.findall(r"<h2>([^<]+)</h2>", page)[:3] == ["Summary", "Results", "Training"]
    summary = page[page.index("<h2>Summary</h2>"):page.index("<h2>Results</h2>")]
    assert "a linear SVM on frozen features" in summary and "advise predict model.keras" in summary
    assert page.count('alt="class counts"') == 1 and page.count(">Images per class</h3>") == 1
    assert 'alt="reliability diagram"' in page and "test ECE: before / after" in page
    assert 'alt="mistakes"' in page and "Top losses" in page
    plan = page[page.index("<h2>Plan</h2>"):]
    visible, folded = plan.split("<details>", 1)
    assert "svm_c_grid" in visible and "(chosen: 0.01, by 5-fold cross-validation)" in visible
    assert "head_epochs" not in visible and "head_epochs" in folded.split("</details>")[0]
    svm = page[page.index("<h3>svm (closed form)</h3>"):page.index("<h2>Plan</h2>")]
    assert "C (* = chosen)" in svm and "* 0.01" in svm and "class='warning'" in svm


def test_next_steps_say_what_to_try_when_a_curve_is_still_rising():
    report = make_report(Regime.PARTIAL, epochs=3, frozen_blocks=("stem",))
    commands = [command for command, _ in next_steps(report, out="runs/tiny")]
    assert commands[0] == "advise predict runs/tiny/model.keras IMAGE..."
    assert any("--epochs 6 --out runs/tiny-epochs6" in c for c in commands)  # fine-tuning still improving
    assert "add labelled images, then run advise again" in commands  # the probe's curve: 0.78 -> 0.85
    fields = plan_field_names(report["plan"], report["history"])
    assert {"head_epochs", "epochs", "backbone_learning_rate"} <= set(fields) and "svm_c_grid" not in fields


def test_top_loss_captions_wrap_long_class_names():
    caption = "a_rather_long_class_name_indeed -> another_long_class_name (0.91)"
    lines = wrap_caption(caption, width=20).splitlines()
    assert len(lines) > 2 and max(map(len, lines)) <= 20 and "".join(lines).replace(" ", "") == \
        caption.replace(" ", "")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Appended to a page: after load, the body says how many images it has and how many failed.
_PROBE = ("<script>addEventListener('load', () => {const i = [...document.images]; "
          "document.body.dataset.images = i.length; "
          "document.body.dataset.broken = i.filter(x => !x.complete || !x.naturalWidth).length;});"
          "</script></body>")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
def test_pages_render_in_headless_chromium_with_no_broken_image_or_external_url(tmp_path):
    digits = load_digits().images[:2]
    thumbnails = [np.repeat(np.rint(d * 255 / 16).astype(np.uint8)[..., None], 3, axis=-1) for d in digits]
    report = make_report()
    for name, page in (("report.html", run_html(report, mistake_images=thumbnails)),
                       ("advice.html", advice_html(report))):
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE), name
        for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
            assert base64.b64decode(data).startswith(b"\x89PNG"), name
        path = tmp_path / name
        path.write_text(page.replace("</body>", _PROBE, 1))
        done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                               "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
                              capture_output=True, text=True, timeout=120, check=False)
        images = re.search(r'data-images="(\d+)"', done.stdout)
        assert images and int(images.group(1)) >= 2, (name, done.stderr[-500:])
        assert 'data-broken="0"' in done.stdout, name
