"""The output folder of a run, written atomically and resumable.

Everything is written into ``<out>.partial/``; when the run finishes, that
folder is renamed to ``<out>`` in one step, so ``<out>`` only ever exists
complete. An interrupted run leaves ``<out>.partial/`` behind (with Keras'
``BackupAndRestore`` state under ``work/``), and running the same command again
resumes from it. A finished ``<out>`` is never replaced without ``overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.cache import atomic_write_text
from advisor.errors import AdvisorError

PARTIAL_SUFFIX = ".partial"
RUNS_ROOT = Path("advise-runs")


class OutputExistsError(AdvisorError):
    """The output folder holds a finished run and ``--overwrite`` was not given."""


def default_out_dir(data_dir: Path, *, dry_run: bool) -> Path:
    """Return ``./advise-runs/<dataset folder name>[-advice]``: the same for the same command.

    Being deterministic is what lets an interrupted run resume by re-running it.

    Example:
        >>> default_out_dir(Path("/data/flowers"), dry_run=True)
        PosixPath('advise-runs/flowers-advice')
    """
    name = Path(data_dir).resolve().name or "dataset"
    return RUNS_ROOT / (f"{name}-advice" if dry_run else name)


@dataclass(frozen=True, slots=True)
class RunFolder:
    """Paths of one run's output and its in-progress twin.

    Attributes:
        out: Final folder (exists only once the run finished).
        partial: Where the run writes until it finishes.
        resumed: Whether `partial` already existed (an interrupted run).
    """

    out: Path
    partial: Path
    resumed: bool

    @property
    def work(self) -> Path:
        """Folder for training state (backups, logs) inside the partial folder."""
        return self.partial / "work"

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        """Write `data` as sorted-key JSON into the partial folder, atomically."""
        path = self.partial / name
        atomic_write_text(path, json.dumps(data, sort_keys=True, indent=2, default=str))
        return path

    def write_text(self, name: str, text: str) -> Path:
        """Write text into the partial folder, atomically."""
        path = self.partial / name
        atomic_write_text(path, text)
        return path

    def commit(self, *, keep_work: bool = False) -> Path:
        """Move the finished partial folder onto `out` in one rename.

        The training state under ``work/`` is removed, except TensorBoard logs,
        which move to ``logs/``.

        Args:
            keep_work: Keep the ``work/`` training state. Defaults to `False`.

        Returns:
            The final folder.
        """
        if not keep_work:
            logs = self.work / "logs"
            if logs.is_dir():  # TensorBoard logs are part of the result
                os.replace(logs, self.partial / "logs")
            shutil.rmtree(self.work, ignore_errors=True)
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.replace(self.out, old)
        os.replace(self.partial, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out


def check_out_dir(out: Path, *, overwrite: bool = False) -> Path:
    """Refuse an output folder that :func:`open_run_folder` would refuse, touching nothing.

    The CLI calls it before importing Keras or measuring, so a second
    ``advise DIR`` on a finished run fails at once with the error the run
    would give at its end. An interrupted ``<out>.partial`` is no obstacle (it
    is resumed).

    Args:
        out: The final output folder.
        overwrite: A finished run in `out` will be replaced. Defaults to `False`.

    Returns:
        `out`, as a `Path`.

    Raises:
        OutputExistsError: `out` holds a finished run and `overwrite` is false,
            or `out` is a file.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "flowers"
        >>> check_out_dir(out) == out
        True
        >>> out.mkdir()
        >>> check_out_dir(out)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.app.run_folder.OutputExistsError: ... already holds a finished run; ...
        >>> check_out_dir(out, overwrite=True) == out
        True
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(
            f"{out} already holds a finished run; pass --overwrite to replace it or "
            "--out to write elsewhere"
        )
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} exists and is not a folder; choose another --out")
    return out


def open_run_folder(out: Path, *, overwrite: bool = False) -> RunFolder:
    """Prepare the output folder of a run: refuse, resume or start.

    Args:
        out: The final output folder.
        overwrite: Start afresh: replace a finished run in `out` when this run
            finishes, and discard an interrupted one. Defaults to `False`.

    Returns:
        The :class:`RunFolder`; its partial folder exists on return.

    Raises:
        OutputExistsError: `out` holds a finished run and `overwrite` is false.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "flowers"
        >>> folder = open_run_folder(out)
        >>> folder.partial.name, folder.resumed
        ('flowers.partial', False)
        >>> open_run_folder(out).resumed  # an interrupted run is resumed
        True
        >>> folder.commit() == out
        True
        >>> open_run_folder(out)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.app.run_folder.OutputExistsError: ... already holds a finished run; ...
    """
    out = check_out_dir(out, overwrite=overwrite)
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    if overwrite and partial.is_dir():  # a fresh start discards an interrupted run too
        shutil.rmtree(partial)
    resumed = partial.is_dir()
    partial.mkdir(parents=True, exist_ok=True)
    return RunFolder(out=out, partial=partial, resumed=resumed)
