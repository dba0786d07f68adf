"""An optional, delayed Rich progress bar for long loops in library code.

Library functions take ``progress: bool`` (default off, so tests and ``--json``
output stay quiet) and wrap their loop in :func:`progress_bar`. The bar is drawn
on stderr, and only once the work has run longer than
``config.PROGRESS_DELAY_S``: short jobs print nothing at all.

API:
    progress_bar(total, description, *, enabled=False) -> ProgressBar
    ProgressBar.advance(n=1)
"""

from __future__ import annotations

import time
from types import TracebackType

from advisor import config


class ProgressBar:
    """Count finished items; draw a transient Rich bar once the job is slow.

    Use through :func:`progress_bar`. When disabled every call is a no-op.

    Args:
        total: Number of items the job will process.
        description: Short label shown left of the bar.
        enabled: Draw anything at all. Defaults to `False`.
        delay: Seconds to wait before drawing. Defaults to
            `config.PROGRESS_DELAY_S`.
    """

    def __init__(
        self,
        total: int,
        description: str,
        *,
        enabled: bool = False,
        delay: float = config.PROGRESS_DELAY_S,
    ) -> None:
        self.total = total
        self.description = description
        self.enabled = enabled
        self.delay = delay
        self.completed = 0
        self._start = time.monotonic()
        self._progress = None
        self._task = None

    def __enter__(self) -> ProgressBar:
        self._start = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def advance(self, n: int = 1) -> None:
        """Record `n` more finished items (and redraw if the bar is shown).

        Args:
            n: Items finished since the last call. Defaults to `1`.
        """
        self.completed += n
        if not self.enabled:
            return
        if self._progress is None:
            if time.monotonic() - self._start < self.delay:
                return
            self._start_bar()
        self._progress.update(self._task, completed=self.completed)

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task(self.description, total=self.total)
        self._progress.start()


def progress_bar(total: int, description: str, *, enabled: bool = False) -> ProgressBar:
    """Return a context manager that counts items and maybe draws a bar.

    Nothing is drawn unless `enabled` is true and the job has run longer than
    ``config.PROGRESS_DELAY_S`` seconds; the bar disappears when the job ends.

    Args:
        total: Number of items the job will process.
        description: Short label shown left of the bar.
        enabled: Draw anything at all. Defaults to `False`.

    Returns:
        A :class:`ProgressBar`; call ``advance(n)`` as items finish.

    Example:
        >>> with progress_bar(3, "Decoding", enabled=False) as bar:
        ...     for _ in range(3):
        ...         bar.advance()
        >>> bar.completed
        3
    """
    return ProgressBar(total, description, enabled=enabled)
