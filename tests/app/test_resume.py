"""An interrupted run resumes: ``kill -9`` ``advise`` after its first fine-tuning epoch, run it again.

Issue 20 (part 4): SIGKILL, not only SIGTERM; the rerun restores the finished
head phase and resumes the fine-tuning from its last saved epoch (the exact
equality with an uninterrupted run is tested on a tiny model in
``tests/strategies/test_training_resume.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advisor.examples import write_dataset

#: Written last after each epoch of a fine-tuning attempt (strategies.callbacks.PhaseCheckpoint;
#: "fine-tune", or "fine-tune-retry" when the divergence guard retried; the rate
#: search's later candidates are "fine-tune-x3", ...).
BACKUP_GLOB = "work/backup/fine-tune*/state.json"
START_TIMEOUT_S = 600


def advise_command(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "advisor.app.cli", "run", str(data), "--regime", "partial",
            "--epochs", "3", "--sample-cap", "60", "--out", str(out)]


@pytest.mark.slow
def test_run_killed_after_first_epoch_resumes_and_finishes(session_cache, tmp_path):
    data = write_dataset("digits", n=100, seed=5)
    out = tmp_path / "run"
    partial = out.with_name(out.name + ".partial")
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(advise_command(data, out), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (markers := sorted(partial.glob(BACKUP_GLOB))):
        if process.poll() is not None:
            pytest.fail(f"run ended before its first fine-tuning epoch: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("no fine-tuning epoch within the time limit")
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not out.exists(), "an interrupted run must not leave a finished-looking folder"
    backed_up = markers[0].parent.name
    assert (partial / "advice.json").exists() and (partial / "work" / "backup" / backed_up).is_dir()

    finished = subprocess.run(advise_command(data, out), env=env, capture_output=True, text=True,
                              timeout=START_TIMEOUT_S)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "Resuming" in finished.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["resumed"] is True
    assert report["plan"]["regime"] == "partial"
    assert report["evaluation"]["accuracy"] > 0.5
    attempt = 0 if backed_up == "fine-tune" else 1
    fine_tune = report["history"]["fine_tune"]
    # The plan's own rate runs first in the rate search: it was the one killed.
    first = fine_tune["rate_search"]["candidates"][0]
    assert first["scale"] == 1.0 and first["resumed_from_epoch"] >= 1, "resumed, not from scratch"
    assert any("restored as it finished" in note for note in report["history"]["head"]["notes"])
    if fine_tune["rate_search"]["chosen_scale"] == 1.0:  # its history is the report's
        assert fine_tune["attempts"][attempt]["resumed_from_epoch"] >= 1
        assert [e["epoch"] for e in fine_tune["epochs"] if e["attempt"] == attempt][0] == 1
    assert not partial.exists() and not (out / "work").exists()
