"""The readable reports: ``advice.html``, ``report.html``, ``compare.html``.

Each page is built from the same dict that is written as JSON next to it, so
the page never shows a number the JSON lacks.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from advisor.measure.profile import reference_data
from advisor.reports import html as h
from advisor.reports.profile_view import profile_figures, profile_rows


def _dataset_section(dataset: Mapping[str, Any]) -> str:
    counts = dataset.get("class_counts", {})
    rows = [("images", dataset.get("n_images")), ("classes", dataset.get("n_classes")),
            ("imbalance (largest / smallest class)", dataset.get("imbalance_ratio")),
            ("skipped files", len(dataset.get("skipped", []))),
            ("duplicate files", dataset.get("n_duplicate_files", ""))]
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
        body += h.image_html(h.bar_figure(list(counts), list(counts.values()),
                                          title="Images per class", ylabel="images"), "class counts")
    skipped = dataset.get("skipped", [])
    if skipped:
        body += "<h3>Skipped files</h3>" + h.table_html(
            [(s.get("path"), s.get("reason")) for s in skipped[:200]], header=["file", "reason"])
    return body


def _plan_section(plan: Mapping[str, Any]) -> str:
    reasons = plan.get("reasons", {})
    rows = [(key, value if not isinstance(value, list) else ", ".join(map(str, value)),
             reasons.get(key, "")) for key, value in sorted(plan.items()) if key != "reasons"]
    return (f"<p class='regime'>{html.escape(str(plan.get('regime')))}</p>"
            + h.table_html(rows, header=["field", "value", "why"]))


def _profile_section(profile: Mapping[str, Any]) -> str:
    body = h.table_html(profile_rows(profile), header=["measure", "value"])
    for alt, png in profile_figures(profile):
        body += h.image_html(png, alt)
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
    """Build ``advice.html`` from the ``advice.json`` dict.

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
    return h.page(
        f"Advice for {advice.get('data_dir', '')}",
        [("Plan", _plan_section(advice["plan"])),
         *_targets_section(advice.get("targets")),
         (f"Similarity to {reference_data(advice['profile']['backbone'])}",
          _profile_section(advice["profile"])),
         ("Dataset", _dataset_section(advice["dataset"]))],
        raw=advice,
    )


#: Per-phase history fields worth a row in the report (the rest is in report.json).
_HISTORY_SUMMARY = ("best_epoch", "best_val_loss", "retried", "wall_s", "dtype_policy", "dim", "train_rows",
                    "path", "prefix_cache", "prefix_cache_fallback")


def _epoch_curves(epochs: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    curves: dict[str, list[float]] = {}
    for record in epochs:
        for key in ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae"):
            if isinstance(record.get(key), (int, float)):
                curves.setdefault(key, []).append(float(record[key]))
    return curves


def _history_section(history: Mapping[str, Any]) -> str:
    body = ""
    for phase, record in history.items():
        if not isinstance(record, Mapping):
            continue
        epochs = record.get("epochs")
        if isinstance(epochs, list) and epochs and isinstance(epochs[0], Mapping):
            body += h.image_html(h.curves_figure(_epoch_curves(epochs), xlabel="epoch (all attempts)",
                                                 title=f"Training: {phase}"), f"history {phase}")
        rows = [(key, record[key]) for key in _HISTORY_SUMMARY if key in record]
        rows += [("note", note) for note in record.get("notes", []) or []]
        if rows:
            body += f"<h3>{html.escape(str(phase))}</h3>" + h.table_html(rows)
    return body or "<p>No training history (closed-form fit).</p>"


def run_html(report: Mapping[str, Any], *, mistake_images: Sequence[np.ndarray] = ()) -> str:
    """Build ``report.html`` from the ``report.json`` dict and mistake thumbnails.

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
    results = h.table_html([
        ("test images", evaluation["n_images"]), ("test accuracy", evaluation["accuracy"]),
        ("macro-F1", evaluation["macro_f1"]),
        *[(f"time: {k}", f"{v:.1f} s") for k, v in report.get("timings_s", {}).items()],
        ("backend / device", f"{report['environment']['backend']} / {report['environment']['device']}"),
    ])
    results += h.image_html(h.confusion_figure(evaluation["confusion"], names), "confusion matrix")
    results += h.image_html(h.bar_figure(names, [per_class[n]["recall"] for n in names],
                                         title="Per-class accuracy (recall)", ylabel="recall"),
                            "per-class accuracy")
    mistakes = report.get("most_confident_mistakes", [])
    if mistakes and len(mistake_images):
        captions = [f"{m['true']} -> {m['predicted']} ({m['probability']:.2f})" for m in mistakes]
        results += h.image_html(h.thumbnails_figure(list(mistake_images), captions,
                                                    title="Most confident mistakes"), "mistakes")
    return _run_page(report, results)


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
        results += h.image_html(h.scatter_figure(
            predictions["true"], predictions["predicted"], label=name,
            baseline=evaluation["train_mean"],
            title=f"Predicted vs true {name} (test split, R2 {evaluation['r2']:.3f})"),
            "predicted vs true")
    worst = report.get("largest_errors", [])
    if worst and len(images):
        captions = [f"{w['true']:.3g} -> {w['predicted']:.3g}" for w in worst]
        results += h.image_html(h.thumbnails_figure(list(images), captions,
                                                    title="Largest errors (true -> predicted)"),
                                "largest errors")
    return results


def _run_page(report: Mapping[str, Any], results: str) -> str:
    return h.page(
        f"Run on {report.get('data_dir', '')}: {report['plan']['regime']}",
        [("Results", results), ("Training", _history_section(report.get("history", {}))),
         ("Plan", _plan_section(report["plan"])),
         *_targets_section(report.get("targets")),
         (f"Similarity to {reference_data(report['profile']['backbone'])}",
          _profile_section(report["profile"])),
         ("Dataset", _dataset_section(report["dataset"]))],
        raw=report,
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
