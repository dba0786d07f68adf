"""The new head on the backbone: a linear output, a hidden layer under it, or the SVM's grid."""

from __future__ import annotations

from typing import Any

from advisor import config
from advisor.errors import PlanError
from advisor.plan import Regime, Task

HEADS = config.HEADS


def check_head(head: str | None) -> None:
    """Raise unless `head` is `None` or one of ``HEADS``.

    Raises:
        PlanError: `head` is not one of ``HEADS``.
    """
    if head is not None and head not in HEADS:
        raise PlanError(f"Unknown head {head!r}. Known: {', '.join(HEADS)}.")


def choose_head(regime: Regime, n_train: int, *,
                head: str | None = None) -> tuple[tuple[int, ...], float, bool]:
    """Return ``(head_units, head_dropout, head_batchnorm)`` for a plan.

    ``svm`` always has a linear head. Otherwise a hidden layer
    (``config.HIDDEN_HEAD_*``) when `head` is ``"mlp"``, or when it is `None`
    and the training split has at least ``config.HIDDEN_HEAD_MIN_TRAIN`` images.

    Args:
        regime: The plan's regime.
        n_train: Images in the training split.
        head: ``"linear"`` or ``"mlp"`` to force the head. Defaults to `None`
            (decided from `n_train`).

    Returns:
        ``(head_units, head_dropout, head_batchnorm)``.

    Raises:
        PlanError: `head` is not one of ``HEADS``.

    Example:
        >>> choose_head(Regime.LAST_LAYER, 20_000)
        ((256,), 0.5, True)
        >>> choose_head(Regime.LAST_LAYER, 20_000, head="linear")
        ((), 0.0, False)
    """
    check_head(head)
    hidden = head == "mlp" if head is not None else n_train >= config.HIDDEN_HEAD_MIN_TRAIN
    if regime is Regime.SVM or not hidden:
        return (), 0.0, False
    return (tuple(config.HIDDEN_HEAD_UNITS), float(config.HIDDEN_HEAD_DROPOUT),
            bool(config.HIDDEN_HEAD_BATCHNORM))


def _units_reason(regime: Regime, n_train: int, head: str | None, units: tuple[int, ...],
                  dropout: float, batchnorm: bool, output: str) -> str:
    """Why the head has these hidden layers; `output` names the output layer (softmax or linear)."""
    if regime is Regime.SVM:
        return "Regime 'svm' fits a linear SVM: no hidden layers."
    if head is not None:
        return (f"Head forced to {head!r} by the caller (--head)"
                + (f": Dense{list(units)} + BatchNorm + ReLU + Dropout({dropout:g}) under the {output}."
                   if units else f": one {output} layer."))
    if units:
        return (f"{n_train:,} training images >= {config.HIDDEN_HEAD_MIN_TRAIN:,}: enough to fit a "
                f"hidden layer, so the head is Dense{list(units)} + "
                f"{'BatchNorm + ' if batchnorm else ''}ReLU + Dropout({dropout:g}) under the {output}.")
    return (f"{n_train:,} training images < {config.HIDDEN_HEAD_MIN_TRAIN:,}: a single {output} "
            "layer; a hidden layer's extra weights would overfit.")


def plan_head(regime: Regime, n_train: int, *, head: str | None,
              task: Task) -> dict[str, tuple[Any, str]]:
    """Return ``{"head_units" | "head_dropout" | "head_batchnorm": (value, reason)}``.

    The values come from :func:`choose_head`; the reasons name the output layer
    of the task (a softmax for classification, a linear output for regression).

    Raises:
        PlanError: `head` is not one of ``HEADS``.
    """
    units, dropout, batchnorm = choose_head(regime, n_train, head=head)
    output = "linear output" if task is Task.REGRESSION else "softmax"
    return {
        "head_units": (units, _units_reason(regime, n_train, head, units, dropout, batchnorm, output)),
        "head_dropout": (dropout, f"Dropout {dropout:g} after the hidden layer regularises it."
                         if units else "No hidden layer, so no dropout."),
        "head_batchnorm": (batchnorm, "BatchNormalization in the hidden layer keeps its inputs scaled "
                           "while the backbone moves." if batchnorm else "No BatchNormalization in the head."),
    }


def plan_svm_cv_folds(regime: Regime, task: Task, n_train: int) -> tuple[int, str]:
    """Return the most cross-validation folds choosing the SVM's C, and why.

    ``config.SVM_CV_FOLDS`` (5), or ``config.SVM_CV_FOLDS_LARGE`` (3) from
    ``config.SVM_CV_FOLDS_LARGE_FROM`` training images: every k-fold split
    scores each training image once, and on a larger set the fits of the
    search are what ``svm`` spends its time on.

    Example:
        >>> plan_svm_cv_folds(Regime.SVM, Task.CLASSIFICATION, 700)[0]
        5
        >>> plan_svm_cv_folds(Regime.SVM, Task.CLASSIFICATION, 1_330)[0]
        3
    """
    if regime is not Regime.SVM:
        return config.SVM_CV_FOLDS, f"Regime {regime.value!r} fits no SVM."
    if task is Task.REGRESSION:
        return config.SVM_CV_FOLDS, "Ridge regression chooses alpha by leave-one-out, not by folds."
    if n_train < config.SVM_CV_FOLDS_LARGE_FROM:
        return config.SVM_CV_FOLDS, (f"C is chosen by {config.SVM_CV_FOLDS}-fold stratified "
                                     f"cross-validation on the {n_train:,} training images.")
    return config.SVM_CV_FOLDS_LARGE, (
        f"C is chosen by {config.SVM_CV_FOLDS_LARGE}-fold stratified cross-validation: from "
        f"{config.SVM_CV_FOLDS_LARGE_FROM:,} training images ({n_train:,} here) {config.SVM_CV_FOLDS_LARGE} "
        f"folds score every image once, as {config.SVM_CV_FOLDS} would, with "
        f"{1 - config.SVM_CV_FOLDS_LARGE / config.SVM_CV_FOLDS:.0%} fewer fits.")


def plan_svm_c_grid(regime: Regime, task: Task) -> tuple[tuple[float, ...], str]:
    """Return the values of C the ``svm`` regime cross-validates (an SVM, or ridge for regression), and why."""
    if regime is not Regime.SVM:
        return (), f"Regime {regime.value!r} fits no SVM: empty grid."
    if task is Task.REGRESSION:
        grid = tuple(config.REGRESSION_C_GRID)
        return grid, (f"Ridge regression's alpha = 1/(2C) is chosen by leave-one-out "
                      f"cross-validation over C in {list(grid)}.")
    grid = tuple(config.SVM_C_GRID)
    return grid, f"The SVM's C is cross-validated over {list(grid)}."
