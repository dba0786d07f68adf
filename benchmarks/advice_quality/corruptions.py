"""ImageNet-C style corruptions of the photo tasks and the similarity-severity correlation."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.advice_quality.runner import SPLIT_SEED, parse_task

#: Photo tasks corrupted for the severity correlation, and the corruptions
#: (ImageNet-C, Hendrycks & Dietterich 2019, on [0, 1] images at 224 px).
CORRUPTION_TASKS = ("photos", "tuxpaint")
CORRUPTION_SIZE = 224
GAUSSIAN_NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)
GAUSSIAN_BLUR_SIGMA = (1.0, 2.0, 3.0, 4.0, 6.0)
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)
CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "contrast")


def corrupt(image: np.ndarray, kind: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply an ImageNet-C corruption (severity 1-5; 0 = clean) to a float RGB image in [0, 1].

    Example:
        >>> bool(corrupt(np.full((8, 8, 3), 0.5), "contrast", 5, np.random.default_rng(0)).std() < 1e-6)
        True
    """
    from scipy.ndimage import gaussian_filter

    if severity == 0:
        return image
    if kind == "gaussian_noise":
        out = image + rng.normal(scale=GAUSSIAN_NOISE_STD[severity - 1], size=image.shape)
    elif kind == "gaussian_blur":
        sigma = GAUSSIAN_BLUR_SIGMA[severity - 1]
        out = gaussian_filter(image, sigma=(sigma, sigma, 0))
    elif kind == "contrast":
        mean = image.mean(axis=(0, 1), keepdims=True)
        out = (image - mean) * CONTRAST_FACTOR[severity - 1] + mean
    else:
        raise ValueError(f"Unknown corruption {kind!r}: expected gaussian_noise, gaussian_blur or contrast.")
    return np.clip(out, 0.0, 1.0)


def write_corrupted(source: Path, target: Path, kind: str, severity: int, *, seed: int = 0) -> Path:
    """Copy a class-folder dataset to `target`, each image resized to 224 px and corrupted."""
    from PIL import Image

    from advisor import config

    rng = np.random.default_rng(seed)
    for path in sorted(source.rglob("*")):
        if path.suffix.lower() not in config.IMAGE_EXTENSIONS or path.name.startswith("."):
            continue
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((CORRUPTION_SIZE, CORRUPTION_SIZE), Image.BICUBIC)
        pixels = corrupt(np.asarray(rgb, dtype=np.float64) / 255.0, kind, severity, rng)
        out = target / path.relative_to(source).with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint(pixels * 255).astype(np.uint8)).save(out)
    return target


def corruption_correlation(tasks: Sequence[str], *, backbone: str, log) -> dict[str, Any]:
    """Similarity score at severities 0-5 of each corruption of each task, and Spearman's rho."""
    from scipy.stats import spearmanr

    from advisor.app.pipeline import advise
    from advisor.examples import write_dataset

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="advice-quality-corrupt-") as tmp:
        for spec in tasks:
            name, n = parse_task(spec)
            source = write_dataset(name, n=n)
            clean = write_corrupted(source, Path(tmp) / spec / "clean", "contrast", 0)
            base = advise(clean, backbone=backbone, seed=SPLIT_SEED).profile.similarity.score
            result[spec] = {"clean": base}
            for kind in CORRUPTIONS:
                scores = [base]
                for severity in range(1, 6):
                    folder = write_corrupted(source, Path(tmp) / spec / f"{kind}-{severity}", kind, severity)
                    scores.append(advise(folder, backbone=backbone, seed=SPLIT_SEED).profile.similarity.score)
                    shutil.rmtree(folder)
                rho, p = spearmanr(range(6), scores)
                result[spec][kind] = {"scores": scores, "rho": float(rho), "p_value": float(p)}
                log(f"  corruption {spec} {kind}: " + " ".join(f"{s:.3f}" for s in scores)
                    + f"  rho={rho:.2f}")
    return result
