"""Where the advisor keeps what it computes once (weights, decoded images, embeddings).

The cache lives in ``$FINETUNE_ADVISOR_CACHE`` when set, else in the platform's
user cache folder. Every file in it is written atomically (a temporary file in the
same folder, then ``os.replace``), so concurrent first uses never see half a file,
and a write that fails (a full disk, an unwritable folder) leaves no entry behind:
:func:`cache_entry` then raises a one-line :class:`~advisor.errors.StorageError`
that names the folder and what to do. A process killed mid-write leaves only a
hidden temporary file, which :func:`remove_stale_temporaries` deletes later.

:class:`FileLock` is an advisory lock (``flock``) that the kernel releases when
its process dies: one builder per cache entry, one run per output folder.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from advisor.errors import StorageError

try:  # POSIX; on Windows a FileLock always succeeds (no concurrent-run protection)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "FINETUNE_ADVISOR_CACHE"
APP_NAME = "finetune-advisor"
#: A temporary file of an atomic write untouched for this long belongs to a
#: writer that died (kill -9, power loss) and is deleted by the next writer.
STALE_TEMPORARY_S = 6 * 3600.0


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder inside the user cache.

    Args:
        *parts: Sub-folder names below the cache root. Defaults to none (the root).

    Returns:
        The folder's path; it exists on return.

    Raises:
        StorageError: The folder cannot be created (read-only or full disk, no permission).

    Example:
        >>> folder = cache_dir("weights")
        >>> folder.is_dir()
        True
    """
    root = os.environ.get(CACHE_ENV_VAR)
    if root:
        base = Path(root).expanduser()
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / APP_NAME
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / APP_NAME
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / APP_NAME
    folder = base.joinpath(*parts)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"Cannot create the cache folder {folder} ({_reason(exc)}); set {CACHE_ENV_VAR} "
            "to a writable folder with free space") from None
    return folder


@contextlib.contextmanager
def atomic_path(path: Path | str, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    On an exception the temporary file is removed and `path` is left as it was.

    Args:
        path: The final destination.
        suffix: Suffix of the temporary name, for writers that insist on one
            (Keras wants ``.weights.h5``). Defaults to `""`.

    Example:
        >>> with atomic_path(cache_dir() / "note.txt") as tmp:
        ...     _ = tmp.write_text("done")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def cache_entry(path: Path | str, *, what: str, suffix: str = "") -> Iterator[Path]:
    """Write a cache entry atomically: :func:`atomic_path`, with a one-line error on failure.

    An ``OSError`` while the entry is written (a full disk, an unwritable or
    vanished folder) removes the temporary file, so no half-written entry is
    ever read later, and becomes a :class:`~advisor.errors.StorageError`
    naming the cache folder and what to do.

    Args:
        path: The entry's final file.
        what: What the entry is, for the message (``"decoded images"``).
        suffix: Suffix of the temporary name. Defaults to `""`.

    Raises:
        StorageError: The entry could not be written; `path` is unchanged.

    Example:
        >>> with cache_entry(cache_dir() / "answer.txt", what="a note") as tmp:
        ...     _ = tmp.write_text("42")
        >>> with cache_entry(cache_dir() / "full.txt", what="a note") as tmp:
        ...     raise OSError(errno.ENOSPC, "No space left on device")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.errors.StorageError: Could not write a note to the cache folder ... (No space left on device); free space there or set FINETUNE_ADVISOR_CACHE to a writable folder with room
        >>> (cache_dir() / "full.txt").exists()
        False
    """
    path = Path(path)
    try:
        with atomic_path(path, suffix=suffix) as tmp:
            yield tmp
    except OSError as exc:
        raise StorageError(
            f"Could not write {what} to the cache folder {path.parent} ({_reason(exc)}); free "
            f"space there or set {CACHE_ENV_VAR} to a writable folder with room") from None


def reserve_space(path: Path | str, nbytes: int) -> None:
    """Allocate `nbytes` of disk for the file at `path` now, so a full disk fails here.

    A file written in rows (or through a memory map) would otherwise fail
    after minutes of work, or, through a memory map, kill the process with
    ``SIGBUS``. Uses ``posix_fallocate`` where the platform has it; elsewhere
    it does nothing.

    Args:
        path: An existing file.
        nbytes: Its final size.

    Raises:
        OSError: ``ENOSPC`` when the space is not there.

    Example:
        >>> with atomic_path(cache_dir() / "sized.bin") as tmp:
        ...     reserve_space(tmp, 4096)
        >>> (cache_dir() / "sized.bin").stat().st_size
        4096
    """
    if nbytes <= 0 or not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path | str, *, older_than_s: float = STALE_TEMPORARY_S) -> int:
    """Delete the temporary files of atomic writes whose writer died, in `folder`.

    A write in progress keeps its temporary file's modification time fresh;
    one untouched for `older_than_s` was left by a killed process.

    Args:
        folder: A cache folder.
        older_than_s: Age in seconds. Defaults to `STALE_TEMPORARY_S`.

    Returns:
        How many files were deleted.

    Example:
        >>> folder = cache_dir("scratch")
        >>> with atomic_path(folder / "kept.txt") as tmp:
        ...     _ = tmp.write_text("x")
        ...     remove_stale_temporaries(folder, older_than_s=3600)  # a live write is kept
        0
    """
    now = time.time()
    removed = 0
    for tmp in Path(folder).glob(".*.tmp*"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed += 1
        except OSError:
            continue
    if removed:
        logger.info("Removed %d temporary file(s) of interrupted writes in %s.", removed, folder)
    return removed


class FileLock:
    """An exclusive advisory lock on `path` (``flock``), gone when its process dies.

    The lock file is created on :meth:`acquire` (holding the owner's process
    id, for messages) and deleted on :meth:`release`. Because the kernel drops
    an ``flock`` with its process, a run killed with ``kill -9`` never blocks
    the next one; only the empty-looking file stays until then.

    Args:
        path: The lock file.

    Example:
        >>> lock = FileLock(cache_dir() / ".example.lock")
        >>> lock.acquire(blocking=False), FileLock(lock.path).acquire(blocking=False)
        (True, False)
        >>> lock.holder() == str(os.getpid())
        True
        >>> lock.release()
        >>> lock.path.exists(), FileLock(lock.path).is_held()
        (False, False)
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file = None

    @property
    def locked(self) -> bool:
        """Whether this object holds the lock."""
        return self._file is not None

    def acquire(self, *, blocking: bool = True) -> bool:
        """Take the lock; return whether it was taken (always, when `blocking`).

        Args:
            blocking: Wait for the holder to release it. Defaults to `True`
                (`False`: return `False` at once while another holds it).

        Raises:
            OSError: The lock file cannot be created.
        """
        if self._file is not None:
            return True
        if fcntl is None:  # pragma: no cover - Windows
            return True
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        while True:
            handle = open(self.path, "a+b")  # noqa: SIM115 - held open while locked
            try:
                fcntl.flock(handle.fileno(), flags)
            except BlockingIOError:
                handle.close()
                return False
            except BaseException:
                handle.close()
                raise
            # The previous holder deletes the file before unlocking: lock the one there now.
            try:
                mine, there = os.fstat(handle.fileno()), os.stat(self.path)
                current = (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)
            except FileNotFoundError:
                current = False
            if current:
                break
            handle.close()
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        """Delete the lock file and drop the lock (nothing when not held)."""
        if self._file is None:
            return
        self.path.unlink(missing_ok=True)  # still locked: a waiter retries on the new file
        self._file.close()
        self._file = None

    def is_held(self) -> bool:
        """Whether the lock is held now, by this object or another (creates nothing)."""
        if self._file is not None or fcntl is None:
            return self._file is not None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's shared lock
        return False

    def holder(self) -> str | None:
        """The process id written by the holder, or `None` when unknown."""
        try:
            text = self.path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return None
        return text or None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


@contextlib.contextmanager
def entry_lock(path: Path | str) -> Iterator[None]:
    """Hold the build lock of one cache entry: concurrent builders of it take turns.

    A second process that wants the same entry waits here, then finds the
    entry built (its caller checks again) instead of computing it twice.

    Args:
        path: The entry's final file; the lock is ``.<name>.lock`` beside it.

    Raises:
        StorageError: The lock file cannot be created in the cache folder.

    Example:
        >>> with entry_lock(cache_dir() / "entry.npy"):
        ...     (cache_dir() / ".entry.npy.lock").exists()
        True
    """
    path = Path(path)
    lock = FileLock(path.with_name(f".{path.name}.lock"))
    try:
        if not lock.acquire(blocking=False):
            logger.info("Waiting for another process to finish the cache entry %s.", path)
            lock.acquire()
    except OSError as exc:
        raise StorageError(
            f"Could not create a lock file in the cache folder {path.parent} ({_reason(exc)}); "
            f"set {CACHE_ENV_VAR} to a writable folder with room") from None
    try:
        yield
    finally:
        lock.release()


def _reason(exc: OSError) -> str:
    """The human part of an OSError (``"No space left on device"``)."""
    return exc.strerror or str(exc) or type(exc).__name__


@functools.cache
def _umask() -> int:
    # os.umask can only be read by setting it; do that once, not per write.
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically.

    Args:
        path: The destination file.
        data: The bytes to write.

    Example:
        >>> atomic_write_bytes(cache_dir() / "x.bin", b"\\x00")
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically.

    Args:
        path: The destination file.
        text: The text to write.

    Example:
        >>> atomic_write_text(cache_dir() / "x.txt", "hello")
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def read_cached_array(target: Path, shape: tuple[int, ...], dtype, *, what: str,
                      mmap: bool = False):
    """Return the ``.npy`` entry at `target` when it is complete and fits, else `None`.

    An entry that is missing, unreadable (logged) or of another shape or dtype
    is treated as absent, so the caller rebuilds it.

    Args:
        target: The entry's ``.npy`` file.
        shape: The shape it must have.
        dtype: The dtype it must have.
        what: The cache's name in the warning (``"embedding"``, ``"prefix"``).
        mmap: Open it as a read-only memory map. Defaults to `False`.

    Example:
        >>> import numpy as np
        >>> path = cache_dir("doc") / "entry.npy"
        >>> np.save(path, np.zeros((2, 3), np.float32))
        >>> read_cached_array(path, (2, 3), np.float32, what="doc").shape
        (2, 3)
        >>> read_cached_array(path, (4, 3), np.float32, what="doc") is None
        True
    """
    import numpy as np

    if not Path(target).is_file():
        return None
    try:
        cached = np.load(target, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as exc:
        logger.warning("Ignoring an unreadable %s cache entry %s (%s).", what, target, exc)
        return None
    if cached.shape != tuple(shape) or cached.dtype != np.dtype(dtype):
        return None
    logger.debug("%s cache hit: %s", what.capitalize(), target)
    return cached
