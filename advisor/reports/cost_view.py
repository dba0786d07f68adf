"""The expected wall time and accuracy of each regime, as a console table (``--estimate-cost``, ``--budget``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def _expected(cost: Mapping[str, Any]) -> str:
    """``"0.93 (0.90-0.96)"``, ``">= 0.90"`` (fine-tuning: the frozen floor) or ``"-"``."""
    e = cost.get("expected_accuracy")
    if not e:
        return "-"
    return f">= {e['low']:.2f}" if e.get("high") is None else f"{e['estimate']:.2f} ({e['low']:.2f}-{e['high']:.2f})"


def render_costs(costs: Mapping[str, Mapping[str, Any]], console: Console,
                 budget: Mapping[str, Any] | None = None) -> None:
    """Print one row per regime: images/s measured here, expected accuracy and wall time.

    With `budget` (``advice.budget``), its sentence follows the table.

    Example:
        >>> costs = {"svm": {"chosen": True, "total_s": 9.0, "epochs": 0,
        ...                  "throughput": {"forward_img_s": 120.0, "train_img_s": 60.0, "device": "cpu"},
        ...                  "sentence": "svm: about 9 s (9 s embedding)."}}
        >>> import io
        >>> console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
        >>> render_costs(costs, console)
        >>> text = console.export_text()
        >>> "svm (plan)" in text, "about 9 s" in text
        (True, True)
    """
    device = _throughput(next(iter(costs.values()), {})).get("device", "?")
    table = Table(title=f"Expected wall time on this machine ({device})")
    for column in ("regime", "forward img/s", "train img/s", "expected accuracy", "expected time",
                   "breakdown"):
        table.add_column(column)
    for regime, cost in costs.items():
        rates = _throughput(cost)
        table.add_row(regime + (" (plan)" if cost.get("chosen") else ""),
                      f"{rates.get('forward_img_s', 0):.0f}",
                      f"{rates.get('train_img_s', 0):.0f}" if cost.get("epochs") else "-",
                      _expected(cost),
                      "about " + str(cost.get("sentence", "")).split("about ", 1)[-1].split(" (")[0],
                      str(cost.get("sentence", "")).partition(" (")[2].rstrip(")."))
    console.print(table)
    console.print("Expected accuracy: the linear probe's learning curve at the training split's size "
                  "(95% interval); fine-tuning: that of svm moved by its gain on the advice-quality "
                  "benchmark's tasks, or its floor (>=) on more training images than they had.",
                  highlight=False)
    if budget:
        console.print(budget["reason"], highlight=False)


def _throughput(cost: Mapping[str, Any]) -> Mapping[str, Any]:
    """A regime's measured images/s (``throughput``; `{}` in advice written before it, whose
    ``rates`` the rate search's run count had overwritten)."""
    return cost.get("throughput") or {}
