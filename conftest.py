"""Shared by the test suite and the package's doctests (``pytest`` runs both).

A hermetic cache for the whole session, TensorFlow kept quiet, and, as in
Keras' own conftest, tests marked ``backend("jax")`` run only under that
``KERAS_BACKEND``. Doctests get ``np`` and ``Path`` in their namespace.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from advisor.cache import CACHE_ENV_VAR

collect_ignore = ["advisor/examples/__main__.py", "benchmarks", "tests/reference"]


def pytest_configure(config):
    # Keep TensorFlow quiet; must be set before it is imported anywhere.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
    import keras

    backend = keras.backend.backend()
    for item in items:
        marker = item.get_closest_marker("backend")
        if marker and backend not in marker.args:
            item.add_marker(pytest.mark.skip(reason=f"needs KERAS_BACKEND in {marker.args}"))


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Point the advisor's cache at a fresh folder for the whole session."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("advisor-cache")
        mp.setenv(CACHE_ENV_VAR, str(root))
        yield root


@pytest.fixture(scope="session")
def doctest_digits_dir(session_cache) -> Path:
    """100 of scikit-learn's real digit scans as class folders (the doctests' ``digits_dir``)."""
    from advisor.examples import write_dataset

    return write_dataset("digits", n=100)


@pytest.fixture(scope="session")
def doctest_backbone(session_cache):
    """The real ImageNet MobileNetV2 at 96 px (the doctests' ``backbone``)."""
    from advisor.backbones import get_backbone

    return get_backbone("mobilenet_v2", image_size=96)


@pytest.fixture(autouse=True)
def _doctest_namespace(request):
    """Give each doctest ``np``, ``Path``, ``keras``, ``digits_dir`` and ``backbone``.

    ``digits_dir`` and ``backbone`` are real (packaged digit scans, pretrained
    weights) and built once, on the first doctest that runs.
    """
    from _pytest.doctest import DoctestItem

    if not isinstance(request.node, DoctestItem):
        return
    import keras
    import numpy as np

    request.node.dtest.globs.update(
        np=np, Path=Path, keras=keras, digits_dir=request.getfixturevalue("doctest_digits_dir"),
        backbone=request.getfixturevalue("doctest_backbone"))
