"""``python -m advisor.examples NAME ...``: write packaged example datasets and print their folders.

``python -m advisor.examples digits photos --n 300`` writes each named set
(a stratified 300-image subsample here) with
:func:`advisor.examples.writer.write_dataset` and prints one folder per line on
stdout, so a shell can use it (``advise "$(python -m advisor.examples digits)"``);
``--list`` (or no name) lists the sets and whether each is installed. An
unknown set or a missing source prints one ``error:`` line on stderr and exits
with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.examples.sources import ALIASES, DATASETS, install_hint
from advisor.examples.writer import write_dataset


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m advisor.examples",
        description="Write packaged image sets as class folders and print their paths.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"Sets to write: {', '.join(sorted(DATASETS) + sorted(ALIASES))}.")
    parser.add_argument("--n", type=int, default=None, help="Stratified subsample size.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the subsample.")
    parser.add_argument("--root", type=Path, default=None,
                        help="Folder of the sets (default: the user cache's datasets/).")
    parser.add_argument("--list", action="store_true", help="List the sets and exit.")
    return parser.parse_intermixed_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the named sets and print one folder per line; return the exit status.

    With ``--list`` or no name, list every set and whether its source is
    installed (with the command that installs it when not). Errors of the
    advisor (an unknown set, a missing source) print one ``error:`` line on
    stderr; anything else is a bug and keeps its traceback.

    Args:
        argv: The arguments, without the program name. Defaults to `None`
            (``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 2 after an error.

    Example:
        >>> main(["--list"])  # doctest: +ELLIPSIS
        digits               1,797 handwritten digits, 8x8 grayscale, 10 classes (0-9). [installed]
        ...
        0
    """
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.list or not args.names:
        for key, source in DATASETS.items():
            state = "installed" if source.locate() is not None else f"missing: {install_hint(key)}"
            print(f"{key:20} {source.description} [{state}]")
        return 0
    try:
        for name in args.names:
            print(write_dataset(name, args.root, n=args.n, seed=args.seed))
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
