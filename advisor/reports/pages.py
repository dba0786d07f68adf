"""The readable reports: ``advice.html``, ``report.html``, ``compare.html``.

Each page is built from the same dict that is written as JSON next to it, so
the page never shows a number the JSON lacks.
"""

from __future__ import annotations

import html
import math
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from advisor.measure.profile import reference_data
from advisor.reports import html as h
from advisor.reports.profile_view import profile_figures, profile_rows
from advisor.reports.summary import (
    class_names_of,
    dataset_name,
    plan_field_names,
    plan_value,
    regime_sentence,
    summarize,
    svm_rows,
)

#: Rows of the skipped-files and identical-files tables (the JSON lists them all).
_LISTED = 200


def _more(n_listed: int, n_all: int, listed_in: str) -> str:
    """Say how many rows a cut table left out, and where they all are ("" when none).

    Example:
        >>> _more(200, 230, "report.json")
        '<p>... and 30 more (all in report.json).</p>'
    """
    if n_all <= n_listed:
        return ""
    return f"<p>... and {n_all - n_listed} more (all in {html.escape(listed_in)}).</p>"


def _dataset_section(dataset: Mapping[str, Any], *, listed_in: str = "advice.json") -> str:
    """The dataset's sizes and figures, its identical files and skipped files (the first ``_LISTED`` of each).

    Args:
        dataset: ``DatasetSummary.to_dict()``.
        listed_in: The JSON file beside the page, which lists every row. Defaults to `"advice.json"`.
    """
    counts = dataset.get("class_counts", {})
    groups = dataset.get("duplicates", []) or []
    rows = [("images", dataset.get("n_images")), ("classes", dataset.get("n_classes")),
            ("imbalance (largest / smallest class)", dataset.get("imbalance_ratio")),
            ("skipped files", len(dataset.get("skipped", []))),
            ("duplicate files (copies of another file)",
             dataset.get("n_duplicate_files", sum(len(g["paths"]) - 1 for g in groups))),
            ("groups of identical files", len(groups)),
            ("groups across splits", sum(1 for g in groups if len(g.get("splits", [])) > 1)),
            ("groups under two or more classes", sum(1 for g in groups if len(g.get("classes", [])) > 1))]
    for key in ("width", "height"):
        stats = dataset.get(key) or {}
        if stats:
            rows.append((f"{key} min / median / max",
                         f"{stats.get('min')} / {stats.get('median')} / {stats.get('max')}"))
    modes = dataset.get("modes")
    if modes:
        rows.append(("modes", ", ".join(f"{m}: {n}" for m, n in sorted(modes.items()))))
    body = h.table_html(rows)
    if counts:
        body += h.figure_html(h.bar_figure(list(counts), list(counts.values()),
                                           title="Images per class", ylabel="images"), "class counts",
                              heading="Images per class",
                              caption="Images of each class folder, before the split.")
    if groups:
        body += "<h3>Identical files</h3>" + h.table_html(
            [(", ".join(g["paths"]), ", ".join(g.get("classes", [])), ", ".join(g.get("splits", [])))
             for g in groups[:_LISTED]], header=["files", "classes", "splits"]) + _more(
                 _LISTED, len(groups), listed_in)
    skipped = dataset.get("skipped", []) or []
    if skipped:
        body += "<h3>Skipped files</h3>" + h.table_html(
            [(s.get("path"), s.get("reason")) for s in skipped[:_LISTED]], header=["file", "reason"]
        ) + _more(_LISTED, len(skipped), listed_in)
    return body


def _findings_section(dataset: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The "Findings" section (errors, then warnings, about the data); none when there are none."""
    findings = dataset.get("findings", []) or []
    if not findings:
        return []
    body = h.findings_html([(f["level"], f["message"]) for f in findings[:_LISTED]])
    if len(findings) > _LISTED:
        body += f"<p>... and {len(findings) - _LISTED} more (see the JSON below).</p>"
    return [("Findings about the data", body)]


def _plan_section(plan: Mapping[str, Any], *, history: Mapping[str, Any] | None = None,
                  class_names: Sequence[str] = ()) -> str:
    """The plan: the fields its regime uses with their reasons; the others folded away."""
    reasons = plan.get("reasons", {})
    used = plan_field_names(plan, history)
    rest = [k for k in sorted(plan) if k not in used and k not in ("reasons", "regime", "schema_version")]

    def row(key: str) -> tuple[str, str, str]:
        value = plan_value(key, plan[key], class_names=class_names)
        svm = (history or {}).get("svm")
        if key == "svm_c_grid" and isinstance(svm, Mapping) and svm.get("best_c") is not None:
            value += f" (chosen: {svm['best_c']:g}, by {svm.get('cv_folds')}-fold cross-validation)"
        return key, value, reasons.get(key, "")

    body = (f"<p class='regime'>{html.escape(str(plan.get('regime')))}</p>"
            f"<p>{html.escape(reasons.get('regime', ''))}</p>"
            + h.table_html([row(k) for k in used], header=["field", "value", "why"]))
    if rest:
        body += h.details_html(f"{len(rest)} more fields (defaults, or settings this regime does not use)",
                               h.table_html([row(k) for k in rest], header=["field", "value", "why"]))
    return body


#: Heading and caption of each figure of the profile, by its alt text.
_PROFILE_FIGURES = {
    "shift map over depth": ("Shift map", "How far each block's inputs lie from the reference "
                             "statistics (mean KL of the BatchNormalization inputs), input side "
                             "first; the dashed line is the level where a block counts as departing."),
    "shift per BN layer": ("Shift per BatchNormalization layer",
                           "The same measure for each BatchNormalization layer of the blocks above, "
                           "input side at the top, with the same dashed departure level."),
    "learning curve": ("Linear-probe learning curve",
                       "Cross-validated accuracy of a linear probe on growing shares of the "
                       "sample: still rising at 100% means more images would help."),
}


def _profile_section(profile: Mapping[str, Any]) -> str:
    body = h.table_html(profile_rows(profile), header=["measure", "value"])
    for alt, png in profile_figures(profile):
        heading, caption = _PROFILE_FIGURES.get(alt, (alt, ""))
        body += h.figure_html(png, alt, heading=heading, caption=caption)
    return body


def _targets_section(targets: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The "Targets" section of a regression dataset (none for classes)."""
    if not targets:
        return []
    rows = [("target", targets.get("name")), ("file", targets.get("file")),
            ("range", f"{targets.get('min'):.4g} to {targets.get('max'):.4g}"),
            ("training mean / std", f"{targets.get('train_mean'):.4g} / {targets.get('train_std'):.4g}"),
            ("quantile bins (the 'classes' below)", ", ".join(targets.get("bins", []))),
            ("note", targets.get("note", ""))]
    return [("Targets (regression)", h.table_html(rows))]


def advice_html(advice: Mapping[str, Any]) -> str:
    """Build ``advice.html`` from the ``advice.json`` dict: the advice in one paragraph, then the detail.

    Example:
        >>> from advisor.app.advice import Advice
        >>> from advisor.data import scan_dataset
        >>> from advisor.decide import decide
        >>> from advisor.measure import measure_dataset
        >>> ds = scan_dataset(digits_dir)
        >>> profile = measure_dataset(ds, backbone, sample_cap=20)
        >>> advice = Advice(ds, profile, decide(profile, backbone=backbone), timings={})
        >>> page = advice_html(advice.to_dict())
        >>> page.startswith("<!DOCTYPE html>"), "Advice for" in page
        (True, True)
    """
    data_dir = str(advice.get("data_dir", ""))
    command = f"advise {shlex.quote(data_dir)}"
    summary = (f"<div class='summary'><p><b>{html.escape(regime_sentence(advice))}</b></p>"
               f"<p>Next: <code>{html.escape(command)}</code> runs this plan and writes the model "
               "and its report.</p></div>")
    return h.page(
        f"Advice for {dataset_name(data_dir)}",
        [("Summary", summary),
         *_findings_section(advice["dataset"]),
         ("Plan", _plan_section(advice["plan"], class_names=class_names_of(advice))),
         *_targets_section(advice.get("targets")),
         (f"Similarity to {reference_data(advice['profile']['backbone'])}",
          _profile_section(advice["profile"])),
         ("Dataset", _dataset_section(advice["dataset"], listed_in="advice.json"))],
        raw=advice, subtitle=f"Data: {data_dir}",
    )


#: Per-phase history fields worth a row in the report (the rest is in report.json).
_HISTORY_SUMMARY = ("best_epoch", "best_val_loss", "retried", "wall_s", "dtype_policy", "dim", "train_rows",
                    "path", "prefix_cache", "prefix_cache_fallback")
#: History entries with a section of their own (or none).
_OWN_SECTION = ("svm", "calibration", "target_scale")


def _epoch_curves(epochs: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    curves: dict[str, list[float]] = {}
    for record in epochs:
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae"):
            if isinstance(record.get(key), (int, float)):
                curves.setdefault(key, []).append(float(record[key]))
    return curves


def _best_epoch_index(record: Mapping[str, Any]) -> int | None:
    """The kept epoch's position (1-based) among the epochs of every attempt, or `None`."""
    epochs = record.get("epochs") or []
    best = (record.get("budget") or {}).get("best_epoch", record.get("best_epoch"))
    if not best or not epochs:
        return None
    last = max(int(e.get("attempt", 0)) for e in epochs)
    return sum(1 for e in epochs if int(e.get("attempt", 0)) < last) + int(best)


def _svm_section(record: Mapping[str, Any]) -> str:
    """The svm's training: chosen C (flagged at an edge of the grid), the CV score per C, train vs val."""
    body = h.table_html(svm_rows(record))
    grid, scores = record.get("c_grid") or [], record.get("cv_accuracy")
    if scores:
        body += h.table_html([(("* " if c == record.get("best_c") else "") + f"{c:g}", f"{a:.4f}")
                              for c, a in zip(grid, scores)],
                             header=["C (* = chosen)", "cross-validated accuracy"])
    notes = list(record.get("notes", []) or [])
    edge = [n for n in notes if "of the grid" in n]  # C (or ridge's alpha) at an edge of the grid
    body += h.findings_html([("warning", n) for n in edge])
    if len(edge) < len(notes):
        body += h.table_html([("note", n) for n in notes if n not in edge])
    return body


def _calibration_rows(record: Mapping[str, Any], evaluation: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The calibration's record as rows: temperature, NLL and ECE before and after, on validation and test."""
    rows: list[tuple[str, Any]] = [
        ("method", f"{record.get('method', 'temperature scaling')}, fitted on the "
                   f"{record.get('n_images')} validation images"),
        ("temperature", f"{record.get('temperature', 1.0):.4g} (above 1 softens the scores, below 1 "
                        "sharpens them)")]
    pairs = (("validation NLL", "val_nll_before", "val_nll_after"),
             ("validation ECE", "val_ece_before", "val_ece_after"))
    for label, before, after in pairs:
        if isinstance(record.get(before), (int, float)) and isinstance(record.get(after), (int, float)):
            rows.append((f"{label}: before / after", f"{record[before]:.4f} / {record[after]:.4f}"))
    if isinstance(evaluation.get("ece"), (int, float)):
        untouched = evaluation.get("ece_uncalibrated")
        rows.append(("test ECE" + (": before / after" if isinstance(untouched, (int, float)) else ""),
                     (f"{untouched:.4f} / " if isinstance(untouched, (int, float)) else "")
                     + f"{evaluation['ece']:.4f}"))
    rows += [("note", n) for n in record.get("notes", []) or []]
    return rows


def _history_section(history: Mapping[str, Any], evaluation: Mapping[str, Any] | None = None) -> str:
    body = ""
    for phase, record in history.items():
        if not isinstance(record, Mapping) or phase in _OWN_SECTION:
            continue
        epochs = record.get("epochs")
        if isinstance(epochs, list) and epochs and isinstance(epochs[0], Mapping):
            body += h.figure_html(
                h.history_figure(_epoch_curves(epochs), title=f"Training: {phase}",
                                 best_epoch=_best_epoch_index(record)),
                f"history {phase}", heading=f"Training curves: {phase}",
                caption="Loss (left) and accuracy or error (right) per epoch, every attempt in "
                        "order; the dotted line marks the epoch whose weights were kept.")
        rows = [(key, record[key]) for key in _HISTORY_SUMMARY if key in record]
        budget = record.get("budget")
        if isinstance(budget, Mapping) and budget.get("sentence"):
            rows.insert(0, ("budget curve", budget["sentence"]))
        rows += [("note", note) for note in record.get("notes", []) or []]
        if rows:
            body += f"<h3>{html.escape(str(phase))}</h3>" + h.table_html(rows)
    if isinstance(history.get("svm"), Mapping):
        body += "<h3>svm (closed form)</h3>" + _svm_section(history["svm"])
    if isinstance(history.get("calibration"), Mapping):
        body += ("<h3>Calibration (temperature scaling)</h3>"
                 + h.table_html(_calibration_rows(history["calibration"], evaluation or {})))
    return body or "<p>No training history (closed-form fit).</p>"


def _reliability_panels(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The reliability diagram's panels: validation before and after calibration, test before and after."""
    evaluation = report.get("evaluation", {})
    history = report.get("history") if isinstance(report.get("history"), Mapping) else {}
    record = history.get("calibration") if isinstance(history.get("calibration"), Mapping) else {}
    panels = []
    if record.get("val_reliability_before"):
        panels.append((f"validation, before (ECE {record['val_ece_before']:.3f})",
                       record["val_reliability_before"]))
        panels.append((f"validation, T = {record['temperature']:.3g} (ECE {record['val_ece_after']:.3f})",
                       record["val_reliability_after"]))
    if evaluation.get("reliability_uncalibrated"):
        panels.append((f"test, before (ECE {evaluation['ece_uncalibrated']:.3f})",
                       evaluation["reliability_uncalibrated"]))
    if evaluation.get("reliability"):
        label = "test, calibrated" if record else "test"
        panels.append((f"{label} (ECE {evaluation['ece']:.3f})", evaluation["reliability"]))
    return panels


def _summary_section(report: Mapping[str, Any]) -> str:
    """The opening: the answer, its scores and baselines, the weak spots, the next commands."""
    summary = summarize(report)
    paragraphs = [f"<p><b>{html.escape(summary.headline)}</b></p>",
                  f"<p>{html.escape(' '.join(summary.scores))}</p>"]
    paragraphs += [f"<p>{html.escape(text)}</p>" for text in
                   (summary.calibration, summary.weakest, summary.confusions) if text]
    steps = "".join(f"<li><code>{html.escape(command)}</code>: {html.escape(why)}</li>"
                    for command, why in summary.next_steps)
    return ("<div class='summary'>" + "".join(paragraphs)
            + h.findings_html([("warning", w) for w in summary.warnings])
            + (f"<p>Next:</p><ul>{steps}</ul>" if steps else "") + "</div>")


def run_html(report: Mapping[str, Any], *, mistake_images: Sequence[np.ndarray] = ()) -> str:
    """Build ``report.html`` from the ``report.json`` dict and mistake thumbnails.

    The page opens with the answer (:func:`advisor.reports.summary.summarize`):
    the regime and why, the test accuracy with its interval and baselines,
    the calibration, the weakest classes and top confusions, and the next
    commands; the detail follows.

    Example:
        >>> result = execute(advice, Path("advise-runs/digits"))  # fits and exports a model  # doctest: +SKIP
        >>> run_html(result.report).startswith("<!DOCTYPE html>")  # doctest: +SKIP
        True
    """
    evaluation = report["evaluation"]
    if evaluation.get("task") == "regression":
        return _run_page(report, _regression_results(report, mistake_images))
    names = evaluation["class_names"]
    per_class = evaluation["per_class"]
    ece = [("expected calibration error (test, 15 bins)", evaluation["ece"])] if isinstance(
        evaluation.get("ece"), (int, float)) else []
    results = h.table_html([
        ("test images", evaluation["n_images"]), ("test accuracy", evaluation["accuracy"]),
        *_trust_rows(evaluation),
        ("macro-F1", evaluation["macro_f1"]), *ece,
        *[(f"time: {k}", f"{v:.1f} s") for k, v in report.get("timings_s", {}).items()],
        ("backend / device", f"{report['environment']['backend']} / {report['environment']['device']}"),
    ])
    results += h.figure_html(h.confusion_figure(evaluation["confusion"], names), "confusion matrix",
                             heading="Confusion matrix",
                             caption="Test images by true class (rows) and predicted class (columns).")
    results += h.figure_html(h.bar_figure(names, [per_class[n]["recall"] for n in names],
                                          title="Per-class accuracy (recall)", ylabel="recall"),
                             "per-class accuracy", heading="Per-class accuracy",
                             caption="Share of each class's test images predicted as that class.")
    panels = _reliability_panels(report)
    if panels:
        results += h.figure_html(
            h.reliability_figure(panels), "reliability diagram", heading="Reliability diagram",
            caption="Accuracy of the images in each confidence bin (bars) against their mean "
                    "confidence (red): on the dashed diagonal the scores are probabilities; the "
                    "expected calibration error (ECE) is the image-weighted mean gap.")
    mistakes = report.get("most_confident_mistakes", [])
    if mistakes and len(mistake_images):
        captions = [f"{m['true']} -> {m['predicted']} ({m['probability']:.2f})" for m in mistakes]
        results += h.figure_html(
            h.thumbnails_figure(list(mistake_images), captions, title="Top losses (test split)"),
            "mistakes", heading="Top losses",
            caption="The test images misclassified with the highest probability: "
                    "true class -> predicted class (its probability).")
    return _run_page(report, results)


def _trust_rows(evaluation: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The accuracy's 95% interval, the majority-class baseline and the classes never predicted."""
    rows: list[tuple[str, Any]] = []
    interval = evaluation.get("accuracy_interval")
    if interval and all(isinstance(v, (int, float)) and math.isfinite(v) for v in interval):
        rows.append(("95% interval of the test accuracy (Wilson)", f"{interval[0]:.3f} to {interval[1]:.3f}"))
    if evaluation.get("baseline_accuracy") is not None:
        rows.append((f"baseline: always the largest training class ({evaluation.get('baseline_class')})",
                     evaluation["baseline_accuracy"]))
    if "never_predicted" in evaluation:
        rows.append(("classes never predicted", ", ".join(evaluation["never_predicted"]) or "none"))
    return rows


def _regression_results(report: Mapping[str, Any], images: Sequence[np.ndarray]) -> str:
    """The results section of a regression run: errors beside the mean baseline, the scatter."""
    evaluation = report["evaluation"]
    name = evaluation.get("target_name", "target")
    results = h.table_html([
        ("test images", evaluation["n_images"], ""),
        ("MAE", evaluation["mae"], evaluation["baseline_mae"]),
        ("RMSE", evaluation["rmse"], evaluation["baseline_rmse"]),
        ("R2", evaluation["r2"], evaluation["baseline_r2"]),
        *[(f"time: {k}", f"{v:.1f} s", "") for k, v in report.get("timings_s", {}).items()],
        ("backend / device", f"{report['environment']['backend']} / {report['environment']['device']}", ""),
    ], header=["measure", "model", f"baseline: predict the training mean ({evaluation['train_mean']:.4g})"])
    predictions = report.get("test_predictions", {})
    if predictions.get("true"):
        results += h.figure_html(h.scatter_figure(
            predictions["true"], predictions["predicted"], label=name,
            baseline=evaluation["train_mean"],
            title=f"Predicted vs true {name} (test split, R2 {evaluation['r2']:.3f})"),
            "predicted vs true", heading=f"Predicted vs true {name}",
            caption="Each test image's prediction against its target; on the line they agree.")
    worst = report.get("largest_errors", [])
    if worst and len(images):
        captions = [f"{w['true']:.3g} -> {w['predicted']:.3g}" for w in worst]
        results += h.figure_html(h.thumbnails_figure(list(images), captions,
                                                     title="Largest errors (true -> predicted)"),
                                 "largest errors", heading="Largest errors",
                                 caption="The test images predicted furthest from their target: "
                                         "true -> predicted.")
    return results


def _run_page(report: Mapping[str, Any], results: str) -> str:
    data_dir = str(report.get("data_dir", ""))
    history = report.get("history", {}) if isinstance(report.get("history"), Mapping) else {}
    return h.page(
        f"Run on {dataset_name(data_dir)}: {report['plan']['regime']}",
        [("Summary", _summary_section(report)),
         *_findings_section(report["dataset"]),
         ("Results", results),
         ("Training", _history_section(history, report.get("evaluation"))),
         ("Plan", _plan_section(report["plan"], history=history,
                                class_names=class_names_of(report))),
         *_targets_section(report.get("targets")),
         (f"Similarity to {reference_data(report['profile']['backbone'])}",
          _profile_section(report["profile"])),
         ("Dataset", _dataset_section(report["dataset"], listed_in="report.json"))],
        raw=report, subtitle=f"Data: {data_dir}",
    )


def compare_html(summary: Mapping[str, Any]) -> str:
    """Build ``compare.html`` from the ``compare.json`` dict."""
    runs = summary["rows"]
    several = len({r.get("backbone") for r in runs}) > 1
    labels = [(f"{r['backbone']} " if several else "") + r["regime"] for r in runs]
    rows = [(("* " if r["picked"] else "") + label, r["test_accuracy"], r["macro_f1"],
             f"{r['fit_s']:.1f}", f"{r.get('predict_ms_per_image', float('nan')):.1f}",
             f"{r['model_bytes'] / 1e6:.1f} MB") for label, r in zip(labels, runs)]
    body = h.table_html(rows, header=[("backbone, regime" if several else "regime") + " (* = advised)",
                                      "test accuracy", "macro-F1", "fit s", "predict ms/image",
                                      "model size"])
    body += h.image_html(h.bar_figure(labels, [r["test_accuracy"] for r in runs],
                                      title="Test accuracy by " + ("run" if several else "regime"),
                                      ylabel="accuracy"), "accuracy")
    title = "Backbones compared" if several else "Regimes compared"
    return h.page(f"{title} on {summary.get('data_dir', '')}", [("Comparison", body)],
                  raw=summary)
