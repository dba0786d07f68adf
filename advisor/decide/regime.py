"""The regime table: a profile's size and similarity pick one of the four regimes.

The regime follows CS231n's transfer-learning rules, with the thresholds of a
:class:`~advisor.decide.rules.RegimeRules` (defaults from :mod:`advisor.config`):

====================  ===========================  ==================================
images                near (score >=                far
                      regime_similarity_threshold)
====================  ===========================  ==================================
< svm_max_images      ``svm`` (bottleneck + linear SVM)
small                 ``last-layer``                ``partial`` (freeze early blocks)
>= large_dataset      ``partial`` (later blocks)    ``full``
====================  ===========================  ==================================

The regime's similarity threshold is calibrated on the advice-quality
benchmark and is separate from ``config.SIMILARITY_THRESHOLD``, which says
whether the data is photo-like (and so whether mirroring is a safe augmentation).
"""

from __future__ import annotations

from advisor.decide.rules import RegimeRules
from advisor.measure.profile import DatasetProfile, reference_data
from advisor.plan import Regime


#: What the converged advice-quality benchmark says of the ``svm`` pick below
#: ``svm_max_images`` (benchmarks/README.md, "Selecting on the calibrated loss"): the reason
#: sentence cites it, so a user knows where the pick rests and what to run.
SMALL_SET_EVIDENCE = (
    "Fine-tuned to convergence on the benchmark's seven small tasks (263-2,000 images, two "
    "training seeds each; digits, Fashion-MNIST, MNIST and Twitter's emoji far from ImageNet, "
    "Tux Paint near it), the SVM on the probed blocks and the bottleneck was the best regime on "
    "digits (96.4% vs 94.0% for partial fine-tuning), Tux Paint (84.6% vs 83.3% for full "
    "fine-tuning, on 39 test images), Fashion-MNIST 1,000 (83.7% vs 83.3% for full fine-tuning) "
    "and Fashion-MNIST 2,000 (87.5% vs 87.2% for partial fine-tuning), within a standard error "
    "of the softmax head on Fashion-MNIST 300 (79.8% vs 80.6%) and of partial fine-tuning on the "
    "emoji (75.3% vs 76.4%, 288 test images), and 1.4 points below full fine-tuning on MNIST 300 "
    "(92.2% vs 93.7%): a mean regret of 0.5 points, against 1.0 for always fine-tuning every "
    "layer. "
    "`advise compare DATA_DIR --regimes svm,last-layer,full` measures them on this data.")


#: What the converged advice-quality benchmark says of the ``partial`` pick for data far
#: from the reference between ``svm_max_images`` and ``large_dataset_images``
#: (benchmarks/README.md, "Fashion-MNIST 5,000"): one task, one seed.
MID_SET_FAR_EVIDENCE = (
    "Fine-tuned to convergence on Fashion-MNIST 5,000 (far from ImageNet; one seed, 2,750 test "
    "images), partial fine-tuning scored 90.3% against 89.5% for the SVM (McNemar p = 0.11), "
    "88.6% for full fine-tuning and 87.5% for the softmax head (at twice its budget, converged).")


#: Why the advisor never proposes training the network from random weights, the guides'
#: option for data far from ImageNet (CS231n: "large and very different"): the one converged
#: runs of it on the benchmark (benchmarks/README.md, "Training from scratch"). Far picks cite it.
SCRATCH_EVIDENCE = (
    "Training the same network from random weights instead (the guides' option for data unlike "
    "ImageNet) is not proposed: on the benchmark's Fashion-MNIST (far from ImageNet, one seed "
    "each) it reached 73.3%, 80.3% and 84.0% at 300, 1,000 and 2,000 images, 7.3, 3.4 and 3.6 "
    "points below the best regime from the pretrained weights (84.0% against 87.5% for the SVM "
    "and 86.8% for full fine-tuning at 2,000); no larger far task has been run.")


def is_near(profile: DatasetProfile, rules: RegimeRules) -> bool:
    """Return whether the data is near enough to the reference data for the table's left column."""
    return profile.similarity.score >= rules.regime_similarity_threshold


def is_large(profile: DatasetProfile, rules: RegimeRules) -> bool:
    """Return whether the dataset is "large" in the regime table (and for the ``partial`` cut)."""
    return profile.n_images >= rules.large_dataset_images


def choose_regime(profile: DatasetProfile, rules: RegimeRules | None = None) -> tuple[Regime, str]:
    """Pick the CS231n regime for a profile, with the sentence that says why.

    Args:
        profile: The measured profile.
        rules: The thresholds of the table. Defaults to `None`
            (``RegimeRules()``, the calibrated constants of :mod:`advisor.config`).

    Returns:
        ``(regime, reason)``.

    Example:
        >>> import dataclasses
        >>> from advisor.data import scan_dataset
        >>> from advisor.measure import measure_dataset
        >>> profile = measure_dataset(scan_dataset(digits_dir), backbone)
        >>> profile.n_images, profile.similarity.score < RegimeRules().regime_similarity_threshold
        (100, True)
        >>> regime, why = choose_regime(profile)
        >>> regime
        <Regime.SVM: 'svm'>
        >>> print(why)  # doctest: +ELLIPSIS
        100 images < 5,000: a linear SVM on frozen features (CS231n); ... on MNIST ...
        >>> choose_regime(profile, RegimeRules(svm_max_images=0))[0]
        <Regime.PARTIAL: 'partial'>
        >>> choose_regime(dataclasses.replace(profile, n_images=50_000))[0]
        <Regime.FULL: 'full'>
    """
    rules = RegimeRules() if rules is None else rules
    n = profile.n_images
    score = profile.similarity.score
    threshold = rules.regime_similarity_threshold
    near = is_near(profile, rules)
    look = (f"similarity {score:.2f} {'>=' if near else '<'} {threshold:.2f} "
            f"({'near' if near else 'far from'} {reference_data(profile.backbone)})")
    scratch = "" if near else f" {SCRATCH_EVIDENCE}"
    if n < rules.svm_max_images:
        return Regime.SVM, (
            f"{n:,} images < {rules.svm_max_images:,}: a linear SVM on frozen features "
            f"(CS231n); {look}. {SMALL_SET_EVIDENCE}{scratch}"
        )
    large = is_large(profile, rules)
    size = (f"{n:,} images {'>=' if large else '<'} {rules.large_dataset_images:,} "
            f"({'large' if large else 'small'})")
    if not large and near:
        return Regime.LAST_LAYER, f"{size} and {look}: retrain only the last layer (CS231n)."
    if not large:
        return Regime.PARTIAL, (
            f"{size} and {look}: freeze the early blocks, fine-tune the later ones (CS231n). "
            f"{MID_SET_FAR_EVIDENCE}{scratch}"
        )
    if near:
        return Regime.PARTIAL, f"{size} and {look}: fine-tune the later blocks (CS231n)."
    return Regime.FULL, f"{size} and {look}: fine-tune every layer (CS231n).{scratch}"


def plan_regime(profile: DatasetProfile, forced: Regime | str | None,
                rules: RegimeRules, forced_by: str = "the caller") -> tuple[Regime, str]:
    """Return the plan's regime and its reason: the table's pick, or `forced` with the pick beside it.

    `forced_by` says who forced it (``"the caller"``, or ``advise --budget``'s sentence).

    Raises:
        PlanError: `forced` names no regime.
    """
    measured, why = choose_regime(profile, rules)
    if forced is None:
        return measured, why
    chosen = Regime.parse(forced)
    return chosen, (f"Forced to {chosen.value!r} by {forced_by}; the measures alone pick "
                    f"{measured.value!r}: {why}")
