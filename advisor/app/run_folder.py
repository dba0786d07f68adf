"""The output folder of a run, written atomically and resumable.

Everything is written into ``<out>.partial/``; when the run finishes, that
folder is renamed to ``<out>`` in one step, so ``<out>`` only ever exists
complete. An interrupted run (Ctrl-C, ``kill -9``, a full disk) leaves
``<out>.partial/`` behind, with each training phase's last completed epoch under
``work/backup/`` (:class:`strategies.callbacks.PhaseCheckpoint`), and running the
same command again resumes from it. A finished ``<out>`` is never replaced without ``overwrite``.

One run at a time: :func:`open_run_folder` takes an exclusive lock on
``.<out name>.lock`` beside ``<out>`` (an ``flock``, which the kernel drops when
the process dies, so a run killed with ``kill -9`` never blocks the rerun). A
second run on the same ``<out>`` stops at once with :class:`RunLockedError`,
before it touches anything; :func:`check_out_dir` reports it before Keras loads.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.cache import FileLock, atomic_write_text
from advisor.errors import AdvisorError, StorageError

PARTIAL_SUFFIX = ".partial"
RUNS_ROOT = Path("advise-runs")


class OutputExistsError(AdvisorError):
    """The output folder holds a finished run and ``--overwrite`` was not given."""


class RunLockedError(AdvisorError):
    """Another run is writing the same output folder now."""


def lock_path(out: Path) -> Path:
    """Return the lock file of the runs into `out`: ``.<name>.lock`` beside it.

    Example:
        >>> lock_path(Path("advise-runs/flowers"))
        PosixPath('advise-runs/.flowers.lock')
    """
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


def write_error(path: Path, exc: OSError) -> StorageError:
    """Return the one-line error of a file of a run that could not be written.

    Example:
        >>> import errno
        >>> write_error(Path("runs/a.partial/report.json"), OSError(errno.ENOSPC, "No space left on device"))
        StorageError('Could not write runs/a.partial/report.json (No space left on device); free space in runs or pass --out to write elsewhere, then run the same command again to resume')
    """
    return StorageError(
        f"Could not write {path} ({exc.strerror or exc}); free space in {Path(path).parent.parent} "
        "or pass --out to write elsewhere, then run the same command again to resume")


def _locked_error(out: Path, lock: FileLock) -> RunLockedError:
    holder = lock.holder()
    by = f"another advise run (process {holder})" if holder else "another advise run"
    return RunLockedError(
        f"{out} is being written by {by}; wait for it to finish, or pass --out to write elsewhere")


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
        lock: The run's lock on `out`, held until :meth:`commit` or
            :meth:`release`. Defaults to `None` (no lock).
    """

    out: Path
    partial: Path
    resumed: bool
    lock: FileLock | None = field(default=None, compare=False, repr=False)

    def release(self) -> None:
        """Let another run open `out` (:meth:`commit` does it too); keeps every file."""
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    @property
    def work(self) -> Path:
        """Folder for training state (backups, logs) inside the partial folder."""
        return self.partial / "work"

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        """Write `data` as sorted-key JSON into the partial folder, atomically.

        Raises:
            StorageError: The file cannot be written (a full disk); nothing is left half-written.
        """
        return self.write_text(name, json.dumps(data, sort_keys=True, indent=2, default=str))

    def write_text(self, name: str, text: str) -> Path:
        """Write text into the partial folder, atomically.

        Raises:
            StorageError: The file cannot be written (a full disk); nothing is left half-written.
        """
        path = self.partial / name
        try:
            atomic_write_text(path, text)
        except OSError as exc:
            raise write_error(path, exc) from None
        return path

    def commit(self, *, keep_work: bool = False) -> Path:
        """Move the finished partial folder onto `out` in one rename.

        The training state under ``work/`` is removed, except TensorBoard logs,
        which move to ``logs/``.

        Args:
            keep_work: Keep the ``work/`` training state. Defaults to `False`.

        Returns:
            The final folder.

        Raises:
            StorageError: The folder cannot be moved (the disk or folder went read-only).
        """
        try:
            return self._commit(keep_work=keep_work)
        except OSError as exc:
            raise StorageError(
                f"Could not move the finished run {self.partial} onto {self.out} "
                f"({exc.strerror or exc}); the run is kept in {self.partial}") from None
        finally:
            self.release()

    def _commit(self, *, keep_work: bool) -> Path:
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
        RunLockedError: Another run is writing `out` now.
        OutputExistsError: `out` holds a finished run and `overwrite` is false,
            or `out` is a file.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "flowers"
        >>> check_out_dir(out) == out
        True
        >>> with open_run_folder(out):
        ...     check_out_dir(out)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.app.run_folder.RunLockedError: ... is being written by another advise run (process ...); ...
        >>> out.mkdir()
        >>> check_out_dir(out)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.app.run_folder.OutputExistsError: ... already holds a finished run; ...
        >>> check_out_dir(out, overwrite=True) == out
        True
    """
    out = Path(out)
    lock = FileLock(lock_path(out))
    if lock.is_held():
        raise _locked_error(out, lock)
    return _check_finished(out, overwrite=overwrite)


def _check_finished(out: Path, *, overwrite: bool) -> Path:
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

    The run's lock on `out` is taken first, so a second run on the same
    folder stops before it removes, resumes or writes anything. It is held
    until :meth:`RunFolder.commit` (or :meth:`RunFolder.release`, or the
    process's end, however it ends).

    Returns:
        The :class:`RunFolder`; its partial folder exists on return.

    Raises:
        RunLockedError: Another run is writing `out` now.
        OutputExistsError: `out` holds a finished run and `overwrite` is false.
        StorageError: The folders or the lock file cannot be created.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "flowers"
        >>> folder = open_run_folder(out)
        >>> folder.partial.name, folder.resumed
        ('flowers.partial', False)
        >>> open_run_folder(out)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.app.run_folder.RunLockedError: ... is being written by another advise run (process ...); ...
        >>> folder.release()  # as when the first run is killed
        >>> again = open_run_folder(out)
        >>> again.resumed  # an interrupted run is resumed
        True
        >>> again.commit() == out
        True
        >>> open_run_folder(out)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.app.run_folder.OutputExistsError: ... already holds a finished run; ...
    """
    out = Path(out)
    lock = FileLock(lock_path(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        taken = lock.acquire(blocking=False)
    except OSError as exc:
        raise StorageError(
            f"Cannot create the output folder {out.parent} or its lock file ({exc.strerror or exc}); "
            "pass --out to write elsewhere") from None
    if not taken:
        raise _locked_error(out, lock)
    try:
        _check_finished(out, overwrite=overwrite)
        partial = out.with_name(out.name + PARTIAL_SUFFIX)
        if overwrite and partial.is_dir():  # a fresh start discards an interrupted run too
            shutil.rmtree(partial)
        resumed = partial.is_dir()
        partial.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        lock.release()
        raise StorageError(
            f"Cannot prepare the run folder {out.name}{PARTIAL_SUFFIX} in {out.parent} "
            f"({exc.strerror or exc}); free space there or pass --out to write elsewhere") from None
    except BaseException:
        lock.release()
        raise
    return RunFolder(out=out, partial=partial, resumed=resumed, lock=lock)
