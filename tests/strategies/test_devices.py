"""Where fine-tuning runs (issue 20): the plan's ``devices``, and data parallelism on JAX.

The data-parallel runs are child processes, because JAX reads
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (two virtual CPU
devices) and the multi-process set-up once, when it starts. They claim
nothing about accuracy (plumbing: the one-device run is the reference). The
``partial`` run's backbone is a small seeded CNN, passed as ``advise --base``
(its weights are drawn with NumPy; JAX would compile every random
initializer), on 100 real digit scans at 16 px; the two processes fit a
softmax on 32 of them. Batch sizes divide every set: each shape is one more
compilation.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from advisor.errors import PlanError
from strategies.batches import ImageBatches
from strategies.devices import EvenBatches, Placement, placement

#: Probabilities and weights of a data-parallel run agree with the one-device
#: run to float32 rounding: the gradient's sum over the batch is only split in two.
PROBABILITY_ATOL = 1e-6
WEIGHT_ATOL = 1e-5
TIMEOUT_S = 300


def _jax_env(**extra: str) -> dict[str, str]:
    return os.environ | {"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_one_device_placement_changes_nothing():
    one = placement("one", batch_size=8)
    batches = ImageBatches(np.zeros((5, 1, 1, 3), np.uint8), np.arange(5), batch_size=8)
    assert not one.data_parallel and one.per_device_batch == 8 and len(one.devices) <= 1
    assert one.batches(batches, rows=5) is batches
    assert one.describe(train=5)["left_out_rows_per_epoch"] == {"train": 0}


def test_unknown_devices_are_refused_with_the_known_ones():
    with pytest.raises(PlanError, match="Known: auto, all, one"):
        placement("gpus", batch_size=8)


@pytest.mark.backend("tensorflow", "torch")
def test_all_devices_needs_the_jax_backend():
    # tf.distribute.MirroredStrategy was promised once and never built (issue 20):
    # data parallelism is keras.distribution, i.e. JAX only, and says so.
    with pytest.raises(PlanError, match="KERAS_BACKEND=jax"):
        placement("all", batch_size=8)


def test_even_batches_cut_the_last_batch_and_keep_the_shuffle():
    images = np.zeros((11, 1, 1, 3), np.uint8)
    plain = ImageBatches(images, np.arange(11), batch_size=4, shuffle=True, seed=3)
    even = EvenBatches(ImageBatches(images, np.arange(11), batch_size=4, shuffle=True, seed=3),
                       rows=11, batch_size=4, multiple=2)
    for _ in range(2):  # two epochs: the wrapped dataset reshuffles through the wrapper
        assert [len(y) for _, y in even] == [4, 4, 2]
        assert [y.tolist() for _, y in even] == [plain[i][1][:len(even[i][1])].tolist()
                                                 for i in range(3)]
        even.on_epoch_end()
        plain.on_epoch_end()
    assert even.left_out == Placement(devices=("a", "b"), batch_size=4).left_out(11) == 1
    # A last batch shorter than one row per device is left out whole.
    assert len(EvenBatches(ImageBatches(images[:9], np.arange(9), batch_size=4), rows=9,
                           batch_size=4, multiple=4)) == 2


def test_processes_feed_consecutive_slices_of_each_batch():
    images = np.zeros((12, 1, 1, 3), np.uint8)
    slices = [EvenBatches(ImageBatches(images, np.arange(12), batch_size=8), rows=12,
                          batch_size=8, multiple=4, processes=2, process_id=p) for p in (0, 1)]
    assert [np.concatenate([s[i][1] for s in slices]).tolist() for i in range(2)] == [
        list(range(8)), [8, 9, 10, 11]]


#: Fits the same partial plan on one device and data-parallel over two virtual CPU devices.
DATA_PARALLEL_RUN = textwrap.dedent("""
    import dataclasses, json, math, sys
    from pathlib import Path
    import keras, numpy as np
    from advisor.backbones import get_backbone
    from advisor.backbones.user_model import base_model_name
    from advisor.data import decode_dataset, scan_dataset
    from advisor.examples import write_dataset
    from advisor.plan import Optimizer, Plan, Regime
    from strategies import LabelledImages, get_strategy
    from strategies.devices import placement

    root, size = Path(sys.argv[1]), 16
    inputs = keras.Input((size, size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for i, filters in enumerate((8, 8, 8)):
        x = keras.layers.Conv2D(filters, 3, padding="same", kernel_initializer="zeros",
                                name=f"conv_{i}")(x)
        x = keras.layers.ReLU(name=f"relu_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(10, activation="softmax", kernel_initializer="zeros",
                                 name="classes")(x)
    base = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    base.set_weights([rng.normal(0, math.sqrt(2 / math.prod(w.shape[:-1])), w.shape).astype("float32")
                      if w.ndim > 1 else np.zeros(w.shape, "float32") for w in base.get_weights()])
    base.save(root / "base.keras")
    backbone = get_backbone(base_model_name(root / "base.keras"))
    ds, decoded = decode_dataset(scan_dataset(write_dataset("digits", root, n=100, seed=0), seed=0), size)
    train, val, test = (LabelledImages(decoded[s].images, ds.labels(s), decoded[s].rows)
                        for s in ("train", "val", "test"))
    names = tuple(b.name for b in backbone.blocks)
    plan = Plan(regime=Regime.PARTIAL, backbone=backbone.name, image_size=size,
                frozen_blocks=names[:1], feature_layer=backbone.feature_layer,
                optimizer=Optimizer.ADAMW, head_learning_rate=1e-2, backbone_learning_rate=1e-2,
                batch_size=10, head_epochs=1, epochs=2, warmup_epochs=0, patience=3,
                augmentation=(), class_weights=None, svm_c_grid=(1.0,), seed=0)
    out = {"devices": keras.distribution.list_devices(), "rows": len(train.rows),
           "odd_batch": placement("all", batch_size=7).describe()}
    for devices in ("one", "all"):
        strategy = get_strategy(plan.regime)(plan=dataclasses.replace(plan, devices=devices),
                                             backbone=backbone)
        strategy.fit(train, val, class_names=ds.class_names)
        fine_tune = strategy.history_["fine_tune"]
        out[devices] = {"proba": strategy.predict_proba(test.images, rows=test.rows).tolist(),
                        "weights": [w.tolist() for w in strategy.model_.get_weights()],
                        "history": {k: fine_tune[k] for k in ("devices", "notes", "best_epoch")}}
    print(json.dumps(out))
""")


@pytest.mark.jax_slice
@pytest.mark.backend("jax")
def test_data_parallel_partial_reaches_the_one_device_result(tmp_path):
    done = subprocess.run([sys.executable, "-c", DATA_PARALLEL_RUN, str(tmp_path)],
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
                          env=_jax_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert done.returncode == 0, done.stderr[-3000:]
    out = _last_json(done.stdout)
    assert out["devices"] == ["cpu:0", "cpu:1"] and out["rows"] == 60
    one, two = out["one"]["history"], out["all"]["history"]
    assert one["devices"]["data_parallel"] is False and len(one["devices"]["devices"]) == 1
    # The report's history says how each batch was split: 2 x 5 of 10; 60 train and
    # 20 validation rows split evenly, so no row is left out.
    assert two["devices"] == {
        "data_parallel": True, "devices": ["cpu:0", "cpu:1"], "processes": 1, "batch_size": 10,
        "per_device_batch": 5, "left_out_rows_per_epoch": {"train": 0, "val": 0}, "notes": []}
    assert ("fine-tune: data-parallel over 2 devices (cpu:0, cpu:1): 5 images per device of "
            "each 10-image batch.") in two["notes"]
    # Both kept a fine-tuned epoch (not the probe), and the same one.
    assert one["best_epoch"] == two["best_epoch"] >= 1
    np.testing.assert_allclose(out["all"]["proba"], out["one"]["proba"], atol=PROBABILITY_ATOL)
    for ours, reference in zip(out["all"]["weights"], out["one"]["weights"]):
        np.testing.assert_allclose(ours, reference, atol=WEIGHT_ATOL)
    # A batch that does not split over both devices runs on the one that divides it, and says so.
    assert out["odd_batch"]["devices"] == ["cpu:0"] and "splits evenly over 1 of the 2" in (
        out["odd_batch"]["notes"][0])


#: One process of a two-process data-parallel fit (and its own one-device reference).
PROCESS_RUN = textwrap.dedent("""
    import json
    import keras, numpy as np
    from advisor.environment import initialize_processes
    from strategies.batches import ImageBatches
    from strategies.devices import placement

    from sklearn.datasets import load_digits

    processes, index = initialize_processes()
    digits = load_digits()  # 32 of scikit-learn's real 8x8 scans, as uint8 RGB
    images = np.repeat(np.rint(digits.images[:32] * 255 / 16).astype(np.uint8)[..., None], 3, axis=-1)
    labels = digits.target[:32].astype("int32")

    def fit(place):
        keras.utils.set_random_seed(0)  # fit shuffles a PyDataset's batch order with Python's RNG
        with place.scope():
            model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                                      keras.layers.Flatten(),
                                      keras.layers.Dense(10, activation="softmax",
                                                         kernel_initializer="zeros")])
            model.set_weights([np.random.default_rng(1).normal(0, 0.1, (192, 10)).astype("float32"),
                               np.zeros(10, "float32")])
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
            batches = ImageBatches(images, labels, batch_size=8, shuffle=True, seed=0)
            model.fit(place.batches(batches, rows=len(images)), epochs=2, verbose=0)
        return model.get_weights(), place.describe(train=len(images))

    one, _ = fit(placement("one", batch_size=8))
    both, split = fit(placement("all", batch_size=8))
    print(json.dumps({"processes": processes, "index": index, "split": split,
                      "max_diff": max(float(np.abs(a - b).max()) for a, b in zip(both, one)),
                      "weights": [float(w.sum()) for w in both]}))
""")


@pytest.mark.jax_slice
@pytest.mark.backend("jax")
def test_two_processes_fit_data_parallel_to_the_one_process_result(tmp_path):
    with socket.socket() as probe:  # a free port for the coordinator (process 0)
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    # Output goes to files: a full pipe would block a worker, and the other waits for it at exit.
    logs = [(tmp_path / f"out-{index}.txt", tmp_path / f"err-{index}.txt") for index in (0, 1)]
    workers = []
    for index, (out, err) in enumerate(logs):
        with out.open("w") as stdout, err.open("w") as stderr:
            workers.append(subprocess.Popen(
                [sys.executable, "-c", PROCESS_RUN], stdout=stdout, stderr=stderr,
                env=_jax_env(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"localhost:{port}",
                             KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                             KERAS_DISTRIBUTION_PROCESS_ID=str(index))))
    deadline = time.monotonic() + TIMEOUT_S
    try:  # a worker that fails leaves the other waiting for it: stop at the first failure
        while (any(w.poll() is None for w in workers) and time.monotonic() < deadline
               and not any(w.poll() for w in workers)):
            time.sleep(0.2)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (_, err) in zip(workers, logs):
        assert worker.returncode == 0, err.read_text()[-3000:]
    results = [_last_json(out.read_text()) for out, _ in logs]
    assert [(r["processes"], r["index"]) for r in results] == [(2, 0), (2, 1)]
    split = results[0]["split"]
    assert split["processes"] == 2 and len(split["devices"]) == 2 and split["per_device_batch"] == 4
    assert split["left_out_rows_per_epoch"] == {"train": 0}  # 32 rows: 4 x 8
    # Each process fed half of each batch; both end with the one-process weights.
    assert all(r["max_diff"] < WEIGHT_ATOL for r in results), [r["max_diff"] for r in results]
    assert results[0]["weights"] == results[1]["weights"]
