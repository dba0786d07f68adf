"""What a run runs on: backend, devices, processes, cores, versions. Reported, never decided on
here (worker pools size themselves with :func:`usable_cores`; :func:`initialize_processes`
joins a multi-host run when its launch says so)."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from advisor.errors import AdvisorError


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


def visible_devices() -> list[str]:
    """Return every device Keras' backend can compute on (its accelerators, else its CPUs).

    Names as ``keras.distribution.list_devices`` gives them (``"gpu:0"``,
    ``"cpu:0"``); on the JAX backend the devices of every process of a
    multi-process run (``keras.distribution.initialize``). Empty when the
    backend cannot list them.

    Example:
        >>> isinstance(visible_devices(), list)
        True
    """
    import keras

    try:
        return [str(d) for d in keras.distribution.list_devices()]
    except (RuntimeError, ValueError, NotImplementedError):
        return []


def accelerators() -> list[str]:
    """Return the accelerator devices Keras' backend can see (empty on CPU-only machines).

    Example:
        >>> isinstance(accelerators(), list)
        True
    """
    return [d for d in visible_devices() if not d.lower().startswith("cpu")]


#: The environment variables ``keras.distribution.initialize()`` reads: the
#: coordinator's ``host:port``, the number of processes and this one's index.
PROCESS_ENV_VARS = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                    "KERAS_DISTRIBUTION_PROCESS_ID")


def process_layout() -> tuple[int, int]:
    """Return ``(processes, this process's index)`` of a multi-process run, ``(1, 0)`` otherwise.

    Read from ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
    ``KERAS_DISTRIBUTION_PROCESS_ID``, the variables
    :func:`initialize_processes` hands to ``keras.distribution.initialize()``.

    Raises:
        AdvisorError: They are not a count and an index below it.

    Example:
        >>> processes, index = process_layout()
        >>> 0 <= index < processes
        True
    """
    _, count_var, index_var = PROCESS_ENV_VARS
    count, index = os.environ.get(count_var) or "1", os.environ.get(index_var) or "0"
    if not (count.isdigit() and index.isdigit() and int(index) < max(1, int(count))):
        raise AdvisorError(f"Expected {count_var} >= 1 and 0 <= {index_var} < it. "
                           f"Received: {count_var}={count!r}, {index_var}={index!r}.")
    return (int(count), int(index)) if int(count) > 1 else (1, 0)


def initialize_processes() -> tuple[int, int]:
    """Join a multi-process (multi-host) run when the launch asks for one; return :func:`process_layout`.

    When ``KERAS_DISTRIBUTION_NUM_PROCESSES`` is above 1 this calls
    ``keras.distribution.initialize()``, which reads the three
    ``PROCESS_ENV_VARS`` and connects to the coordinator (process 0); then
    ``keras.distribution.list_devices()`` lists every process's devices and a
    plan with ``devices="all"`` trains data-parallel over all of them. Call it
    before the backend computes anything (JAX refuses later). A no-op
    otherwise, and on backends other than JAX.

    Example:
        >>> initialize_processes()  # one process (no KERAS_DISTRIBUTION_NUM_PROCESSES): nothing to join
        (1, 0)
    """
    processes, index = process_layout()
    if processes > 1:
        import keras

        if keras.config.backend() == "jax":
            keras.distribution.initialize()
    return processes, index


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
