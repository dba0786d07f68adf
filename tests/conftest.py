"""Shared fixtures: a hermetic cache, the real pretrained backbone loaded once.

As in Keras' own conftest, tests marked ``backend("jax")`` run only under that
``KERAS_BACKEND``.
"""

from __future__ import annotations

import os

import pytest

from advisor.cache import CACHE_ENV_VAR


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
def mobilenet_v2(session_cache):
    """The real ImageNet MobileNetV2 at 224 px, built once per session."""
    from advisor.backbones import get_backbone

    return get_backbone("mobilenet_v2", image_size=224)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """scikit-learn's digits (1,797 real 8x8 scans) as ``<class>/<n>.png`` grayscale PNGs."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("digits")
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    for i, (image, target) in enumerate(zip(pixels, digits.target)):
        folder = root / str(target)
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root
