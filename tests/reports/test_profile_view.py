"""How a profile is shown: block probes in network order, a per-layer shift plot one can read (issue 19).

Hand-written profile dicts (the reports only read them) with MobileNetV2's
block and BatchNormalization layer names.
"""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np

from advisor.reports.html import layer_shift_plot
from advisor.reports.profile_view import profile_rows

BLOCKS = ["stem"] + [f"block_{i}" for i in range(17)] + ["head"]
#: MobileNetV2's 52 BatchNormalization layers, input side first.
LAYERS = (["bn_Conv1", "expanded_conv_depthwise_BN", "expanded_conv_project_BN"]
          + [f"block_{i}_{part}_BN" for i in range(1, 17) for part in ("expand", "depthwise", "project")]
          + ["Conv_1_bn"])


def profile(block_accuracy: dict, blocks: list[str] | None = BLOCKS) -> dict:
    kl = list(np.linspace(0.3, 0.05, len(blocks or BLOCKS)))
    shift = None if blocks is None else {
        "blocks": blocks, "block_kl": kl, "layers": LAYERS, "layer_kl": list(np.linspace(0.5, 0.02, 52)),
        "mean_kl": 0.2, "score_kl": 0.1, "departure_kl": 0.1, "first_departing_block": "stem", "n_images": 40}
    return {"backbone": "mobilenet_v2", "image_size": 96, "n_images": 40, "n_sampled": 40,
            "native_width": 64, "native_height": 64, "shift": shift,
            "similarity": {"score": 0.5, "components": {}, "weights": {}},
            "head": {"mean_max_probability": 0.5, "mean_entropy": 1.0, "top_classes": {}},
            "probes": {"knn_accuracy": 0.8, "linear_accuracy": 0.85, "chance": 0.5,
                       "learning_curve": [[0.5, 0.8], [1.0, 0.85]], "block_accuracy": block_accuracy}}


def probe_rows(data: dict) -> list[str]:
    return [measure.removeprefix("linear probe on ") for measure, _ in profile_rows(data)
            if measure.startswith("linear probe on ")]


def test_block_probes_print_in_network_order_after_a_sorted_json_round_trip():
    written = json.loads(json.dumps(profile({"block_8": 0.7, "block_12": 0.8, "block_14": 0.84}),
                                    sort_keys=True))
    assert list(written["probes"]["block_accuracy"]) == ["block_12", "block_14", "block_8"]
    assert probe_rows(written) == ["block_8", "block_12", "block_14"]
    # The shift map's order wins over the numbers in the names; without one, the numbers decide.
    assert probe_rows(profile({"a_9": 0.7, "b_1": 0.8}, blocks=["stem", "b_1", "a_9"])) == ["b_1", "a_9"]
    assert probe_rows(profile({"block_12": 0.8, "block_8": 0.7}, blocks=None)) == ["block_8", "block_12"]


def test_per_layer_shift_plot_names_every_layer_legibly_with_the_legend_off_the_bars():
    shift = profile({})["shift"]
    fig = layer_shift_plot(shift["layers"], shift["layer_kl"], reference=shift["departure_kl"])
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = ax.get_yticklabels()
    assert [label.get_text() for label in labels] == LAYERS  # every bar named, input side first
    assert min(label.get_fontsize() for label in labels) >= 8 and {label.get_rotation() for label in labels} == {0}
    boxes = sorted((label.get_window_extent() for label in labels), key=lambda box: box.y0)
    assert all(low.y1 <= high.y0 for low, high in zip(boxes, boxes[1:]))  # no two names overlap
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1  # beside the axes
    assert ax.get_title()
    plt.close(fig)


def test_a_profile_shown_twice_is_drawn_once(monkeypatch):
    from advisor.reports import html, profile_view

    profile_view._drawn_profile_figures.cache_clear()
    drawn = []
    monkeypatch.setattr(html, "_png", lambda fig: drawn.append(fig) or plt.close(fig) or "png")
    data = profile({"block_3": 0.7})
    data["probes"]["linear_accuracy"] = np.float32(0.85)  # NumPy values as a measurement leaves them
    first = profile_view.profile_figures(data)
    assert profile_view.profile_figures(json.loads(json.dumps(data, default=float))) == first
    assert [alt for alt, _ in first] == ["shift map over depth", "shift per BN layer", "learning curve"]
    assert len(drawn) == 3  # the advice page's figures, reused by the run's report
    data["shift"]["block_kl"] = [2 * v for v in data["shift"]["block_kl"]]
    profile_view.profile_figures(data)
    assert len(drawn) == 6  # another profile is drawn again
