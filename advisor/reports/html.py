"""Readable, self-contained HTML reports with matplotlib figures embedded as PNG.

Figure functions take plain arrays and return a base64 PNG string; page
functions take the same dicts that go into ``advice.json`` / ``report.json``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import textwrap
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
        reference: The level above which a block counts as departing, drawn as a
            dashed line. Defaults to `None`.
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
        ax.axhline(reference, color="#dd8452", linestyle="--", label=f"departing above {reference:g}")
        # Beside the axes, not over the bars.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_ylabel("shift (KL)")
    ax.set_title(title)
    return _png(fig)


#: Layer names the per-layer shift plot labels at most; beyond, every k-th is named.
_LAYER_LABELS_MAX = 80
#: Height of one layer's bar row in the per-layer shift plot (inches; 8 pt names fit).
_LAYER_ROW_INCHES = 0.16


def layer_shift_plot(labels: Sequence[str], values: Sequence[float], *, reference: float | None = None,
                     title: str = "Shift per BatchNormalization layer"):
    """Draw the shift of every layer as horizontal bars, input side at the top, each named.

    Names stay horizontal at 8 pt, one row each, so none overlaps however many
    layers there are (past ``_LAYER_LABELS_MAX``, every k-th is named). The
    reference line's legend sits beside the axes, off the bars.

    Args:
        labels: Layer names, input side first.
        values: The shift of each (mean Gaussian KL).
        reference: The level above which a block counts as departing, drawn as a
            dashed line. Defaults to `None`.
        title: Figure title. Defaults to `"Shift per BatchNormalization layer"`.

    Returns:
        The matplotlib figure (:func:`layer_shift_figure` encodes it).

    Example:
        >>> fig = layer_shift_plot(["bn_Conv1", "block_1_expand_BN"], [0.4, 0.7], reference=0.1)
        >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
        ['bn_Conv1', 'block_1_expand_BN']
        >>> _pyplot().close(fig)
    """
    plt = _pyplot()
    n = len(values)
    fig, ax = plt.subplots(figsize=(7.5, max(2.0, _LAYER_ROW_INCHES * n + 1.0)))
    rows = np.arange(n)
    ax.barh(rows, values, height=0.7, color="#4c72b0")
    step = max(1, -(-n // _LAYER_LABELS_MAX))
    ax.set_yticks(rows[::step])
    ax.set_yticklabels(list(labels)[::step], fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)  # input side at the top
    if reference is not None:
        ax.axvline(reference, color="#dd8452", linestyle="--", label=f"departing above {reference:g}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlabel("shift (KL)")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()  # the scale beside the title, not a long scroll away
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, pad=10)
    return fig


def layer_shift_figure(labels: Sequence[str], values: Sequence[float], *, reference: float | None = None,
                       title: str = "Shift per BatchNormalization layer") -> str:
    """Plot the shift of every layer as named horizontal bars (:func:`layer_shift_plot`), as a PNG.

    Returns:
        The PNG, base64-encoded.

    Example:
        >>> png = layer_shift_figure(["bn_Conv1", "block_1_expand_BN"], [0.4, 0.7], reference=0.1)
    """
    return _png(layer_shift_plot(labels, values, reference=reference, title=title))


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


def history_figure(curves: Mapping[str, Sequence[float]], *, title: str,
                   best_epoch: int | None = None) -> str:
    """Plot a training history: losses on the left axes, accuracies (or MAE) on the right, best epoch marked.

    Args:
        curves: Named per-epoch values (``loss``, ``val_loss``, ``accuracy``...);
            names with ``loss`` go on the left axes, the others on the right.
        title: Figure title.
        best_epoch: The epoch kept (1-based), drawn as a vertical line. Defaults to `None`.

    Example:
        >>> png = history_figure({"loss": [1.0, 0.5], "val_accuracy": [0.6, 0.7]}, title="t", best_epoch=2)
    """
    plt = _pyplot()
    losses = {k: v for k, v in curves.items() if "loss" in k}
    others = {k: v for k, v in curves.items() if "loss" not in k}
    panels = [(name, group) for name, group in (("loss", losses), ("score", others)) if group]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3),
                             squeeze=False)
    for ax, (ylabel, group) in zip(axes[0], panels):
        for name, values in group.items():
            ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=name)
        if best_epoch:
            ax.axvline(best_epoch, color="#c44e52", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel if ylabel == "loss" else ", ".join(group))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def reliability_figure(panels: Sequence[tuple[str, Mapping[str, Sequence[Any]]]]) -> str:
    """Plot reliability diagrams: accuracy against confidence per bin, beside the diagonal.

    Each panel is a ``(title, bins)`` pair, `bins` as
    :func:`strategies.calibration.reliability_bins` records them (``edges``,
    ``count``, ``confidence``, ``accuracy``). A bar's height is its bin's
    accuracy and the red tick its mean confidence: on the diagonal the two
    agree. Under each diagram, the images per bin.

    Example:
        >>> bins = {"edges": [0.0, 0.5, 1.0], "count": [1, 3], "confidence": [0.4, 0.8],
        ...         "accuracy": [0.0, 0.67]}
        >>> png = reliability_figure([("test (ECE 0.12)", bins)])
    """
    plt = _pyplot()
    n = max(1, len(panels))
    fig, axes = plt.subplots(2, n, figsize=(3.3 * n, 4.2), squeeze=False, sharex=True,
                             gridspec_kw={"height_ratios": [3, 1]})
    for column, (title, bins) in enumerate(panels):
        top, bottom = axes[0][column], axes[1][column]
        edges = np.asarray(bins["edges"], dtype=float)
        lefts, width = edges[:-1], np.diff(edges)
        filled = [i for i, count in enumerate(bins["count"]) if count]
        top.bar(lefts[filled], [bins["accuracy"][i] for i in filled], width=width[filled],
                align="edge", color="#4c72b0", edgecolor="white", label="accuracy")
        top.hlines([bins["confidence"][i] for i in filled], lefts[filled], lefts[filled] + width[filled],
                   color="#c44e52", linewidth=2.5, label="mean confidence")
        top.plot([0, 1], [0, 1], color="#333", linewidth=1, linestyle="--", label="calibrated")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1.02)
        top.set_title(title, fontsize=9)
        bottom.bar(lefts, bins["count"], width=width, align="edge", color="#999", edgecolor="white")
        bottom.set_xlabel("confidence (top probability)")
    axes[0][0].set_ylabel("accuracy")
    axes[1][0].set_ylabel("images")
    fig.tight_layout()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8,
               frameon=False)  # under the diagrams, off the bars
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


def wrap_caption(caption: str, width: int = 20) -> str:
    """Wrap a caption into lines of at most `width` characters, breaking long names too.

    Example:
        >>> print(wrap_caption("golden_retriever_puppy -> labrador (0.91)", width=16))
        golden_retriever
        _puppy ->
        labrador (0.91)
    """
    return "\n".join(textwrap.wrap(caption, width=width, break_long_words=True,
                                   break_on_hyphens=False) or [""])


def thumbnails_figure(images: Sequence[np.ndarray], captions: Sequence[str], *, title: str,
                      per_row: int = 4, wrap: int = 20) -> str:
    """Show images in a grid, each over its caption, wrapped so that no two captions overlap.

    Args:
        images: ``(H, W, 3)`` uint8 images.
        captions: One per image (e.g. ``"true -> predicted (0.91)"``).
        title: Figure title.
        per_row: Images per row. Defaults to `4`.
        wrap: Characters per caption line. Defaults to `20`.

    Example:
        >>> png = thumbnails_figure([np.zeros((8, 8, 3), np.uint8)], ["x"], title="t")
    """
    plt = _pyplot()
    n = max(1, len(images))
    columns = min(per_row, n)
    rows = -(-n // columns)
    wrapped = [wrap_caption(c, wrap) for c in captions]
    lines = max([w.count("\n") + 1 for w in wrapped] or [1])
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, rows * (1.9 + 0.16 * lines)),
                             squeeze=False)
    for ax, image, caption in zip(axes.flat, images, wrapped):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(caption, fontsize=7.5, loc="center")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%}code,pre{background:#f6f6f6}
.regime{font-size:1.4em;font-weight:bold;color:#1a5fb4}
.error{color:#b00020}.warning{color:#9a5b00}
.summary{background:#f4f8fc;border:1px solid #c8d8ea;padding:0.6em 1.2em;border-radius:4px}
.summary p{margin:0.4em 0}.subtitle{color:#666;margin-top:-0.8em}
figure{margin:1em 0}figcaption{color:#555;font-size:0.92em}
details{margin:0.6em 0}summary{cursor:pointer;color:#1a5fb4}
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


def findings_html(findings: Sequence[tuple[str, str]]) -> str:
    """Return a list of ``(level, message)`` lines, each marked by its level.

    Args:
        findings: ``("error" | "warning", message)`` pairs, in the order shown.

    Returns:
        An escaped ``<ul>``, or ``""`` when there is nothing to say.

    Example:
        >>> findings_html([("warning", "Only 45 test images.")])
        "<ul class='findings'><li class='warning'><b>warning</b>: Only 45 test images.</li></ul>"
    """
    if not findings:
        return ""
    items = "".join(f"<li class='{html.escape(level, quote=True)}'><b>{html.escape(level)}</b>: "
                    f"{html.escape(message)}</li>" for level, message in findings)
    return f"<ul class='findings'>{items}</ul>"


def image_html(png_base64: str, alt: str) -> str:
    """Return an ``<img>`` embedding a base64 PNG."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_base64}">'


def figure_html(png_base64: str, alt: str, *, heading: str, caption: str) -> str:
    """Return a figure: a heading, the embedded PNG and a one-line caption.

    Example:
        >>> figure_html("AAAA", "counts", heading="Images per class", caption="One bar per class.")[:33]
        '<figure><h3>Images per class</h3>'
    """
    return (f"<figure><h3>{html.escape(heading)}</h3>{image_html(png_base64, alt)}"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def details_html(summary: str, body: str) -> str:
    """Return a folded ``<details>`` block: `summary` (escaped) shown, `body` (HTML) on a click.

    Example:
        >>> details_html("12 more fields", "<p>x</p>")
        '<details><summary>12 more fields</summary><p>x</p></details>'
    """
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


def page(title: str, sections: Sequence[tuple[str, str]], *, raw: Mapping[str, Any] | None = None,
         subtitle: str | None = None) -> str:
    """Assemble a self-contained HTML page from ``(heading, html body)`` sections.

    Args:
        title: Page title.
        sections: Headings and their (already escaped) HTML bodies.
        raw: Data appended as pretty JSON in a collapsed block. Defaults to `None`.
        subtitle: A line under the title (e.g. the data folder). Defaults to `None`.

    Example:
        >>> "<h2>Plan</h2>" in page("t", [("Plan", "<p>x</p>")])
        True
    """
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if subtitle:
        parts.append(f"<p class='subtitle'>{html.escape(subtitle)}</p>")
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    if raw is not None:
        dumped = html.escape(json.dumps(raw, indent=2, sort_keys=True, default=str))
        parts.append(f"<details><summary>All numbers (JSON)</summary><pre>{dumped}</pre></details>")
    parts.append("</body></html>")
    return "".join(parts)
