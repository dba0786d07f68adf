"""Test fixtures: the real pretrained backbone loaded once, real digit scans as class folders.

The hermetic cache and the backend markers are in the root ``conftest.py``.
"""

from __future__ import annotations

import pytest


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


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch, session_cache):
    """An empty advisor cache for one test, the session's converted weights linked in (converted once)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (session_cache / "weights").mkdir(exist_ok=True)
    (cache / "weights").symlink_to(session_cache / "weights", target_is_directory=True)
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(cache))
    return cache
