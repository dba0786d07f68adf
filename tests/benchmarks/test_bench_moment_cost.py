"""The measuring pass's projected cost from per-batch costs (benchmarks/bench_moment_cost.py)."""

from __future__ import annotations

import doctest

import pytest

import benchmarks.bench_moment_cost as bench


def test_the_docstring_examples_run():
    assert doctest.testmod(bench).failed == 0


def test_a_pass_that_costs_nothing_extra_projects_to_one():
    assert bench.projected_ratio(2000, 32, 128, 1.0, 1.0) == pytest.approx(1.0)


def test_more_moment_images_never_project_a_faster_pass():
    ratios = [bench.projected_ratio(2000, 32, m, 1.01, 1.45) for m in (32, 64, 128, 256, 2000)]
    assert ratios == sorted(ratios, reverse=True)
    assert bench.projected_ratio(850, 32, 128, 1.01, 1.45) < bench.projected_ratio(2000, 32, 128, 1.01, 1.45)


def test_the_most_moment_images_reach_the_target_and_one_batch_more_does_not():
    most = bench.most_moment_images(2000, 32, 1.01, 1.45, 0.95)
    assert most % 32 == 0 and most > 0
    assert bench.projected_ratio(2000, 32, most, 1.01, 1.45) >= 0.95
    assert bench.projected_ratio(2000, 32, most + 32, 1.01, 1.45) < 0.95
