"""Rich console rendering of advice and results (the CLI's stdout)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from advisor.measure.profile import reference_data
from advisor.reports.profile_view import profile_rows, seen_as_rows, shift_sparkline
from advisor.reports.summary import (
    class_names_of,
    dataset_name,
    plan_field_names,
    plan_value,
    regime_sentence,
    summarize,
    svm_rows,
)

#: List items shown in a console plan cell (class weights, blocks); --verbose and the JSON show all.
_PLAN_ITEMS = 12


def _table(title: str, rows, header=("", "")) -> Table:
    table = Table(title=title, title_justify="left", show_header=bool(header[0]))
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*[str(c) for c in row])
    return table


#: Findings printed under the dataset table; report.html lists them all.
_FINDINGS_SHOWN = 10
#: Skipped files named under the dataset table; the JSON lists them all.
_SKIPPED_SHOWN = 5
#: Rich style of each finding level.
_LEVEL_STYLE = {"error": "bold red", "warning": "yellow"}


def _duplicate_text(dataset: Mapping[str, Any]) -> str:
    """Say how many files are copies, in how many groups, and whether they straddle splits.

    Args:
        dataset: The dataset summary dict (``DatasetSummary.to_dict()``).

    Returns:
        One line, e.g. ``"3 copies in 2 groups (1 across splits, 1 under two classes)"``.

    Example:
        >>> _duplicate_text({"duplicates": [{"paths": ["a/1.png", "a/2.png"], "classes": ["a"],
        ...                                 "splits": ["train", "test"]}]})
        '1 copy in 1 group (1 across splits)'
        >>> _duplicate_text({"duplicates": []})
        'none'
    """
    groups = dataset.get("duplicates", []) or []
    if not groups:
        return "none"
    copies = dataset.get("n_duplicate_files", sum(len(g["paths"]) - 1 for g in groups))
    across = sum(1 for g in groups if len(g.get("splits", [])) > 1)
    conflicts = sum(1 for g in groups if len(g.get("classes", [])) > 1)
    notes = [f"{across} across splits" if across else "",
             f"{conflicts} under two classes" if conflicts else ""]
    detail = ", ".join(n for n in notes if n) or "each group in one split"
    return (f"{copies} cop{'y' if copies == 1 else 'ies'} in {len(groups)} "
            f"group{'' if len(groups) == 1 else 's'} ({detail})")


def _count_named(n: int) -> str:
    """Say a count of skipped files, pointing below when there are any.

    Example:
        >>> _count_named(0), _count_named(4)
        ('0', '4 (named below)')
    """
    return f"{n} (named below)" if n else "0"


def _finding_counts(findings: list[Mapping[str, Any]]) -> str:
    """Count findings by level: ``"1 error, 2 warnings"`` (empty when there are none).

    Example:
        >>> _finding_counts([{"level": "error"}, {"level": "warning"}, {"level": "warning"}])
        '1 error, 2 warnings'
    """
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding["level"]] = counts.get(finding["level"], 0) + 1
    return ", ".join(f"{n} {level}{'' if n == 1 else 's'}" for level, n in counts.items())


def render_findings(findings: list[Mapping[str, Any]], console: Console) -> None:
    """Print each finding of the dataset summary on its own line, errors first.

    At most ``_FINDINGS_SHOWN`` are printed; the rest are counted (report.html
    and the JSON list them all).

    Args:
        findings: ``DatasetSummary.to_dict()["findings"]``.
        console: Where to print.

    Example:
        >>> import io
        >>> console = Console(file=io.StringIO(), width=200)
        >>> render_findings([{"level": "error", "kind": "conflicting-labels",
        ...                   "message": "The same image is filed under 2 classes (a, b)."}], console)
        >>> console.file.getvalue().splitlines()
        ['error: The same image is filed under 2 classes (a, b).']
    """
    for finding in findings[:_FINDINGS_SHOWN]:
        style = _LEVEL_STYLE.get(finding["level"], "bold")
        console.print(f"[{style}]{escape(finding['level'])}[/{style}]: {escape(finding['message'])}",
                      highlight=False)
    if len(findings) > _FINDINGS_SHOWN:
        console.print(f"... and {len(findings) - _FINDINGS_SHOWN} more finding(s); report.html lists them all.",
                      highlight=False)


def render_skipped(skipped: list[Mapping[str, Any]], console: Console, *,
                   listed_in: str = "advice.json") -> None:
    """Name the first skipped files with their reasons, one a line, then count the rest.

    At most ``_SKIPPED_SHOWN`` are named; the HTML report lists more and the
    JSON (`listed_in`) all of them.

    Args:
        skipped: ``DatasetSummary.to_dict()["skipped"]`` (``path`` relative to
            the dataset folder, ``reason``).
        console: Where to print.
        listed_in: The file that lists them all. Defaults to `"advice.json"`.

    Example:
        >>> import io
        >>> console = Console(file=io.StringIO(), width=200)
        >>> render_skipped([{"path": f"cat/{i}.jpg", "reason": "empty file (0 bytes)"} for i in range(7)],
        ...                console)
        >>> lines = console.file.getvalue().splitlines()
        >>> lines[0], lines[-1]
        ('skipped: cat/0.jpg: empty file (0 bytes)', '... and 2 more skipped files; advice.json lists them all.')
    """
    for item in skipped[:_SKIPPED_SHOWN]:
        console.print(f"[yellow]skipped[/yellow]: {escape(str(item.get('path')))}: "
                      f"{escape(str(item.get('reason')))}", highlight=False)
    rest = len(skipped) - _SKIPPED_SHOWN
    if rest > 0:
        console.print(f"... and {rest} more skipped file{'' if rest == 1 else 's'}; "
                      f"{escape(listed_in)} lists them all.", highlight=False)


def render_advice(advice: Mapping[str, Any], console: Console, *, verbose: bool = False) -> None:
    """Print the advice in one line, then the size table, shift map, probes and the plan with reasons.

    The plan table lists the fields the chosen regime uses; the others (its
    defaults and other regimes' settings) are counted in one line, and listed
    with `verbose`.

    Args:
        advice: The ``advice.json`` dict (or a ``report.json`` one).
        console: Where to print.
        verbose: List every plan field. Defaults to `False`.

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
        >>> printed = console.file.getvalue()
        >>> "Plan: svm" in printed, "head_epochs" in printed  # a closed-form SVM has no epochs
        (True, False)
    """
    dataset = advice["dataset"]
    profile = advice["profile"]
    plan = advice["plan"]
    console.print(f"[bold]Advice for {escape(dataset_name(advice.get('data_dir', '')))}:[/bold] "
                  f"[bold cyan]{escape(str(plan['regime']))}[/bold cyan]. "
                  f"{escape(regime_sentence(advice).split(': ', 1)[-1])}", highlight=False)
    counts = dataset.get("class_counts", {})
    size_rows = [("images", dataset.get("n_images")), ("classes", dataset.get("n_classes")),
                 ("imbalance (largest / smallest)", f"{dataset.get('imbalance_ratio', 0):.2f}"),
                 ("per class", ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:12])
                  + (" ..." if len(counts) > 12 else "")),
                 ("skipped files", _count_named(len(dataset.get("skipped", []) or []))),
                 ("duplicate files", escape(_duplicate_text(dataset))),
                 ("split (train / val / test)", " / ".join(
                     str(v) for v in advice["split"]["sizes"].values())
                  + f", seed {advice['split']['seed']}"
                  + (" (given)" if advice["split"]["presplit"] else ""))]
    console.print(_table(f"Dataset: {advice['data_dir']}", size_rows))
    render_skipped(dataset.get("skipped", []) or [], console)
    render_findings(dataset.get("findings", []), console)
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
    render_plan(plan, console, verbose=verbose, class_names=class_names_of(advice))


def render_plan(plan: Mapping[str, Any], console: Console, *, verbose: bool = False,
                class_names: Sequence[str] = ()) -> None:
    """Print the plan: the fields its regime uses with their reasons, the rest counted (or listed).

    Args:
        plan: The plan dict.
        console: Where to print.
        verbose: Also list the fields the regime does not use. Defaults to `False`.
        class_names: Class names, to label the class weights. Defaults to `()`.

    Example:
        >>> import io
        >>> console = Console(file=io.StringIO(), width=120)
        >>> render_plan({"regime": "svm", "backbone": "mobilenet_v2", "image_size": 96,
        ...              "feature_layer": "pool", "svm_c_grid": [0.1, 1.0], "class_weights": [0.8, 1.3],
        ...              "head_epochs": 50, "reasons": {}}, console, class_names=["cat", "dog"])
        >>> printed = console.file.getvalue()
        >>> "cat 0.80, dog 1.30" in printed, "head_epochs" in printed, "1 more field" in printed
        (True, False, True)
    """
    reasons = plan.get("reasons", {})
    used = plan_field_names(plan)
    rest = [k for k in sorted(plan) if k not in used and k not in ("reasons", "regime", "schema_version")]
    shown = used + (rest if verbose else [])
    limit = None if verbose else _PLAN_ITEMS
    rows = [(key, escape(plan_value(key, plan[key], class_names=class_names, limit=limit)),
             escape(str(reasons.get(key, "")))) for key in shown]
    console.print(f"\n[bold]Plan:[/bold] [bold cyan]{escape(str(plan['regime']))}[/bold cyan]")
    console.print(_table("", rows, header=("field", "value", "why")))
    if rest and not verbose:
        console.print(f"{len(rest)} more field{'' if len(rest) == 1 else 's'} (defaults, or settings "
                      "this regime does not use): --verbose lists them; advice.json has every field.",
                      highlight=False)


def render_result(report: Mapping[str, Any], out: Path, console: Console) -> None:
    """Print the answer first (regime, scores, baselines, weak spots, next commands), then the detail.

    Example:
        >>> result = execute(advice, Path("advise-runs/digits"))  # fits and exports a model  # doctest: +SKIP
        >>> render_result(result.report, result.out, Console())  # doctest: +SKIP
    """
    render_summary(report, console, out=str(out))
    evaluation = report["evaluation"]
    if evaluation.get("task") == "regression":
        scores = [(f"{name} (baseline: training mean)",
                   f"{evaluation[key]:.4g} ({evaluation['baseline_' + key]:.4g})")
                  for name, key in (("MAE", "mae"), ("RMSE", "rmse"), ("R2", "r2"))]
    else:
        scores = _accuracy_rows(evaluation)
    findings = report.get("dataset", {}).get("findings", [])
    if findings:
        scores.append(("data findings", f"{_finding_counts(findings)} (listed above and in report.html)"))
    rows = [("regime", report["plan"]["regime"]), ("test images", evaluation["n_images"]),
            *scores,
            *[(f"time: {k}", f"{v:.1f} s") for k, v in report["timings_s"].items()],
            ("device", f"{report['environment']['backend']} / {report['environment']['device']}")]
    history = report.get("history") if isinstance(report.get("history"), dict) else {}
    for phase, record in history.items():
        budget = record.get("budget") if isinstance(record, dict) else None
        if isinstance(budget, dict) and budget.get("sentence"):
            rows.append((f"{phase}: budget curve", budget["sentence"]))
        search = record.get("rate_search") if isinstance(record, dict) else None
        if isinstance(search, dict) and len(search.get("candidates", [])) > 1:
            rows.append((f"{phase}: rate search", escape(search.get("sentence", ""))))
    if isinstance(history.get("svm"), dict):
        rows += [(f"svm: {label}", escape(value)) for label, value in svm_rows(history["svm"])]
    calibration = history.get("calibration") if isinstance(history.get("calibration"), dict) else {}
    if calibration:
        rows.append(("calibration: temperature", f"{calibration.get('temperature', 1.0):.4g}"))
    for note in [*history.get("notes", []), *calibration.get("notes", [])]:
        if not note.startswith("svm: cross-validation chose C="):  # the "svm: chosen C" row says it
            rows.append(("note", escape(note)))
    console.print(_table("Detail (held-out test split)", rows))
    console.print(f"Written to [bold]{escape(str(out))}[/bold]: model.keras, report.json, report.html, "
                  "advice.json, split.json", highlight=False)


def render_summary(report: Mapping[str, Any], console: Console, *, out: str | None = None) -> None:
    """Print the opening of a run's result in a panel: the answer, its scores, weak spots and next commands.

    Args:
        report: The ``report.json`` dict.
        console: Where to print.
        out: The run folder, for the commands. Defaults to `None`.

    Example:
        >>> import io
        >>> console = Console(file=io.StringIO(), width=120)
        >>> render_summary({"data_dir": "/d/digits", "plan": {"regime": "svm", "reasons": {}},
        ...                 "evaluation": {"n_images": 10, "accuracy": 0.9, "macro_f1": 0.9,
        ...                                "class_names": ["a", "b"], "confusion": [[5, 0], [1, 4]],
        ...                                "per_class": {"a": {"recall": 1.0, "support": 5},
        ...                                              "b": {"recall": 0.8, "support": 5}}}},
        ...                console, out="runs/digits")
        >>> printed = console.file.getvalue()
        >>> "Most confused: b taken for a in 1 of 5." in printed
        True
        >>> "advise predict runs/digits/model.keras IMAGE..." in printed
        True
    """
    summary = summarize(report, out=out)
    lines: list[Any] = [Text(summary.headline, style="bold")]
    for text in (*summary.scores, summary.calibration, summary.weakest, summary.confusions):
        if text:
            lines.append(Text(text))
    for warning in summary.warnings:
        lines.append(Text.assemble(("warning", "yellow"), f": {warning}"))
    if summary.next_steps:
        lines.append(Text("Next:", style="bold"))
        for command, why in summary.next_steps:
            lines += [Text.assemble("  ", (command, "bold")), Padding(Text(why, style="dim"), (0, 0, 0, 4))]
    console.print(Panel(Group(*lines), title=f"Result: {dataset_name(report.get('data_dir', ''))}",
                        title_align="left", border_style="cyan"))


def _accuracy_rows(evaluation: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rows of a classification's scores: accuracy with its interval, the baseline, macro-F1.

    A report written before the interval and the baseline existed gets the
    accuracy and macro-F1 rows only.

    Args:
        evaluation: ``Evaluation.to_dict()``.

    Returns:
        ``(label, value)`` pairs.

    Example:
        >>> _accuracy_rows({"accuracy": 0.644, "macro_f1": 0.336, "accuracy_interval": [0.498, 0.768],
        ...                "baseline_accuracy": 0.578, "baseline_class": "cat"})[:2]
        [('test accuracy (95% interval)', '0.6440 (0.498 to 0.768)'), ('baseline (always cat, the largest training class)', '0.5780')]
    """
    interval = evaluation.get("accuracy_interval")
    if interval and all(isinstance(v, (int, float)) and math.isfinite(v) for v in interval):
        rows = [("test accuracy (95% interval)",
                 f"{evaluation['accuracy']:.4f} ({interval[0]:.3f} to {interval[1]:.3f})")]
    else:
        rows = [("test accuracy", f"{evaluation['accuracy']:.4f}")]
    if evaluation.get("baseline_accuracy") is not None:
        label = f"baseline (always {escape(str(evaluation.get('baseline_class')))}, the largest training class)"
        rows.append((label, f"{evaluation['baseline_accuracy']:.4f}"))
    rows.append(("macro-F1", f"{evaluation['macro_f1']:.4f}"))
    return rows
