"""The budget curve of a training phase: what stopped it, and whether it had converged.

A phase's history (``strategies.training.train``) lists every epoch of every
attempt. :func:`budget_curve` reduces the last attempt to what a reader (and
the advice benchmark) needs to judge convergence: the validation curve per
epoch, the best epoch, and what ended the phase: ``"early stopping"`` (the
patience ran out after a plateau), ``"budget"`` (every allowed epoch ran) or
``"divergence"``. A phase converged when its best epoch came before its last
one: a run whose best epoch is its last was still improving when the budget
ran out, so more epochs might have helped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Stop reasons of :func:`budget_curve`.
STOPPED_BY = ("early stopping", "budget", "divergence")


def budget_curve(history: Mapping[str, Any], *, max_epochs: int) -> dict[str, Any]:
    """Return the budget curve of a phase history: per-epoch validation score and stop reason.

    Args:
        history: A phase history of ``train`` (``epochs``, ``attempts``).
        max_epochs: The epochs the phase was allowed.

    Returns:
        A JSON-ready dict: ``metric`` (``val_accuracy``, else ``val_loss``),
        ``curve`` (its value per epoch of the last attempt), ``start`` (its
        value before the first epoch), ``best_epoch`` (0 = the start),
        ``epochs_run``, ``max_epochs``, ``stopped_by`` (one of
        ``STOPPED_BY``), ``converged`` and ``sentence`` (one line for a report).

    Example:
        >>> history = {"start": {"val_loss": 1.0, "val_accuracy": 0.5},
        ...            "epochs": [{"attempt": 0, "epoch": e, "val_loss": l, "val_accuracy": a}
        ...                       for e, l, a in [(1, 0.6, 0.8), (2, 0.5, 0.85), (3, 0.55, 0.84),
        ...                                       (4, 0.56, 0.84)]],
        ...            "attempts": [{"best_epoch": 2, "stopped_epoch": 4, "diverged": None}]}
        >>> curve = budget_curve(history, max_epochs=10)
        >>> curve["stopped_by"], curve["converged"], curve["curve"]
        ('early stopping', True, [0.8, 0.85, 0.84, 0.84])
        >>> curve["sentence"]
        'Stopped by early stopping after 4 of 10 epochs; best epoch 2 (val_accuracy 0.85, start 0.5).'
        >>> history["attempts"][0].update(best_epoch=4, stopped_epoch=None)
        >>> budget_curve(history, max_epochs=4)["sentence"]
        'Stopped by the budget after 4 of 4 epochs, still improving at epoch 4: more epochs may help.'
    """
    attempts = list(history.get("attempts") or [])
    last = attempts[-1] if attempts else {}
    index = len(attempts) - 1
    epochs = [e for e in history.get("epochs") or [] if e.get("attempt", 0) == index]
    metric = "val_accuracy" if epochs and "val_accuracy" in epochs[0] else "val_loss"
    curve = [float(e[metric]) for e in epochs if metric in e]
    best = int(last.get("best_epoch") or 0)
    if last.get("diverged"):
        stopped_by = "divergence"
    elif last.get("stopped_epoch") is not None:
        stopped_by = "early stopping"
    else:
        stopped_by = "budget"
    converged = stopped_by == "early stopping" or (stopped_by == "budget" and best < len(curve))
    start = (history.get("start") or {}).get(metric)
    if stopped_by == "budget" and not converged:
        sentence = (f"Stopped by the budget after {len(curve)} of {max_epochs} epochs, still "
                    f"improving at epoch {best}: more epochs may help.")
    else:
        what = "the budget" if stopped_by == "budget" else stopped_by
        best_value = curve[best - 1] if 0 < best <= len(curve) else start
        sentence = (f"Stopped by {what} after {len(curve)} of {max_epochs} epochs; best epoch {best}"
                    + (f" ({metric} {best_value:.4g}, start {start:.4g})." if best_value is not None
                       and start is not None else "."))
    return {"metric": metric, "curve": curve, "start": start, "best_epoch": best,
            "epochs_run": len(curve), "max_epochs": int(max_epochs), "stopped_by": stopped_by,
            "converged": bool(converged), "sentence": sentence}
