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


class StorageError(AdvisorError):
    """A file could not be written: the disk is full, or the folder is not writable.

    The message names the folder and what to do (free space, or point
    ``FINETUNE_ADVISOR_CACHE`` / ``--out`` elsewhere); nothing half-written is
    left where it would be read later.
    """


def missing_model_message(path) -> str:
    """The one line for a model file that does not exist (said before and after Keras loads).

    Example:
        >>> missing_model_message("/no/model.keras")
        '/no/model.keras does not exist; pass the model.keras of a finished run'
    """
    return f"{path} does not exist; pass the model.keras of a finished run"
