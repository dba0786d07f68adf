"""The answer first: the sentences that open the console result and ``report.html``.

:func:`summarize` reads a ``report.json`` dict and says, in plain sentences
shared by both views: which regime ran and why, the test accuracy with its
interval beside the majority-class baseline and the advice's probe, how far
the probabilities are calibrated, the weakest classes, the top confusions,
and the next commands (``advise predict ...``; more epochs when a training
curve was still rising, more images when the probe's learning curve was).
Reports written before a figure existed simply leave its sentence out.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

# Display thresholds of the summary (they change no result, so they are not
# Plan fields; they would sit in advisor/config.py once that file is free to edit).
#: Classes named as the weakest: at most this many, and only those below a recall of 1.
WEAKEST_CLASSES = 3
#: Confusions named: at most this many (true class taken for another), largest first.
TOP_CONFUSIONS = 3
#: The probe's learning curve counts as still rising when its last step gains more than this.
RISING_GAIN = 0.01
#: A test ECE above this is called poorly calibrated.
ECE_POOR = 0.05


@dataclass(frozen=True, slots=True)
class Summary:
    """The opening of a run's report.

    Attributes:
        headline: The regime and why, one sentence.
        scores: The test scores in sentences (accuracy, interval, baseline,
            probe; or the regression errors beside the training mean).
        calibration: How calibrated the probabilities are, or `None`.
        weakest: The weakest classes in words, or `None`.
        confusions: The top confusions in words, or `None`.
        warnings: Sentences that qualify the scores.
        next_steps: ``(command, why)`` pairs, the first one ``advise predict``.
    """

    headline: str
    scores: tuple[str, ...]
    calibration: str | None
    weakest: str | None
    confusions: str | None
    warnings: tuple[str, ...]
    next_steps: tuple[tuple[str, str], ...]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def dataset_name(data_dir: str) -> str:
    """Return the name a page calls a dataset: its folder's name.

    Example:
        >>> dataset_name("/root/.cache/finetune-advisor/datasets/digits")
        'digits'
        >>> dataset_name("")
        'dataset'
    """
    return PurePath(str(data_dir)).name or "dataset"


def regime_sentence(report: Mapping[str, Any]) -> str:
    """Say which regime ran and why (the plan's reason for it).

    Example:
        >>> regime_sentence({"plan": {"regime": "svm", "reasons": {"regime": "1,797 images < 5,000."}}})
        'Regime svm: 1,797 images < 5,000.'
        >>> regime_sentence({"plan": {"regime": "full"}, "advised_regime": "svm"})
        'Regime full (the advice was svm).'
    """
    plan = report.get("plan", {})
    regime = plan.get("regime", "?")
    why = (plan.get("reasons") or {}).get("regime", "")
    advised = report.get("advised_regime")
    head = f"Regime {regime}" + (f" (the advice was {advised})" if advised and advised != regime else "")
    return f"{head}: {why}" if why else f"{head}."


def score_sentences(report: Mapping[str, Any]) -> tuple[str, ...]:
    """Say the test scores: accuracy with its interval, beside the baseline and the probe's expectation.

    Example:
        >>> score_sentences({"evaluation": {"n_images": 45, "accuracy": 0.644, "macro_f1": 0.336,
        ...     "accuracy_interval": [0.498, 0.768], "baseline_accuracy": 0.578, "baseline_class": "cat"},
        ...     "profile": {"probes": {"linear_accuracy": 0.7}, "n_sampled": 300}})  # doctest: +NORMALIZE_WHITESPACE
        ('Test accuracy 0.644 (95% interval 0.498 to 0.768) on 45 images; macro-F1 0.336.',
         'Always predicting the largest training class (cat) scores 0.578.',
         "The advice's linear probe expected 0.700 (cross-validated on 300 sampled images).")
    """
    evaluation = report.get("evaluation", {})
    if evaluation.get("task") == "regression":
        return (f"Test MAE {evaluation['mae']:.4g}, RMSE {evaluation['rmse']:.4g}, R2 "
                f"{evaluation['r2']:.3f} on {evaluation['n_images']} images; predicting the training "
                f"mean ({evaluation['train_mean']:.4g}) gives MAE {evaluation['baseline_mae']:.4g}.",)
    if not _finite(evaluation.get("accuracy")):
        return ("No test images: no accuracy was measured.",)
    interval = evaluation.get("accuracy_interval") or []
    within = (f" (95% interval {interval[0]:.3f} to {interval[1]:.3f})"
              if len(interval) == 2 and all(_finite(v) for v in interval) else "")
    out = [f"Test accuracy {evaluation['accuracy']:.3f}{within} on {evaluation['n_images']} images; "
           f"macro-F1 {evaluation['macro_f1']:.3f}."]
    if _finite(evaluation.get("baseline_accuracy")):
        out.append(f"Always predicting the largest training class ({evaluation.get('baseline_class')}) "
                   f"scores {evaluation['baseline_accuracy']:.3f}.")
    probes = (report.get("profile") or {}).get("probes") or {}
    plan = report.get("plan") or {}
    # An SVM on several layers is compared with the probe on the same layers.
    together = plan.get("feature_layers") and _finite(probes.get("layers_accuracy"))
    expected = probes.get("layers_accuracy") if together else probes.get("linear_accuracy")
    if _finite(expected):
        sampled = (report.get("profile") or {}).get("n_sampled")
        out.append(f"The advice's linear probe{' on the same layers' if together else ''} expected "
                   f"{expected:.3f}" + (f" (cross-validated on {sampled:,} sampled images)." if sampled else "."))
    return tuple(out)


def calibration_sentence(report: Mapping[str, Any]) -> str | None:
    """Say how the probabilities were calibrated and how far they are off (ECE), or `None`.

    Example:
        >>> calibration_sentence({"history": {"calibration": {"temperature": 0.12, "n_images": 269,
        ...     "val_ece_before": 0.52, "val_ece_after": 0.02}}, "evaluation": {"ece": 0.03}})
        'Probabilities calibrated on the 269 validation images (temperature 0.12): expected calibration error 0.520 before, 0.020 after; 0.030 on the test split.'
    """
    history = report.get("history") if isinstance(report.get("history"), Mapping) else {}
    record = history.get("calibration")
    evaluation = report.get("evaluation", {})
    test = evaluation.get("ece")
    if not isinstance(record, Mapping):
        return (f"Probabilities not calibrated (a model from before calibration); test expected "
                f"calibration error {test:.3f}.") if _finite(test) else None
    before, after = record.get("val_ece_before"), record.get("val_ece_after")
    text = (f"Probabilities calibrated on the {record.get('n_images')} validation images "
            f"(temperature {record.get('temperature', 1.0):.3g})")
    if _finite(before) and _finite(after):
        text += f": expected calibration error {before:.3f} before, {after:.3f} after"
    if _finite(test):
        untouched = evaluation.get("ece_uncalibrated")
        text += f"; {test:.3f} on the test split" + (
            f" ({untouched:.3f} uncalibrated)" if _finite(untouched) else "")
        if test > ECE_POOR:
            text += f", above {ECE_POOR:g}: read the scores as rough"
    return text + "."


def weakest_classes(evaluation: Mapping[str, Any], *, k: int = WEAKEST_CLASSES
                    ) -> list[tuple[str, float, int]]:
    """Return up to `k` classes of lowest recall below 1: ``(class, recall, test images)``.

    Example:
        >>> weakest_classes({"per_class": {"a": {"recall": 1.0, "support": 5},
        ...                                "b": {"recall": 0.5, "support": 4}}})
        [('b', 0.5, 4)]
    """
    rows = [(name, float(v.get("recall", 0.0)), int(v.get("support", 0)))
            for name, v in (evaluation.get("per_class") or {}).items()]
    rows = [r for r in rows if r[2] > 0 and r[1] < 1.0]
    return sorted(rows, key=lambda r: (r[1], -r[2]))[:k]


def top_confusions(evaluation: Mapping[str, Any], *, k: int = TOP_CONFUSIONS
                   ) -> list[tuple[str, str, int, int]]:
    """Return the `k` largest off-diagonal cells: ``(true class, predicted class, images, true's images)``.

    Example:
        >>> top_confusions({"class_names": ["cat", "dog"], "confusion": [[8, 2], [1, 9]]})
        [('cat', 'dog', 2, 10), ('dog', 'cat', 1, 10)]
    """
    names = evaluation.get("class_names") or []
    matrix = evaluation.get("confusion") or []
    cells = [(names[i], names[j], int(v), int(sum(row)))
             for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j and v > 0]
    return sorted(cells, key=lambda c: (-c[2], c[0], c[1]))[:k]


def _weakest_sentence(evaluation: Mapping[str, Any]) -> str | None:
    weak = weakest_classes(evaluation)
    if not weak:
        return None
    return "Weakest classes (recall): " + ", ".join(
        f"{name} ({recall:.2f} of {n})" for name, recall, n in weak) + "."


def _confusion_sentence(evaluation: Mapping[str, Any]) -> str | None:
    cells = top_confusions(evaluation)
    if not cells:
        return None
    return "Most confused: " + "; ".join(
        f"{true} taken for {predicted} in {n} of {total}" for true, predicted, n, total in cells) + "."


def next_steps(report: Mapping[str, Any], *, out: str | None = None) -> tuple[tuple[str, str], ...]:
    """Return the next commands worth running, with why: predict first, then what may help.

    More epochs when a fine-tuning phase ran out of budget still improving
    (its ``budget``); more labelled images when the advice's linear-probe
    learning curve was still rising by more than ``RISING_GAIN`` at the full
    sample; ``advise compare`` when the test interval is too wide or the
    accuracy does not beat the baseline.

    Args:
        report: The ``report.json`` dict.
        out: The run folder. Defaults to `None` (commands name ``model.keras``
            in the report's own folder).

    Returns:
        ``(command, why)`` pairs.

    Example:
        >>> steps = next_steps({"data_dir": "/data/birds", "plan": {"regime": "partial", "epochs": 3},
        ...     "history": {"fine_tune": {"budget": {"converged": False, "stopped_by": "budget",
        ...                                          "max_epochs": 3, "sentence": "..."}}}},
        ...     out="runs/birds")
        >>> [command for command, _ in steps]
        ['advise predict runs/birds/model.keras IMAGE...', 'advise /data/birds --epochs 6 --out runs/birds-epochs6']
    """
    model = f"{out}/model.keras" if out else "model.keras"
    data_dir = shlex.quote(str(report.get("data_dir", "DATA_DIR")))
    regression = (report.get("evaluation") or {}).get("task") == "regression"
    steps = [(f"advise predict {shlex.quote(model)} IMAGE...",
              "predicted values for new images" if regression else
              "the top classes of new images, with calibrated probabilities"
              + ("" if out else " (run it in this report's folder)"))]
    history = report.get("history") if isinstance(report.get("history"), Mapping) else {}
    fine = history.get("fine_tune") if isinstance(history.get("fine_tune"), Mapping) else {}
    budget = fine.get("budget") if isinstance(fine.get("budget"), Mapping) else {}
    if budget and not budget.get("converged", True) and budget.get("stopped_by") == "budget":
        epochs = 2 * int(budget.get("max_epochs") or (report.get("plan") or {}).get("epochs") or 1)
        target = f"{out or 'advise-runs/' + dataset_name(report.get('data_dir', ''))}-epochs{epochs}"
        steps.append((f"advise {data_dir} --epochs {epochs} --out {shlex.quote(target)}",
                      "fine-tuning was still improving when its epochs ran out"))
    head = history.get("head") if isinstance(history.get("head"), Mapping) else {}
    head_budget = head.get("budget") if isinstance(head.get("budget"), Mapping) else {}
    if head_budget and not head_budget.get("converged", True) and not fine:
        steps.append((f"advise compare {data_dir}",
                      "the head was still improving when its epochs ran out: see whether "
                      "fine-tuning (partial, full) does better"))
    probes = (report.get("profile") or {}).get("probes") or {}
    curve = probes.get("learning_curve") or []
    if len(curve) >= 2 and curve[-1][1] - curve[-2][1] > RISING_GAIN:
        (f0, a0), (f1, a1) = curve[-2], curve[-1]
        steps.append(("add labelled images, then run advise again",
                      f"the linear probe's learning curve is still rising ({a0:.3f} at {f0:.0%} of "
                      f"the sample, {a1:.3f} at {f1:.0%}): more images should help"))
    evaluation = report.get("evaluation") or {}
    interval = evaluation.get("accuracy_interval") or []
    wide = len(interval) == 2 and all(_finite(v) for v in interval) and interval[1] - interval[0] > 0.1
    if not regression and wide:
        steps.append((f"advise compare {data_dir}",
                      "the test split is small: compare the regimes under one split before "
                      "trusting a difference between them"))
    return tuple(dict.fromkeys(steps))  # one of each, in order


def summarize(report: Mapping[str, Any], *, out: str | None = None) -> Summary:
    """Return the opening :class:`Summary` of a run's report.

    Args:
        report: The ``report.json`` dict.
        out: The run folder, for the commands. Defaults to `None`.

    Returns:
        The :class:`Summary`.

    Example:
        >>> summary = summarize({"data_dir": "/d/digits", "plan": {"regime": "svm", "reasons": {}},
        ...     "evaluation": {"n_images": 10, "accuracy": 0.9, "macro_f1": 0.9, "class_names": ["a", "b"],
        ...                    "confusion": [[5, 0], [1, 4]], "per_class": {
        ...                        "a": {"recall": 1.0, "support": 5}, "b": {"recall": 0.8, "support": 5}}}})
        >>> summary.headline, summary.weakest, summary.confusions
        ('Regime svm.', 'Weakest classes (recall): b (0.80 of 5).', 'Most confused: b taken for a in 1 of 5.')
    """
    evaluation = report.get("evaluation", {})
    regression = evaluation.get("task") == "regression"
    warnings = () if regression else tuple(evaluation.get("warnings", []) or [])
    findings = (report.get("dataset") or {}).get("findings") or []
    errors = [f for f in findings if f.get("level") == "error"]
    if errors:
        warnings += (f"{len(errors)} error-level finding(s) about the data (listed below): "
                     f"{errors[0].get('message', '')}",)
    return Summary(
        headline=regime_sentence(report),
        scores=score_sentences(report),
        calibration=None if regression else calibration_sentence(report),
        weakest=None if regression else _weakest_sentence(evaluation),
        confusions=None if regression else _confusion_sentence(evaluation),
        warnings=warnings,
        next_steps=next_steps(report, out=out),
    )


def plan_field_names(plan: Mapping[str, Any], history: Mapping[str, Any] | None = None) -> list[str]:
    """Return the plan fields the run's regime uses, in reading order (the rest fold away).

    The phases decide: a closed-form fit (``svm``) reads the backbone, the
    feature layer, the image size, the C grid and the class weights; a
    trained head reads its own settings; fine-tuning (a plan with epochs)
    adds the frozen blocks, the backbone's rate, the epochs and where it runs.
    A run's ``history`` says which phases ran; without one (the advice) the
    regime says which will.

    Args:
        plan: The plan dict.
        history: The run's history. Defaults to `None` (the phases the regime plans).

    Returns:
        Field names present in `plan`.

    Example:
        >>> plan_field_names({"regime": "svm", "backbone": "b", "image_size": 96, "feature_layer": "f",
        ...                   "svm_c_grid": [1.0], "class_weights": None, "head_epochs": 50, "patience": 10})
        ['backbone', 'feature_layer', 'image_size', 'svm_c_grid', 'class_weights']
        >>> plan_field_names({"regime": "svm", "backbone": "b", "feature_layer": "f", "feature_layers": ["a", "f"],
        ...                   "svm_c_grid": [1.0]})
        ['backbone', 'feature_layers', 'svm_c_grid']
    """
    history = history if isinstance(history, Mapping) else {}
    if history:
        phases = [p for p in _PHASE_FIELDS if p in history]
    else:
        phases = list(_REGIME_PHASES.get(str(plan.get("regime")), ("head",)))
        if "fine_tune" in phases and not plan.get("epochs"):
            phases.remove("fine_tune")
    names = list(_COMMON_FIELDS)
    for phase in phases:
        names += [n for n in _PHASE_FIELDS[phase] if n not in names]
    if not plan.get("augmentation"):
        names = [n for n in names if not n.startswith("augment")]
    if plan.get("task") == "regression":
        names.append("task")
        if "svm" not in phases:
            names.append("loss")
    if not plan.get("head_units"):
        names = [n for n in names if n not in ("head_dropout", "head_batchnorm")]
    if "optimizer" in names:  # SGD reads its momentum, AdamW its weight decay
        names.insert(names.index("optimizer") + 1,
                     "momentum" if plan.get("optimizer") == "sgd" else "weight_decay")
    if not plan.get("prefix_cache"):
        names = [n for n in names if n not in ("prefix_views", "prefix_cache_mb")]
    # Several layers read together replace the one feature layer.
    names = [n for n in names if n != ("feature_layer" if plan.get("feature_layers") else "feature_layers")]
    names.append("class_weights")
    return [n for n in dict.fromkeys(names) if n in plan]


#: Fields every regime reads (class weights go last; the regime is the heading).
_COMMON_FIELDS = ("backbone", "feature_layer", "image_size", "decode_size")
#: Fields each phase reads.
_PHASE_FIELDS: dict[str, tuple[str, ...]] = {
    "svm": ("feature_layers", "svm_c_grid", "svm_cv_folds"),
    "head": ("head_units", "head_dropout", "head_batchnorm", "optimizer", "head_learning_rate",
             "head_epochs", "patience", "batch_size", "augmentation", "augmentation_translate",
             "augmentation_zoom", "augmented_views"),
    "fine_tune": ("frozen_blocks", "epochs", "warmup_epochs", "backbone_learning_rate",
                  "rate_scales", "select_on", "precision", "devices", "prefix_cache", "prefix_views",
                  "prefix_cache_mb"),
}
#: The phases a regime plans (a display table: the strategies are registered by the same names).
_REGIME_PHASES: dict[str, tuple[str, ...]] = {
    "svm": ("svm",), "last-layer": ("head",), "partial": ("head", "fine_tune"),
    "full": ("head", "fine_tune"),
}


def class_names_of(report: Mapping[str, Any]) -> list[str]:
    """Return the class names a report knows, in label order (evaluation, profile or dataset).

    Example:
        >>> class_names_of({"profile": {"class_names": ["a", "b"]}})
        ['a', 'b']
    """
    evaluation = report.get("evaluation") or {}
    for names in (evaluation.get("class_names"), (report.get("profile") or {}).get("class_names"),
                  list(((report.get("dataset") or {}).get("class_counts") or {}).keys())):
        if names:
            return [str(n) for n in names]
    return []


def plan_value(name: str, value: Any, *, class_names: Sequence[str] = (), limit: int | None = None) -> str:
    """Return a plan field's value as a reader wants it: class weights by class and rounded, lists short.

    Args:
        name: The field.
        value: Its JSON value.
        class_names: Names of the classes, for ``class_weights``. Defaults to `()`.
        limit: At most this many list items (the rest counted). Defaults to `None` (all).

    Example:
        >>> plan_value("class_weights", [0.8333, 1.25], class_names=["cat", "dog"])
        'cat 0.83, dog 1.25'
        >>> plan_value("class_weights", None)
        'none (classes balanced)'
        >>> plan_value("frozen_blocks", ["stem", "b0", "b1", "b2"], limit=2)
        'stem, b0 ... and 2 more (4 in all)'
    """
    if name == "class_weights":
        if value is None:
            return "none (classes balanced)"
        labels = list(class_names) if len(class_names) == len(value) else [str(i) for i in range(len(value))]
        items = [f"{label} {float(w):.2f}" for label, w in zip(labels, value)]
    elif isinstance(value, list):
        if not value:
            return "none"
        items = [f"{v:g}" if isinstance(v, float) else str(v) for v in value]
    else:
        return f"{value:g}" if isinstance(value, float) else str(value)
    if limit is not None and len(items) > limit:
        return f"{', '.join(items[:limit])} ... and {len(items) - limit} more ({len(items)} in all)"
    return ", ".join(items)


def svm_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return the rows of the svm training section: chosen C (flagged at an edge), CV, train vs validation.

    Example:
        >>> rows = svm_rows({"c_grid": [0.01, 0.1, 1.0], "cv_accuracy": [0.96, 0.95, 0.95], "best_c": 0.01,
        ...                  "cv_folds": 5, "c_at_edge": "lowest", "train_accuracy": 0.999,
        ...                  "val_accuracy": 0.959})
        >>> rows[0]
        ('chosen C', '0.01 (the lowest of the grid: a smaller C might score higher)')
        >>> rows[1:]
        [('cross-validated accuracy (5 folds)', '0.960 at the chosen C'), ('train / validation accuracy', '0.999 / 0.959')]
    """
    rows = []
    grid = record.get("c_grid") or []
    best = record.get("best_c")
    edge = record.get("c_at_edge")
    if edge is None and best is not None and len(grid) > 1 and best in (grid[0], grid[-1]):
        edge = "lowest" if best == grid[0] else "highest"  # a report from before the flag
    if best is not None:
        flag = (f" (the {edge} of the grid: a {'smaller' if edge == 'lowest' else 'larger'} C "
                "might score higher)") if edge else ""
        rows.append(("chosen C", f"{best:g}{flag}"))
    scores = record.get("cv_accuracy")
    if record.get("cv") == "leave-one-out":  # ridge regression
        rows.append(("cross-validation", f"leave-one-out (closed form); alpha = 1 / (2C) = "
                                         f"{record.get('best_alpha', float('nan')):g}"))
    elif scores and best in grid:
        rows.append((f"cross-validated accuracy ({record.get('cv_folds')} folds)",
                     f"{scores[grid.index(best)]:.3f} at the chosen C"))
    elif len(grid) > 1:
        rows.append(("cross-validation", "none (a class has fewer than 2 training images)"))
    if _finite(record.get("train_accuracy")) and _finite(record.get("val_accuracy")):
        rows.append(("train / validation accuracy",
                     f"{record['train_accuracy']:.3f} / {record['val_accuracy']:.3f}"))
    if _finite(record.get("train_r2")) and _finite(record.get("val_r2")):
        rows.append(("train / validation R2", f"{record['train_r2']:.3f} / {record['val_r2']:.3f}"))
    return rows
