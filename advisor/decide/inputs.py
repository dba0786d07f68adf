"""What the network sees: the input size and the augmentations while fine-tuning."""

from __future__ import annotations

import math

from advisor import config
from advisor.backbones import Backbone
from advisor.measure.profile import DatasetProfile
from advisor.plan import Regime


def choose_image_size(native_side: float, max_size: int, *,
                      upscale: int = config.LOW_RESOLUTION_UPSCALE) -> int:
    """Return the input size for images whose shorter side is `native_side` pixels.

    Images at least ``config.LOW_RESOLUTION_SIDE`` px keep the backbone's size.
    Smaller ones are upscaled `upscale` times, rounded up to a multiple of
    ``config.INPUT_SIZE_STEP`` and clipped to ``[config.MIN_INPUT_SIZE,
    max_size]``: they hold no detail beyond their own pixels, and the compute
    grows with the square of the input.

    Args:
        native_side: Median shorter side of the images, in pixels.
        max_size: The backbone's input size.
        upscale: The factor for low-resolution images. Defaults to
            `config.LOW_RESOLUTION_UPSCALE` (fine-tuning; the frozen regimes
            use ``config.FROZEN_LOW_RESOLUTION_UPSCALE``).

    Returns:
        The input size in pixels.

    Example:
        >>> choose_image_size(28, 224), choose_image_size(8, 224), choose_image_size(500, 224)
        (128, 96, 224)
        >>> choose_image_size(28, 224, upscale=8), choose_image_size(8, 224, upscale=8)
        (224, 96)
    """
    if native_side >= config.LOW_RESOLUTION_SIDE:
        return max_size
    step = config.INPUT_SIZE_STEP
    upscaled = math.ceil(native_side * upscale / step) * step
    return int(min(max_size, max(config.MIN_INPUT_SIZE, upscaled)))


def plan_image_size(regime: Regime, profile: DatasetProfile, backbone: Backbone) -> tuple[int, str]:
    """Return the plan's input size and its reason (a user's model keeps its fixed size).

    Low-resolution images are upscaled ``config.LOW_RESOLUTION_UPSCALE`` times for
    fine-tuning (every epoch pays for the size) and
    ``config.FROZEN_LOW_RESOLUTION_UPSCALE`` times for the frozen regimes (one
    pass; measured more accurate).
    """
    if not backbone.resizable:
        return backbone.image_size, (f"The base model takes {backbone.image_size} px input; its size "
                                     "is fixed, so the images are decoded at it.")
    frozen = not regime.fine_tunes_backbone
    upscale = config.FROZEN_LOW_RESOLUTION_UPSCALE if frozen else config.LOW_RESOLUTION_UPSCALE
    image_size = choose_image_size(profile.native_side, backbone.image_size, upscale=upscale)
    if profile.native_side < config.LOW_RESOLUTION_SIDE:
        why = ("the frozen backbone runs once per image, and on 28 px sets the SVM scored 0.7-2.0 "
               "pp higher at 224 px than at 128 (config.FROZEN_LOW_RESOLUTION_UPSCALE)" if frozen else
               "fine-tuning pays for the size every epoch and the images hold no more detail "
               "(compute grows with size^2)")
        return image_size, (
            f"Median short side {profile.native_side:.0f} px < {config.LOW_RESOLUTION_SIDE} px: "
            f"upscale x{upscale} to {image_size} px (a multiple of {config.INPUT_SIZE_STEP}, "
            f"{config.MIN_INPUT_SIZE}-{backbone.image_size}): {why}."
        )
    return image_size, (
        f"Median short side {profile.native_side:.0f} px >= {config.LOW_RESOLUTION_SIDE} px: "
        f"keep the backbone's {backbone.image_size} px input."
    )


def choose_decode_size(max_side: int | None, image_size: int) -> int | None:
    """Return the native size to decode images at, or `None` to decode at `image_size`.

    When no image's shorter side exceeds `max_side` and that is below the
    input size, the images are cached at `max_side` (each the central square of
    its short side, resized only when smaller) and the model does the resize
    and crop to `image_size` inside its graph: the cache holds the images' own
    pixels, ``(max_side / image_size) ** 2`` of the bytes, and nothing is
    resampled while decoding. Larger images are decoded at `image_size`, which
    downscales them once instead of storing more pixels than the network reads.

    Args:
        max_side: The longest short side of the folder's images, or `None`
            when unknown.
        image_size: The plan's input size.

    Returns:
        The decode size, or `None`.

    Example:
        >>> choose_decode_size(28, 128), choose_decode_size(8, 96)
        (28, 8)
        >>> choose_decode_size(500, 224), choose_decode_size(224, 224), choose_decode_size(None, 224)
        (None, None, None)
    """
    if max_side is None or max_side < 1 or max_side >= image_size:
        return None
    return int(max_side)


def plan_decode_size(profile: DatasetProfile, backbone: Backbone,
                     image_size: int) -> tuple[int | None, str]:
    """Return the plan's decode size and its reason (see :func:`choose_decode_size`).

    A user's model (not resizable) is decoded at its own input size, natively
    when it does the resize and crop itself (a ``model.keras`` of a run with a
    decode size).
    """
    if not backbone.resizable:
        if backbone.decode_resize_ratio == 1.0:
            return backbone.input_size, (
                f"The base model resizes and crops inside its graph, so the images are decoded "
                f"at its {backbone.input_size} px input natively (the central square of each "
                "short side).")
        return None, (f"The base model takes {backbone.input_size} px images resized to 256/224 "
                      "and centre-cropped, so they are decoded that way.")
    largest = profile.native_max_side
    decode_size = choose_decode_size(largest, image_size)
    if decode_size is not None:
        return decode_size, (
            f"Every image's short side is at most {largest} px, below the {image_size} px input: "
            f"decode and cache them at {decode_size} px as they are (the central square), "
            f"{(image_size / decode_size) ** 2:.0f}x fewer bytes than at {image_size} px, and let "
            f"the model resize to {image_size} * 256/224 and centre-crop, on the device.")
    if largest is None:
        return None, (f"The profile records no largest image size (measured by an older version): "
                      f"decode at the {image_size} px input.")
    return None, (f"Short sides reach {largest} px >= the {image_size} px input: decode at "
                  f"{image_size} px (resize to 256/224, centre-crop), downscaling once.")


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
