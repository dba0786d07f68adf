"""What a run runs on: backend, devices, cores, versions. Reported, never decided on here
(worker pools size themselves with :func:`usable_cores`)."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def usable_cores() -> int:
    """Return the CPU cores this process may run on (its affinity mask where known).

    Example:
        >>> usable_cores() >= 1
        True
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


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
