"""advisor.measure.feature_store: the measuring pass's pooled features reused by the frozen regimes (issue 18).

The real pretrained MobileNetV2 on real digit scans, at 96 px from their native
8 px: the claims are about which images get embedded and that the reused rows
equal a fresh forward pass, not about accuracy. The store's bookkeeping (its
index and eviction) is tested on small synthetic batches filed under that
backbone's namespaces: it claims nothing about features.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from advisor import config
from advisor.backbones import get_backbone
from advisor.data import decode_dataset, scan_dataset
from advisor.examples import write_dataset
from advisor.measure import measure_dataset
from advisor.measure.feature_store import (
    INDEX_FILE,
    load_features,
    namespace_dir,
    pixel_digests,
    save_features,
)
from advisor.measure.forward import probe_blocks
from strategies.embeddings import Embedder
from tests.strategies.fakes import count_embedded_rows

SEED = 0
#: Images per synthetic batch, and the width of their features.
ROWS, DIM = 4, 3


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
        train, test = decoded["train"], decoded["test"]
        entry = embedder._cache_file(train.images, train.rows, None, None, None)
        # lookup reads the per-file store (every row filed), computes and writes nothing...
        looked = embedder.lookup(train.images, rows=train.rows)
        assert computed == [] and looked is not None and not entry.exists()
        # ...and finds nothing for rows the measuring pass never saw (the test split).
        assert embedder.lookup(test.images, rows=test.rows) is None and computed == []
        shared = embedder.embed(train.images, rows=train.rows)
        assert computed == []  # none of the training images went through the backbone again
        np.testing.assert_array_equal(looked, shared)
        fresh = embedder._compute(train.images, train.rows, None)
        np.testing.assert_allclose(shared, fresh, rtol=1e-4, atol=1e-4)
        computed.clear()
        embedded = embedder.embed(test.images, rows=test.rows)  # the measuring pass never sees the test split
        assert computed == [len(test.rows)]
        computed.clear()
        # Once embedded, lookup reads the embedder's own cache entry.
        np.testing.assert_array_equal(embedder.lookup(test.images, rows=test.rows), embedded)
        assert computed == []
    # The SVM's several layers (the probed blocks and the bottleneck) in one embedding: all filed.
    layers = (*(b.output for b in probe_blocks(native_backbone)), native_backbone.feature_layer)
    together = Embedder(native_backbone, layers).embed(decoded["train"].images, rows=decoded["train"].rows)
    assert computed == [] and together.shape[1] == sum(Embedder(native_backbone, layers).widths)
    np.testing.assert_allclose(together[:, -1280:], Embedder(native_backbone).embed(
        decoded["train"].images, rows=decoded["train"].rows), rtol=1e-6)
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


def file_batches(backbone, layer: str, count: int, *, first: int = 0,
                 max_mb: float = config.FEATURE_STORE_MAX_MB) -> list[tuple[list[str], Path]]:
    """File batches `first`.. of ROWS distinct synthetic images (batch b's features all b); return (digests, file)."""
    images = np.zeros((ROWS * (first + count), 2, 2, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(len(images))
    filed = []
    for b in range(first, first + count):
        digests = pixel_digests(images, range(b * ROWS, (b + 1) * ROWS))
        filed.append((digests, save_features(backbone, layer, digests, np.full((ROWS, DIM), b, np.float32),
                                             max_mb=max_mb)))
    return filed


def age(*paths: Path) -> None:
    """Make each of `paths` a minute older than the next (the first the least recently used)."""
    now = time.time()
    for minutes, path in enumerate(reversed(paths), start=1):
        os.utime(path, (now - 60 * minutes, now - 60 * minutes))


def indexed(backbone, layer: str) -> set[str]:
    """The batch file names the namespace's index lists."""
    return set(json.loads((namespace_dir(backbone, layer) / INDEX_FILE).read_text())["batches"])


@pytest.fixture
def opened_files(monkeypatch) -> list[str]:
    """The names of the files ``np.load`` opens from now on (a list the caller reads)."""
    opened: list[str] = []
    original = np.load

    def load(file, *args, **kwargs):
        opened.append(Path(file).name)
        return original(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", load)
    return opened


def test_a_load_opens_only_the_batch_files_holding_the_wanted_images(fresh_cache, native_backbone,
                                                                     opened_files):
    filed = file_batches(native_backbone, "indexed", 3)
    assert indexed(native_backbone, "indexed") == {path.name for _, path in filed}
    opened_files.clear()
    digests, path = filed[1]
    found, features = load_features(native_backbone, "indexed", [digests[2], "not filed", digests[0]], DIM)
    assert found.tolist() == [True, False, True]
    assert features[:, 0].tolist() == [1.0, 0.0, 1.0]
    assert opened_files == [path.name]  # not the two other batch files
    opened_files.clear()
    found, _ = load_features(native_backbone, "indexed", filed[0][0] + filed[2][0], DIM)
    assert found.all() and sorted(opened_files) == sorted([filed[0][1].name, filed[2][1].name])


@pytest.mark.parametrize("damage", ["garbage", "missing", "another version", "behind the folder"])
def test_a_damaged_index_falls_back_to_the_batch_files_and_is_refiled(fresh_cache, native_backbone,
                                                                      opened_files, damage):
    filed = file_batches(native_backbone, "damaged", 3)
    index = namespace_dir(native_backbone, "damaged") / INDEX_FILE
    if damage == "garbage":
        index.write_bytes(b'{"version": 1, "batches": {"\xff')
    elif damage == "missing":
        index.unlink()
    elif damage == "another version":
        index.write_text(json.dumps({"version": 99, "batches": {}}))
    else:  # a concurrent writer's batch that the index lost
        index.write_text(json.dumps({"version": 1, "batches": {filed[0][1].name: filed[0][0]}}))
    found, features = load_features(native_backbone, "damaged", filed[2][0], DIM)
    assert found.all() and (features == 2).all()
    assert indexed(native_backbone, "damaged") == {path.name for _, path in filed}
    opened_files.clear()
    assert load_features(native_backbone, "damaged", filed[1][0], DIM)[0].all()
    assert opened_files == [filed[1][1].name]  # refiled: back to one file per load


def test_a_damaged_batch_file_is_indexed_as_holding_nothing(fresh_cache, native_backbone):
    filed = file_batches(native_backbone, "torn", 2)
    (namespace_dir(native_backbone, "torn") / INDEX_FILE).unlink()
    filed[0][1].write_bytes(filed[0][1].read_bytes()[:100])  # truncated
    found, _ = load_features(native_backbone, "torn", filed[0][0] + filed[1][0], DIM)
    assert found.tolist() == [False] * ROWS + [True] * ROWS


def test_a_full_namespace_loses_its_oldest_batch_and_its_index_follows(fresh_cache, native_backbone):
    filed = file_batches(native_backbone, "evicted", 3)
    sizes = {path.stat().st_size for _, path in filed}
    assert len(sizes) == 1  # same rows and width: same size
    age(*(path for _, path in filed))
    cap_mb = 3.5 * sizes.pop() / 1e6  # three batch files fit, four do not
    [(newest_digests, newest)] = file_batches(native_backbone, "evicted", 1, first=3, max_mb=cap_mb)
    assert [path.exists() for _, path in filed] == [False, True, True]
    assert indexed(native_backbone, "evicted") == {filed[1][1].name, filed[2][1].name, newest.name}
    assert not load_features(native_backbone, "evicted", filed[0][0], DIM)[0].any()
    assert load_features(native_backbone, "evicted", filed[1][0] + newest_digests, DIM)[0].all()


def test_a_loaded_batch_outlives_an_older_unused_one(fresh_cache, native_backbone):
    filed = file_batches(native_backbone, "used", 3)
    age(*(path for _, path in filed))
    assert load_features(native_backbone, "used", filed[0][0], DIM)[0].all()  # the oldest, now used
    cap_mb = 3.5 * filed[0][1].stat().st_size / 1e6
    file_batches(native_backbone, "used", 1, first=3, max_mb=cap_mb)
    assert [path.exists() for _, path in filed] == [True, False, True]
    assert filed[1][1].name not in indexed(native_backbone, "used")
