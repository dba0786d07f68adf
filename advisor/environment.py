"""What a run ran on: backend, devices, versions. Reported, never decided on here."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def accelerators() -> list[str]:
    """Return the accelerator devices Keras' backend can see (empty on CPU-only machines).

    Example:
        >>> isinstance(accelerators(), list)
        True
    """
    import keras

    try:
        devices = keras.distribution.list_devices()
    except (RuntimeError, ValueError, NotImplementedError):
        return []
    return [d for d in devices if not str(d).lower().startswith("cpu")]


def describe_environment() -> dict[str, object]:
    """Return backend, device, CPU count and package versions for a report.

    Example:
        >>> describe_environment()["backend"] in ("tensorflow", "jax", "torch", "numpy")
        True
    """
    import keras

    gpus = accelerators()
    return {
        "backend": keras.backend.backend(),
        "device": ", ".join(map(str, gpus)) if gpus else "cpu",
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in (
            "finetune-advisor", "keras", "tensorflow", "tensorflow-cpu", "jax", "torch",
            "scikit-learn", "numpy", "pillow")},
    }
