"""The decision: a :class:`~advisor.measure.profile.DatasetProfile` in, a :class:`~advisor.plan.Plan` out.

:func:`decide` composes one small function per field (regime table in
:mod:`~advisor.decide.regime`, blocks, inputs, training schedule, prefix cache,
head, task, backbone). Each decides its field once, for the regime and the task, and
returns ``(value, reason)``: the reason cites the measured number and the
threshold behind it and becomes the field's sentence in ``Plan.reasons``.
This subpackage is the only code that branches on the regime.
"""

from __future__ import annotations

import math
from typing import Any

from advisor import config
from advisor.backbones import Backbone
from advisor.decide.backbone import plan_backbone
from advisor.decide.blocks import plan_feature_layer, plan_feature_layers, plan_frozen_blocks
from advisor.decide.head import check_head, plan_head, plan_svm_c_grid, plan_svm_cv_folds
from advisor.decide.inputs import plan_augmentation, plan_decode_size, plan_image_size
from advisor.decide.prefix import plan_prefix_cache
from advisor.decide.regime import plan_regime
from advisor.decide.rules import RegimeRules
from advisor.decide.task import choose_task, plan_class_weights
from advisor.decide.training import (
    plan_backbone_learning_rate,
    plan_batch_size,
    plan_epochs,
    plan_head_epochs,
    plan_head_learning_rate,
    plan_optimizer,
    plan_probe,
    plan_patience,
    plan_rate_scales,
    plan_select_on,
    plan_warmup_epochs,
)
from advisor.errors import PlanError
from advisor.measure.profile import DatasetProfile
from advisor.plan import Loss, Plan, Regime, Task


def decide(
    profile: DatasetProfile,
    *,
    backbone: Backbone,
    regime: Regime | str | None = None,
    seed: int = config.DEFAULT_SEED,
    epochs: int | None = None,
    head: str | None = None,
    task: Task | str | None = None,
    loss: Loss | str | None = None,
    rules: RegimeRules | None = None,
    forced_by: str = "the caller",
    rate_search: bool = True,
) -> Plan:
    """Turn a measured profile into a plan, with a reason for every field.

    Args:
        profile: The dataset's profile (from :func:`advisor.measure.forward.measure_dataset`).
        backbone: The backbone the profile was measured with.
        regime: Force this regime instead of the measured choice. Defaults to
            `None` (decide from the profile).
        seed: Seed of every random choice of the run. Defaults to
            `config.DEFAULT_SEED`.
        epochs: Force the fine-tuning epochs (warm-up and patience follow
            from them by the usual rules). Defaults to `None` (scaled with
            the dataset size).
        head: Force the head: ``"linear"`` (one softmax layer) or ``"mlp"``
            (hidden layer, see :func:`~advisor.decide.head.choose_head`).
            Defaults to `None` (decided from the training-set size).
        task: ``"classification"`` or ``"regression"`` (a dataset read with
            ``--targets``, whose profile's classes are target quantile bins).
            The regime rules are the same. Defaults to `None` (classification).
        loss: Regression loss, ``"huber"`` or ``"mse"``. Defaults to `None`
            (see :func:`~advisor.decide.task.choose_task`).
        rules: Thresholds of the regime table. Defaults to `None`
            (``RegimeRules()``, the calibrated constants of :mod:`advisor.config`).
        forced_by: Who forced `regime`, for its reason (e.g. ``advise --budget``'s
            sentence). Defaults to `"the caller"`.
        rate_search: Search the fine-tuning rates on validation (``rate_scales``,
            see :func:`~advisor.decide.training.plan_rate_scales`); `False` fine-tunes
            once at the plan's rates (``--no-rate-search``). Defaults to `True`.

    Returns:
        The :class:`~advisor.plan.Plan`.

    Raises:
        PlanError: The profile was measured with another backbone, or `regime`,
            `head`, `task` or `loss` is unknown.

    Example:
        >>> from advisor.data import scan_dataset
        >>> from advisor.measure import measure_dataset
        >>> profile = measure_dataset(scan_dataset(digits_dir), backbone)
        >>> plan = decide(profile, backbone=backbone)
        >>> plan.regime, plan.image_size, plan.epochs
        (<Regime.SVM: 'svm'>, 96, 0)
        >>> print(plan.reasons["regime"])  # doctest: +ELLIPSIS
        100 images < 5,000: a linear SVM on frozen features (CS231n); ...
        >>> decide(profile, backbone=backbone, regime="partial", epochs=3).epochs
        3
    """
    if profile.backbone != backbone.name:
        raise PlanError(
            f"The profile was measured with backbone {profile.backbone!r}, not {backbone.name!r}. "
            "Measure the dataset again with the backbone you plan to use."
        )
    rules = RegimeRules() if rules is None else rules
    chosen, why_regime = plan_regime(profile, regime, rules, forced_by)
    check_head(head)  # an unknown head is reported before an unknown task or loss
    task, loss, why_task, why_loss = choose_task(task, loss)
    n_train = max(1, profile.n_train)

    fields: dict[str, tuple[Any, str]] = {"regime": (chosen, why_regime)}
    fields["backbone"] = plan_backbone(backbone)
    fields["image_size"] = plan_image_size(chosen, profile, backbone)
    fields["decode_size"] = plan_decode_size(profile, backbone, fields["image_size"][0])
    fields["frozen_blocks"] = plan_frozen_blocks(chosen, profile, backbone, rules)
    fields["feature_layer"] = plan_feature_layer(chosen, profile, backbone)
    fields["optimizer"] = plan_optimizer(chosen, task)
    fields["head_learning_rate"] = plan_head_learning_rate(chosen, task)
    fields["backbone_learning_rate"] = plan_backbone_learning_rate(chosen, fields["head_learning_rate"][0])
    fields["probe_optimizer"], fields["probe_learning_rate"] = plan_probe(chosen)
    fields["batch_size"] = plan_batch_size(n_train)
    steps = math.ceil(n_train / fields["batch_size"][0])
    fields["head_epochs"] = plan_head_epochs(steps)
    fields["epochs"] = plan_epochs(chosen, steps, epochs)
    fields["warmup_epochs"] = plan_warmup_epochs(chosen, fields["epochs"][0])
    fields["patience"] = plan_patience(fields["epochs"][0], fields["head_epochs"][0],
                                       fields["warmup_epochs"][0])
    fields["rate_scales"] = plan_rate_scales(chosen, task, search=rate_search)
    fields["select_on"] = plan_select_on(chosen, task)
    fields["augmentation"] = plan_augmentation(chosen, profile)
    fields.update(plan_prefix_cache(chosen, profile, backbone, image_size=fields["image_size"][0],
                                    frozen_blocks=fields["frozen_blocks"][0],
                                    epochs=fields["epochs"][0],
                                    augmentation=fields["augmentation"][0]))
    fields["class_weights"] = plan_class_weights(profile, task)
    fields["svm_c_grid"] = plan_svm_c_grid(chosen, task)
    fields["svm_cv_folds"] = plan_svm_cv_folds(chosen, task, n_train)
    fields["feature_layers"] = plan_feature_layers(chosen, profile, backbone, task)
    fields.update(plan_head(chosen, n_train, head=head, task=task))
    fields["seed"] = (seed, (f"Seed {seed} fixes every random choice of the run (shuffles, "
                             "augmentation, new weights)."))
    fields["task"] = (task, why_task)
    fields["loss"] = (loss, why_loss)
    return Plan(**{name: value for name, (value, _) in fields.items()},
                reasons={name: why for name, (_, why) in fields.items()})
