"""Read PyTorch ``.pth`` state dicts into NumPy arrays, without torch and without trust.

A ``.pth`` file is a pickle, and unpickling runs whatever the file names. The
readers here admit only the handful of globals a plain state dict needs
(``collections.OrderedDict``, torch's tensor-rebuild helpers and the typed
storage classes, all mapped to NumPy stand-ins) and refuse everything else
with :class:`CheckpointError` before it can run.

Both layouts are supported: the legacy one (torch < 1.6: consecutive pickles,
then raw storages) and the zip one (``archive/data.pkl`` + ``archive/data/<key>``).
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from advisor.errors import CheckpointError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

#: torch storage class name -> NumPy dtype of its elements.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stand-in for a torch ``*Storage`` class: only its element dtype matters."""

    dtype: np.dtype


@dataclass(slots=True)
class _StorageRef:
    """A storage named by the pickle, filled with bytes once they are read."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class _LazyTensor:
    """A tensor whose storage bytes come later in the file."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise CheckpointError(f"storage {self.storage.key!r} was never read from the file")
        if not self.shape:
            return data[self.offset].copy()
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride)) + 1
        if any(n == 0 for n in self.shape):
            return np.zeros(self.shape, dtype=data.dtype)
        if needed > data.size:
            raise CheckpointError(
                f"tensor of shape {self.shape} overruns storage {self.storage.key!r} "
                f"({data.size} elements)"
            )
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.shape,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> _LazyTensor:
    if not isinstance(storage, _StorageRef):
        raise CheckpointError("tensor rebuilt from something that is not a storage")
    return _LazyTensor(storage, int(storage_offset), tuple(int(n) for n in size),
                       tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_ignored):
    return data


#: The only globals a state-dict pickle may name, and what each becomes.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only the globals of a plain torch state dict.

    Any other global (``os.system``, ``builtins.eval``, a model class...) raises
    :class:`CheckpointError` before anything is called.

    Args:
        file: A binary file object positioned at a pickle.
        storages: Dict collecting the storages the pickle refers to, by key.
            Defaults to a new dict.

    Example:
        >>> import io, pickle
        >>> RestrictedUnpickler(io.BytesIO(pickle.dumps({"a": 1}))).load()
        {'a': 1}
    """

    def __init__(self, file: BinaryIO, storages: dict[str, _StorageRef] | None = None):
        super().__init__(file)
        self.storages = {} if storages is None else storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"refusing to load {module}.{name} from a weights file: only plain "
                "state dicts of tensors are accepted"
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id in weights file: {pid!r:.80}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"unexpected storage type in weights file: {storage_type!r:.80}")
        ref = self.storages.get(key)
        if ref is None:
            ref = self.storages[key] = _StorageRef(key, storage_type.dtype, numel)
        return ref


def sha256_of(path: Path | str) -> str:
    """Return the hex SHA-256 of a file, read in chunks.

    Args:
        path: The file.

    Returns:
        The 64-character hex digest.

    Example:
        >>> len(sha256_of(__file__))
        64
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict(path: Path | str, *, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (``.pth``) as NumPy arrays, safely.

    Args:
        path: The checkpoint file, in torch's legacy or zip layout.
        sha256: Expected hex digest of the file; checked before anything is
            unpickled when given. Defaults to `None` (no check).

    Returns:
        An ordered dict mapping parameter names to arrays (shapes as in torch).

    Raises:
        CheckpointError: The digest differs, the file is malformed, or it names
            anything but tensors and ordered dicts.

    Example:
        >>> from advisor.backbones.mobilenet_v2 import SPEC, checkpoint_path
        >>> weights = load_state_dict(checkpoint_path(), sha256=SPEC.sha256)
        >>> weights["features.0.0.weight"].shape
        (32, 3, 3, 3)
    """
    path = Path(path)
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            raise CheckpointError(
                f"{path}: sha256 {actual[:16]}... differs from the expected {sha256[:16]}...; "
                "the file is corrupt or not the expected checkpoint; reinstall it"
            )
    try:
        if zipfile.is_zipfile(path):
            state = _load_zip(path)
        else:
            with open(path, "rb") as handle:
                state = _load_legacy(handle)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, struct.error, KeyError,
            TypeError, IndexError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    arrays = collections.OrderedDict()
    for name, value in state.items():
        if isinstance(value, _LazyTensor):
            arrays[str(name)] = value.materialize()
    return arrays


def _load_legacy(handle: BinaryIO) -> Any:
    def plain() -> Any:
        return RestrictedUnpickler(handle).load()

    if plain() != _LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (bad magic number)")
    if plain() != _LEGACY_PROTOCOL:
        raise CheckpointError("unsupported PyTorch legacy protocol version")
    sys_info = plain()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
        raise CheckpointError("big-endian checkpoints are not supported")
    storages: dict[str, _StorageRef] = {}
    state = RestrictedUnpickler(handle, storages).load()
    keys = plain()
    for key in keys:
        ref = storages[str(key)]
        (numel,) = struct.unpack("<q", handle.read(8))
        raw = handle.read(numel * ref.dtype.itemsize)
        if len(raw) != numel * ref.dtype.itemsize:
            raise CheckpointError(f"storage {key!r} is truncated")
        ref.data = np.frombuffer(raw, dtype=ref.dtype)
    return state


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise CheckpointError("zip checkpoint without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        storages: dict[str, _StorageRef] = {}
        state = RestrictedUnpickler(io.BytesIO(archive.read(pkl)), storages).load()
        for key, ref in storages.items():
            raw = archive.read(f"{prefix}data/{key}")
            ref.data = np.frombuffer(raw, dtype=ref.dtype)[: ref.numel] if ref.numel else \
                np.frombuffer(raw, dtype=ref.dtype)
    return state
