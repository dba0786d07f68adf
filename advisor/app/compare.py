"""``advise compare``: several regimes (or backbones) under one split, side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advisor.app.advice import Advice
from advisor.app.execute import execute
from advisor.app.run_folder import open_run_folder
from advisor.backbones import get_backbone
from advisor.decide import decide
from advisor.environment import describe_environment
from advisor.errors import PlanError
from advisor.plan import Regime, Task
from advisor.reports.pages import compare_html


def compare(
    advice: Advice | Sequence[Advice],
    out: Path,
    *,
    regimes: Sequence[Regime] | None = None,
    epochs: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    verbose: int = 0,
    rate_search: bool = True,
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
        rate_search: Search the fine-tuning rates of the regimes decided here
            (`False`: ``--no-rate-search``, one rate each). Defaults to `True`.

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
                each.profile, backbone=network, regime=regime, seed=each.plan.seed, epochs=epochs,
                rate_search=rate_search)
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
