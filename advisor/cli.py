"""The ``advise`` command line: parse, call, render. Nothing here measures or trains.

``advise DATA_DIR`` is the main job; other commands are sub-commands
(``advise imagenet IMAGE...``). Only :class:`AdvisorError` is turned into a
one-line message (exit code 2); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from advisor import config
from advisor.errors import AdvisorError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure a folder of labelled images against ImageNet, plan, and fine-tune.")
out = Console()
err = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)], force=True)


def _fail(exc: AdvisorError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False, markup=True)
    return typer.Exit(code=2)


@app.callback()
def _group() -> None:
    """Measure a folder of labelled images against ImageNet, plan, and fine-tune."""


@app.command("imagenet")
def imagenet_command(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    backbone: Annotated[str, typer.Option(help="Backbone name.")] = config.DEFAULT_BACKBONE,
    top: Annotated[int, typer.Option(min=1, max=20, help="How many classes to show.")] = 5,
    limit: Annotated[int, typer.Option(min=1, help="At most this many images.")] = 8,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Show the backbone's top ImageNet classes for a few images (what the network sees)."""
    _setup_logging(verbose)
    from advisor.inspect_images import imagenet_top_k

    try:
        rows = imagenet_top_k(images, backbone_name=backbone, k=top, limit=limit)
    except AdvisorError as exc:
        raise _fail(exc) from None
    table = Table(title=f"{backbone}: top-{top} ImageNet classes")
    table.add_column("image")
    table.add_column("classes (probability)")
    for path, classes in rows:
        table.add_row(path.name, ", ".join(f"{name} {p:.2f}" for name, p in classes))
    out.print(table)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
