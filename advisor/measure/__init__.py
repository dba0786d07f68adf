"""Measurement: one forward pass over a sample, pure measures on its activations, the profile record.

:func:`measure_dataset` runs the backbone once over a stratified sample and
hands the activations to pure functions (shift map, ImageNet head statistics,
probes, similarity) that return numbers; :class:`DatasetProfile` is the frozen
record the decision layer reads. Nothing here trains or decides.
"""

from advisor.measure.forward import measure_dataset
from advisor.measure.profile import DatasetProfile, HeadStats, ProbeStats, ShiftMap, Similarity

__all__ = ["DatasetProfile", "HeadStats", "ProbeStats", "ShiftMap", "Similarity", "measure_dataset"]
