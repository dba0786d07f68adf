"""Errors the user sees as one line (the CLI prints them without a traceback)."""

from __future__ import annotations


class AdvisorError(Exception):
    """Base class of every error that the CLI reports as a single line.

    Anything else that escapes is a bug and keeps its traceback.
    """


class DatasetError(AdvisorError):
    """The dataset folder, or a file in it, cannot be used as given."""


class BackboneError(AdvisorError):
    """A backbone cannot be built or its weights cannot be read."""


class CheckpointError(BackboneError):
    """A weights file is corrupt, unexpected, or tries to run code when read."""


class PlanError(AdvisorError):
    """A plan or a report file is malformed or asks for something unknown."""
