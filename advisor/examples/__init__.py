"""Packaged real example datasets, written as class folders into the user cache.

``python -m advisor.examples digits`` writes scikit-learn's digit scans and
prints the folder. :mod:`advisor.examples.sources` holds the table of sets
(:data:`DATASETS`: where each is installed, how it is read),
:mod:`advisor.examples.writer` writes them (whole or a stratified subsample,
atomically), :mod:`advisor.examples.unpickler` is the restricted unpickler one
set needs, and ``__main__`` is the command line. See
``advisor/examples/README.md`` for the sets, their origins and licences.
"""

from advisor.examples.sources import (
    ALIASES,
    DATASETS,
    DatasetRequestError,
    SourceMissingError,
    available,
    install_hint,
)
from advisor.examples.writer import (
    folder_name,
    stratified_indices,
    write_dataset,
    write_heldout,
)

__all__ = ["ALIASES", "DATASETS", "DatasetRequestError", "SourceMissingError", "available",
           "folder_name", "install_hint", "stratified_indices", "write_dataset", "write_heldout"]
