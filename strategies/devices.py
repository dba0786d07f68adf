"""Where and in what precision a strategy trains: the dtype policy and the device placement.

The plan's ``precision`` names the dtype policy of fine-tuning (``"auto"``:
``config.ACCELERATOR_POLICY`` when an accelerator is visible, float32 on CPU).
The plan's ``devices`` says where fine-tuning runs (:func:`placement`):
``"auto"`` is data-parallel over the accelerators when there are at least two,
``"all"`` over every device the backend lists (host CPU devices included, e.g.
``XLA_FLAGS=--xla_force_host_platform_device_count=2``), ``"one"`` the
default device only. Data parallelism is ``keras.distribution.DataParallel``
and runs on the JAX backend only: TensorFlow and PyTorch train on one device
(``tf.distribute.MirroredStrategy`` is not used; the product imports Keras only).

Under data parallelism each batch of ``plan.batch_size`` images is split
evenly over the devices; the rows of the last batch that do not split evenly
(fewer than one per device) are left out of that epoch
(:class:`EvenBatches`), and the history's ``devices`` entry says how many.
With several processes (``keras.distribution.initialize()``) each process
feeds its own slice of every batch; they all run the same fit with the same
seed (Keras' ``fit`` also reorders a PyDataset's batches with Python's
``random``, which the strategy seeds with ``keras.utils.set_random_seed``).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import keras

from advisor import config
from advisor.environment import accelerators, process_layout, visible_devices
from advisor.errors import PlanError

#: Values of ``Plan.precision``.
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
#: Values of ``Plan.devices``.
DEVICE_CHOICES = ("auto", "all", "one")


def dtype_policy(precision: str = config.PRECISION) -> str:
    """Return the Keras dtype policy of a plan's `precision`.

    Args:
        precision: ``"auto"`` (``"mixed_bfloat16"`` when an accelerator is
            visible, else ``"float32"``), ``"float32"`` or ``"mixed_bfloat16"``.
            Defaults to `config.PRECISION`.

    Returns:
        The dtype policy name.

    Raises:
        PlanError: `precision` is not one of ``PRECISIONS``.

    Example:
        >>> dtype_policy("float32")
        'float32'
        >>> dtype_policy() == (config.ACCELERATOR_POLICY if accelerators() else "float32")
        True
    """
    if precision not in PRECISIONS:
        raise PlanError(f"Unknown precision {precision!r} in the plan. "
                        f"Known: {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    return config.ACCELERATOR_POLICY if accelerators() else "float32"


@dataclass(frozen=True)
class Placement:
    """Where fine-tuning runs: one device, or data-parallel over several.

    Build it with :func:`placement`. ``devices`` holds the devices of the
    data-parallel mesh (global ones, across processes), or the one device
    training runs on.

    Attributes:
        devices: Device names as ``keras.distribution.list_devices`` gives them.
        batch_size: Images per (global) step, the plan's ``batch_size``.
        processes: Processes feeding the mesh (``keras.distribution.initialize``).
        process_id: This process's index among them.
        notes: One sentence per choice the placement made (empty when it ran as asked).
    """

    devices: tuple[str, ...]
    batch_size: int
    processes: int = 1
    process_id: int = 0
    notes: tuple[str, ...] = ()

    @property
    def data_parallel(self) -> bool:
        """Whether the batches are split over several devices."""
        return len(self.devices) > 1

    @property
    def per_device_batch(self) -> int:
        """Images of each full batch that one device computes."""
        return self.batch_size // max(1, len(self.devices))

    def scope(self) -> contextlib.AbstractContextManager:
        """Return the ``keras.distribution.DataParallel`` scope, or a no-op on one device.

        Build, compile and fit the model inside it.
        """
        if not self.data_parallel:
            return contextlib.nullcontext()
        return keras.distribution.DataParallel(devices=list(self.devices),
                                               auto_shard_dataset=False).scope()

    def batches(self, dataset: keras.utils.PyDataset, *, rows: int) -> keras.utils.PyDataset:
        """Return `dataset` as this placement feeds it: :class:`EvenBatches` when data-parallel.

        Args:
            dataset: Batches of ``batch_size`` rows (the last may be smaller).
            rows: Rows it yields per epoch.

        Example:
            >>> from strategies.batches import ImageBatches
            >>> batches = ImageBatches(np.zeros((7, 1, 1, 3), np.uint8), np.arange(7), batch_size=4)
            >>> Placement(devices=("cpu:0",), batch_size=4).batches(batches, rows=7) is batches
            True
            >>> two = Placement(devices=("cpu:0", "cpu:1"), batch_size=4)
            >>> [len(y) for x, y in two.batches(batches, rows=7)]
            [4, 2]
        """
        if not self.data_parallel:
            return dataset
        return EvenBatches(dataset, rows=rows, batch_size=self.batch_size,
                           multiple=len(self.devices), processes=self.processes,
                           process_id=self.process_id)

    def left_out(self, rows: int) -> int:
        """Return the rows of a `rows`-row set each epoch leaves out (:class:`EvenBatches`).

        Example:
            >>> Placement(devices=("cpu:0", "cpu:1"), batch_size=32).left_out(75)  # 32 + 32 + 11
            1
        """
        if not self.data_parallel or rows == 0:
            return 0
        return ((rows - 1) % self.batch_size + 1) % len(self.devices)

    def describe(self, **rows: int) -> dict[str, Any]:
        """Return the history's ``devices`` entry: how each batch was split.

        Args:
            **rows: Rows per epoch of each named set, e.g. ``train=75``; the
                entry gives the rows each leaves out.

        Example:
            >>> Placement(devices=("cpu:0", "cpu:1"), batch_size=32).describe(train=75, val=20)
            {'data_parallel': True, 'devices': ['cpu:0', 'cpu:1'], 'processes': 1, 'batch_size': 32, 'per_device_batch': 16, 'left_out_rows_per_epoch': {'train': 1, 'val': 0}, 'notes': []}
        """
        return {"data_parallel": self.data_parallel, "devices": list(self.devices),
                "processes": self.processes, "batch_size": self.batch_size,
                "per_device_batch": self.per_device_batch,
                "left_out_rows_per_epoch": {name: self.left_out(n) for name, n in rows.items()},
                "notes": list(self.notes)}

    def sentence(self) -> str:
        """Return one line for the history's notes and the log.

        Example:
            >>> Placement(devices=("cpu:0", "cpu:1"), batch_size=32).sentence()
            'data-parallel over 2 devices (cpu:0, cpu:1): 16 images per device of each 32-image batch.'
        """
        if not self.data_parallel:
            return f"one device ({self.devices[0] if self.devices else 'default'})."
        where = f" in {self.processes} processes" if self.processes > 1 else ""
        return (f"data-parallel over {len(self.devices)} devices ({', '.join(self.devices)}){where}: "
                f"{self.per_device_batch} images per device of each {self.batch_size}-image batch.")


def placement(devices: str = "auto", *, batch_size: int) -> Placement:
    """Return where a plan's fine-tuning runs, from its ``devices`` and ``batch_size``.

    - ``"auto"``: data-parallel over the accelerators when the JAX backend
      sees at least two; else the default device.
    - ``"all"``: data-parallel over every device the JAX backend lists (its
      accelerators, else its CPU devices; with several processes, all of
      theirs). Needs ``KERAS_BACKEND=jax``.
    - ``"one"``: the default device.

    The batch is split over the largest number of those devices that divides
    `batch_size` evenly; fewer than asked is said in ``notes``. Several
    processes (:func:`advisor.environment.initialize_processes`) must split it
    over all of their devices.

    Args:
        devices: ``Plan.devices``. Defaults to `"auto"`.
        batch_size: ``Plan.batch_size``: images per global step.

    Returns:
        A :class:`Placement`.

    Raises:
        PlanError: `devices` is unknown, ``"all"`` on a backend other than JAX,
            or a multi-process run whose `batch_size` does not split over all
            its devices.

    Example:
        >>> one = placement("one", batch_size=32)
        >>> one.data_parallel, one.per_device_batch
        (False, 32)
        >>> placement("two", batch_size=32)
        Traceback (most recent call last):
            ...
        advisor.errors.PlanError: Unknown devices 'two' in the plan. Known: auto, all, one.
    """
    if devices not in DEVICE_CHOICES:
        raise PlanError(f"Unknown devices {devices!r} in the plan. "
                        f"Known: {', '.join(DEVICE_CHOICES)}.")
    jax = keras.config.backend() == "jax"
    if devices == "all" and not jax:
        raise PlanError(f"The plan's devices='all' asks for data parallelism, which runs on the "
                        f"JAX backend only; received KERAS_BACKEND={keras.config.backend()!r}. "
                        f"Run with KERAS_BACKEND=jax, or set devices='auto'.")
    visible = visible_devices()
    candidates = {"auto": accelerators() if jax else [], "all": visible, "one": []}[devices]
    if len(candidates) < 2:
        return Placement(devices=tuple(visible[:1]), batch_size=batch_size)
    used = max(k for k in range(1, len(candidates) + 1) if batch_size % k == 0)
    processes, process_id = process_layout()
    if processes > 1 and used != len(candidates):  # every process must feed its own devices
        raise PlanError(f"batch_size {batch_size} does not split over the {len(candidates)} "
                        f"devices of the {processes} processes; use a multiple of "
                        f"{len(candidates)}.")
    notes = () if used == len(candidates) else (
        (f"batch_size {batch_size} splits evenly over {used} of the {len(candidates)} devices; "
         f"a multiple of {len(candidates)} would use them all."),)
    if used == 1:
        processes, process_id = 1, 0
    return Placement(devices=tuple(candidates[:used]), batch_size=batch_size,
                     processes=processes, process_id=process_id, notes=notes)


class EvenBatches(keras.utils.PyDataset):
    """Batches of another PyDataset, each cut to a multiple of the device count.

    ``keras.distribution.DataParallel`` splits every batch over the devices
    along its first axis, so each batch's length must be a multiple of their
    number. The wrapped dataset's full batches are; its last batch loses its
    last ``len % multiple`` rows, or is left out when shorter than `multiple`.
    With several `processes`, each process yields its own consecutive slice of
    every (cut) batch, which ``DataParallel`` puts back together as the global
    batch. Epoch hooks are passed on to the wrapped dataset, and no batch is
    read ahead (its augmentation draws stay those of the single-device run).

    Args:
        dataset: The batches, e.g. :class:`~strategies.batches.ImageBatches`.
        rows: Rows the wrapped dataset yields per epoch.
        batch_size: Rows of its full batches.
        multiple: Devices of the mesh (across all processes).
        processes: Processes feeding the mesh. Defaults to `1`.
        process_id: This process's index. Defaults to `0`.

    Raises:
        ValueError: The arguments do not fit together.

    Example:
        >>> from strategies.batches import ImageBatches
        >>> images = np.zeros((9, 1, 1, 3), np.uint8)
        >>> batches = EvenBatches(ImageBatches(images, np.arange(9), batch_size=4),
        ...                       rows=9, batch_size=4, multiple=2)
        >>> [y.tolist() for x, y in batches], batches.left_out
        ([[0, 1, 2, 3], [4, 5, 6, 7]], 1)
        >>> second = EvenBatches(ImageBatches(images, np.arange(9), batch_size=4),
        ...                      rows=9, batch_size=4, multiple=2, processes=2, process_id=1)
        >>> [y.tolist() for x, y in second]  # process 1's half of each batch
        [[2, 3], [6, 7]]
    """

    def __init__(self, dataset: keras.utils.PyDataset, *, rows: int, batch_size: int,
                 multiple: int, processes: int = 1, process_id: int = 0) -> None:
        super().__init__(workers=dataset.workers, use_multiprocessing=dataset.use_multiprocessing,
                         max_queue_size=dataset.max_queue_size)
        if (batch_size % multiple or multiple % processes or not 0 <= process_id < processes
                or len(dataset) != math.ceil(rows / batch_size)):
            raise ValueError(
                "Expected batch_size a multiple of multiple, multiple a multiple of processes, "
                "0 <= process_id < processes and len(dataset) batches of batch_size over rows. "
                f"Received: batch_size={batch_size}, multiple={multiple}, processes={processes}, "
                f"process_id={process_id}, rows={rows}, len(dataset)={len(dataset)}")
        self.dataset = dataset
        self.multiple = multiple
        self.processes = processes
        self.process_id = process_id
        last = rows - (len(dataset) - 1) * batch_size if len(dataset) else 0
        #: Rows of the wrapped dataset each epoch leaves out (all from its last batch).
        self.left_out = last % multiple
        self._len = len(dataset) - (1 if 0 < last < multiple else 0)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> tuple:
        if not 0 <= index < self._len:
            raise IndexError(f"Batch index {index} out of range [0, {self._len}).")
        batch = self.dataset[index]
        n = len(batch[0])
        share = (n - n % self.multiple) // self.processes
        start = self.process_id * share
        return tuple(part[start:start + share] for part in batch)

    def on_epoch_begin(self) -> None:
        self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()
