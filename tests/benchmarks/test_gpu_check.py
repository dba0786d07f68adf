"""``benchmarks.gpu_check`` (issue 20): the one-command GPU check runs end to end on CPU.

``--tiny`` is the GPU run's code on a small CNN at 16 px under JAX; it claims
nothing about speed. The bootstrap that installs the carried wheels on the
GPU machine is checked with its pip call and re-exec recorded, not run.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_check_prints_one_table_with_every_row():
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--tiny"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False,
                          env=os.environ | {"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("images/s"))
    assert "backend=jax" in lines[header - 1]
    rows = {line[:len(max(gpu_check.ROWS, key=len))].strip(): line for line in lines[header + 1:]}
    assert list(rows) == list(gpu_check.ROWS)
    for line in rows.values():
        product, bare = re.findall(r"\s(\d[\d,]*)\s", line)[:2]  # images/s of both Keras columns
        assert int(product.replace(",", "")) > 0 and int(bare.replace(",", "")) > 0, line
        if importlib.util.find_spec("torch") is None:
            assert line.count("n/a (torch not installed)") == 2, line


def test_peer_lines_fill_the_torch_columns():
    out = ("RESULT torch-compile mobilenetv2 embed float32 batch=256 22062 img/s\n"
           "RESULT torch-compile mobilenetv2 train-full bfloat16 batch=256 6484 img/s")
    cells = gpu_check.peer_cells(out, "torch.compile")
    assert cells[("embed float32", "torch.compile")] == 22062.0
    assert cells[("train full mixed_bfloat16", "torch.compile")] == 6484.0
    assert cells[("embed mixed_bfloat16", "torch.compile")] == "n/a"
    assert gpu_check.peer_cells("", "torch eager", failed=True)[
        ("embed float32", "torch eager")] == "n/a (peer failed)"
    table = gpu_check.table({**cells, ("train full mixed_bfloat16", "product"): 5835.0})
    assert table.splitlines()[-1].split()[-2:] == ["-", "0.90"]  # 5,835 / 6,484


def test_bootstrap_installs_the_carried_wheels_then_runs_again(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(gpu_check, "KIT", tmp_path)
    monkeypatch.setattr(gpu_check, "_missing_modules", lambda: ["keras"])
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda command, **kw: calls.append(command))
    monkeypatch.setattr(gpu_check.os, "execve", lambda path, argv, env: calls.append((argv, env)))
    monkeypatch.delenv(gpu_check.BOOTSTRAPPED, raising=False)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    with pytest.raises(SystemExit, match="holds no wheels. Run `make gpu-check`"):
        gpu_check.bootstrap([])
    (tmp_path / "keras-3.15.1-py3-none-any.whl").touch()
    gpu_check.bootstrap(["--no-peer"])
    pip, (argv, env) = calls
    assert pip[-3:] == ["--target", str(gpu_check.SITE), str(tmp_path / "keras-3.15.1-py3-none-any.whl")]
    assert argv[-2:] == ["benchmarks.gpu_check", "--no-peer"]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(gpu_check.SITE)
    assert env["KERAS_BACKEND"] == "jax" and env[gpu_check.BOOTSTRAPPED] == "1"
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    with pytest.raises(SystemExit, match="runs on the JAX backend"):
        gpu_check.bootstrap([])
