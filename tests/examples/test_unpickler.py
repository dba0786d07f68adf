"""Tests of the restricted unpickler (`advisor.examples.unpickler`): arrays load, nothing else runs."""

from __future__ import annotations

import gzip
import io
import os
import pickle

import numpy as np
import pytest

from advisor.errors import DatasetError
from advisor.examples import DATASETS, available
from advisor.examples.unpickler import NumpyArrayUnpickler, load_array_pickle


class _RunsCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    flag = tmp_path / "pwned"
    payload = pickle.dumps(_RunsCommand(f"touch {flag}"))
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system"):
        NumpyArrayUnpickler(io.BytesIO(payload)).load()
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(payload))
    with pytest.raises(pickle.UnpicklingError):
        load_array_pickle(bad)
    assert not flag.exists()


def test_restricted_unpickler_reads_plain_arrays(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "array.gz"
    path.write_bytes(gzip.compress(pickle.dumps(array, protocol=4)))
    np.testing.assert_array_equal(load_array_pickle(path), array)


def test_restricted_unpickler_refuses_non_arrays(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DatasetError, match="expected a NumPy array"):
        load_array_pickle(path)


@pytest.mark.skipif(not available("animal-silhouettes"), reason="animal-silhouettes source not installed")
def test_animal_silhouettes_read_safely():
    folder = DATASETS["animal-silhouettes"].locate()
    labels = load_array_pickle(folder / "animal_label_version_3.gz")
    assert np.bincount(labels).tolist() == [1000] * 10
