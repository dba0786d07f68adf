"""Which backbone the plan runs with: the measured one, or a stronger one worth a second pass."""

from __future__ import annotations

from advisor import config
from advisor.backbones import Backbone
from advisor.measure.profile import DatasetProfile
from advisor.plan import Plan


def plan_backbone(backbone: Backbone) -> tuple[str, str]:
    """Return the plan's backbone (the one the profile was measured with) and why."""
    if not backbone.resizable:
        return backbone.name, (f"The user's own model ({backbone.name}, --base) is the backbone "
                               "the profile was measured with.")
    return backbone.name, f"{backbone.name} is the backbone the profile was measured with."


def choose_backbone(profile: DatasetProfile, plan: Plan) -> tuple[str, str]:
    """Return the backbone to run `plan` with, and the sentence that says why.

    Keeps the backbone the profile was measured with unless it is
    ``config.DEFAULT_BACKBONE``, the plan fine-tunes the backbone and the
    dataset has at least ``config.STRONGER_BACKBONE_MIN_IMAGES`` images: then
    ``config.STRONGER_BACKBONE`` (see the rationale in :mod:`advisor.config`).
    The caller measures again with the returned backbone before deciding anew.

    Args:
        profile: The profile the plan was decided from.
        plan: The plan decided with the measured backbone.

    Returns:
        ``(backbone name, reason)``.

    Example:
        >>> import dataclasses
        >>> from advisor.data import scan_dataset
        >>> from advisor.decide import decide
        >>> from advisor.measure import measure_dataset
        >>> profile = measure_dataset(scan_dataset(digits_dir), backbone)
        >>> plan = decide(profile, backbone=backbone)
        >>> choose_backbone(profile, plan)  # doctest: +ELLIPSIS
        ('mobilenet_v2', "Regime 'svm' keeps the backbone frozen: the cheaper mobilenet_v2 ...")
        >>> large = dataclasses.replace(profile, n_images=50_000)
        >>> choose_backbone(large, decide(large, backbone=backbone))  # doctest: +ELLIPSIS
        ('efficientnet_lite0', "50,000 images >= 10,000 and regime 'full' fine-tunes the backbone: ...")
    """
    n, minimum = profile.n_images, config.STRONGER_BACKBONE_MIN_IMAGES
    if profile.backbone != config.DEFAULT_BACKBONE:
        return profile.backbone, f"{profile.backbone} was asked for."
    if not plan.regime.fine_tunes_backbone:
        return profile.backbone, (
            f"Regime {plan.regime.value!r} keeps the backbone frozen: the cheaper "
            f"{profile.backbone} is enough (a stronger one pays off mainly when fine-tuned).")
    if n < minimum:
        return profile.backbone, (
            f"{n:,} images < {minimum:,}: fine-tuning is short, so a second measuring pass for "
            f"{config.STRONGER_BACKBONE} would cost more than it saves; keep {profile.backbone}.")
    return config.STRONGER_BACKBONE, (
        f"{n:,} images >= {minimum:,} and regime {plan.regime.value!r} fine-tunes the backbone: "
        f"{config.STRONGER_BACKBONE} (ImageNet top-1 75.1% vs 71.9%, about 1.35x the compute) "
        "transfers better when fine-tuned (Kornblith et al. 2019), and on this many images the "
        "training dwarfs the extra measuring pass.")
