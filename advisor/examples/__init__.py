"""Packaged real example datasets, written as class folders into the user cache.

``python -m advisor.examples digits`` writes scikit-learn's digit scans and
prints the folder; see :mod:`advisor.examples.datasets` for the sets.
"""

from advisor.examples.datasets import (
    DATASETS,
    DatasetRequestError,
    SourceMissingError,
    available,
    write_dataset,
    write_heldout,
)

__all__ = ["DATASETS", "DatasetRequestError", "SourceMissingError", "available", "write_dataset",
           "write_heldout"]
