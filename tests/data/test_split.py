"""Identical files share a split; copies under two labels and across given splits are findings (issue 19).

The split itself is tested on small hand-built records (pure functions); the
scans copy real digit scans written by ``advisor.examples.write_dataset``.
"""

from __future__ import annotations

import json
import shutil
import zlib
from collections import defaultdict

import numpy as np
import pytest

from advisor.data import SPLITS, DatasetSummary, ImageRecord, scan_dataset
from advisor.data.records import CONFLICTING_LABELS, DUPLICATES_ACROSS_SPLITS
from advisor.data.split import split_counts, stratified_split
from advisor.examples import write_dataset


def record(class_name: str, label: int, i: int, digest: str | None = None) -> ImageRecord:
    return ImageRecord(f"{class_name}/{i:03d}.png", label, 8, 8, "L", "PNG", digest or f"{class_name}-{i}")


def split(pool, *, seed=0, val_fraction=0.15, test_fraction=0.15) -> dict[str, list[ImageRecord]]:
    splits = {name: [] for name in SPLITS}
    stratified_split(pool, splits, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    return splits


def split_of(splits) -> dict[str, set[str]]:
    """Digest -> the splits its copies are in."""
    where = defaultdict(set)
    for name in SPLITS:
        for r in splits[name]:
            where[r.sha256].add(name)
    return where


@pytest.mark.parametrize("seed", [0, 7, 1337])
def test_without_duplicates_the_split_is_the_plain_shuffle_and_cut(seed):
    pool = {c: [record(c, label, i) for i in range(n)] for label, (c, n) in enumerate((("a", 23), ("b", 9), ("c", 3)))}
    expected = {name: [] for name in SPLITS}
    for c in sorted(pool):  # the split before issue 19, written out
        records = sorted(pool[c], key=lambda r: r.path)
        order = np.random.default_rng([seed, zlib.crc32(c.encode())]).permutation(len(records))
        n_train, n_val, _ = split_counts(len(records), 0.15, 0.15)
        shuffled = [records[i] for i in order]
        expected["train"] += shuffled[:n_train]
        expected["val"] += shuffled[n_train:n_train + n_val]
        expected["test"] += shuffled[n_train + n_val:]
    assert split(pool, seed=seed) == expected


@pytest.mark.parametrize("seed", range(6))
def test_identical_files_share_a_split_and_the_shares_hold(seed):
    rng = np.random.default_rng(seed)
    pool = {}
    for label, c in enumerate("abcd"):
        n = int(rng.integers(8, 60))
        copies = rng.integers(0, n, size=n // 3)  # a third of the files copy an earlier one
        pool[c] = [record(c, label, i, f"{c}-{copies[i % len(copies)] if i % 3 == 0 else i}")
                   for i in range(n)]
    splits = split(pool, seed=seed)
    assert all(len(where) == 1 for where in split_of(splits).values())
    for label, c in enumerate("abcd"):
        sizes = [sum(r.label == label for r in splits[name]) for name in SPLITS]
        _, n_val, n_test = split_counts(len(pool[c]), 0.15, 0.15)
        assert sum(sizes) == len(pool[c])
        assert sizes[1] <= n_val and sizes[2] <= n_test  # copies never push val or test over
        assert sizes[2] >= n_test - 2  # ... and singletons fill them up (pairs and triples aside)
    again = split({c: list(reversed(rs)) for c, rs in pool.items()}, seed=seed)
    assert {n: sorted(r.path for r in again[n]) for n in SPLITS} == {
        n: sorted(r.path for r in splits[n]) for n in SPLITS}


def test_copies_under_two_classes_all_go_to_train():
    pool = {"a": [record("a", 0, i) for i in range(10)] + [record("a", 0, 99, "same")],
            "b": [record("b", 1, i) for i in range(10)] + [record("b", 1, 98, "same")]}
    splits = split(pool, val_fraction=0.2, test_fraction=0.2)
    assert split_of(splits)["same"] == {"train"}
    assert [len(splits[name]) for name in SPLITS] == [14, 4, 4]


# --------------------------------------------------------------------------- #
# Scans of real digit scans with copies added
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def digits_60(tmp_path_factory):
    """60 real digit scans (6 per class) as class folders."""
    return write_dataset("digits", tmp_path_factory.mktemp("examples"), n=60)


def copy_tree(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".*"))
    return dst


def test_issue_19_copies_no_longer_leak_into_the_test_split(digits_60, tmp_path):
    root = copy_tree(digits_60, tmp_path / "digits")
    for c in ("0", "3", "7"):  # three images copied twice within their class
        first = min((root / c).glob("*.png"))
        for k in range(2):
            shutil.copyfile(first, root / c / f"copy{k}.png")
    stray = min((root / "5").glob("*.png"))
    shutil.copyfile(stray, root / "8" / "stray.png")  # one image filed under two classes
    for seed in (0, 1, 2):
        ds = scan_dataset(root, seed=seed)
        s = ds.summary
        assert len(s.duplicates) == 4 and s.n_duplicate_files == 7
        assert not any(g.cross_split for g in s.duplicates)
        conflict = next(g for g in s.duplicates if g.cross_class)
        assert conflict.classes == ("5", "8") and conflict.splits == ("train",)
        assert [(f.level, f.kind) for f in s.findings] == [("error", CONFLICTING_LABELS)]
        assert "5, 8" in s.findings[0].message and "8/stray.png" in s.findings[0].message
        assert sum(s.split_sizes.values()) == 67 and s.split_sizes["test"] >= 10
    data = json.loads(json.dumps(s.to_dict(), sort_keys=True))
    assert data["n_duplicate_files"] == 7 and data["findings"][0]["level"] == "error"
    assert DatasetSummary.from_dict(data) == s


def test_copies_across_given_splits_are_kept_and_warned_about(digits_60, tmp_path):
    root = tmp_path / "presplit"
    for c in ("1", "2"):
        files = sorted((digits_60 / c).glob("*.png"))
        for split_name, chunk in (("train", files[:4]), ("val", files[4:5]), ("test", files[5:])):
            (root / split_name / c).mkdir(parents=True)
            for f in chunk:
                shutil.copyfile(f, root / split_name / c / f.name)
    leaked = min((root / "train" / "1").glob("*.png"))
    shutil.copyfile(leaked, root / "test" / "1" / "leaked.png")
    s = scan_dataset(root).summary
    assert s.presplit and s.split_sizes == {"train": 8, "val": 2, "test": 3}
    (group,) = s.duplicates
    assert group.splits == ("test", "train") and not group.cross_class
    (finding,) = s.findings
    assert (finding.level, finding.kind) == ("warning", DUPLICATES_ACROSS_SPLITS)
    assert "given split folders" in finding.message and "test/1/leaked.png" in finding.message
