"""Expected wall time of a plan from measured images/s: embedding, cache fill, epochs.

:func:`expected_cost` prices a plan with the images/s measured for it on this
machine (``strategies.throughput.measure_throughput``): every regime embeds
its training and validation images once for the linear probe (the frozen
regimes' whole fit) and the test split for the evaluation; ``partial`` with a
prefix cache fills it once (each augmented view of each training image, and
the validation images) and then trains on it; fine-tuning runs at most the
plan's epochs at each of its ``rate_scales`` (a search on validation), each
epoch a training pass and a validation pass. Early stopping
usually ends a run sooner, so the fine-tuning figure is an upper bound; the
frozen regimes' figure omits the SVM's C search and the head's epochs on
cached embeddings (seconds).
"""

from __future__ import annotations

from typing import Any

from advisor.plan import Plan


def expected_cost(plan: Plan, *, n_train: int, n_val: int, n_test: int, forward_img_s: float,
                  train_img_s: float, prefix_img_s: float | None = None) -> dict[str, Any]:
    """Return the expected wall seconds of `plan`, by part, and a one-line summary.

    Args:
        plan: The plan (regime, epochs, rate scales, prefix cache and its views).
        n_train: Training images.
        n_val: Validation images.
        n_test: Test images.
        forward_img_s: Measured forward images/s of the feature extractor.
        train_img_s: Measured training images/s of what the plan trains.
        prefix_img_s: Measured forward images/s of the frozen prefix (the
            prefix cache's fill), or `None` when the plan trains end to end.

    Returns:
        A JSON-ready dict: ``embed_s`` (probe embedding and test evaluation),
        ``fill_s`` (prefix cache), ``epoch_s`` (one fine-tuning epoch),
        ``epochs`` (at most, per searched rate), ``rates`` (the rates searched,
        each to at most ``epochs``), ``total_s`` (upper bound) and ``sentence``.

    Example:
        >>> from advisor.plan import Optimizer, Regime
        >>> plan = Plan(regime=Regime.FULL, backbone="mobilenet_v2", image_size=96, frozen_blocks=(),
        ...             feature_layer="features", optimizer=Optimizer.SGD, head_learning_rate=1e-3,
        ...             backbone_learning_rate=1e-4, batch_size=32, head_epochs=50, epochs=30,
        ...             warmup_epochs=3, patience=6, augmentation=(), class_weights=None,
        ...             svm_c_grid=(), seed=0)
        >>> cost = expected_cost(plan, n_train=1000, n_val=200, n_test=200, forward_img_s=200.0,
        ...                      train_img_s=80.0)
        >>> cost["embed_s"], cost["epoch_s"], cost["total_s"]
        (7.0, 13.5, 412.0)
        >>> cost["sentence"]
        'full: about 7 min at most (7 s embedding, 30 epochs x 14 s; early stopping usually ends sooner).'
    """
    embed = (n_train + n_val + n_test) / forward_img_s
    fill = epoch = 0.0
    rates = max(1, len(plan.rate_scales)) if plan.regime.fine_tunes_backbone else 1
    epochs = plan.epochs if plan.regime.fine_tunes_backbone else 0
    if epochs:
        views = max(1, plan.prefix_views) if plan.augmentation else 1
        if prefix_img_s:
            fill = (n_train * views + n_val) / prefix_img_s
        # The validation pass at the whole extractor's forward rate: an upper
        # bound for the suffix alone on cached activations.
        epoch = n_train / train_img_s + n_val / forward_img_s
    total = embed + fill + rates * epochs * epoch
    parts = [f"{format_duration(embed)} embedding"]
    if fill:
        parts.append(f"{format_duration(fill)} prefix cache")
    if epochs:
        parts.append((f"{rates} rates x " if rates > 1 else "")
                     + f"{epochs} epochs x {format_duration(epoch)}")
    tail = "; early stopping usually ends sooner" if epochs else ""
    return {"embed_s": round(embed, 1), "fill_s": round(fill, 1), "epoch_s": round(epoch, 1),
            "epochs": epochs, "rates": rates, "total_s": round(total, 1),
            "sentence": f"{plan.regime.value}: about {format_duration(total)}"
                        f"{' at most' if epochs else ''} ({', '.join(parts)}{tail})."}


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"7 min"`` or ``"1.5 h"``.

    Example:
        >>> format_duration(42.4), format_duration(412), format_duration(5400)
        ('42 s', '7 min', '1.5 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400 - 1:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
