"""Whether ``partial`` trains on cached activations of its frozen prefix, with how many views.

The blocks before ``partial``'s cut are frozen and their BatchNormalization
layers run in inference mode, so their output for an image never changes: it
is computed once per training image (and per precomputed augmented view) and
per validation image, cached as float16, and each epoch runs only the blocks
after the cut. Random per-epoch augmentation cannot be cached, so an
augmenting plan precomputes ``prefix_views`` views and each epoch draws one
per image. The cache's size is the cut's activation shape x images x views x 2
bytes; above ``config.PREFIX_CACHE_MAX_MB`` the plan fine-tunes end to end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from advisor import config
from advisor.backbones import Backbone
from advisor.measure.profile import DatasetProfile
from advisor.plan import Regime

#: Bytes per cached activation value (float16).
PREFIX_CACHE_BYTES = 2


def prefix_cache_mb(shape: Sequence[int], n_train: int, n_held_out: int, views: int) -> float:
    """Return the prefix cache's size in MB: ``prod(shape) x (n_train x views + n_held_out) x 2`` bytes.

    Args:
        shape: One image's activation shape at the cut.
        n_train: Training images.
        n_held_out: Validation images cached once each.
        views: Cached views per training image (at least 1: the plain images).

    Example:
        >>> prefix_cache_mb((6, 6, 96), n_train=1000, n_held_out=300, views=4)
        29.7
    """
    values = math.prod(int(d) for d in shape) * (n_train * max(1, views) + n_held_out)
    return round(values * PREFIX_CACHE_BYTES / 1e6, 1)


def plan_prefix_cache(regime: Regime, profile: DatasetProfile, backbone: Backbone, *,
                      image_size: int, frozen_blocks: Sequence[str], epochs: int,
                      augmentation: Sequence[str],
                      max_mb: float = config.PREFIX_CACHE_MAX_MB) -> dict[str, tuple[Any, str]]:
    """Return ``prefix_cache``, ``prefix_views`` and ``prefix_cache_mb``, each with its reason.

    The cache is used when the plan is ``partial`` with fine-tuning epochs and
    a frozen prefix, and its size fits `max_mb`. An augmenting plan gets
    ``min(config.PREFIX_CACHE_MAX_VIEWS, epochs)`` views, fewer if that is what
    fits under `max_mb`; without augmentation the plain images are the one view.
    The validation images counted are all non-training ones (an upper bound).

    Args:
        regime: The plan's regime.
        profile: The dataset's profile (image counts).
        backbone: The backbone (the cut's activation shape).
        image_size: The plan's input size.
        frozen_blocks: The plan's frozen blocks (a prefix of ``backbone.blocks``).
        epochs: The plan's fine-tuning epochs.
        augmentation: The plan's augmentations.
        max_mb: Largest cache in MB. Defaults to `config.PREFIX_CACHE_MAX_MB`.

    Returns:
        ``{field: (value, reason)}`` for the three fields.

    Example:
        >>> from advisor.data import scan_dataset
        >>> from advisor.measure import measure_dataset
        >>> profile = measure_dataset(scan_dataset(digits_dir), backbone, sample_cap=20)
        >>> names = [b.name for b in backbone.blocks]
        >>> fields = plan_prefix_cache(Regime.PARTIAL, profile, backbone, image_size=96,
        ...                            frozen_blocks=names[:12], epochs=3, augmentation=("zoom",))
        >>> fields["prefix_cache"][0], fields["prefix_views"][0], fields["prefix_cache_mb"][0]
        (True, 3, 1.5)
    """
    off = {"prefix_views": (0, "No prefix cache, so no precomputed views."),
           "prefix_cache_mb": (0.0, "No prefix cache, so nothing is cached.")}
    if regime is not Regime.PARTIAL or epochs <= 0 or not frozen_blocks:
        return {"prefix_cache": (False, (
            f"Regime {regime.value!r} with {epochs} fine-tuning epochs and {len(frozen_blocks)} "
            "frozen blocks has no frozen prefix to cache: fine-tune end to end.")), **off}
    last = backbone.blocks[backbone.block_index(frozen_blocks[-1])]
    shape = backbone.activation_shape(last.output, image_size)
    n_train = max(1, profile.n_train)
    n_held_out = max(0, profile.n_images - profile.n_train)
    shape_text = "x".join(str(d) for d in shape)
    counted = f"{shape_text} float16 values x ({n_train:,} training images x {{views}} + {n_held_out:,} held out)"
    if augmentation:
        wanted = max(1, min(config.PREFIX_CACHE_MAX_VIEWS, epochs))
        views = next((k for k in range(wanted, 0, -1)
                      if prefix_cache_mb(shape, n_train, n_held_out, k) <= max_mb), 0)
    else:
        wanted = views = 1
    size = prefix_cache_mb(shape, n_train, n_held_out, max(1, views))
    if views == 0 or size > max_mb:
        return {"prefix_cache": (False, (
            f"The cut's activations ({last.output}, {counted.format(views=f'{max(1, views)} view(s)')}) "
            f"would take {size:,.1f} MB > {max_mb:,.0f} MB: fine-tune end to end.")), **off}
    if augmentation:
        why_views = (f"Random augmentation cannot be cached: {views} augmented view(s) of each "
                     f"training image are precomputed and each epoch draws one per image "
                     f"(min({config.PREFIX_CACHE_MAX_VIEWS}, {epochs} epochs)"
                     + (", fewer to fit the size cap)." if views < wanted else ")."))
    else:
        why_views = "No augmentation: the plain training images are cached once (0 augmented views)."
    return {
        "prefix_cache": (True, (
            f"The {len(frozen_blocks)} frozen blocks (to {last.name}) run in inference mode, so their "
            f"output ({last.output}) is computed once per image and cached; each epoch runs only the "
            "blocks after the cut.")),
        "prefix_views": (views if augmentation else 0, why_views),
        "prefix_cache_mb": (size, (
            f"{counted.format(views=f'{views} view(s)')} x 2 bytes = {size:,.1f} MB "
            f"<= {max_mb:,.0f} MB (config.PREFIX_CACHE_MAX_MB).")),
    }
