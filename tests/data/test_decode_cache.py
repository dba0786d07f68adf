"""The decode-once cache (advisor.data.decode_cache) and Keras batches (strategies.batches)."""

from __future__ import annotations

import concurrent.futures
import errno
import io
import os
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import advisor.data.decode_cache as decode_cache
from advisor.data import SPLITS, scan_dataset
from advisor.data.decode_cache import decode_dataset, decode_images
from advisor.data.images import load_image
from advisor.errors import StorageError
from strategies.batches import ImageBatches, build_augmentation

SIZE = 16


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private decode cache per test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(root))
    return root / "decoded"


@pytest.fixture(scope="module")
def digits(digits_dir):
    return scan_dataset(digits_dir, seed=0)


@pytest.fixture
def small_dir(tmp_path) -> Path:
    """A few real-looking files: two classes of noise images, one truncated JPEG."""
    rng = np.random.default_rng(0)
    root = tmp_path / "small"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    (root / "a" / "broken.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return root


def entries(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*")} if folder.exists() else set()


# --------------------------------------------------------------------------- #
# decode_images
# --------------------------------------------------------------------------- #
def test_decodes_real_digits_like_load_image(digits, cache):
    paths = digits.files("train")
    decoded = decode_images(paths, SIZE, workers=2)
    assert decoded.images.shape == (len(paths), SIZE, SIZE, 3)
    assert decoded.images.dtype == np.uint8
    assert isinstance(decoded.images, np.memmap) and not decoded.images.flags.writeable
    assert decoded.ok.all() and decoded.failures == () and not decoded.from_cache
    for i in (0, 1, len(paths) // 2, len(paths) - 1):
        np.testing.assert_array_equal(decoded.images[i], load_image(paths[i], SIZE))
    assert decoded.cache_file.parent == cache
    assert not any(name.endswith(".tmp.npy") or ".tmp" in name for name in entries(cache))


def test_second_call_only_opens_the_memmap(digits, monkeypatch):
    paths = digits.files("val")
    first = decode_images(paths, SIZE)

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decode_cache, "load_image", refuse)
    second = decode_images(paths, SIZE)
    assert second.from_cache and second.cache_file == first.cache_file
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    other_size = pytest.raises(AssertionError, match="decoded again")
    with other_size:  # another target size is another entry
        decode_images(paths, SIZE + 1)


def test_changed_file_invalidates_and_replaces_the_entry(small_dir, cache):
    paths = sorted((small_dir / "b").glob("*.png"))
    first = decode_images(paths, SIZE)
    # Rewrite one file with other pixels and a later mtime.
    Image.new("RGB", (30, 30), (255, 255, 255)).save(paths[0])
    stat = paths[0].stat()
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = decode_images(paths, SIZE)
    assert not second.from_cache and second.cache_file != first.cache_file
    assert second.images[0].min() == 255
    assert not first.cache_file.exists()  # the stale entry was removed
    assert len([n for n in entries(cache) if n.endswith(".npy")]) == 1


def test_failures_are_reported_not_raised(small_dir, monkeypatch):
    paths = sorted((small_dir / "a").iterdir())
    decoded = decode_images(paths, SIZE)
    bad = [i for i, p in enumerate(paths) if p.name == "broken.jpg"]
    assert [f.index for f in decoded.failures] == bad
    assert "truncated" in decoded.failures[0].reason
    assert decoded.failures[0].path == str(paths[bad[0]])
    assert not decoded.ok[bad[0]] and decoded.images[bad[0]].max() == 0
    assert list(decoded.rows) == [i for i in range(len(paths)) if i not in bad]
    monkeypatch.setattr(decode_cache, "load_image", None)  # cached: failures remembered
    again = decode_images(paths, SIZE)
    assert again.from_cache and again.failures == decoded.failures
    np.testing.assert_array_equal(again.ok, decoded.ok)


def test_decode_dataset_aligns_rows_and_labels(small_dir):
    ds = scan_dataset(small_dir, seed=0, test_fraction=0.0)
    new, decoded = decode_dataset(ds, SIZE)
    assert [s.path for s in new.summary.skipped] == ["a/broken.jpg"]
    for split in SPLITS:
        assert len(decoded[split].rows) == len(new.records(split))
        kept = [decoded[split].paths[i] for i in decoded[split].rows]
        assert kept == new.files(split)


def test_native_decode_caches_the_files_own_pixels_in_its_own_entry(digits, cache, monkeypatch):
    # Issue 16: a low-resolution folder is cached at native size (resize_ratio=1), not upscaled.
    from advisor.data.images import open_image

    paths = digits.files("val")
    native = decode_images(paths, 8, resize_ratio=1)
    assert native.images.shape == (len(paths), 8, 8, 3) and native.resize_ratio == 1.0
    for i in (0, len(paths) - 1):
        np.testing.assert_array_equal(native.images[i], np.asarray(open_image(paths[i])))
    upscaled = decode_images(paths, 96)
    assert upscaled.images.nbytes == native.images.nbytes * (96 // 8) ** 2
    torchvision = decode_images(paths, 8)  # same size, the 256/224 margin: another entry
    assert not torchvision.from_cache and torchvision.cache_file != native.cache_file
    assert not np.array_equal(np.asarray(torchvision.images), np.asarray(native.images))
    assert native.cache_file.exists()  # not taken for a stale copy of the other one
    monkeypatch.setattr(decode_cache, "load_image", None)
    again = decode_images(paths, 8, resize_ratio=1)
    assert again.from_cache and again.cache_file == native.cache_file
    with pytest.raises(ValueError, match="resize_ratio"):
        decode_images(paths, 8, resize_ratio=0.5)


def test_empty_list_and_bad_arguments():
    empty = decode_images([], SIZE)
    assert empty.images.shape == (0, SIZE, SIZE, 3) and len(empty) == 0
    with pytest.raises(ValueError, match="size"):
        decode_images([], 0)
    with pytest.raises(ValueError, match="executor"):
        decode_images([], SIZE, executor="fibers")  # type: ignore[arg-type]


def test_process_pool_gives_the_same_pixels(digits, tmp_path, monkeypatch):
    paths = digits.files("test")
    threads = np.asarray(decode_images(paths, SIZE, executor="thread", workers=2).images)
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(tmp_path / "other-cache"))
    procs = decode_images(paths, SIZE, executor="process", workers=2)
    assert not procs.from_cache
    np.testing.assert_array_equal(np.asarray(procs.images), threads)


class _BrokenPool:
    """A process pool whose workers die at once (as when the main script cannot be imported)."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        job = concurrent.futures.Future()
        job.set_exception(concurrent.futures.process.BrokenProcessPool("a worker died"))
        return job

    def map(self, fn, *iterables):
        raise concurrent.futures.process.BrokenProcessPool("a worker died")


def test_a_broken_process_pool_falls_back_to_this_process(digits, tmp_path, monkeypatch, caplog):
    from advisor import config
    from advisor.data import probe

    paths = digits.files("test")
    expected = np.asarray(decode_images(paths, SIZE, executor="thread", workers=2).images)
    scanned = scan_dataset(digits.root, seed=0)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _BrokenPool)
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(tmp_path / "other-cache"))
    decoded = decode_images(paths, SIZE, executor="process", workers=2)
    np.testing.assert_array_equal(np.asarray(decoded.images), expected)
    assert decoded.ok.all() and "decoding in this process" in caplog.text
    monkeypatch.setattr(config, "SCAN_PROCESS_MIN_FILES", 2)
    monkeypatch.setattr(probe, "usable_cores", lambda: 2)
    assert scan_dataset(digits.root, seed=0).to_dict() == scanned.to_dict()
    assert "scanning in this process" in caplog.text


def test_progress_is_quiet_by_default_and_never_on_stdout(digits, capsys):
    from advisor.progress import ProgressBar

    with ProgressBar(3, "Decoding", enabled=True, delay=0.0) as bar:
        bar.advance(3)
    assert capsys.readouterr().out == "" and bar.completed == 3
    decode_images(digits.files("val")[:10], SIZE, progress=False)
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- #
# ImageBatches
# --------------------------------------------------------------------------- #
def make_batches(n=10, **kwargs) -> ImageBatches:
    images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    labels = np.arange(n) % 3
    return ImageBatches(images, labels, **kwargs)


def test_batches_shapes_and_order():
    batches = make_batches(10, batch_size=4)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.dtype == np.uint8 and x.shape == (4, 4, 4, 3) and y.dtype == np.int32
    assert [int(v) for v in x[:, 0, 0, 0]] == [0, 1, 2, 3] and list(y) == [0, 1, 2, 0]
    assert batches[2][0].shape[0] == 2
    with pytest.raises(IndexError):
        batches[3]


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    def epoch(b):
        return np.concatenate([b[i][0][:, 0, 0, 0] for i in range(len(b))])

    a, b = make_batches(50, batch_size=8, shuffle=True, seed=1), make_batches(50, batch_size=8, shuffle=True, seed=1)
    first = epoch(a)
    np.testing.assert_array_equal(first, epoch(b))
    assert sorted(first) == list(range(50)) and list(first) != list(range(50))
    a.on_epoch_end()
    second = epoch(a)
    assert sorted(second) == list(range(50)) and list(second) != list(first)
    assert list(epoch(make_batches(50, batch_size=8, shuffle=True, seed=2))) != list(first)
    x, y = a[0]
    np.testing.assert_array_equal(y, x[:, 0, 0, 0] % 3)  # labels travel with their images


def test_rows_skip_failed_images_and_class_weight():
    images = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    rows = np.array([0, 2, 3, 5])
    batches = ImageBatches(images, [0, 1, 0, 1], rows=rows, batch_size=4, class_weight={1: 3.0})
    x, y, w = batches[0]
    assert list(x[:, 0, 0, 0]) == [0, 2, 3, 5]
    assert list(w) == [1.0, 3.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="one label per used image row"):
        ImageBatches(images, [0, 1], rows=rows)
    with pytest.raises(ValueError, match="uint8"):
        ImageBatches(images.astype(np.float32), np.zeros(6))


def test_batches_pickle_memmaps_by_file_name(digits):
    import pickle

    decoded = decode_images(digits.files("val"), SIZE)
    batches = ImageBatches(decoded.images, digits.labels("val"), batch_size=16)
    assert len(pickle.dumps(batches)) < decoded.images.nbytes / 10
    # What a worker process receives, rebuilt without unpickling anything.
    clone = ImageBatches.__new__(ImageBatches)
    clone.__setstate__(batches.__getstate__())
    assert isinstance(clone.images, np.memmap)
    np.testing.assert_array_equal(clone[1][0], batches[1][0])


def test_augmentation_returns_uint8_and_is_optional():
    assert build_augmentation() is None
    aug = build_augmentation(flip=True, translate=0.1, zoom=0.1, seed=0)
    assert [type(layer).__name__ for layer in aug.layers] == ["RandomFlip", "RandomTranslation", "RandomZoom"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 12, 12, 3), dtype=np.uint8)
    batches = ImageBatches(images, np.zeros(8), batch_size=8, augmentation=aug)
    x, _ = batches[0]
    assert x.dtype == np.uint8 and x.shape == images.shape
    assert not np.array_equal(x, images)
    with pytest.raises(ValueError, match="zoom"):
        build_augmentation(zoom=1.5)


def test_fit_from_the_cache_end_to_end(digits):
    """Keras trains from the memory-mapped cache through the PyDataset."""
    keras.utils.set_random_seed(0)
    ds, decoded = decode_dataset(digits, SIZE)
    train = ImageBatches(decoded["train"].images, ds.labels("train"), rows=decoded["train"].rows,
                         batch_size=64, shuffle=True, seed=0)
    val = ImageBatches(decoded["val"].images, ds.labels("val"), rows=decoded["val"].rows, batch_size=256)
    model = keras.Sequential([
        keras.Input((SIZE, SIZE, 3)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(train, validation_data=val, epochs=3, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.8
    assert train.epoch >= 3  # Keras may call on_epoch_end once more at the end


# --------------------------------------------------------------------------- #
# Issue 20 (part 4): a full disk or an unwritable cache is one line, and leaves no entry
# --------------------------------------------------------------------------- #
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["reserve", "rows", "index"])
def test_a_full_disk_while_decoding_is_one_line_and_leaves_no_entry(small_dir, cache, monkeypatch,
                                                                    where):
    paths = sorted(small_dir.glob("*/*.png"))
    with monkeypatch.context() as patch:
        if where == "reserve":  # the space of the images is reserved before decoding
            patch.setattr(decode_cache, "reserve_space", _no_space)
        elif where == "rows":  # a write of decoded rows fails half-way
            patch.setattr(decode_cache, "_decode_chunk", _no_space)
        else:  # the .json that makes the .npy an entry cannot be written
            patch.setattr(decode_cache.json, "dumps", _no_space)
        with pytest.raises(StorageError) as raised:
            decode_images(paths, SIZE)
    message = str(raised.value)
    assert "\n" not in message and str(cache) in message and "No space left on device" in message
    assert "free space there or set FINETUNE_ADVISOR_CACHE" in message
    assert entries(cache) == set(), "nothing half-written may be found later"
    again = decode_images(paths, SIZE)  # room again: decoded, then read from the cache
    assert not again.from_cache and decode_images(paths, SIZE).from_cache
    np.testing.assert_array_equal(again.images[0], load_image(paths[0], SIZE))


def test_an_unusable_cache_folder_is_one_line(small_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder cannot be made inside a file, even as root
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(blocker / "cache"))
    with pytest.raises(StorageError, match="Cannot create the cache folder .*set FINETUNE_ADVISOR_CACHE"):
        decode_images(sorted(small_dir.glob("*/*.png")), SIZE)


def test_an_npy_without_its_index_is_not_an_entry(small_dir, cache):
    paths = sorted(small_dir.glob("*/*.png"))
    first = decode_images(paths, SIZE)
    first.cache_file.with_suffix(".json").unlink()  # as if killed between the two renames
    again = decode_images(paths, SIZE)
    assert not again.from_cache and entries(cache) == {first.cache_file.name,
                                                       first.cache_file.with_suffix(".json").name}
