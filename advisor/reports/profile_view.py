"""How a profile is shown: the rows and figures shared by the console and HTML reports.

Functions take the JSON form of :class:`advisor.measure.profile.DatasetProfile`
(``profile.to_dict()``), so reports can be rebuilt from ``advice.json`` alone.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from advisor.measure.profile import in_network_order, reference_data
from advisor.reports import html as h

#: Characters of the per-block shift sparkline, lowest to highest.
SPARK_CHARS = "▁▂▃▄▅▆▇█"


def profile_rows(profile: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return ``(measure, value)`` rows summarising a profile.

    Example:
        >>> from advisor.data import scan_dataset
        >>> from advisor.measure import measure_dataset
        >>> profile = measure_dataset(scan_dataset(digits_dir), backbone, sample_cap=20)
        >>> rows = profile_rows(profile.to_dict())
        >>> [measure for measure, _ in rows[:2]]
        ['similarity to ImageNet (0-1)', '  component: shift']
    """
    similarity = profile["similarity"]
    shift = profile["shift"]
    head = profile["head"]
    reference = reference_data(profile["backbone"])
    head_name = "ImageNet head" if reference == "ImageNet" else "base model's head"
    if shift is None:
        shift_rows = [("shift map", "; ".join(profile.get("notes", [])) or "unavailable")]
    else:
        shift_rows = [
            ("mean shift over all BN layers (KL)", f"{shift['mean_kl']:.3f}"),
            ("shift of the scored blocks (KL)", f"{shift['score_kl']:.3f}"),
            (f"first block departing from {reference}",
             f"{shift['first_departing_block'] or 'none'} (KL > {shift['departure_kl']:g})"),
        ]
    rows = [
        (f"similarity to {reference} (0-1)", f"{similarity['score']:.3f}"),
        *[(f"  component: {name}", f"{value:.3f} (weight {similarity['weights'].get(name, 0):g})")
          for name, value in similarity["components"].items()],
        *shift_rows,
        (f"{head_name}: mean max probability", f"{head['mean_max_probability']:.3f}"),
        (f"{head_name}: mean entropy (nats)", f"{head['mean_entropy']:.2f}"),
        ("native image size (median w x h)",
         f"{profile['native_width']:.0f} x {profile['native_height']:.0f} px "
         f"(measured at {profile['image_size']} px)"),
        ("images embedded for the measures", f"{profile['n_sampled']} of {profile['n_images']}"),
    ]
    if shift is not None and 0 < shift.get("n_images", 0) < profile["n_sampled"]:
        rows.append(("images behind the shift map (BN moments)",
                     f"{shift['n_images']} of the {profile['n_sampled']} embedded"))
    probes = profile.get("probes")
    if probes:
        blocks = in_network_order(probes["block_accuracy"], (shift or {}).get("blocks"))  # not the JSON's
        rows += [
            ("k-NN probe accuracy (CV)", f"{probes['knn_accuracy']:.3f}"),
            ("linear probe accuracy (CV)", f"{probes['linear_accuracy']:.3f} (chance {probes['chance']:.3f})"),
            ("learning curve", ", ".join(f"{f:.0%}: {a:.3f}" for f, a in probes["learning_curve"])),
            *[(f"linear probe on {block}", f"{acc:.3f}") for block, acc in blocks.items()],
        ]
        if probes.get("layers_accuracy") is not None:
            rows.append(("linear probe on those blocks + bottleneck", f"{probes['layers_accuracy']:.3f}"))
    else:
        rows.append(("probes", "not run (too few images per class)"))
    return rows


def shift_sparkline(block_kl: list[float]) -> str:
    """Return a one-line sparkline of per-block shift (input side on the left).

    Example:
        >>> shift_sparkline([0.0, 0.5, 1.0])
        '▁▅█'
    """
    if not block_kl:
        return ""
    top = max(block_kl) or 1.0
    return "".join(SPARK_CHARS[min(len(SPARK_CHARS) - 1, int(v / top * (len(SPARK_CHARS) - 1) + 0.5))]
                   for v in block_kl)


def seen_as_rows(profile: Mapping[str, Any], *, limit: int = 12) -> list[tuple[str, str]]:
    """Return ``(class folder, ImageNet (or base model) classes it is seen as)`` rows.

    Example:
        >>> from advisor.data import scan_dataset
        >>> from advisor.measure import measure_dataset
        >>> profile = measure_dataset(scan_dataset(digits_dir), backbone, sample_cap=20)
        >>> rows = seen_as_rows(profile.to_dict(), limit=3)
        >>> [folder for folder, _ in rows], all("%" in seen for _, seen in rows)
        (['0', '1', '2'], True)
    """
    top = profile["head"].get("top_classes", {})
    return [(name, ", ".join(f"{label} {share:.0%}" for label, share in classes))
            for name, classes in list(top.items())[:limit]]


def profile_figures(profile: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return ``(alt text, base64 PNG)`` figures: shift per block and per layer, learning curve.

    The advice page and the run's report show the same profile: the figures
    of the last profiles drawn are kept, so a run draws them once (about a
    second of matplotlib on two cores).

    Example:
        >>> from advisor.data import scan_dataset
        >>> from advisor.measure import measure_dataset
        >>> profile = measure_dataset(scan_dataset(digits_dir), backbone, sample_cap=20)
        >>> figures = profile_figures(profile.to_dict())
        >>> [alt for alt, _ in figures]
        ['shift map over depth', 'shift per BN layer', 'learning curve']
    """
    return list(_drawn_profile_figures(json.dumps(profile, sort_keys=True, default=_plain)))


def _plain(value: Any) -> Any:
    """JSON form of a NumPy value (anything else: its text)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


@functools.lru_cache(maxsize=2)
def _drawn_profile_figures(profile_json: str) -> tuple[tuple[str, str], ...]:
    profile = json.loads(profile_json)
    shift = profile["shift"]
    figures = []
    if shift is not None:
        figures.append(("shift map over depth", h.shift_map_figure(
            shift["blocks"], shift["block_kl"], reference=shift["departure_kl"],
            title=f"Shift from {reference_data(profile['backbone'])} statistics per block "
                  "(mean KL of BN inputs)")))
    if shift is not None and shift.get("layers"):
        figures.append(("shift per BN layer", h.layer_shift_figure(
            shift["layers"], shift["layer_kl"], reference=shift["departure_kl"],
            title=f"Shift from {reference_data(profile['backbone'])} statistics per "
                  "BatchNormalization layer")))
    probes = profile.get("probes")
    if probes and probes.get("learning_curve"):
        fractions = [100 * f for f, _ in probes["learning_curve"]]
        figures.append(("learning curve", h.curves_figure(
            {"linear probe": [a for _, a in probes["learning_curve"]]}, x=fractions,
            title="Linear-probe learning curve", xlabel="% of the sample")))
    return tuple(figures)  # the images per class are the dataset section's figure, shown once
