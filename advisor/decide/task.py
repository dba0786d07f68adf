"""What the head predicts and how it is scored: the task, the loss and the class weights."""

from __future__ import annotations

from advisor import config
from advisor.errors import PlanError
from advisor.measure.profile import DatasetProfile
from advisor.plan import Loss, Task


def choose_task(task: Task | str | None = None,
                loss: Loss | str | None = None) -> tuple[Task, Loss, str, str]:
    """Return ``(task, loss, task reason, loss reason)``.

    Classification trains with cross-entropy. Regression (``--targets``)
    trains on standardised targets with ``config.REGRESSION_LOSS`` (Huber,
    robust to a few outlying targets) unless `loss` asks for ``mse``.

    Args:
        task: ``"classification"`` or ``"regression"``. Defaults to `None`
            (classification).
        loss: ``"crossentropy"`` (classification), ``"huber"`` or ``"mse"``
            (regression). Defaults to `None` (the task's default).

    Returns:
        ``(task, loss, task reason, loss reason)``.

    Raises:
        PlanError: An unknown task or loss, or a regression loss for classification.

    Example:
        >>> choose_task("regression")[:2]
        (<Task.REGRESSION: 'regression'>, <Loss.HUBER: 'huber'>)
    """
    try:
        task = Task(task or Task.CLASSIFICATION)
        loss = None if loss is None else Loss(loss)
    except ValueError:
        raise PlanError(f"Unknown task {task!r} or loss {loss!r}. Tasks: "
                        f"{', '.join(t.value for t in Task)}; losses: "
                        f"{', '.join(x.value for x in Loss)}.") from None
    if task is Task.CLASSIFICATION:
        if loss not in (None, Loss.CROSSENTROPY):
            raise PlanError(f"Loss {loss.value!r} is for regression; classification uses "
                            "crossentropy. Pass --targets for a regression.")
        return (task, Loss.CROSSENTROPY,
                "Class folders: predict one class per image (softmax output).",
                "Classification: sparse categorical cross-entropy.")
    why_task = ("Numeric targets (--targets): predict one number per image with a linear output; "
                "the svm regime becomes ridge regression on the embeddings.")
    if loss is None:
        loss = Loss(config.REGRESSION_LOSS)
        return task, loss, why_task, (
            f"Regression: {loss.value} loss on standardised targets (the default; Huber grows "
            "linearly past 1 standard deviation, so a few outlying targets do not dominate).")
    if loss is Loss.CROSSENTROPY:
        raise PlanError("Loss 'crossentropy' is for classification; a regression uses huber or mse.")
    return task, loss, why_task, f"Regression: {loss.value} loss on standardised targets, forced by the caller."


def plan_class_weights(profile: DatasetProfile, task: Task) -> tuple[tuple[float, ...] | None, str]:
    """Return per-class loss weights (``n / (classes x count)``) for imbalanced classes, and why.

    Classes are weighted when the imbalance ratio exceeds
    ``config.IMBALANCE_RATIO_THRESHOLD``; a regression has no classes to weight.
    """
    if task is Task.REGRESSION:
        return None, "Regression has no classes to weight: none."
    ratio = profile.imbalance_ratio
    if ratio > config.IMBALANCE_RATIO_THRESHOLD:
        total, k = sum(profile.class_counts), len(profile.class_counts)
        return tuple(float(total / (k * count)) for count in profile.class_counts), (
            f"Imbalance {ratio:.1f} > {config.IMBALANCE_RATIO_THRESHOLD:.1f}: weight "
            "each class by n / (classes x its count).")
    return None, (f"Imbalance {ratio:.1f} <= {config.IMBALANCE_RATIO_THRESHOLD:.1f}: "
                  "classes are balanced enough, no weights.")
