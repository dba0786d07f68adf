"""The advice half of a run: scan the folder, measure it, decide a plan.

:func:`advise` returns an :class:`Advice` (dataset, profile, plan, timings);
:func:`write_advice` writes it as ``advice.json`` / ``advice.html``. Nothing
here trains: :mod:`advisor.app.execute` runs the plan.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor import config
from advisor.app.run_folder import PARTIAL_SUFFIX, open_run_folder
from advisor.app.built_backbones import get_backbone
from advisor.data import Dataset, scan_dataset
from advisor.data.targets import TARGET_BINS_NOTE, scan_targets
from advisor.decide import choose_backbone, decide
from advisor.decide.inputs import choose_decode_size
from advisor.environment import describe_environment
from advisor.errors import PlanError
from advisor.measure.cache import load_profile, profile_key, save_profile
from advisor.measure.forward import measure_dataset
from advisor.measure.profile import DatasetProfile
from advisor.plan import Plan, Regime, Task
from advisor.reports.pages import advice_html

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
        costs: Expected wall time per regime on this machine
            (:func:`advisor.app.costs.estimate_costs`), or `None` when not asked for.
        budget: ``advise --budget``'s choice (:func:`advisor.app.costs.fit_budget`),
            or `None` without a budget.
    """

    dataset: Dataset
    profile: Any
    plan: Plan
    timings: dict[str, float]
    costs: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None

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
        } | ({"targets": targets_summary(self.dataset)} if self.dataset.is_regression else {}) | (
            {"expected_cost": self.costs} if self.costs is not None else {}) | (
            {"budget": self.budget} if self.budget is not None else {})


def targets_summary(dataset: Dataset) -> dict[str, Any]:
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
    rate_search: bool = True,
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
            :func:`advisor.decide.choose_backbone` says the plan justifies it.
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
        rate_search: Search the fine-tuning rates on validation; `False` fine-tunes
            once at the plan's rates (``--no-rate-search``). Defaults to `True`.

    Returns:
        The :class:`Advice`.

    Raises:
        AdvisorError: The folder cannot be used, or the backbone cannot be built.

    Example:
        >>> advice = advise(digits_dir)  # measures at 224 px: ~15 s on a CPU  # doctest: +SKIP
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
        network = get_backbone(name, feature_layer=feature_layer, input_size=_native_input(dataset, name))
        key = profile_key(dataset, backbone=network.name, image_size=network.image_size,
                          weights=network.weights, sample_cap=cap, seed=seed,
                          input_size=network.input_size)
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
                      task=Task.REGRESSION if dataset.is_regression else None, rate_search=rate_search)
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


def _native_input(dataset: Dataset, backbone: str) -> int | None:
    """The size to decode the measuring sample at: natively when every image is below the input.

    The network still runs at its own size (224 px, which the regime
    thresholds were fitted at) and upscales in its graph, as a frozen regime's
    plan does for such images (:func:`advisor.decide.inputs.choose_decode_size`):
    the measuring pass and ``svm``/``last-layer`` then see the same pixels and
    share their embeddings (:mod:`advisor.measure.feature_store`), and the
    sample's decode cache holds the images' own pixels. A user's model
    (``base:``) is decoded at its own size, as before.
    """
    if backbone.startswith(config.BASE_MODEL_PREFIX):
        return None
    width, height = dataset.summary.width, dataset.summary.height
    return choose_decode_size(min(width.max, height.max), config.DEFAULT_IMAGE_SIZE)


def interrupted_advice(out: Path) -> Advice | None:
    """Return the advice saved by an interrupted run of `out`, or `None` if there is none.

    ``execute`` saves ``advice.json`` and ``split.json`` into ``<out>.partial``
    before training, so running the same command again resumes with the same
    split and plan instead of measuring again.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "digits"
        >>> interrupted_advice(out) is None  # no <out>.partial: nothing to resume
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
                      plan=Plan.from_dict(data["plan"]), timings=dict(data.get("timings_s", {})),
                      costs=data.get("expected_cost"), budget=data.get("budget"))
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
