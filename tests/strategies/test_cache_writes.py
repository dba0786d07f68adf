"""Issue 20 (part 4): runs share the caches safely; a failed cache write leaves no entry.

Two processes (this one and a child, under another Keras backend) decode and
embed the same files into one cache at the same moment: each entry is built
once, both read the same bytes, and nothing half-written or temporary is left. The embedding and prefix caches
turn a full disk into one line and keep no partial entry. A tiny fixed-weight
"backbone" stands in for MobileNetV2 (plumbing only: nothing about accuracy).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from advisor.errors import StorageError
from strategies import embeddings, prefix_cache

#: Builds the tiny backbone and ``work(paths)`` in this process and in the child alike.
SETUP = textwrap.dedent('''
    import keras, numpy as np
    from advisor.backbones.base import Backbone
    from advisor.data.decode_cache import decode_images
    from strategies.embeddings import Embedder

    def tiny_backbone():
        inputs = keras.Input((8, 8, 3), dtype="uint8")
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(4, name="features")(x))
        rng = np.random.default_rng(0)
        model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
        return Backbone(name="tiny", image_size=8, model=model, feature_layer="features",
                        classifier_layer="features", blocks=(), bn_layers=(),
                        preprocessing="x / 255", weights="test:fixed")

    def work(lists, backbone):
        """Decode and embed each file list; return (from_cache flags, pixels, embeddings)."""
        embedder, out = Embedder(backbone), []
        for paths in lists:
            decoded = decode_images(paths, 8, workers=1)
            out.append((decoded.from_cache, np.asarray(decoded.images),
                        embedder.embed(decoded.images, rows=decoded.rows)))
        return out
''')

CHILD = SETUP + textwrap.dedent('''
    import sys
    from pathlib import Path
    lists = [sorted(Path(sys.argv[1]).glob("*.png"))[s] for s in (slice(None), slice(None, None, -1), slice(0, 12))]
    backbone = tiny_backbone()
    print("ready", flush=True)
    sys.stdin.readline()  # go: both processes start at once
    for i, (cached, pixels, embedded) in enumerate(work(lists, backbone)):
        np.savez(Path(sys.argv[2]) / f"{i}.npz", cached=cached, pixels=pixels, embedded=embedded)
''')


#: The child runs under JAX: it starts seconds sooner than TensorFlow, and an entry
#: computed twice (by two backends) would show as differing bits below.
CHILD_BACKEND = "jax"


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture
def namespace():
    space: dict = {}
    exec(compile(SETUP, "setup", "exec"), space)
    return space


def test_two_processes_share_the_decode_and_embedding_caches(images, tmp_path, namespace, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(cache))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(images), str(tmp_path)], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": CHILD_BACKEND})
    assert child.stdout.readline().strip() == "ready", child.stderr.read()[-3000:]
    paths = sorted(images.glob("*.png"))
    lists = [paths, paths[::-1], paths[:12]]
    backbone = namespace["tiny_backbone"]()
    child.stdin.write("go\n")
    child.stdin.flush()
    mine = namespace["work"](lists, backbone)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-3000:]
    for i, (cached, pixels, embedded) in enumerate(mine):
        theirs = np.load(tmp_path / f"{i}.npz")
        assert [bool(theirs["cached"]), cached].count(False) == 1, "each entry is built once"
        np.testing.assert_array_equal(theirs["pixels"], pixels)
        np.testing.assert_array_equal(theirs["embedded"], embedded)
        direct = namespace["Embedder"](backbone).model.predict(pixels, verbose=0)
        np.testing.assert_allclose(embedded, direct, atol=1e-6)
    decoded, embedded = sorted((cache / "decoded").iterdir()), sorted((cache / "embeddings").iterdir())
    assert [p.suffix for p in decoded] == [".json", ".npy"] * 3 and len(embedded) == 3
    assert not list(cache.rglob(".*")), "no temporary or lock file is left behind"
    for entry in (p for p in decoded + embedded if p.suffix == ".npy"):
        assert np.load(entry).shape[0] in (12, 30)


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_caching_embeddings_is_one_line(images, tmp_path, namespace, monkeypatch):
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(tmp_path / "cache"))
    backbone = namespace["tiny_backbone"]()
    decoded = namespace["decode_images"](sorted(images.glob("*.png")), 8)
    embedder = namespace["Embedder"](backbone)
    with monkeypatch.context() as patch:
        patch.setattr(embeddings.np, "save", _no_space)
        with pytest.raises(StorageError) as raised:
            embedder.embed(decoded.images, rows=decoded.rows)
    folder = tmp_path / "cache" / "embeddings"
    assert str(raised.value) == (
        f"Could not write embeddings to the cache folder {folder} (No space left on device); free "
        "space there or set FINETUNE_ADVISOR_CACHE to a writable folder with room")
    assert list(folder.iterdir()) == []
    first = embedder.embed(decoded.images, rows=decoded.rows)
    (entry,) = folder.iterdir()
    entry.write_bytes(entry.read_bytes()[:100])  # a torn entry (not ours: ours are renamed whole)
    np.testing.assert_array_equal(embedder.embed(decoded.images, rows=decoded.rows), first)
    np.testing.assert_array_equal(np.load(entry), first)  # rewritten whole


def test_a_full_disk_while_caching_prefix_activations_is_one_line(images, tmp_path, namespace,
                                                                  monkeypatch):
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(tmp_path / "cache"))
    backbone = namespace["tiny_backbone"]()
    decoded = namespace["decode_images"](sorted(images.glob("*.png")), 8)
    keras = namespace["keras"]
    prefix = keras.Model(backbone.model.inputs, backbone.model.get_layer("features").output)
    cache = prefix_cache.PrefixCache(prefix, backbone, cut="features", batch_size=8)
    with monkeypatch.context() as patch:
        patch.setattr(prefix_cache, "reserve_space", _no_space)  # before any activation is computed
        with pytest.raises(StorageError, match="frozen-prefix activations .*No space left on device"):
            cache.compute(decoded.images, rows=decoded.rows)
    folder = tmp_path / "cache" / "prefix"
    assert list(folder.iterdir()) == []
    cached = cache.compute(decoded.images, rows=decoded.rows)
    in_memory = cache.compute(np.array(decoded.images), rows=decoded.rows)  # no key: not cached
    assert isinstance(cached, np.memmap) and cached.dtype == np.float16
    np.testing.assert_array_equal(cached, in_memory)
    assert len(list(folder.iterdir())) == 1
