"""Measurement: one forward pass over a sample, pure measures on its activations, the profile record.

:func:`measure_dataset` (:mod:`advisor.measure.forward`) runs the backbone once
over a stratified sample and hands the activations to pure functions that
return numbers: :func:`shift_map` (:mod:`~advisor.measure.shift`),
:func:`head_stats` (:mod:`~advisor.measure.head`), :func:`probe_accuracies`
(:mod:`~advisor.measure.probes`) and :func:`similarity_score`
(:mod:`~advisor.measure.similarity`). :class:`DatasetProfile`
(:mod:`~advisor.measure.profile`) is the frozen record the decision layer
reads. Nothing here trains or decides.

The records and the pure measures import without Keras; ``measure_dataset`` is
loaded on first use (PEP 562), so that the decision and report layers, which
read only the records, do not load a deep-learning backend.
"""

from advisor.measure.probes import probe_accuracies
from advisor.measure.profile import DatasetProfile, HeadStats, ProbeStats, ShiftMap, Similarity
from advisor.measure.shift import gaussian_kl, shift_map
from advisor.measure.similarity import similarity_score

__all__ = ["DatasetProfile", "HeadStats", "ProbeStats", "ShiftMap", "Similarity", "gaussian_kl",
           "head_stats", "measure_dataset", "probe_accuracies", "shift_map", "similarity_score"]


def __getattr__(name: str):
    if name == "measure_dataset":
        from advisor.measure.forward import measure_dataset

        return measure_dataset
    if name == "head_stats":  # reads ImageNet's class names from the backbones package
        from advisor.measure.head import head_stats

        return head_stats
    raise AttributeError(f"module 'advisor.measure' has no attribute {name!r}")
