"""Training cost of the four regimes, and the cached-embedding ``last-layer`` path vs. the naive one.

For each data set (Fashion-MNIST subsample, Tux Paint photos) the advisor is
run once (``advise(..., regime=last-layer)``); the same split and the
advisor's per-regime plans are then used by every run below, each in a fresh
child process (so each reports its own peak RSS, and none benefits from
another's traced graphs).

1. ``last-layer``, cached vs. naive, for the same E head epochs and the same
   plan (optimizer, cosine schedule, learning rate, batch size, class weights):

   - cached: ``strategies`` ``last-layer`` fit, i.e. the train and val images
     go through the frozen backbone ONCE (embeddings, into an empty embedding
     cache so nothing is reused), then the softmax head trains E epochs on
     the embeddings;
   - naive: what a Keras transfer-learning tutorial does: ``base`` = the
     backbone up to the feature layer with ``base.trainable = False``,
     ``model = base -> Dense(softmax)``, ``model.fit(ImageBatches,
     validation_data=ImageBatches, epochs=E)``: every epoch pushes the train
     and val images through the backbone again.

   Both read the same decode cache (decoded once, before any timing), so only
   the per-epoch backbone pass differs. Patience is raised to E for both so
   both run all E epochs. The cached path also keeps the best-validation-loss
   weights (its ``TrainingGuard``); the tutorial keeps the last epoch's.
   Target (issue): cached >= 20x faster at equal test accuracy (+-0.5 pp).
   The speed-up grows with E (the naive path pays a backbone pass per epoch,
   the cached one once), so a second line is at the plan's own
   ``head_epochs``: the cached path measured, the naive one EXTRAPOLATED from
   its measured steady per-epoch time (labelled so).

2. Per regime (svm, last-layer, partial, full) on the same split, with the
   advisor's plan for that regime (``--fine-tune-epochs`` caps the
   fine-tuning epochs of partial/full): fit wall s, CPU s, train images/s,
   test accuracy, peak RSS (``VmHWM`` of the child: Linux carries
   ``ru_maxrss`` over ``execve``, so the child's ``getrusage`` would report
   the parent's size). Images/s = train images x epochs / fit s, where the
   epochs are 1 for ``svm`` (one embedding pass), the head epochs run for
   ``last-layer`` and the fine-tuning epochs run for partial/full (their
   embedding pass and probe are in the fit time but not counted as epochs).

3. ``--torch-reference``: a plain PyTorch/torchvision MobileNetV2 training
   loop (same frozen blocks, SGD momentum 0.9 at the plan's rate, BN frozen,
   bfloat16 autocast on CUDA) over the same ``ImageBatches`` for the same
   epochs as the Keras ``full``/``partial`` fine-tuning phase, next to that
   phase's images/s. Target (issue, GPU, ``KERAS_BACKEND=jax``): Keras >= 0.9x
   the PyTorch images/s. Runs only when ``torch`` and ``torchvision`` import
   in this interpreter; otherwise a note is printed.

Wall times on a shared machine are upper bounds: the load average at start
and end is printed, and CPU seconds are given next to wall seconds.

Run::

    python -m benchmarks.bench_regimes --quick            # FM 1k + Tux Paint, E=5, 1 fine-tune epoch
    python -m benchmarks.bench_regimes                    # FM 10k + Tux Paint, E = plan's head_epochs
    python -m benchmarks.bench_regimes --datasets fashion-mnist --n 10000 --epochs 10 --skip-regimes
    KERAS_BACKEND=jax python -m benchmarks.bench_regimes --torch-reference --regimes partial,full
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Regimes of the per-regime table, in order.
REGIMES = ("svm", "last-layer", "partial", "full")
#: --quick settings.
QUICK = {"n": 1000, "epochs": 5, "fine_tune_epochs": 1, "sample_cap": 500}
#: Issue targets.
TARGET_SPEEDUP = 20.0
TARGET_ACCURACY_PP = 0.5
TARGET_TORCH_RATIO = 0.9


# --------------------------------------------------------------------------- #
# Child side: one measured run per process
# --------------------------------------------------------------------------- #
def _vm_hwm_mb() -> float:
    """Peak resident memory of this process (MB), from /proc (Linux); getrusage elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load(args: argparse.Namespace):
    """Plan, dataset and {split: LabelledImages} from the decode cache (already filled)."""
    from advisor.data import SPLITS, scan_dataset
    from advisor.data.decode_cache import decode_dataset
    from advisor.plan import Plan
    from strategies.inputs import LabelledImages

    plan = Plan.from_dict(json.loads(Path(args.plan).read_text()))
    dataset, decoded = decode_dataset(scan_dataset(Path(args.root), seed=args.seed), plan.image_size)
    data = {split: LabelledImages(decoded[split].images, dataset.labels(split), decoded[split].rows)
            for split in SPLITS}
    return plan, dataset, data


def _accuracy(probabilities, labels) -> float:
    import numpy as np

    return float(np.mean(np.argmax(probabilities, axis=-1) == labels))


def _child_strategy(args: argparse.Namespace) -> dict:
    """Fit the plan's strategy (``cached`` comparison row or a per-regime row)."""
    from advisor.backbones import get_backbone
    from strategies import get_strategy

    plan, dataset, data = _load(args)
    backbone = get_backbone(plan.backbone, image_size=plan.image_size)
    strategy = get_strategy(plan.regime)(plan=plan, backbone=backbone)
    cpu0, t0 = _cpu_s(), time.perf_counter()
    strategy.fit(data["train"], data["val"], class_names=dataset.class_names)
    fit_s, cpu_s = time.perf_counter() - t0, _cpu_s() - cpu0
    test = data["test"]
    accuracy = _accuracy(strategy.predict_proba(test.images, rows=test.rows), test.labels)
    history = strategy.history_
    head = history.get("head", {})
    fine = history.get("fine_tune", {})
    head_epochs = len(head.get("epochs", []))
    ft_epochs = len(fine.get("epochs", []))
    if plan.regime.value == "svm":
        epochs = 1
    elif plan.regime.fine_tunes_backbone:
        epochs = ft_epochs
    else:
        epochs = head_epochs
    return {
        "regime": plan.regime.value, "image_size": plan.image_size, "batch_size": plan.batch_size,
        "n_train": len(data["train"]), "n_val": len(data["val"]), "n_test": len(test),
        "fit_s": fit_s, "cpu_s": cpu_s, "accuracy": accuracy,
        "embed_s": history.get("embed", {}).get("wall_s"),
        "head_s": head.get("wall_s"), "head_epochs": head_epochs,
        "ft_s": fine.get("wall_s"), "ft_epochs": ft_epochs, "epochs": epochs,
        "planned_head_epochs": plan.head_epochs, "planned_ft_epochs": plan.epochs,
        "dtype_policy": fine.get("dtype_policy"),
        "retried": bool(head.get("retried") or fine.get("retried")),
        "peak_rss_mb": _vm_hwm_mb(),
    }


def _child_naive(args: argparse.Namespace) -> dict:
    """The Keras-tutorial path: frozen base inside ``model.fit``, images through it every epoch."""
    import keras

    from advisor.backbones import get_backbone
    from advisor.backbones.preprocessing import image_input
    from strategies.embeddings import feature_output, predict_batches
    from strategies.optimizers import learning_rate_schedule, make_optimizer
    from strategies.training import class_weight_dict

    plan, dataset, data = _load(args)
    backbone = get_backbone(plan.backbone, image_size=plan.image_size)
    n_classes = len(dataset.class_names)
    keras.utils.set_random_seed(plan.seed)
    epoch_s: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_s.append(time.perf_counter() - self._t)

    cpu0, t0 = _cpu_s(), time.perf_counter()
    base = keras.Model(backbone.model.inputs[0], feature_output(backbone, plan.feature_layer))
    base.trainable = False
    inputs = image_input(plan.image_size)
    x = base(inputs, training=False)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    train = data["train"].batches(batch_size=plan.batch_size, shuffle=True, seed=plan.seed,
                                  class_weight=class_weight_dict(plan, n_classes))
    val = data["val"].batches(batch_size=plan.batch_size)
    schedule = learning_rate_schedule(plan.head_learning_rate, steps_per_epoch=len(train),
                                      epochs=plan.head_epochs)
    model.compile(optimizer=make_optimizer(plan, schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(train, validation_data=val, epochs=plan.head_epochs, callbacks=[EpochTimer()], verbose=0)
    fit_s, cpu_s = time.perf_counter() - t0, _cpu_s() - cpu0
    test = data["test"]
    accuracy = _accuracy(predict_batches(model, test.batches(batch_size=plan.batch_size)), test.labels)
    return {"regime": "naive", "n_train": len(data["train"]), "n_val": len(data["val"]),
            "n_test": len(test), "fit_s": fit_s, "cpu_s": cpu_s, "accuracy": accuracy,
            "epochs": len(epoch_s), "epoch_s": epoch_s, "peak_rss_mb": _vm_hwm_mb()}


def _torch_model(plan, n_classes: int, device):
    """torchvision's MobileNetV2 with our weights, a new head and the plan's frozen blocks."""
    import torch
    import torchvision

    from advisor.backbones import get_backbone
    from advisor.backbones.checkpoint import load_state_dict
    from advisor.backbones.mobilenet_v2 import WEIGHTS_SHA256, checkpoint_path
    from advisor.errors import AdvisorError

    model = torchvision.models.mobilenet_v2()
    note = "torchvision ImageNet weights"
    try:  # our restricted reader, not torch's unpickler
        state = load_state_dict(checkpoint_path(), sha256=WEIGHTS_SHA256)
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    except (AdvisorError, RuntimeError) as exc:  # throughput does not depend on the weights
        note = f"random weights ({type(exc).__name__})"
    model.classifier = torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(1280, n_classes))
    model = model.to(device).to(memory_format=torch.channels_last)
    # Same frozen blocks as the Keras plan: blocks[i] <-> features[i] (stem, block_1.., head).
    blocks = [b.name for b in get_backbone(plan.backbone, image_size=plan.image_size).blocks]
    for index, name in enumerate(blocks[: len(model.features)]):
        if name in plan.frozen_blocks:
            model.features[index].requires_grad_(False)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.requires_grad_(False)
    return model, note


def _child_torch(args: argparse.Namespace) -> dict:
    """Plain PyTorch/torchvision MobileNetV2 training loop over the same batches."""
    import numpy as np
    import torch
    import torchvision

    from advisor.config import IMAGENET_MEAN, IMAGENET_STD
    from strategies.training import augmentation_for, class_weight_dict

    plan, dataset, data = _load(args)
    n_classes = len(dataset.class_names)
    epochs = int(args.torch_epochs)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(plan.seed)
    model, note = _torch_model(plan, n_classes, device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
    head = list(model.classifier.parameters())
    body = [p for p in model.features.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD([{"params": head, "lr": plan.head_learning_rate},
                                 {"params": body, "lr": plan.backbone_learning_rate}],
                                momentum=plan.momentum)
    weights = class_weight_dict(plan, n_classes)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def to_tensor(x):
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.uint8))).to(device, non_blocking=True)
        t = t.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
        return (t - mean) / std

    def train_mode():
        model.train()
        for module in model.modules():  # frozen BN runs in inference mode, as in Keras
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()

    def evaluate(batches):
        model.eval()
        correct = 0
        with torch.no_grad(), autocast:
            for i in range(len(batches)):
                x, y = batches[i][:2]
                correct += int((model(to_tensor(x)).argmax(1).cpu().numpy() == np.asarray(y)).sum())
        return correct

    train = data["train"].batches(batch_size=plan.batch_size, shuffle=True, seed=plan.seed,
                                  augmentation=augmentation_for(plan, seed=plan.seed), class_weight=weights)
    val = data["val"].batches(batch_size=plan.batch_size)
    evaluate(val)  # warm-up (cuDNN autotuning), as Keras' starting evaluate; not timed
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(epochs):
        train_mode()
        train.on_epoch_end()
        for i in range(len(train)):
            batch = train[i]
            x, y = batch[0], batch[1]
            w = batch[2] if len(batch) > 2 else None
            with autocast:
                losses = loss_fn(model(to_tensor(x)).float(), torch.as_tensor(np.asarray(y), device=device).long())
            if w is not None:
                losses = losses * torch.as_tensor(np.asarray(w), device=device)
            loss = losses.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        evaluate(val)  # Keras' phase validates every epoch too
    if device.type == "cuda":
        torch.cuda.synchronize()
    fit_s = time.perf_counter() - t0
    test = data["test"]
    accuracy = evaluate(test.batches(batch_size=plan.batch_size)) / max(1, len(test))
    return {"regime": f"torch-{plan.regime.value}", "n_train": len(data["train"]), "fit_s": fit_s,
            "epochs": epochs, "accuracy": accuracy, "device": str(device), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "weights": note, "peak_rss_mb": _vm_hwm_mb()}


# --------------------------------------------------------------------------- #
# Parent side
# --------------------------------------------------------------------------- #
def _fresh_embedding_cache(tmp: Path) -> Path:
    """A cache root whose sub-folders link to the real ones, except an empty ``embeddings``."""
    from advisor.cache import cache_dir
    from strategies.embeddings import CACHE_SUBDIR

    real = cache_dir()
    root = tmp / "cache"
    root.mkdir()
    for entry in real.iterdir():
        if entry.name != CACHE_SUBDIR:
            (root / entry.name).symlink_to(entry)
    return root


def _run_child(kind: str, plan, root: Path, args: argparse.Namespace, tmp: Path, **extra) -> dict:
    plan_file = tmp / f"plan-{kind}-{plan.regime.value}.json"
    plan_file.write_text(json.dumps(plan.to_dict()))
    command = [sys.executable, "-m", "benchmarks.bench_regimes", "--child", kind, "--plan", str(plan_file),
               "--root", str(root), "--seed", str(args.seed)]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    with tempfile.TemporaryDirectory(prefix="bench-regimes-", dir=tmp) as child_tmp:
        env = dict(os.environ, FINETUNE_ADVISOR_CACHE=str(_fresh_embedding_cache(Path(child_tmp))),
                   TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"regime": plan.regime.value if kind != "naive" else "naive", "error": tail}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine_line(args: argparse.Namespace) -> str:
    import keras

    from advisor.environment import accelerators

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    devices = accelerators()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"backend={keras.backend.backend()}  keras={keras.__version__}  "
            f"python={platform.python_version()}  cores={cores}  "
            f"device={','.join(map(str, devices)) if devices else 'cpu'}  seed={args.seed}  "
            f"load average at start (1/5/15 min)={load}")


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _comparison(name: str, naive: dict, cached: dict, cached_full: dict | None, plan_epochs: int,
                epochs: int) -> list[str]:
    lines = []
    if "error" in naive or "error" in cached:
        return [f"{name:<22} failed: naive={naive.get('error', 'ok')}  cached={cached.get('error', 'ok')}"]
    speedup = naive["fit_s"] / cached["fit_s"]
    delta = 100 * (cached["accuracy"] - naive["accuracy"])
    verdict = ("yes" if speedup >= TARGET_SPEEDUP and abs(delta) <= TARGET_ACCURACY_PP else "no")
    lines.append(
        f"{name:<22}{'measured':>13}{epochs:>4}{naive['n_train']:>7}{naive['fit_s']:>9.1f}{cached['fit_s']:>9.1f}"
        f"{speedup:>7.1f}x{100 * naive['accuracy']:>8.2f}{100 * cached['accuracy']:>8.2f}{delta:>+7.2f}"
        f"{naive['cpu_s']:>8.0f}{cached['cpu_s']:>8.0f}{naive['peak_rss_mb']:>8.0f}{cached['peak_rss_mb']:>8.0f}"
        f"  {verdict}")
    # At the plan's own head_epochs: naive EXTRAPOLATED = measured + the extra epochs at its
    # steady per-epoch time (median of the epochs after the first, which traces); cached
    # MEASURED in its own child at those epochs.
    if cached_full is None or plan_epochs <= epochs:
        return lines
    if "error" in cached_full:
        return lines + [f"{'':<22} cached at {plan_epochs} epochs failed: {cached_full['error']}"]
    steady = sorted(naive["epoch_s"][1:] or naive["epoch_s"])
    naive_epoch = steady[len(steady) // 2]
    naive_x = naive["fit_s"] + (plan_epochs - epochs) * naive_epoch
    lines.append(
        f"{'':<22}{'naive EXTRAP':>13}{plan_epochs:>4}{naive['n_train']:>7}{naive_x:>9.1f}"
        f"{cached_full['fit_s']:>9.1f}{naive_x / cached_full['fit_s']:>7.1f}x{'':>8}"
        f"{100 * cached_full['accuracy']:>8.2f}{'':>7}{'':>8}{cached_full['cpu_s']:>8.0f}{'':>8}"
        f"{cached_full['peak_rss_mb']:>8.0f}  (naive: {naive_epoch:.1f} s/epoch x {plan_epochs - epochs} "
        f"more epochs, not measured; cached: measured, {cached_full['head_epochs']} head epochs)")
    return lines


def _regime_line(dataset_name: str, row: dict) -> str:
    if "error" in row:
        return f"{dataset_name:<22}{row['regime']:<11} failed: {row['error']}"
    rate = row["n_train"] * row["epochs"] / row["fit_s"]
    details = f"embed {_fmt(row['embed_s'], '.1f')} s"
    if row["regime"] != "svm":
        details += f", head {row['head_epochs']}/{row['planned_head_epochs']} ep {_fmt(row['head_s'], '.1f')} s"
    if row["ft_epochs"] or row["planned_ft_epochs"]:
        details += (f", fine-tune {row['ft_epochs']}/{row['planned_ft_epochs']} ep "
                    f"{_fmt(row['ft_s'], '.1f')} s ({row['dtype_policy']})")
    if row["retried"]:
        details += ", diverged + retried (epochs of both attempts counted)"
    return (f"{dataset_name:<22}{row['regime']:<11}{row['image_size']:>5}{row['n_train']:>7}{row['epochs']:>7}"
            f"{row['fit_s']:>8.1f}{row['cpu_s']:>8.0f}{rate:>8.1f}{100 * row['accuracy']:>8.2f}"
            f"{row['peak_rss_mb']:>12,.0f}  {details}")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"n={QUICK['n']}, epochs={QUICK['epochs']}, fine-tune epochs={QUICK['fine_tune_epochs']}, "
                             f"sample cap={QUICK['sample_cap']}.")
    parser.add_argument("--datasets", default="fashion-mnist,tuxpaint", help="Comma-separated set names.")
    parser.add_argument("--n", type=int, default=None,
                        help="Subsample of the large sets (fashion-mnist, mnist-5k...). Default 10000.")
    parser.add_argument("--epochs", type=int, default=None,
                        help="Head epochs E of the naive-vs-cached comparison. Default: the plan's head_epochs.")
    parser.add_argument("--image-size", type=int, default=None, help="Override the plan's image size.")
    parser.add_argument("--fine-tune-epochs", type=int, default=None,
                        help="Cap on partial/full fine-tuning epochs. Default: the plan's.")
    parser.add_argument("--regimes", default=",".join(REGIMES), help="Regimes of the per-regime table.")
    parser.add_argument("--skip-comparison", action="store_true", help="Only the per-regime table.")
    parser.add_argument("--skip-regimes", action="store_true", help="Only the naive-vs-cached table.")
    parser.add_argument("--torch-reference", action="store_true",
                        help="Also run a plain PyTorch/torchvision MobileNetV2 loop (needs torch + torchvision).")
    parser.add_argument("--sample-cap", type=int, default=None, help="Advisor's measurement sample cap.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=("cached", "naive", "regime", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--torch-epochs", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _plans_for(advice, regimes, args: argparse.Namespace) -> dict:
    """The advisor's plan for each regime (its own for last-layer), with the run's overrides."""
    from advisor.backbones import get_backbone
    from advisor.decide import decide
    from advisor.plan import Regime

    network = get_backbone(advice.plan.backbone)
    plans = {r: decide(advice.profile, backbone=network, regime=r, seed=args.seed) for r in regimes}
    plans[Regime.LAST_LAYER] = advice.plan
    # Decoded at the plan's image size (the path the recorded tables measured).
    plans = {r: dataclasses.replace(p, decode_size=None) for r, p in plans.items()}
    if args.image_size:
        plans = {r: dataclasses.replace(p, image_size=args.image_size) for r, p in plans.items()}
    if args.fine_tune_epochs is not None:
        plans = {r: dataclasses.replace(p, epochs=min(p.epochs, args.fine_tune_epochs))
                 for r, p in plans.items()}
    return plans


def _run_dataset(name: str, regimes, args: argparse.Namespace, tmp: Path, torch_ok: bool,
                 comparison: list, regime_rows: list, torch_rows: list) -> None:
    """Advise, decode and run every child of one set, appending to the three tables."""
    from advisor.app.pipeline import advise
    from advisor.data.decode_cache import decode_dataset
    from advisor.examples import write_dataset
    from advisor.plan import Regime

    small = name in ("tuxpaint", "skimage", "photos", "cifar", "lfw-faces")
    root = write_dataset(name, n=None if small else args.n, seed=args.seed)
    t0 = time.perf_counter()
    advice = advise(root, regime=Regime.LAST_LAYER, seed=args.seed, sample_cap=args.sample_cap)
    advise_s = time.perf_counter() - t0
    plans = _plans_for(advice, regimes, args)
    base_plan = plans[Regime.LAST_LAYER]
    t0 = time.perf_counter()
    decode_dataset(advice.dataset, base_plan.image_size)
    decode_s = time.perf_counter() - t0
    sizes = {s: len(advice.dataset.records(s)) for s in ("train", "val", "test")}
    print(f"{root.name}: {sizes['train']}/{sizes['val']}/{sizes['test']} train/val/test, "
          f"{len(advice.dataset.class_names)} classes, image_size={base_plan.image_size}, "
          f"batch={base_plan.batch_size}, plan head_epochs={advice.plan.head_epochs}, "
          f"advise {advise_s:.0f} s, decode {decode_s:.0f} s", flush=True)

    if not args.skip_comparison:
        epochs = args.epochs or base_plan.head_epochs
        plan = dataclasses.replace(base_plan, head_epochs=epochs, patience=max(base_plan.patience, epochs))
        naive = _run_child("naive", plan, root, args, tmp)
        cached = _run_child("cached", plan, root, args, tmp)
        cached_full = None
        if base_plan.head_epochs > epochs:
            cached_full = _run_child("cached", dataclasses.replace(
                base_plan, patience=max(base_plan.patience, base_plan.head_epochs)), root, args, tmp)
        lines = _comparison(root.name, naive, cached, cached_full, base_plan.head_epochs, epochs)
        comparison += lines
        print("  last-layer naive vs cached:\n" + "\n".join(lines), flush=True)

    if not args.skip_regimes:
        for regime in regimes:
            row = _run_child("regime", plans[regime], root, args, tmp)
            regime_rows.append((root.name, row))
            print("  " + _regime_line(root.name, row), flush=True)
            if (args.torch_reference and torch_ok and regime.fine_tunes_backbone
                    and "error" not in row and row["ft_epochs"]):
                reference = _run_child("torch", plans[regime], root, args, tmp,
                                       torch_epochs=row["ft_epochs"])
                torch_rows.append((root.name, row, reference))


def _print_comparison(comparison: list[str]) -> None:
    """The naive-vs-cached last-layer table."""
    if not (comparison):
        return
    print()
    print("last-layer: naive Keras-tutorial path (frozen base in model.fit, backbone every epoch) "
          f"vs cached embeddings; target >= {TARGET_SPEEDUP:.0f}x at +-{TARGET_ACCURACY_PP} pp")
    header = (f"{'dataset':<22}{'':>13}{'E':>4}{'train':>7}{'naive s':>9}{'cached s':>9}{'speedup':>8}"
              f"{'naive %':>8}{'cached %':>8}{'d pp':>7}{'cpu n':>8}{'cpu c':>8}{'RSS n':>8}{'RSS c':>8}"
              f"  target met")
    print(header)
    print("-" * len(header))
    for line in comparison:
        print(line)
    print("naive s / cached s: fit wall seconds (model build + training + per-epoch validation; cached "
          "includes the one embedding pass). RSS in MB. The second line of a set is at the plan's own "
          "head_epochs: its naive time is EXTRAPOLATED (not measured), its cached time and accuracy measured.")


def _print_regimes(regime_rows: list, args: argparse.Namespace) -> None:
    """The per-regime table."""
    if not (regime_rows):
        return
    print()
    header = (f"{'dataset':<22}{'regime':<11}{'size':>5}{'train':>7}{'epochs':>7}{'fit s':>8}{'cpu s':>8}"
              f"{'img/s':>8}{'test %':>8}{'peak RSS MB':>12}  details")
    print(header)
    print("-" * len(header))
    for dataset_name, row in regime_rows:
        print(_regime_line(dataset_name, row))
    print("epochs: svm 1 (embedding pass), last-layer head epochs run, partial/full fine-tuning epochs run; "
          "img/s = train images x epochs / fit s; 'ep a/b' = run / planned"
          + (f" (fine-tuning capped at {args.fine_tune_epochs})" if args.fine_tune_epochs is not None else ""))


def _print_torch(torch_rows: list) -> None:
    """Keras fine-tuning vs the plain PyTorch loop."""
    if not (torch_rows):
        return
    print()
    print(f"Keras fine-tuning phase vs plain PyTorch loop, same batches and epochs; target Keras >= "
          f"{TARGET_TORCH_RATIO}x PyTorch images/s")
    header = (f"{'dataset':<22}{'regime':<9}{'epochs':>7}{'keras img/s':>12}{'torch img/s':>12}{'ratio':>7}"
              f"{'keras %':>8}{'torch %':>8}  torch")
    print(header)
    print("-" * len(header))
    for dataset_name, row, ref in torch_rows:
        if "error" in ref:
            print(f"{dataset_name:<22}{row['regime']:<9} torch failed: {ref['error']}")
            continue
        keras_rate = row["n_train"] * row["ft_epochs"] / row["ft_s"]
        torch_rate = ref["n_train"] * ref["epochs"] / ref["fit_s"]
        print(f"{dataset_name:<22}{row['regime']:<9}{row['ft_epochs']:>7}{keras_rate:>12.1f}{torch_rate:>12.1f}"
              f"{keras_rate / torch_rate:>7.2f}{100 * row['accuracy']:>8.2f}{100 * ref['accuracy']:>8.2f}"
              f"  {ref['torch']} on {ref['device']}, {ref['weights']}")


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.child:
        run = {"cached": _child_strategy, "regime": _child_strategy, "naive": _child_naive,
               "torch": _child_torch}[args.child]
        print(json.dumps(run(args)))
        return

    if args.quick:
        args.n = args.n or QUICK["n"]
        args.epochs = args.epochs or QUICK["epochs"]
        args.fine_tune_epochs = args.fine_tune_epochs or QUICK["fine_tune_epochs"]
        args.sample_cap = args.sample_cap or QUICK["sample_cap"]
    args.n = args.n or 10_000
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from advisor.plan import Regime

    started = time.perf_counter()
    print(_machine_line(args))
    print("NOTE: shared machine: other jobs compete for these cores, so wall times are upper bounds; "
          "CPU s (this run's own user+sys) is steadier.")
    regimes = [Regime.parse(r) for r in args.regimes.split(",") if r]
    torch_ok = all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision"))
    if args.torch_reference and not torch_ok:
        print("NOTE: --torch-reference skipped: torch and torchvision are not both importable in "
              f"{sys.executable} (install them, e.g. on a GPU machine, and re-run).")

    comparison: list[str] = []
    regime_rows: list[tuple[str, dict]] = []
    torch_rows: list[tuple[str, dict, dict]] = []
    with tempfile.TemporaryDirectory(prefix="bench-regimes-") as tmp_name:
        for name in args.datasets.split(","):
            _run_dataset(name, regimes, args, Path(tmp_name), torch_ok, comparison, regime_rows, torch_rows)
    _print_comparison(comparison)
    _print_regimes(regime_rows, args)
    _print_torch(torch_rows)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average at end (1/5/15 min)={load}")

if __name__ == "__main__":
    main()
