"""The execution half of a run: decode, fit the plan's strategy, evaluate, export, report.

This module and :mod:`advisor.app.compare` are where the advisor reaches the
strategies, and only via ``get_strategy(plan.regime)``. They decide nothing:
the plan comes from :func:`advisor.decide.decide`, the work from the strategy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor.app.advice import ADVICE_FILE, MODEL_FILE, REPORT_FILE, SPLIT_FILE, Advice, targets_summary
from advisor.app.evaluation import (
    Evaluation,
    RegressionEvaluation,
    evaluate,
    evaluate_regression,
    largest_errors,
    most_confident_mistakes,
)
from advisor.app.run_folder import RunFolder, open_run_folder, write_error
from advisor.app.built_backbones import get_backbone
from advisor.backbones.model_file import save_model
from advisor.data import Dataset
from advisor.data.decode_cache import decode_dataset
from advisor.environment import describe_environment
from advisor.plan import Plan, Task
from advisor.reports.pages import run_html
from strategies import get_strategy
from strategies.inputs import LabelledImages

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """A finished run: where it is and what it reached."""

    out: Path
    evaluation: Evaluation | RegressionEvaluation
    report: dict[str, Any]


def _labelled(decoded, dataset: Dataset, split: str):

    return LabelledImages(images=decoded[split].images, labels=dataset.labels(split),
                          rows=decoded[split].rows,
                          targets=dataset.targets(split) if dataset.is_regression else None)


def execute(
    advice: Advice,
    out: Path,
    *,
    overwrite: bool = False,
    progress: bool = False,
    verbose: int = 0,
    plan: Plan | None = None,
) -> RunResult:
    """Run the plan, evaluate it on the test split, and write the run folder.

    The folder gets ``model.keras`` (uint8 images -> class probabilities, class
    names inside; for a regression plan -> ``(N, 1)`` target values, scored by
    MAE, RMSE and R2 beside the training-mean baseline), ``report.json``, ``report.html``, ``advice.json`` and
    ``split.json``. It is written as ``<out>.partial`` and renamed when done;
    re-running after an interruption resumes from the partial folder.

    Another run on the same `out` at the same time stops at once
    (:class:`~advisor.app.run_folder.RunLockedError`) and touches nothing of
    this one. After ``kill -9`` the same call resumes: the phases that
    finished are restored and the interrupted one continues from its last
    completed epoch (:func:`strategies.training.train`).

    Args:
        advice: The advice to execute.
        out: Output folder.
        overwrite: Replace a finished run in `out`. Defaults to `False`.
        progress: Show progress bars. Defaults to `False`.
        verbose: Keras verbosity. Defaults to `0`.
        plan: Run this plan instead of ``advice.plan`` (``compare``). Defaults to `None`.

    Returns:
        The :class:`RunResult`.

    Raises:
        AdvisorError: The output folder exists or is in use by another run,
            the data cannot be decoded, or a file cannot be written
            (:class:`~advisor.errors.StorageError`).
    """

    plan = plan or advice.plan
    folder = open_run_folder(out, overwrite=overwrite)  # the run's lock on `out`, until commit
    with folder:  # released however the run ends (a killed process drops it too)
        return _execute(advice, plan, folder, progress=progress, verbose=verbose)


def _execute(advice: Advice, plan: Plan, folder: RunFolder, *, progress: bool,
             verbose: int) -> RunResult:
    if folder.resumed:
        logger.warning("Resuming the interrupted run in %s", folder.partial)
    # Saved first, so an interrupted run resumes with the same split and plan.
    folder.write_json(ADVICE_FILE, advice.to_dict() | {"plan": plan.to_dict()})
    advice.dataset.save_split(folder.partial / SPLIT_FILE)
    timings: dict[str, float] = dict(advice.timings)

    start = time.perf_counter()
    # At the plan's decode_size (native, resized inside the model) when it has one.
    dataset, decoded = decode_dataset(advice.dataset, plan.input_size,
                                      resize_ratio=plan.decode_resize_ratio, progress=progress)
    timings["decode"] = time.perf_counter() - start

    start = time.perf_counter()
    network = get_backbone(plan.backbone, image_size=plan.image_size, input_size=plan.decode_size)
    strategy = get_strategy(plan.regime)(plan=plan, backbone=network)
    strategy.fit(_labelled(decoded, dataset, "train"), _labelled(decoded, dataset, "val"),
                 class_names=dataset.class_names, work_dir=folder.work, verbose=verbose)
    timings["fit"] = time.perf_counter() - start

    start = time.perf_counter()
    test = decoded["test"]
    scored = _score(strategy, plan, dataset, test)
    timings["evaluate"] = time.perf_counter() - start

    start = time.perf_counter()
    regression = plan.task is Task.REGRESSION
    model = strategy.export_model()
    try:
        save_model(model, folder.partial / MODEL_FILE,
                   (dataset.target_name,) if regression else dataset.class_names, task=plan.task.value)
    except OSError as exc:
        raise write_error(folder.partial / MODEL_FILE, exc) from None
    timings["export"] = time.perf_counter() - start

    mistakes, examples = _examples(scored, dataset)
    report = {
        "data_dir": str(dataset.root),
        "plan": plan.to_dict(),
        "advised_regime": advice.plan.regime.value,
        "dataset": dataset.summary.to_dict(),
        "profile": advice.profile.to_dict(),
        "evaluation": scored.evaluation.to_dict(),
        "history": _jsonable(getattr(strategy, "history_", {})),
        "timings_s": timings,
        "environment": describe_environment(),
        "seed": plan.seed,
        "resumed": folder.resumed,
        "model_file": MODEL_FILE,
        "model_bytes": (folder.partial / MODEL_FILE).stat().st_size,
        **examples,
    } | ({"targets": targets_summary(dataset)} if regression else {})
    folder.write_json(REPORT_FILE, report)
    thumbnails = [np.asarray(test.images[test.rows[i]]) for i in mistakes]
    folder.write_text("report.html", run_html(report, mistake_images=thumbnails))
    final = folder.commit()
    return RunResult(out=final, evaluation=scored.evaluation, report=report)


@dataclass(frozen=True)
class _Scored:
    """The test split's truth, the model's outputs on it and their evaluation."""

    truth: np.ndarray
    outputs: np.ndarray  # (N,) predicted values, or (N, classes) probabilities
    evaluation: Evaluation | RegressionEvaluation
    regression: bool


def _score(strategy, plan: Plan, dataset: Dataset, test) -> _Scored:
    """Predict the test split and evaluate it (MAE/RMSE/R2, or accuracy and per-class figures)."""
    if plan.task is Task.REGRESSION:
        predicted = np.asarray(strategy.predict(test.images, rows=test.rows), dtype=np.float64)
        truth = dataset.targets("test")
        evaluation = evaluate_regression(truth, predicted, target_name=dataset.target_name,
                                         train_mean=float(dataset.targets("train").mean()))
        return _Scored(truth, predicted, evaluation, regression=True)
    probabilities = np.asarray(strategy.predict_proba(test.images, rows=test.rows))
    truth = dataset.labels("test")
    temperature = (getattr(strategy, "history_", {}).get("calibration") or {}).get("temperature")
    return _Scored(truth, probabilities, evaluate(truth, probabilities, dataset.class_names,
                                                      train_labels=dataset.labels("train"),
                                                      temperature=temperature),
                   regression=False)


def _examples(scored: _Scored, dataset: Dataset) -> tuple[list[int], dict[str, Any]]:
    """Return the test rows worth showing and the report's entries for them.

    A regression run shows its largest errors (and every test prediction, for
    the predicted-vs-true plot); a classification run its most confident mistakes.
    """
    test_files = dataset.files("test")
    y_test, outputs = scored.truth, scored.outputs
    if scored.regression:
        mistakes = largest_errors(y_test, outputs)
        return mistakes, {"largest_errors": [
            {"file": str(test_files[i]), "true": float(y_test[i]), "predicted": float(outputs[i]),
             "error": float(outputs[i] - y_test[i])} for i in mistakes],
            "test_predictions": {"true": y_test.tolist(), "predicted": outputs.tolist()}}
    mistakes = most_confident_mistakes(y_test, outputs)
    return mistakes, {"most_confident_mistakes": [
        {"file": str(test_files[i]), "true": dataset.class_names[y_test[i]],
         "predicted": dataset.class_names[int(outputs[i].argmax())],
         "probability": float(outputs[i].max())} for i in mistakes]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
