"""A restricted unpickler: load a pickled NumPy array, refuse every other global.

A pickle can call any importable function while it loads (``os.system`` is
the classic), so an ordinary ``pickle.load`` of a packaged file runs whatever
the file says. :class:`NumpyArrayUnpickler` resolves only the few globals that
rebuilding a plain ``ndarray`` needs and raises ``pickle.UnpicklingError`` for
anything else; :func:`load_array_pickle` reads one (gzipped) array with it, as
the ``animal-silhouettes`` set's files are read.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import DatasetError


class NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds plain NumPy arrays and refuses every other global.

    A pickle can call any importable function while it loads (``os.system`` is the
    classic). This one resolves only what an `ndarray` needs, so a tampered file
    raises `pickle.UnpicklingError` instead of running code.

    Example:
        >>> import io
        >>> data = pickle.dumps(np.arange(3))
        >>> NumpyArrayUnpickler(io.BytesIO(data)).load().tolist()
        [0, 1, 2]
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(
                f"Refusing global {module}.{name} in a pickle; only NumPy array "
                "reconstruction is allowed. The file is not a plain array pickle.")
        return super().find_class(*target)


def load_array_pickle(path: Path) -> np.ndarray:
    """Load a (gzipped) pickle that holds one NumPy array, refusing anything else.

    Args:
        path: The pickle file; gzip is detected from its first bytes.

    Returns:
        The array.

    Raises:
        pickle.UnpicklingError: If the pickle names any global other than NumPy's
            array reconstruction (for example ``os.system``).
        DatasetError: If it holds something other than an array.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "array.pkl.gz"
        >>> _ = path.write_bytes(gzip.compress(pickle.dumps(np.zeros(3))))
        >>> load_array_pickle(path).shape
        (3,)
    """
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as stream:
        value = NumpyArrayUnpickler(stream).load()
    if not isinstance(value, np.ndarray):
        raise DatasetError(
            f"Pickle {path} holds a {type(value).__name__}; expected a NumPy array. "
            "Reinstall the package that ships it.")
    return value
