"""Tests of `advisor.examples` (sources, writer, CLI) on the fast sets that pip installs (no apt, no npm)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advisor.errors import DatasetError
from advisor.examples import (
    DATASETS,
    DatasetRequestError,
    SourceMissingError,
    available,
    folder_name,
    stratified_indices,
    write_dataset,
    write_heldout,
)
from advisor.examples.__main__ import main
from advisor.examples.sources import CIFAR10_CLASSES
from advisor.examples.writer import MARKER_NAME


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Point the user cache at a temporary folder, so tests write only there."""
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(tmp_path))
    return tmp_path


def class_counts(folder: Path) -> dict[str, int]:
    """Return {class folder: number of PNGs} of a written set."""
    return {d.name: len(list(d.glob("*.png"))) for d in sorted(folder.iterdir()) if d.is_dir()}


def needs(name: str):
    return pytest.mark.skipif(not available(name), reason=f"{name} source not installed")


@needs("digits")
def test_digits_full_layout(cache):
    folder = write_dataset("digits")
    assert folder == cache / "datasets" / "digits"
    counts = class_counts(folder)
    assert sorted(counts) == [str(d) for d in range(10)]
    assert sum(counts.values()) == 1797
    image = Image.open(next((folder / "7").glob("*.png")))
    assert (image.mode, image.size) == ("L", (8, 8))
    assert np.asarray(image).max() == 255  # 0..16 scaled to 0..255
    assert (folder / MARKER_NAME).is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp left


@needs("mnist-5k")
def test_mnist_5k_stratified_subsample(cache):
    folder = write_dataset("mnist-5k", n=100)
    assert folder.name == "mnist-5k-100"
    assert class_counts(folder) == {str(d): 10 for d in range(10)}
    image = Image.open(next((folder / "3").glob("*.png")))
    assert (image.mode, image.size) == ("L", (28, 28))


@needs("photos")
def test_photos_two_coarse_classes_and_alias():
    folder = write_dataset("photos")
    assert class_counts(folder) == {"animal": 8, "object": 17}
    assert all(Image.open(p).mode == "RGB" for p in folder.rglob("*.png"))
    assert (folder / "animal" / "imagenet_00_243.png").is_file()  # bull mastiff
    assert (folder / "animal" / "skimage_chelsea.png").is_file()  # the cat
    assert write_dataset("skimage-foolbox") == folder


@needs("cifar")
def test_cifar_classes_have_at_least_two_images():
    counts = class_counts(write_dataset("cifar"))
    assert set(counts) <= set(CIFAR10_CLASSES)
    assert sum(counts.values()) == 20
    assert len(counts) == 8
    assert min(counts.values()) >= 2


@needs("skimage")
def test_skimage_domains_have_at_least_two_images():
    counts = class_counts(write_dataset("skimage"))
    assert set(counts) == {"photo", "texture", "medical", "space", "document"}
    assert min(counts.values()) >= 2


@needs("digits")
def test_second_call_returns_folder_without_rewriting():
    first = write_dataset("digits", n=50)
    mtimes = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    second = write_dataset("digits", n=50)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in second.rglob("*")} == mtimes


@needs("digits")
def test_seed_names_a_different_folder_and_draw():
    a = write_dataset("digits", n=40)
    b = write_dataset("digits", n=40, seed=1)
    assert (a.name, b.name) == ("digits-40", "digits-40-seed1")
    assert {p.name for p in a.rglob("*.png")} != {p.name for p in b.rglob("*.png")}


@needs("digits")
def test_heldout_images_are_those_the_subsample_left_out(cache):
    subsample = write_dataset("digits", n=300)
    heldout = write_heldout("digits", 300, 500)
    assert heldout.name == "digits-300-heldout500"
    counts = class_counts(heldout)
    assert sum(counts.values()) == 500 and sorted(counts) == [str(d) for d in range(10)]
    assert min(counts.values()) >= 40  # stratified: ~50 per class
    inside = {p.relative_to(subsample).as_posix() for p in subsample.glob("*/*.png")}
    outside = {p.relative_to(heldout).as_posix() for p in heldout.glob("*/*.png")}
    assert not inside & outside
    # Capped by what is left; nothing left when the subsample is the whole set.
    assert sum(class_counts(write_heldout("digits", 300, 10_000)).values()) == 1797 - 300
    assert write_heldout("digits", 1797, 100) is None


def test_explicit_root(tmp_path):
    folder = write_dataset("digits", tmp_path / "elsewhere", n=20)
    assert folder == tmp_path / "elsewhere" / "digits-20"


def test_stratified_indices_keep_shares_and_every_class():
    labels = ["a"] * 90 + ["b"] * 9 + ["c"] * 1 + ["d"] * 2
    picked = stratified_indices(labels, 20, seed=3, min_per_class=1)
    counts = Counter(labels[i] for i in picked)
    assert sum(counts.values()) == 20
    assert counts["a"] >= 16 and counts["b"] >= 1 and counts["c"] == 1
    assert len(set(picked.tolist())) == 20
    np.testing.assert_array_equal(picked, stratified_indices(labels, 20, seed=3, min_per_class=1))


def test_stratified_indices_floor_is_min_per_class():
    labels = ["a"] * 98 + ["b"] * 2
    counts = Counter(labels[i] for i in stratified_indices(labels, 10, min_per_class=2))
    assert counts == {"a": 8, "b": 2}


@pytest.mark.parametrize("n", [3, 101])
def test_stratified_indices_refuse_impossible_sizes(n):
    labels = ["a"] * 50 + ["b"] * 50
    with pytest.raises(DatasetRequestError, match=f"n={n}"):
        stratified_indices(labels, n)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="Known: .*digits"):
        write_dataset("imagenet-21k")
    with pytest.raises(ValueError):
        available("imagenet-21k")


def test_missing_source_says_what_to_install(monkeypatch):
    source = dataclasses.replace(DATASETS["fashion-mnist"], locate=lambda: None)
    monkeypatch.setitem(DATASETS, "fashion-mnist", source)
    with pytest.raises(SourceMissingError, match="apt-get install dataset-fashion-mnist"):
        write_dataset("fashion-mnist", n=100)


def test_failed_write_leaves_nothing(cache, monkeypatch):
    def broken(path):
        raise RuntimeError("disk full")

    monkeypatch.setitem(DATASETS, "digits", dataclasses.replace(DATASETS["digits"], collect=broken))
    with pytest.raises(RuntimeError, match="disk full"):
        write_dataset("digits")
    assert list((cache / "datasets").iterdir()) == []


def test_unmarked_existing_folder_is_refused(cache):
    (cache / "datasets" / "digits" / "0").mkdir(parents=True)
    with pytest.raises(DatasetError, match="has no .complete.json"):
        write_dataset("digits")


def test_folder_name_encodes_alias_n_and_seed():
    assert folder_name("skimage-foolbox") == "photos"
    assert folder_name("fashion-mnist", 1000) == "fashion-mnist-1000"
    assert folder_name("fashion-mnist", 1000, seed=2) == "fashion-mnist-1000-seed2"


def test_cli_prints_folders_and_reports_errors(cache, capsys):
    assert main(["digits", "--n", "30"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "datasets" / "digits-30")
    assert main(["no-such-set"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Unknown dataset 'no-such-set'") and "\n" not in err
