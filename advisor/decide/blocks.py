"""Which backbone blocks stay frozen, and which layer the new head reads."""

from __future__ import annotations

import math

from advisor import config
from advisor.backbones import Backbone
from advisor.decide.regime import is_large
from advisor.decide.rules import RegimeRules
from advisor.measure.profile import DatasetProfile, reference_data
from advisor.plan import Regime, Task

#: What the multi-layer SVM rests on (``config.SVM_READS_PROBED_LAYERS``), cited in its reason.
LAYERS_EVIDENCE = (
    "on the benchmark's converged 300-image tasks this lifted the SVM's test accuracy from "
    "87.3% to 92.4% on MNIST (full fine-tuning: 93.7%), from 94.6% to 96.4% on digits and from "
    "79.1% to 79.8% on Fashion-MNIST, and left Tux Paint's at 87.2% "
    "(benchmarks/bench_multilayer_svm.py)")


def _cut_index(profile: DatasetProfile, block_names: list[str], rules: RegimeRules) -> tuple[int, str]:
    """Index of the first trainable block for `partial`, and why."""
    n_blocks = len(block_names)
    if is_large(profile, rules):
        cut = round(config.LARGE_SIMILAR_FROZEN_FRACTION * n_blocks)
        return cut, (f"large and similar data: the first {config.LARGE_SIMILAR_FROZEN_FRACTION:.0%} "
                     f"of the blocks stay frozen, the later ones are fine-tuned")
    low = math.ceil(config.PARTIAL_MIN_FROZEN_FRACTION * n_blocks)
    high = math.floor(config.PARTIAL_MAX_FROZEN_FRACTION * n_blocks)
    departing = None if profile.shift is None else profile.shift.first_departing_block
    if profile.shift is None:
        cut = high
        why = "the model has no BatchNormalization layers, so no shift map to place the cut"
    elif departing in block_names:
        at = block_names.index(departing)
        cut = min(high, max(low, at))
        why = (f"the shift map first departs from {reference_data(profile.backbone)} at {departing} (KL "
               f"{profile.shift.block_kl[profile.shift.blocks.index(departing)]:.3f} > "
               f"{profile.shift.departure_kl:.3f})")
    else:
        cut = high
        why = f"no block's KL exceeds {profile.shift.departure_kl:.3f}"
    return cut, (f"{why}; blocks before the cut stay frozen, clipped to "
                 f"{config.PARTIAL_MIN_FROZEN_FRACTION:.0%}-{config.PARTIAL_MAX_FROZEN_FRACTION:.0%} "
                 f"of the {n_blocks} blocks")


def plan_frozen_blocks(regime: Regime, profile: DatasetProfile, backbone: Backbone,
                       rules: RegimeRules) -> tuple[tuple[str, ...], str]:
    """Return the blocks that stay frozen and why: all (frozen regimes), none (``full``) or a cut.

    ``partial`` on a large dataset freezes ``config.LARGE_SIMILAR_FROZEN_FRACTION``
    of the blocks; on a small one the cut is where the shift map first departs,
    clipped to ``config.PARTIAL_MIN_FROZEN_FRACTION``-``PARTIAL_MAX_FROZEN_FRACTION``.
    """
    names = [block.name for block in backbone.blocks]
    if regime is Regime.FULL:
        return (), "Regime 'full' fine-tunes every block; none stays frozen."
    if regime is not Regime.PARTIAL:
        return tuple(names), (f"Regime {regime.value!r} trains only a new head; all {len(names)} "
                              "blocks stay frozen.")
    cut, why = _cut_index(profile, names, rules)
    return tuple(names[:cut]), (
        f"Freeze {cut} of {len(names)} blocks ({names[0]}..{names[cut - 1]}), fine-tune "
        f"{names[cut]} onwards: {why}." if cut > 0 else f"Freeze nothing: {why}."
    )


def _format_blocks(accuracy: dict[str, float]) -> str:
    return ", ".join(f"{name} {acc:.3f}" for name, acc in accuracy.items()) or "none probed"


def plan_feature_layer(regime: Regime, profile: DatasetProfile, backbone: Backbone) -> tuple[str, str]:
    """Return the layer whose pooled output the head reads, and why.

    The pooled bottleneck, except for ``svm`` when the linear probe on an
    earlier block is within ``config.PROBE_BLOCK_TOLERANCE`` of the best
    probe, the bottleneck's or a block's (CS231n: for different data, classify
    earlier activations).
    """
    probes = profile.probes
    if regime is not Regime.SVM or probes is None:
        return backbone.feature_layer, f"The head reads the pooled bottleneck ({backbone.feature_layer})."
    if probes.best_block is None:
        return backbone.feature_layer, (
            f"The bottleneck's linear probe ({probes.linear_accuracy:.3f}) beats every earlier block "
            f"({_format_blocks(probes.block_accuracy)}) by more than {config.PROBE_BLOCK_TOLERANCE}: "
            f"the SVM reads the pooled bottleneck ({backbone.feature_layer})."
        )
    block = backbone.blocks[backbone.block_index(probes.best_block)]
    return block.output, (
        f"The linear probe on {block.name} scores {probes.block_accuracy[block.name]:.3f}, the "
        f"earliest block within {config.PROBE_BLOCK_TOLERANCE} of the best probe (blocks "
        f"{_format_blocks(probes.block_accuracy)}; bottleneck {probes.linear_accuracy:.3f}): the "
        f"late layers are ImageNet-specific here, so the SVM reads pooled {block.output} (CS231n)."
    )


def svm_reads_several_layers(profile: DatasetProfile, task: Task = Task.CLASSIFICATION) -> bool:
    """Whether ``svm`` reads the probed blocks and the bottleneck together on `profile`'s data.

    True for classification when ``config.SVM_READS_PROBED_LAYERS`` is on and
    the measuring pass probed some block. :func:`plan_feature_layers` names the
    layers; :func:`advisor.decide.expectation.expected_accuracy` asks this when
    it is given no plan's layers.

    Example:
        >>> profile.probes.block_accuracy  # doctest: +SKIP
        {'block_8': 0.91, 'block_12': 0.93, 'block_14': 0.92}
        >>> svm_reads_several_layers(profile), svm_reads_several_layers(profile, Task.REGRESSION)  # doctest: +SKIP
        (True, False)
    """
    probes = profile.probes
    return bool(config.SVM_READS_PROBED_LAYERS and task is Task.CLASSIFICATION
                and probes is not None and probes.block_accuracy)


def plan_feature_layers(regime: Regime, profile: DatasetProfile, backbone: Backbone,
                        task: Task = Task.CLASSIFICATION) -> tuple[tuple[str, ...], str]:
    """Return the layers ``svm`` reads together (the probed blocks and the bottleneck), and why.

    Empty (`feature_layer` alone) for the other regimes, for regression, when
    the measuring pass probed no block, or when ``config.SVM_READS_PROBED_LAYERS``
    is off. The probed blocks are the ones the measuring pass filed features
    of, so ``advise`` on a set within the sample cap still embeds each image once.
    """
    probes = profile.probes
    if regime is not Regime.SVM:
        return (), f"Regime {regime.value!r} reads one layer (feature_layer)."
    if not svm_reads_several_layers(profile, task):
        if not config.SVM_READS_PROBED_LAYERS or task is not Task.CLASSIFICATION:
            return (), "The SVM reads one layer (feature_layer)."
        return (), "No block was probed: the SVM reads one layer (feature_layer)."
    known = {block.name: block for block in backbone.blocks}
    blocks = [known[name] for name in probes.block_accuracy if name in known]
    if not blocks:
        return (), "The probed blocks are not this backbone's: the SVM reads one layer (feature_layer)."
    layers = (*(block.output for block in blocks), backbone.feature_layer)
    measured = ("" if probes.layers_accuracy is None else
                f" The linear probe on them together scored {probes.layers_accuracy:.3f} "
                f"(bottleneck alone {probes.linear_accuracy:.3f}; blocks "
                f"{_format_blocks(probes.block_accuracy)}).")
    return layers, (
        f"The SVM reads the pooled outputs of the probed blocks ({', '.join(b.name for b in blocks)}) "
        f"and the bottleneck together, each layer standardised and weighted the same (Head2Toe, "
        f"Evci et al. 2022): {LAYERS_EVIDENCE}.{measured}")
