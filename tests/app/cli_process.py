"""``advise ARGS...`` in a fresh interpreter, for the tests that need a process of its own.

Issue 18: a bad path or option must fail before Keras (or TensorFlow, JAX,
torch, scikit-learn) is imported, which only a fresh interpreter can show;
issue 20: a second ``advise`` on one ``--out`` is a second process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: The frameworks whose import a failing ``advise`` must not have paid for.
HEAVY_MODULES = ("keras", "tensorflow", "jax", "torch", "sklearn")

#: Runs ``advise ARGS...``, then prints its exit code and which of `HEAVY_MODULES` were imported by then.
_DRIVER = f"""
import json, sys
from advisor.app.cli import main
sys.argv = ["advise", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def advise_in_subprocess(*args, timeout: float = 120) -> tuple[dict, list[str]]:
    """Run ``advise ARGS...`` in a child interpreter (wide ``COLUMNS``, so errors stay one line).

    Args:
        *args: The command line after ``advise`` (paths are turned into strings).
        timeout: Seconds before the child is killed. Defaults to `120`.

    Returns:
        ``({"code": exit code, "heavy": [imported HEAVY_MODULES]}, stderr lines)``.
    """
    done = subprocess.run([sys.executable, "-c", _DRIVER, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, check=False, env=os.environ | {"COLUMNS": "300"})
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr.strip().splitlines()
