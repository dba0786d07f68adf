"""What the network sees: the input size and the augmentations while fine-tuning."""

from __future__ import annotations

import math

from advisor import config
from advisor.backbones import Backbone
from advisor.measure.profile import DatasetProfile
from advisor.plan import Regime


def choose_image_size(native_side: float, max_size: int) -> int:
    """Return the input size for images whose shorter side is `native_side` pixels.

    Images at least ``config.LOW_RESOLUTION_SIDE`` px keep the backbone's size.
    Smaller ones are upscaled ``config.LOW_RESOLUTION_UPSCALE`` times, rounded up
    to a multiple of ``config.INPUT_SIZE_STEP`` and clipped to
    ``[config.MIN_INPUT_SIZE, max_size]``: they hold no detail beyond their own
    pixels, and the compute grows with the square of the input.

    Args:
        native_side: Median shorter side of the images, in pixels.
        max_size: The backbone's input size.

    Returns:
        The input size in pixels.

    Example:
        >>> choose_image_size(28, 224), choose_image_size(8, 224), choose_image_size(500, 224)
        (128, 96, 224)
    """
    if native_side >= config.LOW_RESOLUTION_SIDE:
        return max_size
    step = config.INPUT_SIZE_STEP
    upscaled = math.ceil(native_side * config.LOW_RESOLUTION_UPSCALE / step) * step
    return int(min(max_size, max(config.MIN_INPUT_SIZE, upscaled)))


def plan_image_size(profile: DatasetProfile, backbone: Backbone) -> tuple[int, str]:
    """Return the plan's input size and its reason (a user's model keeps its fixed size)."""
    if not backbone.resizable:
        return backbone.image_size, (f"The base model takes {backbone.image_size} px input; its size "
                                     "is fixed, so the images are decoded at it.")
    image_size = choose_image_size(profile.native_side, backbone.image_size)
    if image_size < backbone.image_size:
        return image_size, (
            f"Median short side {profile.native_side:.0f} px < {config.LOW_RESOLUTION_SIDE} px: "
            f"upscale x{config.LOW_RESOLUTION_UPSCALE} to {image_size} px (multiple of "
            f"{config.INPUT_SIZE_STEP}, at least {config.MIN_INPUT_SIZE}) instead of "
            f"{backbone.image_size}; the images hold no more detail and compute grows with size^2."
        )
    return image_size, (
        f"Median short side {profile.native_side:.0f} px >= {config.LOW_RESOLUTION_SIDE} px: "
        f"keep the backbone's {backbone.image_size} px input."
    )


def plan_augmentation(regime: Regime, profile: DatasetProfile) -> tuple[tuple[str, ...], str]:
    """Return the plan's augmentations and their reason: mirroring only for photo-like data.

    Frozen regimes train on cached embeddings and get none.
    """
    if not regime.fine_tunes_backbone:
        return (), f"Regime {regime.value!r} trains on cached frozen embeddings: no augmentation."
    score = profile.similarity.score
    photo_like = score >= config.SIMILARITY_THRESHOLD
    augmentation = tuple(config.FINE_TUNE_AUGMENTATION) + (tuple(config.PHOTO_AUGMENTATION)
                                                           if photo_like else ())
    return augmentation, (
        f"Fine-tuning sees the images: {', '.join(augmentation)}; "
        + (f"similarity {score:.2f} >= {config.SIMILARITY_THRESHOLD:.2f} "
           "(photo-like), so mirroring is safe." if photo_like else
           f"no flips, since similarity {score:.2f} < "
           f"{config.SIMILARITY_THRESHOLD:.2f} (digits or text change meaning when mirrored).")
    )
