"""Rich console rendering of advice and results (the CLI's stdout)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from advisor.measure.profile import reference_data
from advisor.reports.profile_view import profile_rows, seen_as_rows, shift_sparkline


def _table(title: str, rows, header=("", "")) -> Table:
    table = Table(title=title, title_justify="left", show_header=bool(header[0]))
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    return table


def render_advice(advice: Mapping[str, Any], console: Console) -> None:
    """Print the size table, shift map, head confidence, probes and the plan with reasons.

    Example:
        >>> import io
        >>> from advisor.app.advice import Advice
        >>> from advisor.data import scan_dataset
        >>> from advisor.decide import decide
        >>> from advisor.measure import measure_dataset
        >>> ds = scan_dataset(digits_dir)
        >>> profile = measure_dataset(ds, backbone, sample_cap=20)
        >>> advice = Advice(ds, profile, decide(profile, backbone=backbone), timings={})
        >>> console = Console(file=io.StringIO(), width=100)
        >>> render_advice(advice.to_dict(), console)
        >>> "Plan: svm" in console.file.getvalue()
        True
    """
    dataset = advice["dataset"]
    profile = advice["profile"]
    plan = advice["plan"]
    counts = dataset.get("class_counts", {})
    size_rows = [("images", dataset.get("n_images")), ("classes", dataset.get("n_classes")),
                 ("imbalance (largest / smallest)", f"{dataset.get('imbalance_ratio', 0):.2f}"),
                 ("per class", ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:12])
                  + (" ..." if len(counts) > 12 else "")),
                 ("skipped files", len(dataset.get("skipped", []))),
                 ("split (train / val / test)", " / ".join(
                     str(v) for v in advice["split"]["sizes"].values())
                  + f", seed {advice['split']['seed']}"
                  + (" (given)" if advice["split"]["presplit"] else ""))]
    console.print(_table(f"Dataset: {advice['data_dir']}", size_rows))
    shift = profile["shift"]
    reference = reference_data(profile["backbone"])
    if shift is None:
        console.print(f"[bold]Shift map[/bold]: {'; '.join(profile.get('notes', [])) or 'unavailable'}",
                      highlight=False)
    else:
        console.print(f"[bold]Shift map[/bold] (stem -> head): {shift_sparkline(shift['block_kl'])}  "
                      f"first departing block: [bold]{shift['first_departing_block'] or 'none'}[/bold]")
    console.print(_table(f"Similarity to {reference}", profile_rows(profile)))
    seen = seen_as_rows(profile)
    head = "ImageNet" if reference == "ImageNet" else "base model"
    if seen:
        console.print(_table(f"Seen by the {head} head as", seen, header=("class folder", f"{head} classes")))
    targets = advice.get("targets")
    if targets:
        console.print(_table(f"Regression target: {targets['name']} ({targets['file']})", [
            ("range", f"{targets['min']:.4g} to {targets['max']:.4g}"),
            ("training mean / std", f"{targets['train_mean']:.4g} / {targets['train_std']:.4g}"),
            ("quantile bins ('classes' above)", ", ".join(targets["bins"])),
            ("note", targets["note"])]))
    reasons = plan.get("reasons", {})
    plan_rows = [(key, ", ".join(map(str, value)) if isinstance(value, list) else value,
                  reasons.get(key, "")) for key, value in sorted(plan.items())
                 if key not in ("reasons", "schema_version")]
    console.print(f"\n[bold]Plan:[/bold] [bold cyan]{plan['regime']}[/bold cyan]")
    console.print(_table("", plan_rows, header=("field", "value", "why")))


def render_result(report: Mapping[str, Any], out: Path, console: Console) -> None:
    """Print the held-out results of a finished run and where its files are.

    Example:
        >>> result = execute(advice, Path("advise-runs/digits"))  # fits and exports a model  # doctest: +SKIP
        >>> render_result(result.report, result.out, Console())  # doctest: +SKIP
    """
    evaluation = report["evaluation"]
    if evaluation.get("task") == "regression":
        scores = [(f"{name} (baseline: training mean)",
                   f"{evaluation[key]:.4g} ({evaluation['baseline_' + key]:.4g})")
                  for name, key in (("MAE", "mae"), ("RMSE", "rmse"), ("R2", "r2"))]
    else:
        scores = [("test accuracy", f"{evaluation['accuracy']:.4f}"),
                  ("macro-F1", f"{evaluation['macro_f1']:.4f}")]
    rows = [("regime", report["plan"]["regime"]), ("test images", evaluation["n_images"]),
            *scores,
            *[(f"time: {k}", f"{v:.1f} s") for k, v in report["timings_s"].items()],
            ("device", f"{report['environment']['backend']} / {report['environment']['device']}")]
    for note in report.get("history", {}).get("notes", []) if isinstance(report.get("history"), dict) else []:
        rows.append(("note", note))
    console.print(_table("Result (held-out test split)", rows))
    console.print(f"Written to [bold]{out}[/bold]: model.keras, report.json, report.html")
