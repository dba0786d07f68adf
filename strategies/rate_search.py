"""Fine-tuning at each of the plan's rate scales, keeping the lowest validation loss.

:func:`search_rates` runs :func:`~strategies.training.train` once per scale
of ``plan.rate_scales`` (the head's rate and the backbone's scaled together),
each from the same starting weights (the linear probe on the pretrained
backbone) to early stopping, and keeps the weights of the run whose best
validation loss is lowest: a grid search on the validation split, as
:mod:`strategies.svm` searches C. The plan's own rate (scale 1) runs first and
keeps the guard's retry after a divergence; a larger scale that diverges is
discarded without a retry, and the scales above it are not tried. A single
scale is exactly one :func:`~strategies.training.train` call.

Each candidate is its own phase (``fine-tune``, ``fine-tune-x3``, ...), so a
killed run resumes where it stopped: finished candidates are restored from
their saved state without training again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import keras

from advisor.plan import Plan
from strategies.training import train

logger = logging.getLogger(__name__)


def candidate_phase(phase: str, scale: float) -> str:
    """Return the phase name of the candidate at `scale` (`phase` itself at scale 1).

    Example:
        >>> candidate_phase("fine-tune", 1.0), candidate_phase("fine-tune", 3.0)
        ('fine-tune', 'fine-tune-x3')
    """
    return phase if scale == 1.0 else f"{phase}-x{scale:g}"


def search_rates(
    model: keras.Model,
    plan: Plan,
    train_data: Any,
    val_data: Any,
    *,
    phase: str,
    learning_rate: float,
    epochs: int,
    warmup_epochs: int = 0,
    scaled_variables: Collection = (),
    rate_factor: float = 1.0,
    scales: Sequence[float] = (1.0,),
    work_dir: Path | None = None,
    verbose: int = 0,
) -> dict[str, Any]:
    """Train `model` at ``learning_rate x scale`` for each of `scales`; keep the best on validation.

    Arguments are :func:`~strategies.training.train`'s, plus `scales`. The
    model ends with the weights of the candidate whose best validation loss is
    lowest (the earlier scale on a tie).

    Returns:
        The chosen candidate's :func:`~strategies.training.train` history, with
        ``rate_search``: ``candidates`` (per scale: rates, best validation
        loss and epoch, epochs run, divergence, the epoch a killed run resumed
        it after, seconds), ``chosen_scale``,
        ``skipped`` (scales not tried after a divergence) and ``sentence``;
        ``wall_s`` covers every candidate.

    Example:
        >>> import numpy as np
        >>> from advisor.plan import Optimizer, Regime
        >>> from strategies.graph import build_head
        >>> plan = Plan(regime=Regime.LAST_LAYER, backbone="mobilenet_v2", image_size=96,
        ...             frozen_blocks=(), feature_layer="features", optimizer=Optimizer.ADAMW,
        ...             head_learning_rate=1e-3, backbone_learning_rate=0.0, batch_size=16,
        ...             head_epochs=3, epochs=0, warmup_epochs=0, patience=3,
        ...             augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> history = search_rates(build_head(8, 2), plan, (x[:48], y[:48]), (x[48:], y[48:]),
        ...                        phase="head", learning_rate=1e-3, epochs=3, scales=(1.0, 10.0))
        >>> [c["scale"] for c in history["rate_search"]["candidates"]]
        [1.0, 10.0]
        >>> history["rate_search"]["chosen_scale"]  # 10x learns more in 3 epochs
        10.0
    """
    started = time.perf_counter()
    scales = tuple(float(s) for s in scales) or (1.0,)
    start_weights = model.get_weights() if len(scales) > 1 else None
    best: tuple[float, dict[str, Any], list | None] | None = None
    candidates: list[dict[str, Any]] = []
    skipped: list[float] = []
    for index, scale in enumerate(scales):
        if index and candidates[-1]["diverged"] and scale > candidates[-1]["scale"]:
            skipped = list(scales[index:])  # a larger rate than one that diverged
            break
        if index:
            model.set_weights(start_weights)
        history = train(model, plan, train_data, val_data, phase=candidate_phase(phase, scale),
                        learning_rate=learning_rate * scale, epochs=epochs,
                        warmup_epochs=warmup_epochs, scaled_variables=scaled_variables,
                        rate_factor=rate_factor, work_dir=work_dir, verbose=verbose,
                        retry=index == 0, select_on=plan.select_on)
        candidates.append({
            "scale": scale, "learning_rate": learning_rate * scale,
            "backbone_learning_rate": (learning_rate * scale * rate_factor if scaled_variables
                                       else None),
            "best_val_loss": float(history["best_val_loss"]), "best_epoch": history["best_epoch"],
            "epochs_run": len(history["epochs"]), "retried": history["retried"],
            "resumed_from_epoch": max((a["resumed_from_epoch"] for a in history["attempts"]
                                       if a["resumed_from_epoch"] is not None), default=None),
            "diverged": history["attempts"][0]["diverged"],
            "wall_s": round(history["wall_s"], 1)})
        if best is None or history["best_val_loss"] < best[0]:
            keep = model.get_weights() if len(scales) > 1 else None
            best = (float(history["best_val_loss"]), history, keep)
    assert best is not None
    _, chosen, weights = best
    if weights is not None:
        model.set_weights(weights)
    chosen_scale = next(c["scale"] for c in candidates if c["best_val_loss"] == best[0])
    chosen["rate_search"] = {"candidates": candidates, "chosen_scale": chosen_scale,
                             "skipped": skipped,
                             "sentence": search_sentence(candidates, chosen_scale, skipped)}
    if len(candidates) > 1 or skipped:
        chosen["notes"].append(f"{phase}: {chosen['rate_search']['sentence']}")
        logger.info(chosen["notes"][-1])
    chosen["wall_s"] = time.perf_counter() - started
    return chosen


def search_sentence(candidates: Sequence[dict[str, Any]], chosen_scale: float,
                    skipped: Sequence[float] = ()) -> str:
    """One sentence on the search: the rates tried, their validation losses, the one kept.

    Example:
        >>> search_sentence([{"scale": 1.0, "learning_rate": 1e-3, "backbone_learning_rate": 1e-4,
        ...                   "best_val_loss": 0.35, "diverged": None},
        ...                  {"scale": 3.0, "learning_rate": 3e-3, "backbone_learning_rate": 3e-4,
        ...                   "best_val_loss": 0.31, "diverged": None}], 3.0)
        'kept 3x the plan rates (head 0.003, backbone 0.0003): validation loss 0.31, against 0.35 at 1x.'
    """
    chosen = next(c for c in candidates if c["scale"] == chosen_scale)
    rates = f"head {chosen['learning_rate']:.3g}" + (
        f", backbone {chosen['backbone_learning_rate']:.3g}"
        if chosen.get("backbone_learning_rate") is not None else "")
    others = [f"{c['best_val_loss']:.3g} at {c['scale']:g}x"
              + (" (diverged)" if c.get("diverged") else "")
              for c in candidates if c["scale"] != chosen_scale]
    text = (f"kept {chosen_scale:g}x the plan rates ({rates}): validation loss "
            f"{chosen['best_val_loss']:.3g}")
    text += f", against {', '.join(others)}" if others else ""
    if skipped:
        text += f"; {', '.join(f'{s:g}x' for s in skipped)} not tried after a divergence"
    return text + "."
