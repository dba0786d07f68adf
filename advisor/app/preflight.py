"""Check a command's paths before anything heavy is imported or measured.

The CLI calls :func:`check_run_paths` first, so a mistyped DATA_DIR, a missing
``--targets`` or ``--base`` file, a finished output folder, or one that another
run is writing now is reported in
well under a second, with the one-line error the run itself would give later,
instead of after TensorFlow has loaded (seconds) or the folder has been
measured (minutes). Only the standard library, :mod:`advisor.data`'s path
checks and :mod:`advisor.app.run_folder` are imported; no Keras, no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

from advisor import config  # noqa: F401 (the doctests' config.HEADS)
from advisor.app.run_folder import check_out_dir
from advisor.data.scan import check_data_dir
from advisor.data.targets import check_targets_paths
from advisor.data.images import find_image_files
from advisor.errors import AdvisorError, BackboneError, PlanError, missing_model_message


def check_base_file(base: Path) -> Path:
    """Refuse a ``--base`` model path that is missing or not a file, reading nothing.

    The file's suffix and contents are checked when the model is loaded
    (:mod:`advisor.backbones.user_model`, which says the same for a missing file).

    Args:
        base: The ``--base`` model file.

    Returns:
        Its absolute path.

    Raises:
        BackboneError: `base` does not exist or is a folder.

    Example:
        >>> check_base_file(Path("/no/such/model.keras"))
        Traceback (most recent call last):
        ...
        advisor.errors.BackboneError: --base /no/such/model.keras does not exist or is not a file; pass a .keras or .h5 model file
    """
    path = Path(base).expanduser().resolve()
    if not path.is_file():
        raise BackboneError(
            f"--base {path} does not exist or is not a file; pass a .keras or .h5 model file")
    return path


def check_run_paths(
    data_dir: Path,
    *,
    out: Path,
    targets: Path | None = None,
    base: Path | None = None,
    overwrite: bool = False,
) -> None:
    """Refuse, at once, the paths of a run that would fail later.

    Checks that `data_dir` is a readable folder, that `targets` and `base`
    (when given) are files, that no other run is writing `out` now (its lock,
    :func:`~advisor.app.run_folder.open_run_folder`), and that `out` does not
    hold a finished run unless `overwrite` (an interrupted ``<out>.partial`` is
    fine: it is resumed).

    Args:
        data_dir: DATA_DIR.
        out: The run's output folder (``--out`` or its default).
        targets: The ``--targets`` CSV. Defaults to `None`.
        base: The ``--base`` model file. Defaults to `None`.
        overwrite: ``--overwrite`` was given. Defaults to `False`.

    Raises:
        DatasetError: `data_dir` or `targets` cannot be used.
        BackboneError: `base` is missing or not a file.
        RunLockedError: Another run is writing `out` now.
        OutputExistsError: `out` holds a finished run and `overwrite` is false.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "digits"
        >>> check_run_paths(digits_dir, out=out)  # nothing to refuse
        >>> out.mkdir()
        >>> check_run_paths(digits_dir, out=out)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        advisor.app.run_folder.OutputExistsError: ... already holds a finished run; ...
    """
    if targets is not None:
        check_targets_paths(data_dir, targets)
    else:
        check_data_dir(data_dir)
    if base is not None:
        check_base_file(base)
    check_out_dir(out, overwrite=overwrite)


def check_choice(option: str, value: str | None, known: tuple[str, ...]) -> None:
    """Refuse an option value that is not one of `known` (``None``: not given).

    Example:
        >>> check_choice("--head", "mlp", config.HEADS)
        >>> check_choice("--head", "banana", config.HEADS)
        Traceback (most recent call last):
        ...
        advisor.errors.PlanError: Unknown head 'banana'. Known: linear, mlp.
    """
    if value is not None and value not in known:
        raise PlanError(f"Unknown {option.lstrip('-')} {value!r}. Known: {', '.join(known)}.")


def check_predict_paths(model: Path, images: list[Path]) -> list[Path]:
    """Refuse, before Keras loads, a missing model and image paths none of which exist.

    The walk of `images` is the one prediction reads: its files go on to
    :func:`advisor.app.predict.predict_image_files`, so no folder is searched twice.

    Args:
        model: The model file or SavedModel folder.
        images: Image files or folders.

    Returns:
        The image files (:func:`~advisor.data.images.find_image_files`).

    Raises:
        AdvisorError: `model` does not exist.
        DatasetError: An image path does not exist, or none holds an image.

    Example:
        >>> check_predict_paths(Path("/no/model.keras"), [Path("x.png")])
        Traceback (most recent call last):
        ...
        advisor.errors.AdvisorError: /no/model.keras does not exist; pass the model.keras of a finished run
        >>> model = digits_dir  # any path that exists passes the model check
        >>> len(check_predict_paths(model, [digits_dir / "3", digits_dir / "7"]))
        20
    """
    if not Path(model).exists():
        raise AdvisorError(missing_model_message(model))
    return find_image_files(images)  # what predict reads: a missing path or no image is one line
