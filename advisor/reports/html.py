"""Readable, self-contained HTML reports with matplotlib figures embedded as PNG.

Figure functions take plain arrays and return a base64 PNG string; page
functions take the same dicts that go into ``advice.json`` / ``report.json``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def shift_map_figure(labels: Sequence[str], values: Sequence[float], *, reference: float | None = None,
                     title: str = "Shift from ImageNet statistics over depth") -> str:
    """Plot the per-layer (or per-block) shift from ImageNet as a bar chart over depth.

    Args:
        labels: Layer or block names, input side first.
        values: The shift of each (e.g. mean Gaussian KL).
        reference: Level that ImageNet-like photos reach, drawn as a line. Defaults to `None`.
        title: Figure title. Defaults to a description of the shift map.

    Returns:
        The PNG, base64-encoded.

    Example:
        >>> png = shift_map_figure(["stem", "block_0"], [0.01, 0.2])
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.bar(range(len(values)), values, color="#4c72b0")
    if reference is not None:
        ax.axhline(reference, color="#dd8452", linestyle="--", label="ImageNet-like photos")
        ax.legend(loc="upper left")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_ylabel("shift (KL)")
    ax.set_title(title)
    return _png(fig)


def bar_figure(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str) -> str:
    """Plot one value per label as bars (per-class counts, per-class accuracy...).

    Example:
        >>> png = bar_figure(["a", "b"], [3, 4], title="counts", ylabel="images")
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(labels) + 2), 3))
    ax.bar(range(len(values)), values, color="#55a868")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _png(fig)


def curves_figure(curves: Mapping[str, Sequence[float]], *, title: str, xlabel: str,
                  x: Sequence[float] | None = None) -> str:
    """Plot named curves (learning curve, training history) on shared axes.

    Example:
        >>> png = curves_figure({"loss": [1.0, 0.5]}, title="history", xlabel="epoch")
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    for name, values in curves.items():
        xs = list(x) if x is not None else list(range(1, len(values) + 1))
        ax.plot(xs[: len(values)], values, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def confusion_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> str:
    """Plot a confusion matrix (rows true, columns predicted).

    Example:
        >>> png = confusion_figure([[3, 1], [0, 4]], ["a", "b"])
    """
    plt = _pyplot()
    matrix = np.asarray(matrix)
    size = max(3.5, 0.4 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)))
    ax.set_yticks(range(len(class_names)))
    ax.set_xticklabels(class_names, rotation=60, ha="right", fontsize=7)
    ax.set_yticklabels(class_names, fontsize=7)
    if len(class_names) <= 20:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                    color="white" if value > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test split)")
    return _png(fig)


def scatter_figure(true: Sequence[float], predicted: Sequence[float], *, title: str,
                   label: str = "target", baseline: float | None = None) -> str:
    """Plot predicted against true values, with the y = x line (and the baseline's constant).

    Args:
        true: True values.
        predicted: Predicted values, aligned with `true`.
        title: Figure title.
        label: Name of the quantity, for the axes. Defaults to `"target"`.
        baseline: A constant prediction to draw (e.g. the training mean). Defaults to `None`.

    Example:
        >>> png = scatter_figure([1, 2, 3], [1.1, 2.2, 2.7], title="test", baseline=2.0)
    """
    plt = _pyplot()
    true = np.asarray(true, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(true, predicted, s=12, alpha=0.6, color="#4c72b0", label="test images")
    both = np.concatenate([true, predicted]) if true.size else np.array([0.0, 1.0])
    low, high = float(both.min()), float(both.max())
    ax.plot([low, high], [low, high], color="#444", linewidth=1, label="perfect (y = x)")
    if baseline is not None:
        ax.axhline(baseline, color="#dd8452", linestyle="--", label="training mean")
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def thumbnails_figure(images: Sequence[np.ndarray], captions: Sequence[str], *, title: str) -> str:
    """Show images in a row with captions (e.g. the most confident mistakes).

    Example:
        >>> png = thumbnails_figure([np.zeros((8, 8, 3), np.uint8)], ["x"], title="t")
    """
    plt = _pyplot()
    n = max(1, len(images))
    fig, axes = plt.subplots(1, n, figsize=(1.8 * n, 2.2), squeeze=False)
    for ax, image, caption in zip(axes[0], images, captions):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(caption, fontsize=7)
    for ax in axes[0]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return _png(fig)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%}code,pre{background:#f6f6f6}
.regime{font-size:1.4em;font-weight:bold;color:#1a5fb4}
"""


def table_html(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """Return an HTML table of escaped cells.

    Example:
        >>> table_html([["a", 1]], header=["k", "v"]).startswith("<table>")
        True
    """
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def image_html(png_base64: str, alt: str) -> str:
    """Return an ``<img>`` embedding a base64 PNG."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_base64}">'


def page(title: str, sections: Sequence[tuple[str, str]], *, raw: Mapping[str, Any] | None = None) -> str:
    """Assemble a self-contained HTML page from ``(heading, html body)`` sections.

    Args:
        title: Page title.
        sections: Headings and their (already escaped) HTML bodies.
        raw: Data appended as pretty JSON in a collapsed block. Defaults to `None`.

    Example:
        >>> "<h2>Plan</h2>" in page("t", [("Plan", "<p>x</p>")])
        True
    """
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    if raw is not None:
        dumped = html.escape(json.dumps(raw, indent=2, sort_keys=True, default=str))
        parts.append(f"<details><summary>All numbers (JSON)</summary><pre>{dumped}</pre></details>")
    parts.append("</body></html>")
    return "".join(parts)
