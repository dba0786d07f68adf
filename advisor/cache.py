"""Where the advisor keeps what it computes once (weights, decoded images, embeddings).

The cache lives in ``$FINETUNE_ADVISOR_CACHE`` when set, else in the platform's
user cache folder. Every file in it is written atomically (a temporary file in the
same folder, then ``os.replace``), so concurrent first uses never see half a file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

CACHE_ENV_VAR = "FINETUNE_ADVISOR_CACHE"
APP_NAME = "finetune-advisor"


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder inside the user cache.

    Args:
        *parts: Sub-folder names below the cache root. Defaults to none (the root).

    Returns:
        The folder's path; it exists on return.

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
    folder.mkdir(parents=True, exist_ok=True)
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
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
