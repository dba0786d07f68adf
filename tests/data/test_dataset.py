"""Scanning, validating and splitting dataset folders (advisor.data.scan, .split, .dataset).

Input-validation cases use a synthetic bad-input corpus; the real-data checks
use scikit-learn's digits written as PNG class folders (``digits_dir``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advisor import config
from advisor.data import SPLITS, Dataset, DatasetSummary, probe, scan_dataset
from advisor.data.decode_cache import decode_dataset
from advisor.data.split import split_counts
from advisor.errors import DatasetError

SIZE = 32


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A private decode cache per test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(root))
    return root


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def tree_state(root: Path) -> dict[str, tuple]:
    """Names, types, bytes (hashed), link targets and mtimes of a whole tree."""
    state: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder, name)
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            elif path.is_dir():
                state[rel] = ("dir", st.st_mtime_ns)
            elif not path.is_file():  # a FIFO: reading it would block
                state[rel] = ("special", st.st_mode, st.st_mtime_ns)
            else:
                try:
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                except PermissionError:
                    digest = "unreadable"
                state[rel] = ("file", st.st_size, st.st_mtime_ns, digest, st.st_mode)
    state["."] = ("root", root.stat().st_mtime_ns)
    return state


def solid(color, size=(24, 16), mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def jpeg_bytes(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **kwargs)
    return buf.getvalue()


def noise(side: int = 64) -> Image.Image:
    """Random pixels: a JPEG of them is mostly entropy-coded data, not headers."""
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8))


def png_bomb() -> bytes:
    """A ~70-byte PNG whose header claims 100,000 x 100,000 pixels."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", 100_000, 100_000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def make_class(folder: Path, n: int, color=None, ext="png") -> None:
    """`n` solid images of shades of `color`; by default a colour of the folder's own.

    Distinct folders get distinct files: the same bytes in two class folders
    would be conflicting labels, which the split keeps in train (issue 19).
    """
    if color is None:
        h = zlib.crc32(str(folder).encode())
        color = (64 + h % 192, 64 + (h >> 8) % 192, 64 + (h >> 16) % 192)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shade = tuple(max(0, c - 7 * i) for c in color)
        solid(shade).save(folder / f"img_{i:02d}.{ext}")


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert isinstance(exc.value, DatasetError)
    return message


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Two classes of good images plus every kind of bad input the issue lists."""
    root = tmp_path / "corpus"
    cat = root / "cat"
    dog = root / "dög ünï"  # unicode and a space in a class name
    make_class(cat, 4, (220, 40, 40))
    make_class(dog, 4, (40, 40, 220), ext="jpg")
    # Other formats, all usable.
    solid((10, 200, 10)).save(cat / "photo.bmp")
    solid((10, 200, 10)).save(cat / "photo.webp")
    solid((10, 200, 10)).save(cat / "photo.tiff")
    frames = [solid((255, 0, 0)).convert("P"), solid((0, 0, 255)).convert("P")]
    frames[0].save(cat / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("RGB", (1, 1), (0, 255, 0)).save(cat / "one_by_one.png")
    sixteen = np.full((10, 12), 32768, dtype=np.uint16)
    sixteen[:5] = 65535
    Image.fromarray(sixteen).save(cat / "sixteen_bit.png")
    # Bad files (skipped at scan time, or when decoded).
    (cat / "empty.jpg").write_bytes(b"")
    (cat / "text.jpg").write_text("this is not a picture\n")
    (cat / "bomb.png").write_bytes(png_bomb())
    full = jpeg_bytes(noise())
    (cat / "truncated.jpg").write_bytes(full[: len(full) // 2])
    os.symlink("self.png", cat / "self.png")  # a link to itself
    os.symlink(".", cat / "loop")  # a folder loop
    os.symlink("..", dog / "up")  # back to the root
    os.mkfifo(cat / "pipe.png")  # opening a FIFO would block forever
    # Mode conversions.
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(dog / "cmyk.jpg", quality=95)
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    palette.paste(0, (0, 0, 16, 8))  # top half index 0 = transparent
    palette.save(dog / "palette.png", transparency=0)
    upright = Image.new("RGB", (30, 20), (255, 0, 0))
    upright.paste((0, 0, 255), (0, 10, 30, 20))  # top red, bottom blue
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    stored.save(dog / "exif_rotated.jpg", quality=95, exif=exif.tobytes())
    solid((30, 30, 200)).save(dog / "ünï cødé name.png")
    solid((30, 30, 210)).save(dog / "with space.png")
    # Ignored: hidden files and folders, non-image files.
    (cat / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / ".hidden").mkdir()
    solid((1, 2, 3)).save(root / ".hidden" / "secret.png")
    (cat / "notes.txt").write_text("labels are fine\n")
    (root / "README.md").write_text("# corpus\n")
    return root


SCAN_SKIPPED = {
    "cat/empty.jpg": "empty file",
    "cat/text.jpg": "not an image",
    "cat/bomb.png": "decompression bomb",
    "cat/self.png": "symbolic link loop",
    "cat/loop": "already scanned",
    "dög ünï/up": "already scanned",
    "cat/pipe.png": "not a regular file",
}


# --------------------------------------------------------------------------- #
# The bad-input corpus
# --------------------------------------------------------------------------- #
def test_corpus_bad_files_are_skipped_and_listed(corpus):
    before = tree_state(corpus)
    ds = scan_dataset(corpus, seed=0)
    skipped = {s.path: s.reason for s in ds.summary.skipped}
    assert set(skipped) == set(SCAN_SKIPPED)
    for path, words in SCAN_SKIPPED.items():
        assert words in skipped[path], (path, skipped[path])
    assert "\n" not in "".join(skipped.values())
    assert set(ds.summary.ignored) == {"README.md", "cat/notes.txt"}
    all_paths = {r.path for split in SPLITS for r in ds.records(split)}
    assert not any(".hidden" in p or "DS_Store" in p for p in all_paths)
    assert "dög ünï/ünï cødé name.png" in all_paths
    assert "dög ünï/with space.png" in all_paths
    assert ds.class_names == ("cat", "dög ünï")
    assert ds.summary.modes["CMYK"] == 1
    assert ds.summary.modes["I;16"] == 1 or ds.summary.modes.get("I", 0) == 1
    assert ds.summary.formats["GIF"] == 1 and ds.summary.formats["WEBP"] == 1
    assert ds.summary.width.min == 1 and ds.summary.height.min == 1
    # The EXIF-rotated JPEG is reported upright (30 x 20), not as stored (20 x 30).
    exif_record = next(r for s in SPLITS for r in ds.records(s) if r.path.endswith("exif_rotated.jpg"))
    assert (exif_record.width, exif_record.height) == (30, 20)
    assert tree_state(corpus) == before


def test_scanning_in_a_process_pool_finds_what_one_thread_finds(corpus, monkeypatch):
    serial = scan_dataset(corpus, seed=0)
    monkeypatch.setattr(config, "SCAN_PROCESS_MIN_FILES", 2)
    monkeypatch.setattr(config, "SCAN_CHUNK_SIZE", 3)  # several chunks, results kept in order
    monkeypatch.setattr(probe, "usable_cores", lambda: 2)
    pooled = scan_dataset(corpus, seed=0)
    assert pooled.to_dict() == serial.to_dict()


def test_corpus_decode_drops_truncated_and_pixels_are_right(corpus):
    before = tree_state(corpus)
    ds, decoded = decode_dataset(scan_dataset(corpus, seed=0), SIZE)
    skipped = {s.path: s.reason for s in ds.summary.skipped}
    assert "truncated" in skipped["cat/truncated.jpg"]
    assert set(skipped) == set(SCAN_SKIPPED) | {"cat/truncated.jpg"}
    assert ds.summary.n_images == sum(len(d.rows) for d in decoded.values())

    def pixels(name: str) -> np.ndarray:
        for split in SPLITS:
            for i, path in enumerate(decoded[split].paths):
                if path.name == name:
                    assert decoded[split].ok[i]
                    return np.asarray(decoded[split].images[i], dtype=np.float64)
        raise AssertionError(name)

    upright = pixels("exif_rotated.jpg")
    top, bottom = upright[:8].mean(axis=(0, 1)), upright[-8:].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60, top  # red on top
    assert bottom[2] > 200 and bottom[0] < 60, bottom  # blue below
    pal = pixels("palette.png")
    assert pal[:8].min() > 250  # transparent half composited on white
    assert pal[-8:, :, 0].mean() > 250 and pal[-8:, :, 1:].mean() < 5
    cmyk = pixels("cmyk.jpg").mean(axis=(0, 1))
    assert cmyk[0] > 200 and cmyk[1] < 60 and cmyk[2] < 60, cmyk
    sixteen = pixels("sixteen_bit.png")
    assert sixteen[:8].mean() > 250 and 120 < sixteen[-8:].mean() < 135
    gif = pixels("anim.gif").mean(axis=(0, 1))
    assert gif[0] > 200 and gif[2] < 60  # first frame (red), not the second
    assert pixels("one_by_one.png").mean(axis=(0, 1))[1] > 250
    assert tree_state(corpus) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod-000 file")
def test_unreadable_file_is_listed(corpus):
    locked = corpus / "cat" / "locked.png"
    solid((5, 5, 5)).save(locked)
    locked.chmod(0)
    try:
        ds = scan_dataset(corpus)
        reasons = {s.path: s.reason for s in ds.summary.skipped}
        assert "permission denied" in reasons["cat/locked.png"]
    finally:
        locked.chmod(0o644)


def test_permission_reason_when_open_is_refused(corpus, monkeypatch):
    """Root ignores chmod, so refuse the open itself for one file."""
    real_open = open

    def guarded(path, *args, **kwargs):
        if str(path).endswith("img_00.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded)
    ds = scan_dataset(corpus)
    reasons = {s.path: s.reason for s in ds.summary.skipped}
    assert "permission denied" in reasons["cat/img_00.png"]


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda root: None, r"No images found in .*empty"),
        (lambda root: make_class(root / "only", 5), r"Found 1 class folder\(s\) \(only\) .*need at least 2"),
        (
            lambda root: (make_class(root / "a", 3), make_class(root / "b", 1)),
            r"Class folder .*empty/b has 1 usable image\(s\); need at least 2\. Add images or remove",
        ),
        (
            lambda root: (make_class(root / "a", 3), (root / "b").mkdir()),
            r"Class folder .*empty/b has 0 usable image\(s\)",
        ),
        (
            lambda root: (make_class(root / "a", 3), make_class(root / "b", 1), (root / "b" / "x.jpg").write_bytes(b"")),
            r"b has 1 usable image\(s\) \(1 skipped, see the summary\)",
        ),
        (
            lambda root: [solid((9, 9, 9)).save(root / f"{i}.png") for i in range(3)],
            r"Found 3 image\(s\) directly in .* but no class sub-folders",
        ),
        (
            lambda root: [(root / c).mkdir() or (root / c / "x.jpg").write_text("no") for c in "ab"],
            r"No usable images in .*2 file\(s\) skipped \(first: a/x.jpg: not an image",
        ),
    ],
    ids=["empty-folder", "single-class", "class-with-one-image", "empty-class-folder",
         "one-left-after-skip", "loose-images", "nothing-usable"],
)
def test_one_line_errors(tmp_path, build, match):
    root = tmp_path / "empty"
    root.mkdir()
    build(root)
    before = tree_state(root)
    with pytest.raises(DatasetError, match=match) as exc:
        scan_dataset(root)
    one_line(exc)
    assert tree_state(root) == before


def test_missing_path_and_file_path(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist; pass a folder") as exc:
        scan_dataset(tmp_path / "nope")
    one_line(exc)
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"is a file") as exc:
        scan_dataset(tmp_path / "file.png")
    one_line(exc)


def test_class_too_small_after_decode_failure(tmp_path):
    root = tmp_path / "data"
    make_class(root / "a", 3)
    make_class(root / "b", 2)
    full = jpeg_bytes(noise())
    (root / "b" / "img_01.png").unlink()
    (root / "b" / "bad.jpg").write_bytes(full[: len(full) // 2])
    ds = scan_dataset(root)  # the header is fine: found only when decoding
    with pytest.raises(DatasetError, match=r"b has 1 usable image\(s\) \(1 skipped") as exc:
        decode_dataset(ds, 16)
    one_line(exc)


# --------------------------------------------------------------------------- #
# Layouts and splits
# --------------------------------------------------------------------------- #
def test_presplit_layout_uses_given_splits(tmp_path):
    root = tmp_path / "pre"
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        for cls in ("a", "b"):
            make_class(root / split / cls, n)
    before = tree_state(root)
    ds = scan_dataset(root)
    assert ds.presplit and ds.summary.presplit
    assert ds.given_splits == ("train", "val", "test")
    assert ds.summary.split_sizes == {"train": 12, "val": 4, "test": 6}
    assert all(r.path.startswith("val/") for r in ds.val)
    assert ds.class_names == ("a", "b")
    assert tree_state(root) == before


def test_presplit_without_val_carves_it_from_train(tmp_path):
    root = tmp_path / "pre"
    for split, n in (("train", 10), ("test", 3)):
        for cls in ("a", "b"):
            make_class(root / split / cls, n)
    ds = scan_dataset(root, val_fraction=0.2)
    assert ds.given_splits == ("train", "test")
    assert ds.summary.split_sizes == {"train": 16, "val": 4, "test": 6}
    assert all(r.path.startswith("train/") for r in ds.val)


def test_class_named_like_a_split_is_not_presplit(tmp_path):
    root = tmp_path / "data"
    make_class(root / "train", 3)
    make_class(root / "boat", 3)
    ds = scan_dataset(root)
    assert not ds.presplit and ds.class_names == ("boat", "train")


@pytest.mark.parametrize(
    "n, expected",
    [(2, (1, 1, 0)), (3, (1, 1, 1)), (4, (2, 1, 1)), (10, (6, 2, 2)), (100, (70, 15, 15))],
)
def test_split_counts_give_small_classes_a_validation_image(n, expected):
    assert split_counts(n, 0.15, 0.15) == expected


def test_digits_real_data_split_is_stratified_and_seeded(digits_dir):
    before = tree_state(digits_dir)
    ds = scan_dataset(digits_dir, seed=7)
    s = ds.summary
    assert (s.n_images, s.n_classes) == (1797, 10)
    assert s.modes == {"L": 1797} and s.formats == {"PNG": 1797}
    assert (s.width.min, s.width.median, s.width.max) == (8, 8.0, 8)
    assert sum(s.class_counts.values()) == 1797 and s.class_counts["0"] == 178
    assert s.imbalance_ratio == pytest.approx(max(s.class_counts.values()) / min(s.class_counts.values()))
    assert sum(s.split_sizes.values()) == 1797
    for split in SPLITS:  # every class in every split, in proportion
        counts = np.bincount(ds.labels(split), minlength=10)
        share = counts / counts.sum()
        assert share.min() > 0.08 and share.max() < 0.12
    assert len({p for split in SPLITS for p in map(str, ds.files(split))}) == 1797
    again = scan_dataset(digits_dir, seed=7)
    assert again == ds
    other = scan_dataset(digits_dir, seed=8)
    assert other.val != ds.val and other.summary.split_sizes == s.split_sizes
    assert tree_state(digits_dir) == before


def test_exact_duplicates_within_and_across_classes(tmp_path):
    root = tmp_path / "dup"
    make_class(root / "a", 4)
    make_class(root / "b", 4, (10, 200, 10))
    shutil.copyfile(root / "a" / "img_00.png", root / "a" / "copy.png")
    shutil.copyfile(root / "a" / "img_01.png", root / "b" / "stray.png")
    s = scan_dataset(root).summary
    groups = {g.paths: g for g in s.duplicates}
    assert set(groups) == {("a/copy.png", "a/img_00.png"), ("a/img_01.png", "b/stray.png")}
    assert not groups[("a/copy.png", "a/img_00.png")].cross_class
    assert groups[("a/img_01.png", "b/stray.png")].classes == ("a", "b")
    assert s.n_duplicate_files == 2


# --------------------------------------------------------------------------- #
# Serialisation
# --------------------------------------------------------------------------- #
def test_summary_json_round_trip(corpus):
    summary = scan_dataset(corpus).summary
    text = json.dumps(summary.to_dict(), sort_keys=True)
    assert DatasetSummary.from_dict(json.loads(text)) == summary
    assert json.dumps(DatasetSummary.from_dict(json.loads(text)).to_dict(), sort_keys=True) == text


def test_save_and_load_split(digits_dir, tmp_path):
    ds = scan_dataset(digits_dir, seed=3)
    path = ds.save_split(tmp_path / "runs" / "split.json")
    loaded = Dataset.load_split(path)
    assert loaded == ds
    assert loaded.files("test") == ds.files("test")
    np.testing.assert_array_equal(loaded.labels("train"), ds.labels("train"))


def test_load_split_errors_are_one_line(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as exc:
        Dataset.load_split(tmp_path / "missing.json")
    one_line(exc)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="is not a saved split") as exc:
        Dataset.load_split(bad)
    one_line(exc)
    bad.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(DatasetError, match="schema_version=99") as exc:
        Dataset.load_split(bad)
    one_line(exc)


def test_drop_failed_keeps_other_assignments(digits_dir):
    ds = scan_dataset(digits_dir)
    victim = ds.train[0]
    dropped = ds.drop_failed([(digits_dir / victim.path, "cannot decode (test)")])
    assert victim not in dropped.train
    assert dropped.train == ds.train[1:] and dropped.val == ds.val and dropped.test == ds.test
    assert dropped.summary.n_images == ds.summary.n_images - 1
    assert any(s.path == victim.path for s in dropped.summary.skipped)


def test_bad_arguments():
    with pytest.raises(ValueError, match="val_fraction"):
        scan_dataset(Path("."), val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError, match="min_per_class"):
        scan_dataset(Path("."), min_per_class=0)
    with pytest.raises(ValueError, match="split"):
        Dataset.records(None, "training")  # type: ignore[arg-type]
