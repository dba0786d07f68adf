"""Wire one run: scan -> measure -> decide -> (execute -> evaluate -> export).

This is the one module where the advisor reaches the strategies, and only via
``get_strategy(plan.regime)``. It decides nothing itself: the plan comes from
:func:`advisor.decide.choices.decide`, the work from the strategy.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor import config
from advisor.app.evaluation import (
    Evaluation,
    RegressionEvaluation,
    evaluate,
    evaluate_regression,
    largest_errors,
    most_confident_mistakes,
)
from advisor.app.run_folder import PARTIAL_SUFFIX, open_run_folder
from advisor.backbones import get_backbone
from advisor.backbones.model_file import save_model
from advisor.data.dataset import Dataset, scan_dataset
from advisor.data.decode_cache import decode_dataset
from advisor.data.targets import TARGET_BINS_NOTE, scan_targets
from advisor.decide.choices import choose_backbone, decide
from advisor.environment import describe_environment
from advisor.errors import PlanError
from advisor.measure.cache import load_profile, profile_key, save_profile
from advisor.measure.forward import measure_dataset
from advisor.measure.profile import DatasetProfile
from advisor.plan import Plan, Regime, Task
from advisor.reports.pages import advice_html, compare_html, run_html
from strategies import get_strategy
from strategies.base import LabelledImages

logger = logging.getLogger(__name__)

ADVICE_FILE = "advice.json"
REPORT_FILE = "report.json"
MODEL_FILE = "model.keras"
SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class Advice:
    """What the advisor measured and decided for one dataset.

    Attributes:
        dataset: The scanned dataset (files, split, summary).
        profile: The measurements (:class:`advisor.measure.profile.DatasetProfile`).
        plan: The decision.
        timings: Wall seconds per phase (scan, measure, decide).
    """

    dataset: Dataset
    profile: Any
    plan: Plan
    timings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form written as ``advice.json``."""
        return {
            "data_dir": str(self.dataset.root),
            "dataset": self.dataset.summary.to_dict(),
            "class_names": list(self.dataset.class_names),
            "split": {"seed": self.dataset.seed, "presplit": self.dataset.presplit,
                      "sizes": {s: len(self.dataset.records(s)) for s in ("train", "val", "test")}},
            "profile": self.profile.to_dict(),
            "plan": self.plan.to_dict(),
            "timings_s": dict(self.timings),
            "environment": describe_environment(),
        } | ({"targets": _targets_summary(self.dataset)} if self.dataset.is_regression else {})


def _targets_summary(dataset: Dataset) -> dict[str, Any]:
    """Name, file and range of a regression dataset's targets (train split: mean and spread)."""

    train = dataset.targets("train")
    every = np.concatenate([dataset.targets(s) for s in ("train", "val", "test")])
    return {"name": dataset.target_name, "file": dataset.targets_file,
            "min": float(every.min()), "max": float(every.max()),
            "train_mean": float(train.mean()), "train_std": float(train.std()),
            "bins": list(dataset.class_names), "note": TARGET_BINS_NOTE}


def advise(
    data_dir: Path,
    *,
    backbone: str | None = None,
    regime: Regime | None = None,
    sample_cap: int | None = None,
    seed: int = config.DEFAULT_SEED,
    epochs: int | None = None,
    head: str | None = None,
    feature_layer: str | None = None,
    targets: Path | None = None,
    progress: bool = False,
) -> Advice:
    """Scan `data_dir`, measure it against the backbone, and decide a plan.

    With `targets` (a CSV of image path and number rows) the plan is a
    regression: the images listed there are read instead of class folders, and
    the split, the measurement sample and the label-aware probes use quantile
    bins of the target as classes (``advice.json``'s ``targets`` says so).

    Args:
        data_dir: One sub-folder per class (or ``train/val/test`` of those).
        backbone: Backbone name, or ``"base:<path>"`` for the user's own model
            (``--base``). Defaults to `None`: measure with ``config.DEFAULT_BACKBONE``
            and switch to ``config.STRONGER_BACKBONE`` (measuring again) when
            :func:`advisor.decide.choices.choose_backbone` says the plan justifies it.
        regime: Force this regime instead of the advisor's choice. Defaults to `None`.
        sample_cap: At most this many images are embedded for the measures.
            Defaults to `None` (``config.SAMPLE_CAP``).
        seed: Seed of the split, the sample and the run. Defaults to `config.DEFAULT_SEED`.
        epochs: Override the plan's fine-tuning epochs. Defaults to `None`.
        head: Force the head, ``"linear"`` or ``"mlp"``. Defaults to `None`
            (decided from the data size).
        feature_layer: For a ``base:`` backbone, the layer the new head reads
            (``--feature-layer``; it becomes part of the plan's backbone name).
            Defaults to `None` (the input of the model's last Dense layer).
        targets: Regression targets CSV (``--targets``). Defaults to `None`
            (classification from class folders).
        progress: Show progress bars. Defaults to `False`.

    Returns:
        The :class:`Advice`.

    Raises:
        AdvisorError: The folder cannot be used, or the backbone cannot be built.

    Example:
        >>> advice = advise(Path("digits"))  # doctest: +SKIP
        >>> advice.plan.regime  # doctest: +SKIP
        <Regime.SVM: 'svm'>
    """

    timings: dict[str, float] = {}
    start = time.perf_counter()
    if targets is not None:

        dataset = scan_targets(Path(data_dir), Path(targets), seed=seed, progress=progress)
    else:
        dataset = scan_dataset(Path(data_dir), seed=seed, progress=progress)
    timings["scan"] = time.perf_counter() - start

    cap = config.SAMPLE_CAP if sample_cap is None else sample_cap

    def measure(name: str):
        start = time.perf_counter()
        network = get_backbone(name, feature_layer=feature_layer)
        key = profile_key(dataset, backbone=network.name, image_size=network.image_size,
                          weights=network.weights, sample_cap=cap, seed=seed)
        profile = load_profile(key)
        if profile is None:
            profile = measure_dataset(dataset, network, sample_cap=cap, seed=seed, progress=progress)
            save_profile(key, profile)
        else:
            logger.info("Reusing the measurements of an earlier run (profile %s)", key[:12])
        timings["measure"] = timings.get("measure", 0.0) + time.perf_counter() - start
        return network, profile

    def plan_for(network, profile) -> Plan:
        start = time.perf_counter()
        plan = decide(profile, backbone=network, regime=regime, seed=seed, epochs=epochs, head=head,
                      task=Task.REGRESSION if dataset.is_regression else None)
        timings["decide"] = timings.get("decide", 0.0) + time.perf_counter() - start
        return plan

    network, profile = measure(backbone or config.DEFAULT_BACKBONE)
    plan = plan_for(network, profile)
    if backbone is None:  # no --backbone / --base: the advisor may pick a stronger one
        chosen, why = choose_backbone(profile, plan)
        if chosen != network.name:
            logger.info("Measuring again with %s: %s", chosen, why)
            network, profile = measure(chosen)
            plan = plan_for(network, profile)
        plan = dataclasses.replace(plan, reasons={**plan.reasons, "backbone": why})
    return Advice(dataset=dataset, profile=profile, plan=plan, timings=timings)


def interrupted_advice(out: Path) -> Advice | None:
    """Return the advice saved by an interrupted run of `out`, or `None` if there is none.

    ``execute`` saves ``advice.json`` and ``split.json`` into ``<out>.partial``
    before training, so running the same command again resumes with the same
    split and plan instead of measuring again.

    Example:
        >>> interrupted_advice(Path("advise-runs/digits")) is None  # doctest: +SKIP
        True
    """

    partial = Path(out).with_name(Path(out).name + PARTIAL_SUFFIX)
    advice_file, split_file = partial / ADVICE_FILE, partial / SPLIT_FILE
    if not (advice_file.is_file() and split_file.is_file()):
        return None
    try:
        data = json.loads(advice_file.read_text(encoding="utf-8"))
        return Advice(dataset=Dataset.load_split(split_file),
                      profile=DatasetProfile.from_dict(data["profile"]),
                      plan=Plan.from_dict(data["plan"]), timings=dict(data.get("timings_s", {})))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PlanError(
            f"{advice_file} is damaged ({type(exc).__name__}); delete {partial} to start over"
        ) from None


def write_advice(advice: Advice, out: Path, *, overwrite: bool = False) -> Path:
    """Write ``advice.json`` and ``advice.html`` into `out`, atomically.

    Returns:
        The output folder.

    Raises:
        OutputExistsError: `out` exists and `overwrite` is false.
    """

    folder = open_run_folder(out, overwrite=overwrite)
    data = advice.to_dict()
    folder.write_json(ADVICE_FILE, data)
    folder.write_text("advice.html", advice_html(data))
    advice.dataset.save_split(folder.partial / SPLIT_FILE)
    return folder.commit()


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
        AdvisorError: The output folder exists, or the data cannot be decoded.
    """

    plan = plan or advice.plan
    folder = open_run_folder(out, overwrite=overwrite)
    if folder.resumed:
        logger.warning("Resuming the interrupted run in %s", folder.partial)
    # Saved first, so an interrupted run resumes with the same split and plan.
    folder.write_json(ADVICE_FILE, advice.to_dict() | {"plan": plan.to_dict()})
    advice.dataset.save_split(folder.partial / SPLIT_FILE)
    timings: dict[str, float] = dict(advice.timings)

    start = time.perf_counter()
    dataset, decoded = decode_dataset(advice.dataset, plan.image_size, progress=progress)
    timings["decode"] = time.perf_counter() - start

    start = time.perf_counter()
    network = get_backbone(plan.backbone, image_size=plan.image_size)
    strategy = get_strategy(plan.regime)(plan=plan, backbone=network)
    strategy.fit(_labelled(decoded, dataset, "train"), _labelled(decoded, dataset, "val"),
                 class_names=dataset.class_names, work_dir=folder.work, verbose=verbose)
    timings["fit"] = time.perf_counter() - start

    start = time.perf_counter()
    test = decoded["test"]
    regression = plan.task is Task.REGRESSION
    if regression:
        predicted = np.asarray(strategy.predict(test.images, rows=test.rows), dtype=np.float64)
        y_test = dataset.targets("test")
        evaluation = evaluate_regression(y_test, predicted, target_name=dataset.target_name,
                                         train_mean=float(dataset.targets("train").mean()))
    else:
        probabilities = np.asarray(strategy.predict_proba(test.images, rows=test.rows))
        y_test = dataset.labels("test")
        evaluation = evaluate(y_test, probabilities, dataset.class_names)
    timings["evaluate"] = time.perf_counter() - start

    start = time.perf_counter()
    model = strategy.export_model()
    save_model(model, folder.partial / MODEL_FILE,
               (dataset.target_name,) if regression else dataset.class_names, task=plan.task.value)
    timings["export"] = time.perf_counter() - start

    test_files = dataset.files("test")
    if regression:
        mistakes = largest_errors(y_test, predicted)
        examples = {"largest_errors": [
            {"file": str(test_files[i]), "true": float(y_test[i]), "predicted": float(predicted[i]),
             "error": float(predicted[i] - y_test[i])} for i in mistakes],
            "test_predictions": {"true": y_test.tolist(), "predicted": predicted.tolist()}}
    else:
        mistakes = most_confident_mistakes(y_test, probabilities)
        examples = {"most_confident_mistakes": [
            {"file": str(test_files[i]), "true": dataset.class_names[y_test[i]],
             "predicted": dataset.class_names[int(probabilities[i].argmax())],
             "probability": float(probabilities[i].max())} for i in mistakes]}
    report = {
        "data_dir": str(dataset.root),
        "plan": plan.to_dict(),
        "advised_regime": advice.plan.regime.value,
        "dataset": dataset.summary.to_dict(),
        "profile": advice.profile.to_dict(),
        "evaluation": evaluation.to_dict(),
        "history": _jsonable(getattr(strategy, "history_", {})),
        "timings_s": timings,
        "environment": describe_environment(),
        "seed": plan.seed,
        "resumed": folder.resumed,
        "model_file": MODEL_FILE,
        "model_bytes": (folder.partial / MODEL_FILE).stat().st_size,
        **examples,
    } | ({"targets": _targets_summary(dataset)} if regression else {})
    folder.write_json(REPORT_FILE, report)
    thumbnails = [np.asarray(test.images[test.rows[i]]) for i in mistakes]
    folder.write_text("report.html", run_html(report, mistake_images=thumbnails))
    final = folder.commit()
    return RunResult(out=final, evaluation=evaluation, report=report)


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


def compare(
    advice: Advice | Sequence[Advice],
    out: Path,
    *,
    regimes: Sequence[Regime] | None = None,
    epochs: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    verbose: int = 0,
) -> list[dict[str, Any]]:
    """Run regimes (and backbones) under one split and tabulate them, the advisor's picks marked.

    Each regime's plan is the advisor's plan for that regime (as ``--regime``
    would give), with `epochs` forced when given (as ``--epochs``). With one
    advice, results go to ``<out>/<regime>/``; with several (one per backbone,
    ``advise compare --backbones``), to ``<out>/<Backbone.model_name>/<regime>/``. Both
    write ``compare.json`` and ``compare.html`` in `out`.

    Args:
        advice: The advice, or one advice per backbone (all of the same
            dataset and seed, so every run shares the split).
        out: Output folder.
        regimes: Regimes to run for every backbone. Defaults to `None`: all
            four with one backbone, each backbone's advised regime with several.
        epochs: Force the fine-tuning epochs. Defaults to `None`.
        overwrite: Replace a finished comparison. Defaults to `False`.
        progress: Show progress bars. Defaults to `False`.
        verbose: Keras verbosity. Defaults to `0`.

    Returns:
        One row per run: backbone, regime, similarity, test accuracy, macro-F1,
        advise / fit seconds, inference milliseconds per image, model bytes,
        picked (the regime the advisor chose for that backbone).

    Raises:
        PlanError: The advices disagree on the dataset or the seed.
    """

    advices = [advice] if isinstance(advice, Advice) else list(advice)
    if any(a.plan.task is Task.REGRESSION for a in advices):
        raise PlanError("compare runs classification plans only; for regression targets run "
                        "advise DATA_DIR --targets CSV --regime R once per regime")
    if len({(str(a.dataset.root), a.plan.seed) for a in advices}) > 1:
        raise PlanError("compare needs advices of one dataset with one seed, so the runs share a split")
    folder = open_run_folder(out, overwrite=overwrite)
    rows = []
    for each in advices:
        network = get_backbone(each.plan.backbone)
        run_regimes = (tuple(Regime) if len(advices) == 1 else (each.plan.regime,)) \
            if regimes is None else tuple(regimes)
        for regime in run_regimes:
            plan = each.plan if regime == each.plan.regime else decide(
                each.profile, backbone=network, regime=regime, seed=each.plan.seed, epochs=epochs)
            target = folder.partial / regime.value if len(advices) == 1 else \
                folder.partial / network.model_name / regime.value
            result = execute(each, target, overwrite=True, progress=progress, verbose=verbose,
                             plan=plan)
            timings = result.report["timings_s"]
            n_test = max(1, len(each.dataset.records("test")))
            rows.append({
                "backbone": network.name,
                "regime": regime.value,
                "similarity": float(each.profile.similarity.score),
                "test_accuracy": result.evaluation.accuracy,
                "macro_f1": result.evaluation.macro_f1,
                "advise_s": float(sum(each.timings.get(k, 0.0) for k in ("scan", "measure", "decide"))),
                "fit_s": timings["fit"],
                "predict_ms_per_image": 1000.0 * timings["evaluate"] / n_test,
                "model_bytes": result.report["model_bytes"],
                "picked": regime == each.plan.regime,
            })
    summary = {"data_dir": str(advices[0].dataset.root),
               "advised": advices[0].plan.regime.value,
               "advised_by_backbone": {a.plan.backbone: a.plan.regime.value for a in advices},
               "rows": rows, "environment": describe_environment()}
    folder.write_json("compare.json", summary)
    folder.write_text("compare.html", compare_html(summary))
    folder.commit(keep_work=True)
    return rows

