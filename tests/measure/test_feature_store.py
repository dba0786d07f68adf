"""advisor.measure.feature_store: the measuring pass's pooled features reused by the frozen regimes (issue 18).

The real pretrained MobileNetV2 on real digit scans, at 96 px from their native
8 px: the claims are about which images get embedded and that the reused rows
equal a fresh forward pass, not about accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest

from advisor.backbones import get_backbone
from advisor.data import decode_dataset, scan_dataset
from advisor.examples import write_dataset
from advisor.measure import measure_dataset
from advisor.measure.feature_store import load_features, pixel_digests, save_features
from advisor.measure.forward import probe_blocks
from strategies.embeddings import Embedder
from tests.strategies.fakes import count_embedded_rows

SEED = 0


@pytest.fixture(scope="module")
def native_backbone(session_cache):
    return get_backbone("mobilenet_v2", image_size=96, input_size=8)


def test_the_frozen_regimes_embed_only_what_the_measuring_pass_did_not(fresh_cache, native_backbone,
                                                                        tmp_path, monkeypatch):
    dataset = scan_dataset(write_dataset("digits", tmp_path / "sets", n=80, seed=SEED), seed=SEED)
    measure_dataset(dataset, native_backbone, sample_cap=1000, seed=SEED)  # every train+val image
    _, decoded = decode_dataset(dataset, native_backbone.input_size,
                                resize_ratio=native_backbone.decode_resize_ratio)
    computed = count_embedded_rows(monkeypatch)
    for layer in (None, probe_blocks(native_backbone)[0].output):  # the bottleneck, a probed block
        embedder = Embedder(native_backbone, layer)
        train = decoded["train"]
        shared = embedder.embed(train.images, rows=train.rows)
        assert computed == []  # none of the training images went through the backbone again
        fresh = embedder._compute(train.images, train.rows, None)
        np.testing.assert_allclose(shared, fresh, rtol=1e-4, atol=1e-4)
        computed.clear()
        test = decoded["test"]
        embedder.embed(test.images, rows=test.rows)  # the measuring pass never sees the test split
        assert computed == [len(test.rows)]
        computed.clear()
    # Another network size shares nothing: other pixels in, other features out.
    other = get_backbone("mobilenet_v2", image_size=128, input_size=8)
    Embedder(other).embed(decoded["train"].images, rows=decoded["train"].rows)
    assert computed == [len(decoded["train"].rows)]


def test_without_sharing_the_measuring_pass_files_nothing(fresh_cache, native_backbone, tmp_path):
    dataset = scan_dataset(write_dataset("digits", tmp_path / "sets", n=40, seed=SEED), seed=SEED)
    measure_dataset(dataset, native_backbone, sample_cap=1000, seed=SEED, share_features=False)
    _, decoded = decode_dataset(dataset, native_backbone.input_size,
                                resize_ratio=native_backbone.decode_resize_ratio)
    train = decoded["train"]
    found, _ = load_features(native_backbone, native_backbone.feature_layer,
                             pixel_digests(train.images, train.rows), dim=1280)
    assert not found.any()


def test_random_weights_and_other_widths_share_nothing(fresh_cache, native_backbone):
    images = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    digests = pixel_digests(images, [0, 1])
    untrained = get_backbone("mobilenet_v2", image_size=96, input_size=8, weights=None)
    assert save_features(untrained, "x", digests, np.ones((2, 3), np.float32)) is None
    assert save_features(native_backbone, "x", digests, np.ones((2, 3), np.float32)) is not None
    assert save_features(native_backbone, "x", digests, np.ones((2, 3), np.float32)) is None  # filed once
    assert load_features(native_backbone, "x", digests, dim=3)[0].all()
    assert not load_features(native_backbone, "x", digests, dim=4)[0].any()
    assert not load_features(native_backbone, "y", digests, dim=3)[0].any()
    with pytest.raises(ValueError, match="one feature row per digest"):
        save_features(native_backbone, "z", digests, np.ones((3, 3), np.float32))
