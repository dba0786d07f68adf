"""Advice quality: does the advisor's plan reach what the best regime reaches?

For each task (a packaged image set, fixed split and seed) the script runs

1. the advisor (:func:`advisor.app.pipeline.advise`) and its own plan, and
2. the oracle: all four regimes, each with a small learning-rate search chosen
   on validation accuracy (the SVM chooses C by cross-validation itself),

and tabulates test accuracy per regime, the oracle best, the advisor's pick,
its regret and its time against the fastest regime within ``HIT_PP`` of the best.
Test accuracy is over the task's test split and, for a subsampled task, up to
``--heldout`` images of its set that the subsample left out (``HELDOUT_IMAGES``).

* **hit**: the picked regime (at its best searched rate) is within ``HIT_PP``
  percentage points of the oracle best: the regime choice was right.
* **regret**: oracle best minus the accuracy the advisor's *own plan* reached
  (its own rates and epochs), so it counts bad hyperparameters as well as a bad
  regime.
* **calibration**: the regime thresholds of :mod:`advisor.config`
  (``SVM_MAX_IMAGES``, ``LARGE_DATASET_IMAGES``, ``REGIME_SIMILARITY_THRESHOLD``) are
  fitted on the suite, leave one task out; the held-out hit rate and regret are
  the honest figures. Each candidate is scored through the real
  :func:`advisor.decide.choose_regime`, given as a ``RegimeRules`` value.
* **correlations**: Spearman's rho of the similarity score with the
  frozen-vs-fine-tuned gap across tasks, and (``--corruptions``) with the
  severity of ImageNet-C style corruptions (Gaussian noise, Gaussian blur,
  contrast; 5 severities) of the photo tasks.

Results go to stdout and to ``benchmarks/results/advice_quality-<mode>-<time>.json``
with the machine's description.

    python -m benchmarks.advice_quality --quick                 # CPU, < 20 min
    KERAS_BACKEND=jax python -m benchmarks.advice_quality       # full suite, GPU
    python -m benchmarks.advice_quality --tasks digits-60,photos --regimes svm,last-layer \\
        --epochs 1 --head-epochs 2 --no-corruptions             # a tiny smoke run
    python -m benchmarks.advice_quality --calibrate-from A.json B.json   # merge runs, re-fit only

``--quick`` caps fine-tuning at ``QUICK_EPOCHS`` epochs and inputs at
``QUICK_IMAGE_SIZE`` px for *every* plan, the advisor's included (the plans ask
for 30 epochs on small sets, at 224 px for photos: hours on 2 CPU cores),
so it under-states what ``partial`` and ``full`` can reach. Treat its regime
verdicts as a smoke test; the full mode runs the plans' own epochs.
"""

# Modules: runner (tasks, the oracle's runs), scoring (hit, regret), calibration
# (the threshold fit, RegimeRules per candidate), corruptions, report (table, JSON),
# merge (--calibrate-from) and cli (parse_args, main).

from benchmarks.advice_quality.calibration import (
    CALIBRATION_GRID,
    SEED_THRESHOLDS,
    calibrate,
    picked_regime,
    rules_for,
)
from benchmarks.advice_quality.cli import main
from benchmarks.advice_quality.corruptions import CORRUPTIONS, corrupt
from benchmarks.advice_quality.merge import merge_rows
from benchmarks.advice_quality.runner import parse_task
from benchmarks.advice_quality.scoring import (
    HIT_PP,
    REGIMES,
    score_row,
    summarise,
    test_standard_error_pp,
)

__all__ = ["CALIBRATION_GRID", "CORRUPTIONS", "HIT_PP", "REGIMES", "SEED_THRESHOLDS", "calibrate",
           "corrupt", "main", "merge_rows", "parse_task", "picked_regime", "rules_for", "score_row",
           "summarise", "test_standard_error_pp"]
