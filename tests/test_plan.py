"""The Plan record: JSON round trip, versioning, one-line errors."""

from __future__ import annotations

import json

import pytest

from advisor import config
from advisor.errors import PlanError
from advisor.plan import SCHEMA_VERSION, Optimizer, Plan, Regime


def make_plan(**overrides) -> Plan:
    values = dict(
        regime=Regime.PARTIAL, backbone="mobilenet_v2", image_size=96,
        frozen_blocks=("stem", "block_0"), feature_layer="global_average_pooling2d",
        optimizer=Optimizer.SGD, head_learning_rate=1e-2, backbone_learning_rate=1e-3,
        batch_size=32, head_epochs=20, epochs=5, warmup_epochs=1, patience=2,
        augmentation=("translate",), class_weights=(1.0, 2.0), svm_c_grid=(0.1, 1.0),
        seed=7, reasons={"regime": "because"},
    )
    values.update(overrides)
    return Plan(**values)


@pytest.mark.parametrize("regime", list(Regime), ids=lambda r: r.value)
def test_json_round_trip(regime):
    plan = make_plan(regime=regime)
    text = plan.to_json()
    assert json.loads(text)["regime"] == regime.value
    assert Plan.from_json(text) == plan


def test_round_trip_without_class_weights():
    plan = make_plan(class_weights=None)
    assert Plan.from_dict(json.loads(plan.to_json())) == plan


def test_newer_schema_is_refused():
    data = make_plan().to_dict() | {"schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(PlanError, match="upgrade"):
        Plan.from_dict(data)


def test_unknown_regime_lists_known_ones():
    with pytest.raises(PlanError, match="Known: svm, last-layer, partial, full"):
        Regime.parse("everything")


def test_malformed_plan_names_fields():
    data = make_plan().to_dict()
    del data["epochs"]
    with pytest.raises(PlanError, match="epochs"):
        Plan.from_dict(data)
    with pytest.raises(PlanError, match="malformed"):
        Plan.from_json("{not json")


def test_execution_settings_round_trip_and_default_for_older_plans():
    plan = make_plan(momentum=0.5, weight_decay=0.01, augmentation_translate=0.2,
                     augmentation_zoom=0.3, augmented_views=1, svm_cv_folds=3,
                     precision="float32")
    assert Plan.from_json(plan.to_json()) == plan
    older = {k: v for k, v in make_plan().to_dict().items()
             if k not in ("momentum", "weight_decay", "augmentation_translate",
                          "augmentation_zoom", "augmented_views", "svm_cv_folds", "precision")}
    assert Plan.from_dict(older) == make_plan()


def test_decode_size_round_trips_and_older_plans_decode_at_image_size():
    # Issue 16: low-resolution folders are cached at native size, upscaled inside the model.
    native = make_plan(image_size=128, decode_size=28)
    assert Plan.from_json(native.to_json()) == native
    assert (native.input_size, native.decode_resize_ratio) == (28, 1.0)
    older = {k: v for k, v in native.to_dict().items() if k != "decode_size"}
    plan = Plan.from_dict(older)
    assert plan.decode_size is None and plan.input_size == 128
    assert plan.decode_resize_ratio == config.RESIZE_RATIO
