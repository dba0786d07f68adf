"""Issue 20 (part 4): one run per output folder (a lock), and a full disk is one line.

A second ``advise`` on the same ``--out`` stops at once, before Keras loads,
and touches nothing of the first; a run killed with ``kill -9`` leaves a lock
file that does not block the rerun (the kernel dropped the ``flock``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.app import run_folder
from advisor.app.preflight import check_run_paths
from advisor.app.run_folder import RunLockedError, lock_path, open_run_folder
from advisor.errors import StorageError
from tests.app.cli_process import advise_in_subprocess


def fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file()
            else "dir" for p in sorted(root.rglob("*"))}


def started_run(out: Path):
    """A run in progress: its partial folder with a plan and a training state."""
    folder = open_run_folder(out)
    folder.write_json("advice.json", {"plan": "the first run's"})
    (folder.work / "backup" / "fine-tune").mkdir(parents=True)
    (folder.work / "backup" / "fine-tune" / "state.json").write_text('{"epoch": 2}')
    return folder


def test_a_second_run_on_the_same_out_stops_at_once_and_touches_nothing(tmp_path):
    out = tmp_path / "runs" / "flowers"
    first = started_run(out)
    before = fingerprint(tmp_path / "runs")
    for overwrite in (False, True):  # --overwrite must not discard the running one either
        with pytest.raises(RunLockedError) as raised:
            open_run_folder(out, overwrite=overwrite)
        message = str(raised.value)
        assert "\n" not in message and str(out) in message and f"process {os.getpid()}" in message
        assert "--out to write elsewhere" in message
        with pytest.raises(RunLockedError):  # the CLI's check before Keras loads
            check_run_paths(tmp_path, out=out, overwrite=overwrite)
    assert fingerprint(tmp_path / "runs") == before
    assert first.commit() == out and not lock_path(out).exists()
    assert json.loads((out / "advice.json").read_text()) == {"plan": "the first run's"}


#: Holds ``--out`` like a running ``advise`` until stdin closes; "kill" dies with SIGKILL instead.
_HOLDER = """
import os, signal, sys
from pathlib import Path
from advisor.app.run_folder import open_run_folder
folder = open_run_folder(Path(sys.argv[1]))
folder.write_text("plan.txt", "first")
print("holding", flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()
folder.commit()
"""

def test_two_advise_processes_on_one_out_the_second_fails_in_one_line(tmp_path):
    out = tmp_path / "flowers"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out), "hold"], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "holding"
        outcome, stderr = advise_in_subprocess("run", tmp_path, "--out", out)
        assert outcome == {"code": 2, "heavy": []}, stderr
        assert stderr == [(
            f"error: {out} is being written by another advise run (process {holder.pid}); wait "
            "for it to finish, or pass --out to write elsewhere")]
    finally:
        holder.communicate("", timeout=60)  # the first run goes on and finishes
    assert holder.returncode == 0 and (out / "plan.txt").read_text() == "first"


def test_a_killed_runs_lock_does_not_block_the_rerun(tmp_path):
    out = tmp_path / "flowers"
    killed = subprocess.run([sys.executable, "-c", _HOLDER, str(out), "kill"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert lock_path(out).is_file(), "kill -9 leaves the lock file; only the flock is gone"
    check_run_paths(tmp_path, out=out)  # no refusal
    folder = open_run_folder(out)
    assert folder.resumed and (folder.partial / "plan.txt").read_text() == "first"
    folder.commit()
    assert not lock_path(out).exists()


def test_a_full_disk_writing_the_run_is_one_line_and_keeps_the_run(tmp_path, monkeypatch):
    out = tmp_path / "flowers"
    with open_run_folder(out) as folder:
        folder.write_json("advice.json", {"a": 1})

        def full(path, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(run_folder, "atomic_write_text", full)
        with pytest.raises(StorageError) as raised:
            folder.write_json("report.json", {"b": 2})
    message = str(raised.value)
    assert message == (f"Could not write {folder.partial / 'report.json'} (No space left on device); "
                       f"free space in {tmp_path} or pass --out to write elsewhere, then run the "
                       "same command again to resume")
    assert sorted(p.name for p in folder.partial.iterdir()) == ["advice.json"]
    assert not lock_path(out).exists(), "a failed run lets the rerun in"
