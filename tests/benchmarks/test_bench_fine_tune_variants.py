"""The single-setting variants of ``benchmarks.bench_fine_tune_variants`` (no training)."""

from __future__ import annotations

import dataclasses

from tests.benchmarks.test_advice_quality import _plan


def _changed(a, b) -> set[str]:
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def test_each_variant_changes_only_the_setting_it_names():
    from benchmarks.bench_fine_tune_variants import variants

    plan = _plan("full")
    table = variants(plan)
    one = table["plan"]
    assert one.rate_scales == (1.0,)
    assert _changed(table["budget-2x"], one) == {"epochs", "patience"}
    assert (table["budget-2x"].epochs, table["budget-2x"].patience) == (60, 12)
    assert _changed(table["rate-10x"], one) == {"backbone_learning_rate", "head_learning_rate"}
    assert table["rate-10x"].backbone_learning_rate == 10 * one.backbone_learning_rate
    assert table["rate-3x"].head_learning_rate == 3 * one.head_learning_rate
    assert _changed(table["fastai-budget-2x"], table["fastai"]) == {"epochs", "patience"}
    assert table["fastai"].head_epochs == 1
    assert table["search"] is plan  # the plan as advise runs it, its rate search included
    assert _changed(table["search-rate-3x"], plan) == {"backbone_learning_rate", "head_learning_rate"}
    assert table["search-rate-3x"].backbone_learning_rate == 3 * plan.backbone_learning_rate
