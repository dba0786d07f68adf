"""Tasks and runs: the advisor's plan and the oracle's regimes, fitted and scored on one task."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.advice_quality.scoring import score_row

#: Seed of every task's split and sample (the tasks are fixed).
SPLIT_SEED = 0
#: Noise seed of a corrupted subset's held-out images (its own images use 0).
HELDOUT_NOISE_SEED = 1


#: Separates a task from an ImageNet-C corruption of it: ``tuxpaint@contrast-3``.
CORRUPTION_MARK = "@"


def parse_task(spec: str) -> tuple[str, int | None]:
    """Split ``"fashion-mnist-300"`` into ``("fashion-mnist", 300)``; ``"digits"`` -> ``("digits", None)``.

    A corruption suffix (:func:`split_corruption`) is ignored: the set and size
    are those of the task it corrupts.

    Raises:
        ValueError: The set is not one of ``advisor.examples.DATASETS``.

    Example:
        >>> parse_task("fashion-mnist-300"), parse_task("tuxpaint@contrast-3")
        (('fashion-mnist', 300), ('tuxpaint', None))
    """
    from advisor.examples import DATASETS

    spec = spec.partition(CORRUPTION_MARK)[0]
    head, _, tail = spec.rpartition("-")
    if head and tail.isdigit() and head in DATASETS:
        return head, int(tail)
    if spec not in DATASETS and spec != "skimage-foolbox":
        raise ValueError(f"Unknown task {spec!r}: expected <set>[-<n>] with a set in "
                         f"{', '.join(DATASETS)}.")
    return spec, None


def split_corruption(spec: str) -> tuple[str, tuple[str, int] | None]:
    """Split ``"tuxpaint@gaussian_noise-3"`` into ``("tuxpaint", ("gaussian_noise", 3))``.

    A task with a corruption suffix is the same task with every image resized
    to 224 px and corrupted (:func:`benchmarks.advice_quality.corruptions.corrupt`,
    severity 0-5, 0 = resized only), labels kept: the similarity continuum of
    issue 17. A subset's held-out test images (:func:`heldout_for`) are
    corrupted alike, so a small far task is judged on thousands of test images.

    Raises:
        ValueError: An unknown corruption or a severity outside 0-5.

    Example:
        >>> split_corruption("tuxpaint@gaussian_noise-3"), split_corruption("digits")
        (('tuxpaint', ('gaussian_noise', 3)), ('digits', None))
        >>> split_corruption("fashion-mnist-300@contrast-3")
        ('fashion-mnist-300', ('contrast', 3))
    """
    from benchmarks.advice_quality.corruptions import CORRUPTIONS

    base, mark, tail = spec.partition(CORRUPTION_MARK)
    if not mark:
        return spec, None
    kind, _, severity = tail.rpartition("-")
    if kind not in CORRUPTIONS or not severity.isdigit() or int(severity) > 5:
        raise ValueError(f"Unknown corruption {tail!r} in task {spec!r}: expected <kind>-<severity> with "
                         f"a kind in {', '.join(CORRUPTIONS)} and a severity 0-5.")
    parse_task(base)  # an unknown set is refused here
    return base, (kind, int(severity))


def task_folder(spec: str) -> Path:
    """Return the class folders of task `spec`, writing them into the cache when missing.

    A corrupted task (:func:`split_corruption`) is written once under
    ``cache_dir("datasets-corrupted")``, into a temporary folder renamed into
    place, so an interrupted write is never read; when another process renamed
    its copy first, that one is kept.
    """
    from advisor.cache import cache_dir
    from advisor.examples import write_dataset

    base, corruption = split_corruption(spec)
    name, n = parse_task(base)
    source = write_dataset(name, n=n)
    if corruption is None:
        return source
    return _corrupted_copy(source, cache_dir("datasets-corrupted") / spec, corruption)


def _corrupted_copy(source: Path, target: Path, corruption: tuple[str, int], *, seed: int = 0) -> Path:
    """Write `source` corrupted into `target` once (a temporary folder renamed into place); return `target`."""
    from benchmarks.advice_quality.corruptions import write_corrupted

    if target.is_dir():
        return target
    root = target.parent
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        write_corrupted(source, partial, *corruption, seed=seed)
        try:
            partial.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(partial)  # another process wrote the same task first
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


class Runner:
    """Fits plans on one advice's split and scores them on validation and test.

    Mirrors :func:`advisor.app.pipeline.execute` (decode cache, ``get_strategy``,
    ``fit``) without writing a run folder, and also reports validation accuracy,
    which the oracle's learning-rate choice needs. Backbones are built once per
    image size; results are memoised per plan, so a plan the oracle also runs
    (the advisor's own, usually) is fitted once.
    """

    def __init__(self) -> None:
        self._backbones: dict[tuple[str, int], Any] = {}
        self._done: dict[str, dict[str, float]] = {}

    def backbone(self, name: str, image_size: int | None = None, input_size: int | None = None,
                 weights: str | None = "imagenet"):
        from advisor.backbones import get_backbone

        key = (name, image_size or 0, input_size or 0, weights)
        if key not in self._backbones:
            self._backbones[key] = (get_backbone(name, weights=weights) if image_size is None
                                    else get_backbone(name, image_size=image_size,
                                                      input_size=input_size, weights=weights))
        return self._backbones[key]

    def run(self, advice, plan, heldout: HeldOut | None = None, *,
            weights: str | None = "imagenet") -> dict[str, float]:
        """Fit `plan` on `advice`'s train split; return accuracies and fit seconds.

        ``test_accuracy`` is over the test split and the `heldout` images
        together; ``split_test_accuracy`` and ``heldout_accuracy`` are each alone.
        `weights` `None` starts the backbone from random weights (the
        ``scratch`` recipe).
        """
        from advisor.data.decode_cache import decode_dataset, decode_images
        from strategies import get_strategy
        from strategies.inputs import LabelledImages

        key = json.dumps({k: v for k, v in plan.to_dict().items() if k != "reasons"},
                         sort_keys=True) + str(advice.dataset.root) + str(heldout and heldout.folder) + str(weights)
        if key in self._done:
            return self._done[key]
        dataset, decoded = decode_dataset(advice.dataset, plan.input_size,
                                          resize_ratio=plan.decode_resize_ratio)

        def labelled(split: str) -> LabelledImages:
            return LabelledImages(images=decoded[split].images, labels=dataset.labels(split),
                                  rows=decoded[split].rows)

        network = self.backbone(plan.backbone, plan.image_size, plan.decode_size, weights=weights)
        strategy = get_strategy(plan.regime)(plan=plan, backbone=network)
        start = time.perf_counter()
        strategy.fit(labelled("train"), labelled("val"), class_names=dataset.class_names)
        fit_s = time.perf_counter() - start
        scores = {"fit_s": fit_s}
        correct = {}
        for split in ("val", "test"):
            predicted = strategy.predict(decoded[split].images, rows=decoded[split].rows)
            correct[split] = predicted == dataset.labels(split)
            scores[f"{split}_accuracy"] = float(np.mean(correct[split]))
        scores["split_test_accuracy"] = scores["test_accuracy"]
        every = correct["test"]
        if heldout is not None:
            images = decode_images(heldout.paths, plan.input_size, resize_ratio=plan.decode_resize_ratio)
            predicted = strategy.predict(images.images, rows=images.rows)
            hits = predicted == heldout.labels[images.rows]
            scores["heldout_accuracy"] = float(np.mean(hits))
            every = np.concatenate([correct["test"], hits])
            scores["test_accuracy"] = float(np.mean(every))
        # Per-image correctness on the test images (the paired test compares two
        # regimes on the same images) and the budget curve (did the run converge?).
        scores["test_correct"] = "".join("1" if hit else "0" for hit in every)
        history = strategy.history_
        phase = history.get("fine_tune") or history.get("head") or {}
        scores["budget"] = phase.get("budget")
        last = len(phase.get("attempts") or [None]) - 1  # training accuracy per epoch, last attempt
        scores["train_curve"] = [float(e["accuracy"]) for e in phase.get("epochs") or []
                                 if e.get("attempt", 0) == last and "accuracy" in e]
        scores["rate_search"] = (history.get("fine_tune") or {}).get("rate_search")
        scores["best_val_loss"] = phase.get("best_val_loss")
        self._done[key] = scores
        return scores


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """Images of a task's set that its subsample left out, labelled like the task.

    Attributes:
        folder: The class folders (``advisor.examples.write_heldout``).
        paths: The images, sorted.
        labels: Index of each image's class in the task's ``class_names``.
    """

    folder: Path
    paths: tuple[Path, ...]
    labels: np.ndarray

    @classmethod
    def from_folder(cls, folder: Path, class_names: Sequence[str]) -> HeldOut:
        """Read `folder`'s ``<class>/<image>`` files, keeping the classes in `class_names`."""
        index = {name: i for i, name in enumerate(class_names)}
        pairs = sorted((p, index[p.parent.name]) for p in folder.glob("*/*")
                       if p.is_file() and p.parent.name in index)
        return cls(folder, tuple(p for p, _ in pairs), np.array([i for _, i in pairs], dtype=np.int64))


def heldout_for(spec: str, size: int, class_names: Sequence[str]) -> HeldOut | None:
    """The held-out test images of task `spec` (at most `size`), or `None` for a whole set.

    A corrupted subset's held-out images are corrupted as its own are (another
    noise seed), written once under ``cache_dir("datasets-corrupted")``.
    """
    from advisor.cache import cache_dir
    from advisor.examples import write_heldout

    _, corruption = split_corruption(spec)
    name, n = parse_task(spec)
    folder = None if n is None else write_heldout(name, n, size)
    if folder is not None and corruption is not None:
        folder = _corrupted_copy(folder, cache_dir("datasets-corrupted") / f"{spec}-heldout{size}",
                                 corruption, seed=HELDOUT_NOISE_SEED)
    return None if folder is None else HeldOut.from_folder(folder, class_names)


def task_plan(spec: str, runner: Runner, regime: str, *, heldout: int):
    """Advise on task `spec` as the oracle does; return ``(advice, plan, held-out images)``.

    The plan is :func:`advisor.decide.decide`'s for `regime` on the advice's
    profile, with the oracle's split seed; the held-out images are
    :func:`heldout_for`'s (at most `heldout`). The single-question benchmarks
    (``bench_head_budget``, ``bench_fine_tune_variants``) start from it.
    """
    from advisor.app.pipeline import advise
    from advisor.decide import decide

    advice = advise(task_folder(spec), seed=SPLIT_SEED)
    plan = decide(advice.profile, backbone=runner.backbone(advice.plan.backbone), regime=regime,
                  seed=SPLIT_SEED)
    return advice, plan, heldout_for(spec, heldout, advice.dataset.class_names)


def capped(plan, *, epochs: int | None, head_epochs: int | None, image_size: int | None,
           budget_scale: float = 1.0):
    """Return `plan` with its budget scaled, then epochs, head epochs and image size capped.

    `budget_scale` multiplies the fine-tuning epochs, their warm-up and the head's
    epochs (the budget check: a run that converged moves little when its budget
    doubles); early-stopping patience is kept, so a scaled run still stops at a
    plateau. Caps apply after scaling (smoke runs).

    Example:

    >>> from types import SimpleNamespace
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class P:
    ...     epochs: int = 30; warmup_epochs: int = 3; head_epochs: int = 20
    ...     image_size: int = 128; decode_size: int | None = None
    >>> capped(P(), epochs=None, head_epochs=None, image_size=None, budget_scale=2)
    P(epochs=60, warmup_epochs=6, head_epochs=40, image_size=128, decode_size=None)
    """
    if budget_scale != 1.0:
        plan = dataclasses.replace(
            plan, epochs=round(plan.epochs * budget_scale),
            warmup_epochs=round(plan.warmup_epochs * budget_scale),
            head_epochs=round(plan.head_epochs * budget_scale))
    changes: dict[str, Any] = {}
    if epochs is not None and plan.epochs > epochs:
        changes["epochs"] = epochs
        changes["warmup_epochs"] = min(plan.warmup_epochs, max(0, epochs - 1))
    if head_epochs is not None and plan.head_epochs > head_epochs:
        changes["head_epochs"] = head_epochs
    if image_size is not None and plan.image_size > image_size:
        changes["image_size"] = image_size
        if plan.decode_size is not None and plan.decode_size >= image_size:
            changes["decode_size"] = None  # no longer smaller than the input: decode at it
    return dataclasses.replace(plan, **changes) if changes else plan


def regime_plans(plan, regime: str, lr_grid: Sequence[float], head_lr_grid: Sequence[float]):
    """Return ``[(rate, plan), ...]``: `plan` (decided for `regime`) at each searched rate."""
    if regime == "svm":
        return [(None, plan)]
    if regime == "last-layer":
        return [(lr, dataclasses.replace(plan, head_learning_rate=lr)) for lr in head_lr_grid]
    ratio = plan.head_learning_rate / plan.backbone_learning_rate  # the plan's own head/backbone ratio
    # Each grid point is one run at its rate (the oracle searches the grid itself);
    # the advisor's own plan keeps its rate search (the row's "plan").
    return [(lr, dataclasses.replace(plan, backbone_learning_rate=lr, head_learning_rate=lr * ratio,
                                     rate_scales=(1.0,))) for lr in lr_grid]


def searched_plans(plan, regime: str, lr_grid: Sequence[float], head_lr_grid: Sequence[float]):
    """Return the oracle's ``[(rate, plan), ...]`` for `regime`: the grid, then the plan's own search.

    :func:`regime_plans` at each grid rate, then ``("search", plan)`` (the plan
    as decided, with its own rate search) when the plan searches rates or the
    grid is empty (``--lr-grid ''``: only the plan's own search).

    Example:
        >>> from types import SimpleNamespace
        >>> plan = SimpleNamespace(rate_scales=(1.0, 3.0))
        >>> [rate for rate, _ in searched_plans(plan, "svm", (), ())]
        [None, 'search']
    """
    grid = regime_plans(plan, regime, lr_grid, head_lr_grid)
    if len(plan.rate_scales) > 1 or not grid:
        grid.append(("search", plan))
    return grid


#: Recipes a user could follow instead of the advisor, run with ``--recipes`` (the
#: ``policies`` columns): not one of the four regimes, so not part of the oracle.
#: Each recipe's backbone weights (`None`: random initialisation).
RECIPE_WEIGHTS = {"fastai": "imagenet", "scratch": None}
RECIPES = tuple(RECIPE_WEIGHTS)
#: fastai's ``Learner.fine_tune`` defaults: one frozen epoch at ``base_lr`` 2e-3 (Adam),
#: then every layer at half of it with discriminative rates ``slice(base_lr / 100, base_lr)``
#: (head 1e-3; the backbone's one rate here is the geometric middle, 1e-4), weight decay 0.01.
FASTAI_FROZEN_LEARNING_RATE = 2e-3
FASTAI_HEAD_LEARNING_RATE = 1e-3
FASTAI_BACKBONE_LEARNING_RATE = 1e-4
FASTAI_WEIGHT_DECAY = 0.01
#: The ``scratch`` recipe: the same network from random weights, every layer and its
#: BatchNormalization trained with AdamW at one rate. A schedule long enough for a network
#: that starts from nothing (not measured on this suite; 2 CPU cores cannot afford it):
#: this many times the plan's fine-tuning epochs, and twice its patience.
SCRATCH_LEARNING_RATE = 1e-3
SCRATCH_EPOCH_FACTOR = 3
SCRATCH_PATIENCE_FACTOR = 2
#: Momentum of the BatchNormalization moving averages from random weights (PyTorch's
#: default, 0.1 in its convention). MobileNetV2's own 0.999 suits ImageNet's steps, not
#: a small set's: Fashion-MNIST 2,000 takes about 45 steps an epoch, and after 8 epochs
#: (360 steps) 0.999 still held 70% of its initial statistics; validation stayed at
#: chance (0.1) while training accuracy reached 0.66 (a run at 288dd10, stopped).
SCRATCH_BATCHNORM_MOMENTUM = 0.9


def recipe_plan(recipe: str, full_plan):
    """Return `full_plan` (decided for ``full``) changed to follow `recipe` (one of ``RECIPES``).

    ``"scratch"``: the network from random weights (run it with
    ``RECIPE_WEIGHTS``), one epoch of the head on its random features, then
    every layer, BatchNormalization included, with AdamW at
    ``SCRATCH_LEARNING_RATE`` for ``SCRATCH_EPOCH_FACTOR`` times the plan's
    epochs (and warm-up), ``SCRATCH_PATIENCE_FACTOR`` times its patience,
    the moving averages at ``SCRATCH_BATCHNORM_MOMENTUM``.

    ``"fastai"``: one frozen epoch of the head, then every layer with AdamW at
    fastai's rates; the plan's fine-tuning epochs, augmentation and early
    stopping are kept, so the recipe gets the advisor's budget (fastai's own
    one-cycle schedule is not reproduced: the plan's warm-up and decay stand in).

    Raises:
        ValueError: `recipe` is not in ``RECIPES``.
    """
    from advisor.plan import Optimizer

    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; known: {', '.join(RECIPES)}.")
    if recipe == "scratch":
        epochs = full_plan.epochs * SCRATCH_EPOCH_FACTOR
        return dataclasses.replace(
            full_plan, head_epochs=1, probe_optimizer=Optimizer.ADAMW,
            probe_learning_rate=SCRATCH_LEARNING_RATE, optimizer=Optimizer.ADAMW,
            head_learning_rate=SCRATCH_LEARNING_RATE, backbone_learning_rate=SCRATCH_LEARNING_RATE,
            train_batchnorm=True, batchnorm_momentum=SCRATCH_BATCHNORM_MOMENTUM, epochs=epochs,
            warmup_epochs=full_plan.warmup_epochs * SCRATCH_EPOCH_FACTOR,
            patience=full_plan.patience * SCRATCH_PATIENCE_FACTOR, rate_scales=(1.0,), prefix_cache=False)
    return dataclasses.replace(
        full_plan, head_epochs=1, probe_optimizer=Optimizer.ADAMW,
        probe_learning_rate=FASTAI_FROZEN_LEARNING_RATE, optimizer=Optimizer.ADAMW,
        head_learning_rate=FASTAI_HEAD_LEARNING_RATE, backbone_learning_rate=FASTAI_BACKBONE_LEARNING_RATE,
        weight_decay=FASTAI_WEIGHT_DECAY, rate_scales=(1.0,))


def _mean(runs: list[dict[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in runs]))


def evaluate_task(spec: str, runner: Runner, args: argparse.Namespace, log) -> dict[str, Any]:
    """Run the advisor and the oracle on one task; return its table row (JSON-ready)."""
    from advisor.app.pipeline import advise
    from advisor.decide import decide

    folder = task_folder(spec)
    started = time.perf_counter()
    advice = advise(folder, backbone=args.backbone, seed=SPLIT_SEED)
    profile = advice.profile
    network = runner.backbone(args.backbone)
    caps = {"epochs": args.epochs, "head_epochs": args.head_epochs, "image_size": args.image_size,
            "budget_scale": getattr(args, "budget_scale", 1.0)}
    pick = advice.plan.regime.value
    heldout = heldout_for(spec, args.heldout, advice.dataset.class_names)

    def seeded(plan, seed: int):
        return dataclasses.replace(plan, seed=seed)

    regimes: dict[str, Any] = {}
    for regime in args.regimes:
        decided = capped(advice.plan if regime == pick else decide(
            profile, backbone=network, regime=regime, seed=SPLIT_SEED), **caps)
        searched = []
        grid = searched_plans(decided, regime, args.lr_grid, args.head_lr_grid)
        for rate, plan in grid:
            runs = [runner.run(advice, seeded(plan, s), heldout) for s in args.seeds]
            searched.append({"rate": rate, "val_accuracy": _mean(runs, "val_accuracy"),
                             "test_accuracy": _mean(runs, "test_accuracy"),
                             "split_test_accuracy": _mean(runs, "split_test_accuracy"),
                             "heldout_accuracy": None if heldout is None
                             else _mean(runs, "heldout_accuracy"),
                             "fit_s": _mean(runs, "fit_s"),
                             "seed_test_accuracy": [r["test_accuracy"] for r in runs],
                             "test_correct": runs[0]["test_correct"], "budget": runs[0]["budget"],
                             "rate_search": runs[0].get("rate_search"),
                             "default": rate == "search" if grid[-1][0] == "search"
                             else rate is None or math.isclose(rate, _default_rate(decided, regime))})
            log(f"  {spec} {regime:<10} rate={rate} val={searched[-1]['val_accuracy']:.3f} "
                f"test={searched[-1]['test_accuracy']:.3f} fit={searched[-1]['fit_s']:.0f}s")
        best = max(searched, key=lambda r: (r["val_accuracy"], -r["fit_s"]))
        default = next((r for r in searched if r["default"]), None)
        regimes[regime] = {"chosen_rate": best["rate"], "test_accuracy": best["test_accuracy"],
                           "split_test_accuracy": best["split_test_accuracy"],
                           "val_accuracy": best["val_accuracy"], "fit_s": best["fit_s"],
                           "test_correct": best["test_correct"], "budget": best["budget"],
                           "default_rate_test_accuracy": None if default is None
                           else default["test_accuracy"], "search": searched}

    recipes: dict[str, Any] = {}
    for recipe in getattr(args, "recipes", ()):
        # The caps last, so a smoke run's cap holds for the scratch recipe's longer schedule too.
        plan = capped(recipe_plan(recipe, decide(profile, backbone=network, regime="full",
                                                 seed=SPLIT_SEED)), **caps)
        runs = [runner.run(advice, seeded(plan, s), heldout, weights=RECIPE_WEIGHTS[recipe])
                for s in args.seeds]
        recipes[recipe] = {"test_accuracy": _mean(runs, "test_accuracy"),
                           "val_accuracy": _mean(runs, "val_accuracy"), "fit_s": _mean(runs, "fit_s"),
                           "test_correct": runs[0]["test_correct"], "budget": runs[0]["budget"]}
        log(f"  {spec} {recipe:<10} val={recipes[recipe]['val_accuracy']:.3f} "
            f"test={recipes[recipe]['test_accuracy']:.3f} fit={recipes[recipe]['fit_s']:.0f}s")

    expected_cost = None
    if getattr(args, "expected_cost", False):  # the advice's expected time per regime, measured here
        from advisor.app.costs import estimate_costs

        expected_cost = estimate_costs(advice)

    own = capped(advice.plan, **caps)
    # ``--no-plan``: the row's plan comes from an earlier run of the task when merged
    # (or from its regime's search, when the pick ran here), so it is not fitted again.
    own_runs = [] if getattr(args, "no_plan", False) else [
        runner.run(advice, seeded(own, s), heldout) for s in args.seeds]
    row = {
        "task": spec, "data_dir": str(folder), "n": profile.n_images, "classes": profile.n_classes,
        "n_train": profile.n_train,
        "n_test": len(advice.dataset.files("test")) + (0 if heldout is None else len(heldout.paths)),
        "n_heldout": 0 if heldout is None else len(heldout.paths),
        "image_size": own.image_size,
        "similarity": profile.similarity.score,
        "similarity_components": dict(profile.similarity.components),
        "shift_peak_block": _peak_block(profile), "first_departing_block":
            profile.shift.first_departing_block,
        "probe_accuracy": None if profile.probes is None else profile.probes.linear_accuracy,
        "regimes": regimes, "recipes": recipes, "pick": pick, "expected_cost": expected_cost,
        "plan": None if not own_runs else {
            "regime": pick, "epochs": own.epochs, "head_epochs": own.head_epochs,
            "backbone_learning_rate": own.backbone_learning_rate,
            "head_learning_rate": own.head_learning_rate,
            "test_accuracy": _mean(own_runs, "test_accuracy"),
            "split_test_accuracy": _mean(own_runs, "split_test_accuracy"),
            "fit_s": _mean(own_runs, "fit_s"), "test_correct": own_runs[0]["test_correct"],
            "budget": own_runs[0]["budget"]},
        "profile": profile.to_dict(),
        "advise_s": sum(advice.timings.values()),
    }
    if regimes and own_runs:  # a recipes-only or --no-plan run is merged into an earlier row
        row.update(score_row(row))
    row["wall_s"] = time.perf_counter() - started
    return row


def _default_rate(plan, regime: str) -> float | None:
    from advisor import config

    if regime == "last-layer":
        return config.HEAD_ONLY_LEARNING_RATE
    if regime in ("partial", "full"):
        return config.FINE_TUNE_HEAD_LEARNING_RATE * config.BACKBONE_LEARNING_RATE_FACTOR
    return None


def _peak_block(profile) -> str | None:
    kl = profile.shift.block_kl
    return profile.shift.blocks[int(np.argmax(kl))] if kl else None
